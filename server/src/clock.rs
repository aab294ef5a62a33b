//! The wall clock, in the unit every stored time uses.

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// Now, in Unix microseconds (the bot's send slots are finer than milliseconds).
pub fn now_micros() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_micros()).unwrap_or(i64::MAX)
}

/// A duration in the milliseconds stored times use (saturating).
pub fn millis(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A duration in microseconds, the unit of the bot's send slots (saturating).
pub fn micros(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// The calendar date (year, month, day) of a day counted from 1970-01-01, in the proleptic
/// Gregorian calendar (Howard Hinnant's `civil_from_days`).
pub fn civil_date(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = u32::try_from(day_of_year - (153 * month_index + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    })
    .unwrap_or(1);
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The day counted from 1970-01-01 of a calendar date (Hinnant's `days_from_civil`), or `None`
/// for a date that does not exist.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> Option<i64> {
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => return None,
    };
    if day == 0 || day > days_in_month {
        return None;
    }
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    Some(era * 146_097 + day_of_era - 719_468)
}

/// The years a typed date may name: every stored time is in them, and every sum of
/// milliseconds made from them fits an `i64` many times over.
pub const YEARS: std::ops::RangeInclusive<i64> = 1970..=9999;

/// A day in the milliseconds stored times use.
pub const DAY_MS: i64 = 86_400_000;

/// `2026-12-01` → the day counted from 1970-01-01; `None` for anything else, or a year outside
/// [`YEARS`].
pub fn parse_date(text: &str) -> Option<i64> {
    let mut parts = text.trim().splitn(3, '-');
    let year = parts
        .next()?
        .parse()
        .ok()
        .filter(|year| YEARS.contains(year))?;
    let month = parts.next()?.parse().ok()?;
    let day = parts.next()?.parse().ok()?;
    days_from_civil(year, month, day)
}

/// A day typed for a period (`2026-12-01`), or why not, in words a person can act on.
pub fn typed_day(text: &str) -> Result<i64, String> {
    parse_date(text).ok_or_else(|| {
        format!(
            "`{text}` is not a date like 2026-12-01 (years {}-{})",
            YEARS.start(),
            YEARS.end()
        )
    })
}

/// A moment typed on the command line, in Unix ms: `2026-12-01`, `2026-12-01T09:30:00Z` (or
/// with a space, without seconds; always UTC), or a time ago: `90m`, `6h`, `3d`.
pub fn parse_time(text: &str, now: i64) -> Option<i64> {
    let text = text.trim();
    if let Some(unit) = text.chars().last().filter(|c| matches!(c, 'm' | 'h' | 'd')) {
        let count: i64 = text[..text.len() - 1].parse().ok()?;
        let ms = match unit {
            'm' => 60_000,
            'h' => 3_600_000,
            _ => 86_400_000,
        };
        return now
            .checked_sub(count.checked_mul(ms)?)
            .filter(|moment| within_years(*moment));
    }
    let (date, time) = match text.split_once(['T', ' ']) {
        Some((date, time)) => (date, Some(time.trim_end_matches('Z'))),
        None => (text, None),
    };
    let mut ms = parse_date(date)? * DAY_MS;
    if let Some(time) = time {
        let mut parts = time.split(':');
        let hours: i64 = parts.next()?.parse().ok().filter(|h| (0..24).contains(h))?;
        let minutes: i64 = parts.next()?.parse().ok().filter(|m| (0..60).contains(m))?;
        let seconds: i64 = match parts.next() {
            Some(part) => part.parse().ok().filter(|s| (0..60).contains(s))?,
            None => 0,
        };
        if parts.next().is_some() {
            return None;
        }
        ms += (hours * 3600 + minutes * 60 + seconds) * 1000;
    }
    Some(ms)
}

/// Whether a moment (Unix ms) falls in [`YEARS`].
fn within_years(ms: i64) -> bool {
    days_from_civil(*YEARS.end() + 1, 1, 1).is_some_and(|end| (0..end * DAY_MS).contains(&ms))
}

/// Unix milliseconds as `2026-12-01T09:30:00Z`.
pub fn iso_time(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let (days, of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_date(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_days_convert_both_ways() {
        for days in [-800_000, -1, 0, 59, 11_016, 20_788, 2_932_896] {
            let (year, month, day) = civil_date(days);
            assert_eq!(days_from_civil(year, month, day), Some(days));
        }
        assert_eq!(parse_date("2026-12-01"), Some(20_788));
        assert_eq!(parse_date("2026-02-29"), None);
        assert_eq!(parse_date("2024-02-29"), Some(19_782));
        assert_eq!(parse_date("2026-13-01"), None);
        let day = 20_788 * 86_400_000;
        assert_eq!(parse_time("2026-12-01", 0), Some(day));
        assert_eq!(
            parse_time("2026-12-01T09:30:15Z", 0),
            Some(day + 34_215_000)
        );
        assert_eq!(parse_time("2026-12-01 09:30", 0), Some(day + 34_200_000));
        assert_eq!(parse_time("6h", day), Some(day - 21_600_000));
        assert_eq!(parse_time("3d", day), Some(day - 3 * 86_400_000));
        assert_eq!(parse_time("2026-12-01T25:00", 0), None);
        assert_eq!(parse_time("yesterday", 0), None);
        assert_eq!(parse_date("yesterday"), None);
        assert_eq!(iso_time(1_796_114_128_075), "2026-12-01T08:35:28Z");
    }

    #[test]
    fn typed_dates_stay_within_years_1970_to_9999() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("9999-12-31"), Some(2_932_896));
        for outside in [
            "1969-12-31",
            "10000-01-01",
            "99999999999999-12-31",
            "-5-01-01",
        ] {
            assert_eq!(parse_date(outside), None, "{outside}");
            assert_eq!(parse_time(outside, 0), None, "{outside}");
        }
        assert!(
            typed_day("99999999999999-12-31")
                .unwrap_err()
                .contains("years 1970-9999")
        );
        let now = 20_788 * DAY_MS;
        assert_eq!(parse_time("9223372036854775807d", now), None);
        assert_eq!(parse_time("-9223372036854775807d", now), None);
        assert_eq!(parse_time("30000d", now), None, "before 1970");
    }

    #[test]
    fn days_become_calendar_dates() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(59), (1970, 3, 1));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
        assert_eq!(civil_date(20_788), (2026, 12, 1));
        assert_eq!(civil_date(-1), (1969, 12, 31));
    }
}
