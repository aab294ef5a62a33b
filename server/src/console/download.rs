//! The download of the books from the console: `GET /api/console/export?token=…`, a
//! short-lived link signed for one operator and one period, since a download cannot carry the
//! `Authorization` header.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::clock::{DAY_MS, now_ms, typed_day};
use crate::console::export::{Format, export};
use crate::live::Signer;
use crate::state::AppState;
use crate::wallet::ids::UserId;

/// What a download covers: the days `from..=to` (days since 1970-01-01, UTC), in `format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    pub from: i64,
    pub to: i64,
    pub format: Format,
}

impl Period {
    pub fn parse(from: &str, to: &str, format: &str) -> Result<Self, String> {
        let day =
            |field: &str, text: &str| typed_day(text).map_err(|why| format!("{field}: {why}"));
        let (from, to) = (day("from", from)?, day("to", to)?);
        if to < from {
            return Err("the period ends before it starts".into());
        }
        Ok(Self {
            from,
            to,
            format: Format::parse(format)?,
        })
    }

    fn format_name(&self) -> &'static str {
        match self.format {
            Format::Csv => "csv",
            Format::Json => "json",
        }
    }
}

/// Signed download links: `operator.from.to.format.expires.signature`.
pub(super) struct ExportLinks(Signer);

impl ExportLinks {
    pub(super) fn new(bot_token: &str) -> Self {
        Self(Signer::new(b"NDN console export", bot_token))
    }

    pub(super) fn issue(&self, operator: UserId, period: &Period, expires: i64) -> String {
        self.0.sign(&format!(
            "{operator}.{}.{}.{}.{expires}",
            period.from,
            period.to,
            period.format_name()
        ))
    }

    /// The operator and period of a genuine, unexpired link.
    pub(super) fn verify(&self, token: &str, now: i64) -> Option<(UserId, Period)> {
        let parts: Vec<&str> = self.0.open(token)?.split('.').collect();
        let [operator, from, to, format, expires] = parts.as_slice() else {
            return None;
        };
        if expires.parse::<i64>().ok()? < now {
            return None;
        }
        Some((
            UserId(operator.parse().ok()?),
            Period {
                from: from.parse().ok()?,
                to: to.parse().ok()?,
                format: Format::parse(format).ok()?,
            },
        ))
    }
}

#[derive(Deserialize)]
pub struct ExportQuery {
    token: String,
}

/// `GET /api/console/export?token=…`.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/api/console/export", axum::routing::get(download))
}

/// The books of the link's period, streamed from the database to the client through a small
/// pipe: memory stays flat whatever the period holds.
async fn download(State(state): State<AppState>, Query(query): Query<ExportQuery>) -> Response {
    let links = ExportLinks::new(&state.config.telegram.bot_token);
    let Some((operator, period)) = links.verify(&query.token, now_ms() / 1000) else {
        return (StatusCode::FORBIDDEN, "this link is not valid (any more)\n").into_response();
    };
    // An operator removed from ADMIN_USER_IDS loses the links issued to them.
    if !state.config.is_operator(operator) {
        return (StatusCode::FORBIDDEN, "this link is not valid (any more)\n").into_response();
    }
    let (reader, mut writer) = tokio::io::duplex(64 * 1024);
    let store = state.store.clone();
    let job = period.clone();
    tokio::spawn(async move {
        let mut out = tokio::io::BufWriter::with_capacity(32 * 1024, &mut writer);
        if let Err(error) = export(&store, job.from, job.to, job.format, &mut out).await {
            // The client sees a cut-off file; the log says why.
            tracing::error!(%error, "console export failed");
        }
    });
    tracing::info!(
        operator = operator.get(),
        from = period.from,
        to = period.to,
        "console export"
    );
    let day = |day: i64| crate::clock::iso_time(day * DAY_MS)[..10].to_owned();
    let (content_type, extension) = match period.format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Json => ("application/json", "json"),
    };
    let file = format!(
        "ndn-transfers-{}-to-{}.{extension}",
        day(period.from),
        day(period.to)
    );
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Body::from_stream(tokio_util::io::ReaderStream::new(reader)),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_links_are_signed_and_expire() {
        let links = ExportLinks::new("123:token");
        let period = Period::parse("2026-12-01", "2026-12-31", "csv").unwrap();
        let token = links.issue(UserId(7), &period, 1_000);
        assert_eq!(links.verify(&token, 999), Some((UserId(7), period.clone())));
        assert_eq!(links.verify(&token, 1_001), None, "expired");
        let forged = token.replacen("7.", "8.", 1);
        assert_eq!(links.verify(&forged, 999), None, "another operator");
        assert_eq!(ExportLinks::new("other").verify(&token, 999), None);
        assert!(Period::parse("2026-12-31", "2026-12-01", "csv").is_err());
        assert!(Period::parse("2026-12-01", "2026-12-31", "xlsx").is_err());
    }
}
