//! `server export`: every transfer of a period, for the accountant, as CSV (UTF-8 with a byte
//! order mark, so that spreadsheets read Cyrillic names right; fields quoted per RFC 4180) or
//! JSON, then a totals line per kind. Streamed from the database to the output: memory stays
//! flat for a million transfers. (CSV is written here: quoting is three rules, and text a
//! spreadsheet would run as a formula is made inert.)

use std::collections::BTreeMap;

use futures::stream::{BoxStream, StreamExt};
use serde_json::json;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::clock::{DAY_MS, iso_time};
use crate::store::{Store, StoreError, StoreResult};
use crate::wallet::ids::UserId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

impl Format {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "csv" => Ok(Self::Csv),
            "json" => Ok(Self::Json),
            other => Err(format!("unknown format `{other}` (csv, json)")),
        }
    }
}

/// A kind's totals over the period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindTotals {
    pub count: i64,
    /// The change to buyers' balances (negative for refunds and spends); sums of `i64`s, so
    /// wider.
    pub ndn: i128,
    pub stars: i128,
}

const COLUMNS: [&str; 11] = [
    "time",
    "kind",
    "user_id",
    "username",
    "first_name",
    "ndn",
    "stars",
    "charge_id",
    "transfer_reference",
    "reference",
    "reason",
];

/// Writes the transfers of the days `from..=to` (days since 1970-01-01, UTC) to `out`;
/// returns the totals per kind.
pub async fn export(
    store: &Store,
    from: i64,
    to: i64,
    format: Format,
    out: &mut (impl AsyncWrite + Unpin),
) -> anyhow::Result<BTreeMap<String, KindTotals>> {
    let mut totals: BTreeMap<String, KindTotals> = BTreeMap::new();
    let mut lines = transfers_between(store, from * DAY_MS, (to + 1) * DAY_MS);
    match format {
        Format::Csv => {
            out.write_all("\u{feff}".as_bytes()).await?;
            let header = csv_row(COLUMNS.iter().map(|column| Some((*column).to_owned())));
            out.write_all(header.as_bytes()).await?;
        }
        Format::Json => {
            let (from, to) = (day_text(from), day_text(to));
            let head = format!("{{\"from\":\"{from}\",\"to\":\"{to}\",\"transfers\":[");
            out.write_all(head.as_bytes()).await?;
        }
    }
    let mut first = true;
    while let Some(line) = lines.next().await {
        let line = line?;
        let kind = totals.entry(line.kind.clone()).or_default();
        kind.count += 1;
        kind.ndn += i128::from(line.ndn);
        kind.stars += i128::from(line.stars);
        let text = match format {
            Format::Csv => csv_row(csv_fields(&line)),
            Format::Json => {
                let object = json_line(&line).to_string();
                if first { object } else { format!(",{object}") }
            }
        };
        out.write_all(text.as_bytes()).await?;
        first = false;
    }
    match format {
        Format::Csv => {
            for (kind, sums) in &totals {
                let row = csv_row([
                    Some("total".to_owned()),
                    Some(kind.clone()),
                    None,
                    None,
                    None,
                    Some(sums.ndn.to_string()),
                    Some(sums.stars.to_string()),
                    None,
                    None,
                    None,
                    Some(format!("{} transfers", sums.count)),
                ]);
                out.write_all(row.as_bytes()).await?;
            }
        }
        Format::Json => {
            let sums: serde_json::Map<String, serde_json::Value> = totals
                .iter()
                .map(|(kind, sums)| {
                    (
                        kind.clone(),
                        json!({ "count": sums.count, "ndn": sums.ndn, "stars": sums.stars }),
                    )
                })
                .collect();
            let tail = format!("],\"totals\":{}}}\n", serde_json::Value::Object(sums));
            out.write_all(tail.as_bytes()).await?;
        }
    }
    out.flush().await?;
    Ok(totals)
}

fn day_text(day: i64) -> String {
    iso_time(day * 86_400_000)[..10].to_owned()
}

/// Whether a purchase or refund: then the reference is Telegram's charge id.
fn is_charge(kind: &str) -> bool {
    kind == "purchase" || kind == "refund"
}

fn csv_fields(line: &ExportLine) -> [Option<String>; 11] {
    let charge = is_charge(&line.kind);
    [
        Some(iso_time(line.created_at)),
        Some(line.kind.clone()),
        Some(line.user_id.to_string()),
        line.username.clone(),
        line.first_name.clone(),
        Some(line.ndn.to_string()),
        Some(line.stars.to_string()),
        charge.then(|| line.reference.clone()),
        (!charge).then(|| line.reference.clone()),
        line.external_reference.clone(),
        line.reason.clone(),
    ]
}

fn json_line(line: &ExportLine) -> serde_json::Value {
    let charge = is_charge(&line.kind);
    json!({
        "time": iso_time(line.created_at),
        "kind": line.kind,
        "user_id": line.user_id,
        "username": line.username,
        "first_name": line.first_name,
        "ndn": line.ndn,
        "stars": line.stars,
        "charge_id": charge.then_some(&line.reference),
        "transfer_reference": (!charge).then_some(&line.reference),
        "reference": line.external_reference,
        "reason": line.reason,
    })
}

/// One CSV line, with its line break.
fn csv_row(fields: impl IntoIterator<Item = Option<String>>) -> String {
    let mut row = String::new();
    for (index, field) in fields.into_iter().enumerate() {
        if index > 0 {
            row.push(',');
        }
        if let Some(field) = field {
            row.push_str(&csv_field(&field));
        }
    }
    row.push_str("\r\n");
    row
}

/// One CSV field: quoted when it holds a comma, a quote or a line break (quotes doubled). Text
/// a spreadsheet would run as a formula is made inert with a `'` before the character that
/// would start it (`=`, `+`, `-`, `@`, tab, CR) wherever a cell can begin: at the start, after a
/// line break, and after `,` or `;` — Excel in Russian or German splits a line on `;` whatever
/// the quotes say, so `x;=2+5` would otherwise hide a live formula in its second cell.
fn csv_field(text: &str) -> String {
    let inert = if text.parse::<i64>().is_ok() {
        text.to_owned()
    } else {
        let mut inert = String::with_capacity(text.len() + 1);
        let mut cell_starts = true;
        for c in text.chars() {
            if cell_starts && matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r') {
                inert.push('\'');
            }
            inert.push(c);
            cell_starts = matches!(c, ',' | ';' | '\n' | '\r');
        }
        inert
    };
    if inert.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", inert.replace('"', "\"\""))
    } else {
        inert
    }
}

/// One transfer, seen from the buyer it touched.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ExportLine {
    pub id: i64,
    pub created_at: i64,
    pub kind: String,
    pub user_id: UserId,
    pub username: Option<String>,
    pub first_name: Option<String>,
    /// What it did to the buyer's balance (+ purchases and grants, − refunds and spends).
    pub ndn: i64,
    pub stars: i64,
    /// The charge id (purchases, refunds), or the debit, capture or credit id.
    pub reference: String,
    /// The operator's own reference of a debit, if it gave one.
    pub external_reference: Option<String>,
    pub reason: Option<String>,
}

/// The transfers written in `[from, to)` (Unix ms), oldest first, as a stream: memory stays
/// flat however many there are.
fn transfers_between(store: &Store, from: i64, to: i64) -> BoxStream<'_, StoreResult<ExportLine>> {
    sqlx::query_as(
        "SELECT t.id AS id, t.created_at AS created_at, t.kind AS kind,
                CASE WHEN t.credit_account > 0 THEN t.credit_account ELSE t.debit_account END
                    AS user_id,
                CASE WHEN t.credit_account > 0 THEN t.amount ELSE -t.amount END AS ndn,
                t.stars AS stars, t.reference AS reference,
                t.external_reference AS external_reference, t.reason AS reason,
                u.username AS username, u.first_name AS first_name
         FROM transfers t
         LEFT JOIN users u
           ON u.id = CASE WHEN t.credit_account > 0 THEN t.credit_account ELSE t.debit_account END
         WHERE t.created_at >= $1 AND t.created_at < $2
         ORDER BY t.id",
    )
    .bind(from)
    .bind(to)
    .fetch(store.pool())
    .map(|row| row.map_err(StoreError::from))
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_made_inert() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("Борис"), "Борис");
        assert_eq!(csv_field("a, b"), "\"a, b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("-500"), "-500");
        assert_eq!(csv_field("@me"), "'@me");
        assert_eq!(csv_field("x;=2+5;"), "x;'=2+5;");
        assert_eq!(csv_field(";=1+1"), ";'=1+1");
        assert_eq!(csv_field("a,+1"), "\"a,'+1\"");
        assert_eq!(csv_field("line\n@cmd"), "\"line\n'@cmd\"");
        assert_eq!(csv_field("a-b; c"), "a-b; c");
    }
}
