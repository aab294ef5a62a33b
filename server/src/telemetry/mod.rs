//! What the server tells about itself: its metrics, and text from outside made safe to log.
//! Every part uses it; it uses nothing of the server.

pub mod metrics;
pub mod untrusted;
