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
///
/// When the answer comes before the app has replaced the skeleton, the balance is written into
/// the skeleton's balance line at once, grouped as [`crate::format::grouped`] groups it, so it
/// is on screen while the WebAssembly is still compiling and hydrating (on a slow phone, most
/// of a reopen); if the body is still being parsed, as soon as it is (`readystatechange` comes
/// before the deferred module script runs, `DOMContentLoaded` after it). Only that text node's
/// value, a class and an attribute change: hydration takes the skeleton's nodes as they are and
/// does not read them, and the app replaces the skeleton with the wallet when it adopts the
/// same answer. (No `<` or `&`: the script reads the same whether or not a renderer escapes a
/// script's text.)
pub const EARLY_WALLET: &str = "(function(){try{var d=new URLSearchParams(location.hash.slice(1))\
.get('tgWebAppData');if(!d)return;var w=window.__ndnWallet=fetch('/api/wallet',{method:'POST',\
headers:{'Authorization':'tma '+d,'Content-Type':'application/x-www-form-urlencoded'},body:''})\
.then(function(r){return r.ok?r.text():null},function(){return null});\
w.then(function(t){if(!t)return;var b=JSON.parse(t).balance;if(typeof b!=='number')return;\
var s=(b>=0?'':'\\u2212')+String(Math.abs(b)).replace(/\\B(?=(\\d{3})+$)/g,'\\u00a0')+' NDN';\
var p=function(){var e=document.querySelector('[data-testid=skeleton] .balance');\
if(!e||!e.firstChild)return;e.firstChild.nodeValue=s;e.classList.remove('skeleton-line');\
e.setAttribute('data-testid','balance')};document.readyState==='loading'?\
document.addEventListener('readystatechange',p,{once:true}):p()}).catch(function(){})}catch(e){}})()";

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
