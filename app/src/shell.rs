//! The HTML document around the Mini App.

use leptos::prelude::*;

use crate::ui::Home;

/// What the document needs to know about the server it is served by.
#[derive(Debug, Clone)]
pub struct ShellConfig {
    /// `https://telegram.org/js/telegram-web-app.js` in production; a local copy of the
    /// official script in the sandbox (which has no internet).
    pub telegram_script: String,
    /// The build's files' addresses (their names carry the build's content hash).
    pub stylesheet: String,
    pub script: String,
    pub wasm: String,
}

/// Starts the first wallet request as soon as the page's head is parsed, in parallel with the
/// WebAssembly download (and before Telegram's script has run): the launch data is read from
/// the URL fragment, where Telegram puts it (`tgWebAppData`, decoded as `telegram-web-app.js`
/// decodes it). The same request the `wallet` server function makes: `Authorization: tma
/// <initData>`, an empty form body; it resolves to the JSON of a 200, else `null`, and the app
/// adopts it ([`crate::telegram::early_wallet`]). Without launch data in the fragment (a page
/// reloaded inside Telegram) nothing starts and the app asks the usual way.
pub const EARLY_WALLET: &str = "(function(){try{var d=new URLSearchParams(location.hash.slice(1))\
.get('tgWebAppData');if(!d)return;window.__ndnWallet=fetch('/api/wallet',{method:'POST',\
headers:{'Authorization':'tma '+d,'Content-Type':'application/x-www-form-urlencoded'},body:''})\
.then(function(r){return r.ok?r.text():null},function(){return null})}catch(e){}})()";

pub fn shell(options: LeptosOptions, config: ShellConfig) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta
                    name="viewport"
                    content="width=device-width, initial-scale=1, viewport-fit=cover"
                />
                <meta name="color-scheme" content="light dark" />
                <title>"NDN"</title>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                <script>{EARLY_WALLET}</script>
                <link rel="stylesheet" href=config.stylesheet />
                <Hydration script=config.script wasm=config.wasm />
                <script src=config.telegram_script></script>
                <AutoReload options />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// Loads the app's JS and wasm (both preloaded, fetched while the page is parsed) and hydrates
/// the page; what Leptos' `HydrationScripts` does, with the names the server read from the
/// build's hash file, and no nonce (the page's policy allows this script by its hash).
#[component]
fn Hydration(script: String, wasm: String) -> impl IntoView {
    let start = format!(
        "import init,{{hydrate}}from'{script}';init({{module_or_path:'{wasm}'}}).then(()=>hydrate())"
    );
    view! {
        <link rel="modulepreload" href=script.clone() crossorigin="" />
        <link rel="preload" href=wasm r#as="fetch" r#type="application/wasm" crossorigin="" />
        <script type="module">{start}</script>
    }
}

#[component]
pub fn App() -> impl IntoView {
    view! { <Home /> }
}
