//! `server ledger verify` and `server export`: the books checked, and handed to the accountant.

use clap::Subcommand;

use crate::console::export::Format;
use crate::store::Store;

#[derive(Subcommand)]
pub enum LedgerAction {
    /// Recompute every balance from the transfers and check that the books sum to zero, that
    /// every cached balance equals its transfers, that every credited charge has exactly one
    /// credit and at most one refund, and that the Stars match the payments; exits 4 naming
    /// each discrepancy.
    #[command(after_help = "\
Reads DATABASE_URL; no bot token needed. Exit code 0: the books balance; 4: discrepancies (each
printed on a DISCREPANCY line).

Examples:
  server ledger verify
  DATABASE_URL=sqlite:///backups/ndn-2026-12-01.db server ledger verify      a backup")]
    Verify,
}

/// `ledger verify` found something wrong (already printed).
#[derive(Debug, thiserror::Error)]
#[error("the books have {0} discrepancies")]
pub(super) struct Discrepancies(usize);

pub async fn verify(store: &Store) -> anyhow::Result<()> {
    let report = crate::ledger::verify::verify(store).await?;
    print!("{report}");
    if report.is_clean() {
        Ok(())
    } else {
        Err(Discrepancies(report.discrepancies.len()).into())
    }
}

pub async fn export(
    from: i64,
    to: i64,
    format: Format,
    output: Option<std::path::PathBuf>,
    store: &Store,
) -> anyhow::Result<()> {
    if to < from {
        anyhow::bail!("--to is before --from");
    }
    let totals = match output {
        Some(path) => {
            let mut file = tokio::io::BufWriter::new(tokio::fs::File::create(&path).await?);
            crate::console::export::export(store, from, to, format, &mut file).await?
        }
        None => {
            let mut stdout = tokio::io::BufWriter::new(tokio::io::stdout());
            crate::console::export::export(store, from, to, format, &mut stdout).await?
        }
    };
    let count: i64 = totals.values().map(|kind| kind.count).sum();
    eprintln!("{count} transfers exported");
    Ok(())
}
