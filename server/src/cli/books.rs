//! `server ledger verify` and `server export`: the books checked, and handed to the accountant.

use clap::Subcommand;

use super::open_store;
use crate::config::Config;

#[derive(Subcommand)]
pub enum LedgerAction {
    /// Recompute every balance from the transfers and check that the books sum to zero, that
    /// every cached balance equals its transfers, that every credited charge has exactly one
    /// credit and at most one refund, and that the Stars match the payments; exits 1 naming
    /// each discrepancy.
    Verify,
}

/// `ledger verify` found something wrong (already printed).
#[derive(Debug, thiserror::Error)]
#[error("the books have {0} discrepancies")]
struct Discrepancies(usize);

pub async fn verify(config: &Config) -> anyhow::Result<()> {
    let report = crate::ledger::verify::verify(&open_store(config).await?).await?;
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
    format: &str,
    output: Option<std::path::PathBuf>,
    config: &Config,
) -> anyhow::Result<()> {
    if to < from {
        anyhow::bail!("--to is before --from");
    }
    let format = crate::console::export::Format::parse(format)
        .map_err(|problem| anyhow::anyhow!(problem))?;
    let store = open_store(config).await?;
    let totals = match output {
        Some(path) => {
            let mut file = tokio::io::BufWriter::new(tokio::fs::File::create(&path).await?);
            crate::console::export::export(&store, from, to, format, &mut file).await?
        }
        None => {
            let mut stdout = tokio::io::BufWriter::new(tokio::io::stdout());
            crate::console::export::export(&store, from, to, format, &mut stdout).await?
        }
    };
    let count: i64 = totals.values().map(|kind| kind.count).sum();
    eprintln!("{count} transfers exported");
    Ok(())
}
