//! Bindings to `window.Telegram.WebApp` (the official `telegram-web-app.js`).
//!
//! Everything here is browser-only state: read it from effects and event handlers, never in a
//! component body, or server and client render different things and hydration fails.

use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// The `Telegram.WebApp` object.
    pub type WebApp;

    #[wasm_bindgen(method, getter, js_name = initData)]
    fn init_data(this: &WebApp) -> String;
    #[wasm_bindgen(method, getter, js_name = initDataUnsafe)]
    fn init_data_unsafe(this: &WebApp) -> JsValue;
    #[wasm_bindgen(method, getter, js_name = colorScheme)]
    pub fn color_scheme(this: &WebApp) -> String;
    #[wasm_bindgen(method)]
    pub fn ready(this: &WebApp);
    #[wasm_bindgen(method)]
    pub fn expand(this: &WebApp);
    #[wasm_bindgen(method, js_name = isVersionAtLeast)]
    pub fn is_version_at_least(this: &WebApp, version: &str) -> bool;
    /// Throws when the link is malformed or an invoice is already open.
    #[wasm_bindgen(method, catch, js_name = openInvoice)]
    pub fn open_invoice(this: &WebApp, url: &str, callback: &JsValue) -> Result<(), JsValue>;
    #[wasm_bindgen(method, js_name = openTelegramLink)]
    pub fn open_telegram_link(this: &WebApp, url: &str);
    #[wasm_bindgen(method, js_name = onEvent)]
    pub fn on_event(this: &WebApp, name: &str, callback: &JsValue);
    #[wasm_bindgen(method, catch, js_name = showConfirm)]
    fn show_confirm(this: &WebApp, message: &str, callback: &JsValue) -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch, js_name = downloadFile)]
    fn download_file(this: &WebApp, params: &JsValue) -> Result<(), JsValue>;
    #[wasm_bindgen(method, getter, js_name = HapticFeedback)]
    fn haptic_feedback(this: &WebApp) -> HapticFeedback;
    #[wasm_bindgen(method, getter, js_name = SettingsButton)]
    fn settings_button(this: &WebApp) -> SettingsButton;

    pub type HapticFeedback;
    #[wasm_bindgen(method, js_name = notificationOccurred)]
    fn notification_occurred(this: &HapticFeedback, kind: &str);

    pub type SettingsButton;
    #[wasm_bindgen(method)]
    fn show(this: &SettingsButton);
    #[wasm_bindgen(method, js_name = onClick)]
    fn on_click(this: &SettingsButton, callback: &JsValue);
}

/// `Telegram.WebApp`, or `None` outside a browser or when the script did not load.
pub fn web_app() -> Option<WebApp> {
    #[cfg(target_arch = "wasm32")]
    {
        let window = web_sys::window()?;
        let telegram = js_sys::Reflect::get(&window, &"Telegram".into()).ok()?;
        if !telegram.is_object() {
            return None;
        }
        let web_app = js_sys::Reflect::get(&telegram, &"WebApp".into()).ok()?;
        web_app.is_object().then(|| web_app.unchecked_into())
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        None
    }
}

/// The signed launch data, when the page was opened by Telegram.
pub fn init_data() -> Option<String> {
    web_app()
        .map(|app| app.init_data())
        .filter(|data| !data.is_empty())
}

/// `initDataUnsafe.user.language_code`, for choosing the UI language before the server answers.
pub fn language_code() -> Option<String> {
    let unsafe_data = web_app()?.init_data_unsafe();
    let user = js_sys::Reflect::get(&unsafe_data, &"user".into()).ok()?;
    js_sys::Reflect::get(&user, &"language_code".into())
        .ok()?
        .as_string()
}

/// The wallet answer the page's inline script asked for while the WebAssembly was loading
/// ([`crate::shell::EARLY_WALLET`]): its JSON body when it was a 200, else `None` (then ask
/// again the usual way, which also reports the error). Taken once.
pub async fn early_wallet() -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    {
        let window = web_sys::window()?;
        let name = JsValue::from_str("__ndnWallet");
        let promise = js_sys::Reflect::get(&window, &name).ok()?;
        let _ = js_sys::Reflect::delete_property(&window, &name);
        let promise: js_sys::Promise = promise.dyn_into().ok()?;
        wasm_bindgen_futures::JsFuture::from(promise)
            .await
            .ok()?
            .as_string()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        None
    }
}

/// A success, error or warning vibration, where the client supports it.
pub fn haptic(kind: &str) {
    if let Some(app) = web_app()
        && app.is_version_at_least("6.1")
    {
        app.haptic_feedback().notification_occurred(kind);
    }
}

/// Shows the Settings entry (Bot API 7.0+) and runs `on_click` when it is pressed.
pub fn show_settings_button(on_click: impl FnMut() + 'static) {
    if let Some(app) = web_app()
        && app.is_version_at_least("7.0")
    {
        let button = app.settings_button();
        button.on_click(&Closure::<dyn FnMut()>::new(on_click).into_js_value());
        button.show();
    }
}

/// Telegram's confirmation popup (Bot API 6.2+); `on_answer(true)` when the user confirmed. Where
/// the client has no popup, the browser's own confirmation stands in.
pub fn confirm(message: &str, on_answer: impl FnOnce(bool) + 'static) {
    if let Some(app) = web_app().filter(|app| app.is_version_at_least("6.2")) {
        // A client that refuses the popup asked nothing: nothing happens.
        let _ = app.show_confirm(message, &Closure::once_into_js(on_answer));
        return;
    }
    let answer = web_sys::window()
        .and_then(|window| window.confirm_with_message(message).ok())
        .unwrap_or(false);
    on_answer(answer);
}

/// Downloads `url` (absolute) as `file_name`: Telegram's download (Bot API 8.0+, HTTPS only),
/// or the browser's own (the answer is an attachment) elsewhere, as in the sandbox.
pub fn download(url: &str, file_name: &str) {
    if url.starts_with("https://")
        && let Some(app) = web_app().filter(|app| app.is_version_at_least("8.0"))
    {
        let params = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&params, &"url".into(), &url.into());
        let _ = js_sys::Reflect::set(&params, &"file_name".into(), &file_name.into());
        if app.download_file(&params).is_ok() {
            return;
        }
    }
    if let Some(window) = web_sys::window() {
        let _ = window.location().set_href(url);
    }
}
