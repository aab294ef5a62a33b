//! The live balance stream (`GET /api/events`) in the browser.

use crate::api::BalanceEvent;

/// An open subscription; dropping it closes the stream.
pub struct Subscription {
    #[cfg(target_arch = "wasm32")]
    source: web_sys::EventSource,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        #[cfg(target_arch = "wasm32")]
        self.source.close();
    }
}

/// Subscribes with the token from `wallet`; `on_event` gets every balance change and
/// `on_health` whether the stream is currently open.
pub fn subscribe(
    token: &str,
    on_event: impl Fn(BalanceEvent) + 'static,
    on_health: impl Fn(bool) + 'static,
) -> Option<Subscription> {
    #[cfg(target_arch = "wasm32")]
    {
        use std::rc::Rc;
        use wasm_bindgen::prelude::*;

        let url = format!("/api/events?token={token}");
        let source = web_sys::EventSource::new(&url).ok()?;
        let on_health = Rc::new(on_health);
        let opened = on_health.clone();
        let on_open = Closure::<dyn Fn()>::new(move || opened(true)).into_js_value();
        source.set_onopen(Some(on_open.unchecked_ref()));
        let on_error = Closure::<dyn Fn()>::new(move || on_health(false)).into_js_value();
        source.set_onerror(Some(on_error.unchecked_ref()));
        let on_message =
            Closure::<dyn Fn(web_sys::MessageEvent)>::new(move |message: web_sys::MessageEvent| {
                if let Some(event) = message
                    .data()
                    .as_string()
                    .and_then(|text| serde_json::from_str::<BalanceEvent>(&text).ok())
                {
                    on_event(event);
                }
            })
            .into_js_value();
        source.set_onmessage(Some(on_message.unchecked_ref()));
        Some(Subscription { source })
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (token, on_event, on_health);
        None
    }
}
