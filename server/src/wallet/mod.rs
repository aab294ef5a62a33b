//! The wallet's rules as plain functions and types: what a pre-checkout accepts, what a payment
//! (alone or in a batch) and a refund become, and the transfers they make. The store carries
//! the plans out and decides nothing; the ledger applies them and owns what follows.

pub mod amounts;
pub mod checkout;
pub mod ids;
pub mod model;
pub mod operations;
pub mod payments;
pub mod refunds;
