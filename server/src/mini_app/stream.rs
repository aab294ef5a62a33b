//! `GET /api/events`: the buyer's live balance events over Server-Sent Events, opened with a
//! token the wallet call issued (an `EventSource` cannot send headers).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use tokio_stream::wrappers::BroadcastStream;

use crate::live::StreamGrant;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct StreamQuery {
    token: String,
}

/// The last message of a stream whose token expired: the app then asks for a fresh token
/// (or learns that the launch data expired too) instead of reconnecting with this one.
pub const EXPIRED_EVENT: &str = "expired";

/// `GET /api/events`.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/api/events", axum::routing::get(stream))
}

/// `GET /api/events?token=…`: one JSON `BalanceEvent` per message for the token's user, until
/// the token expires; then one `expired` event, and the stream ends.
async fn stream(State(state): State<AppState>, Query(query): Query<StreamQuery>) -> Response {
    let now_ms = crate::clock::now_ms();
    let Some(StreamGrant { user_id, expires }) = state.tokens.verify(&query.token, now_ms / 1000)
    else {
        return (StatusCode::UNAUTHORIZED, "invalid or expired stream token").into_response();
    };
    // The token verifies through the whole second `expires`; the stream lasts as long.
    let left_ms = (expires + 1).saturating_mul(1000).saturating_sub(now_ms);
    let left = Duration::from_millis(u64::try_from(left_ms).unwrap_or(0));
    let stopping = state.shutdown.clone().cancelled_owned();
    let events = BroadcastStream::new(state.events.subscribe())
        .filter_map(move |item| async move {
            match item {
                Ok((owner, event)) if owner == user_id => {
                    let json = serde_json::to_string(&event).ok()?;
                    Some(Ok::<_, Infallible>(Event::default().data(json)))
                }
                // A lagging subscriber lost events; the app's safety-net poll catches up.
                Ok(_) | Err(_) => None,
            }
        })
        .take_until(tokio::time::sleep(left))
        .chain(futures::stream::once(async {
            Ok(Event::default().event(EXPIRED_EVENT).data("token expired"))
        }))
        // A stopping server ends its streams too; browsers reconnect (to another instance).
        .take_until(stopping);
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
