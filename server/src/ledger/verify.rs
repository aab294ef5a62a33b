//! `server ledger verify`: the books recomputed from the transfers, and every invariant an
//! accountant relies on checked, each discrepancy named.

use std::fmt;

use crate::store::{Audit, Store, StoreResult};
use crate::wallet::model::TransferKind;

/// What the check found: the figures, and the discrepancies (none when the books are right).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub figures: Vec<String>,
    pub discrepancies: Vec<String>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.discrepancies.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.figures {
            writeln!(f, "{line}")?;
        }
        if self.is_clean() {
            writeln!(f, "OK: the books balance")
        } else {
            for line in &self.discrepancies {
                writeln!(f, "DISCREPANCY: {line}")?;
            }
            writeln!(f, "FAILED: {} discrepancies", self.discrepancies.len())
        }
    }
}

/// Reads the books in one snapshot and checks them.
pub async fn verify(store: &Store) -> StoreResult<Report> {
    Ok(judge(&store.audit().await?))
}

/// The checks, on what the audit read.
pub fn judge(audit: &Audit) -> Report {
    let mut figures = vec![format!("transfers: {}", audit.transfers)];
    let mut discrepancies = Vec::new();
    for (kind, totals) in &audit.totals {
        figures.push(format!(
            "  {kind}: {} transfers, {} NDN, {} Stars",
            totals.count, totals.ndn, totals.stars
        ));
    }
    let mut books = audit.cached_buyers;
    for (account, balance) in &audit.system {
        figures.push(format!("account {}: {} NDN", account.name(), balance));
        books += balance;
    }
    figures.push(format!(
        "buyers' accounts together: {} NDN",
        audit.cached_buyers
    ));
    if books != 0 {
        discrepancies.push(format!(
            "the books sum to {} NDN, not 0 (buyers' cached balances and system accounts)",
            books
        ));
    }
    for (buyer, cached, derived) in &audit.cached_mismatches {
        discrepancies.push(format!(
            "buyer {buyer}: cached balance {} NDN, transfers say {} NDN",
            cached, derived
        ));
    }
    for (buyer, cached, holds) in &audit.held_mismatches {
        discrepancies.push(format!(
            "buyer {buyer}: {cached} NDN cached as held, active holds reserve {holds} NDN"
        ));
    }
    for account in &audit.unknown_accounts {
        discrepancies.push(format!(
            "a transfer names account {account}, which does not exist"
        ));
    }
    for (transfer, buyer, after) in &audit.overdrafts {
        discrepancies.push(format!(
            "transfer {transfer} left buyer {buyer} at {} NDN; only a refund may overdraw",
            after
        ));
    }
    for (charge, problem) in &audit.charge_mismatches {
        discrepancies.push(format!("charge {charge}: {problem}"));
    }
    let stars_of = |kind: TransferKind| {
        audit
            .totals
            .get(kind.as_str())
            .map_or(0, |totals| totals.stars)
    };
    let kept = stars_of(TransferKind::Purchase) - stars_of(TransferKind::Refund);
    figures.push(format!(
        "Stars of credited purchases kept: {} (payments table: {})",
        kept, audit.credited_stars
    ));
    if kept != i128::from(audit.credited_stars) {
        discrepancies.push(format!(
            "Stars received minus Stars refunded is {}, but credited payments hold {}",
            kept, audit.credited_stars
        ));
    }
    Report {
        figures,
        discrepancies,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TransferTotals;
    use crate::wallet::model::Account;

    fn balanced() -> Audit {
        Audit {
            transfers: 3,
            totals: [
                (
                    "purchase",
                    TransferTotals {
                        count: 2,
                        ndn: 600,
                        stars: 275,
                    },
                ),
                (
                    "refund",
                    TransferTotals {
                        count: 1,
                        ndn: 100,
                        stars: 50,
                    },
                ),
            ]
            .into_iter()
            .collect(),
            system: vec![
                (Account::Sales, -600),
                (Account::Refunds, 100),
                (Account::Grants, 0),
                (Account::Spent, 0),
            ],
            cached_buyers: 500,
            credited_stars: 225,
            ..Audit::default()
        }
    }

    #[test]
    fn balanced_books_pass() {
        let report = judge(&balanced());
        assert!(report.is_clean(), "{report}");
        let text = report.to_string();
        assert!(text.contains("account sales: -600 NDN"), "{text}");
        assert!(text.ends_with("OK: the books balance\n"), "{text}");
    }

    #[test]
    fn every_discrepancy_is_named() {
        let mut audit = balanced();
        audit.cached_buyers = 510;
        audit.cached_mismatches.push((7, 510, 500));
        audit.overdrafts.push((42, 7, -10));
        audit.unknown_accounts.push(-9);
        audit
            .charge_mismatches
            .push(("c1".into(), "two purchases".into()));
        audit.credited_stars = 1;
        audit.held_mismatches.push((8, 10, 0));
        let report = judge(&audit);
        let text = report.to_string();
        for expected in [
            "the books sum to 10 NDN, not 0",
            "buyer 7: cached balance 510 NDN, transfers say 500 NDN",
            "transfer 42 left buyer 7 at -10 NDN",
            "account -9",
            "charge c1: two purchases",
            "Stars received minus Stars refunded is 225, but credited payments hold 1",
            "buyer 8: 10 NDN cached as held, active holds reserve 0 NDN",
            "FAILED: 7 discrepancies",
        ] {
            assert!(text.contains(expected), "missing `{expected}` in\n{text}");
        }
    }
}
