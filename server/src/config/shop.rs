//! What the shop sells and how fast a buyer may order: `NDN_PACKAGES`, `ORDER_TTL`, the
//! invoice limits.

use std::time::Duration;

use app::api::Package;

use super::parse::{parse_count, parse_packages, parse_seconds};
use super::{ConfigError, DEFAULT_PACKAGES, Vars};

#[derive(Clone)]
pub struct ShopConfig {
    /// The catalogue (`NDN_PACKAGES`, `ndn:stars` pairs).
    pub packages: Vec<Package>,
    /// How long an unpaid order stays open (`ORDER_TTL`, seconds).
    pub order_ttl: Duration,
    /// Invoices a buyer may create per minute (`INVOICE_RATE_PER_MINUTE`), also the burst.
    pub invoice_rate_per_minute: u32,
    /// Unpaid, unexpired orders a buyer may hold at once (`MAX_PENDING_ORDERS`).
    pub max_pending_orders: i64,
}

impl ShopConfig {
    pub(super) fn read(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            packages: parse_packages(vars.get("NDN_PACKAGES").unwrap_or(DEFAULT_PACKAGES))?,
            order_ttl: parse_seconds(vars.get("ORDER_TTL"), "ORDER_TTL", 3_600)?,
            invoice_rate_per_minute: parse_count(
                vars.get("INVOICE_RATE_PER_MINUTE"),
                "INVOICE_RATE_PER_MINUTE",
                10,
            )?,
            max_pending_orders: i64::from(parse_count(
                vars.get("MAX_PENDING_ORDERS"),
                "MAX_PENDING_ORDERS",
                20,
            )?),
        })
    }
}
