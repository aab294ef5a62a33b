//! The HTML document around the Mini App.

use leptos::prelude::*;

use crate::ui::Home;

/// What the document needs to know about the server it is served by.
#[derive(Debug, Clone)]
pub struct ShellConfig {
    /// `https://telegram.org/js/telegram-web-app.js` in production; a local copy of the
    /// official script in the sandbox (which has no internet).
    pub telegram_script: String,
}

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
                <script src=config.telegram_script></script>
                <link rel="stylesheet" href="/pkg/ndn.css" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    view! { <Home /> }
}
