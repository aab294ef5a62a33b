//! The NDN Mini App: the UI, the types that cross the wire and the server-function contract.
//!
//! `server` provides the wallet behind the server functions (see [`backend`]); this crate knows
//! no SQL and no HTTP client.

pub mod api;
#[cfg(feature = "ssr")]
pub mod backend;
mod client;
pub mod console;
mod console_ui;
pub mod format;
pub mod i18n;
pub mod ids;
mod live;
mod shell;
pub mod telegram;
mod ui;

pub use shell::{App, ShellConfig, shell};
