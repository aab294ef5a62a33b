//! What outsiders read, as they read it: the service API's objects (`views`) and the signed
//! events' bodies (`event`), built from the rules' nouns. The API answers with them, the
//! ledger writes the events with their change, the outgoing worker sends them.

pub mod event;
pub mod views;
