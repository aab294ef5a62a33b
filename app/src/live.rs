//! The live balance stream (`GET /api/events`) in the browser.

use crate::api::BalanceEvent;

#[cfg(target_arch = "wasm32")]
type Handler = wasm_bindgen::closure::Closure<dyn Fn()>;

/// An open subscription; dropping it closes the stream and frees its callbacks.
pub struct Subscription {
    #[cfg(target_arch = "wasm32")]
    source: web_sys::EventSource,
    /// open, error, expired; and the message handler.
    #[cfg(target_arch = "wasm32")]
    _handlers: (
        [Handler; 3],
        wasm_bindgen::closure::Closure<dyn Fn(web_sys::MessageEvent)>,
    ),
}

impl Drop for Subscription {
    fn drop(&mut self) {
        #[cfg(target_arch = "wasm32")]
        self.source.close();
    }
}

/// What the stream tells its owner besides balance changes.
pub struct Callbacks<E, H, C> {
    /// Every balance change.
    pub on_event: E,
    /// Whether the stream is open right now (the browser reconnects by itself after a drop).
    pub on_health: H,
    /// The stream is over for good: its token expired, or the server refused it. A new one
    /// needs a fresh token from `wallet`. Called from the stream's own callback: drop the
    /// subscription later, not in this call.
    pub on_closed: C,
}

/// Subscribes with the token from `wallet`.
pub fn subscribe<E, H, C>(token: &str, callbacks: Callbacks<E, H, C>) -> Option<Subscription>
where
    E: Fn(BalanceEvent) + 'static,
    H: Fn(bool) + 'static,
    C: Fn() + 'static,
{
    let Callbacks {
        on_event,
        on_health,
        on_closed,
    } = callbacks;
    #[cfg(target_arch = "wasm32")]
    {
        use std::rc::Rc;
        use wasm_bindgen::prelude::*;

        let url = format!("/api/events?token={token}");
        let source = web_sys::EventSource::new(&url).ok()?;
        let on_health = Rc::new(on_health);
        let on_closed = Rc::new(on_closed);
        let opened = on_health.clone();
        let on_open = Closure::<dyn Fn()>::new(move || opened(true));
        source.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        // The callbacks hold handles of the source, and the subscription holds the callbacks:
        // dropping it frees them all.
        let watched = source.clone();
        let closed = on_closed.clone();
        let on_error = Closure::<dyn Fn()>::new(move || {
            // CLOSED: the browser gave up (a 4xx or 5xx answer); otherwise it retries itself.
            if watched.ready_state() == web_sys::EventSource::CLOSED {
                closed();
            } else {
                on_health(false);
            }
        });
        source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        let ending = source.clone();
        let on_expired = Closure::<dyn Fn()>::new(move || {
            ending.close();
            on_closed();
        });
        let _ =
            source.add_event_listener_with_callback("expired", on_expired.as_ref().unchecked_ref());
        let on_message =
            Closure::<dyn Fn(web_sys::MessageEvent)>::new(move |message: web_sys::MessageEvent| {
                if let Some(event) = message
                    .data()
                    .as_string()
                    .and_then(|text| serde_json::from_str::<BalanceEvent>(&text).ok())
                {
                    on_event(event);
                }
            });
        source.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        Some(Subscription {
            source,
            _handlers: ([on_open, on_error, on_expired], on_message),
        })
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (token, on_event, on_health, on_closed);
        None
    }
}
