//! Plain server-rendered pages that need no WebAssembly: privacy policy and payment support.

use axum::Router;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;

use crate::state::AppState;

/// `GET /privacy`, `GET /support`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/privacy", get(privacy))
        .route("/support", get(support))
}

/// A page styled like the Mini App; inside Telegram, its BackButton returns to the app.
fn page(state: &AppState, title: &str, body: &str) -> Html<String> {
    let script = &state.telegram_script;
    let stylesheet = state.bundle.stylesheet();
    Html(format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><script src=\"{script}\"></script>\
         <link rel=\"stylesheet\" href=\"{stylesheet}\"></head>\
         <body><main class=\"app prose\"><p><a href=\"/\">← NDN</a></p><h1>{title}</h1>{body}</main>\
         <script src=\"/nav.js\"></script></body></html>"
    ))
}

async fn privacy(State(state): State<AppState>) -> Html<String> {
    page(
        &state,
        "Privacy policy",
        "<p>To run the shop we store your Telegram user id, first name, username, language and \
         the purchases you make (orders, Telegram payment ids, NDN credited and refunded). \
         We receive these from Telegram when you open the app or pay.</p>\
         <p>We use them only to credit your NDN, show your history, answer support requests and \
         meet accounting duties. We do not sell or share them, except with Telegram to process \
         payments.</p>\
         <p>To have your data removed, send /paysupport to the bot.</p>\
         <h2>Политика конфиденциальности</h2>\
         <p>Мы храним ваш Telegram id, имя, имя пользователя, язык и покупки только для работы \
         магазина и не передаём их третьим лицам, кроме Telegram для проведения оплаты. Чтобы \
         удалить данные, отправьте боту /paysupport.</p>",
    )
}

async fn support(State(state): State<AppState>) -> Html<String> {
    page(
        &state,
        "Payment support",
        "<p>Paid but no NDN? Payments are credited automatically within seconds; if your balance \
         did not change, send <b>/paysupport</b> to the bot. It lists your recent payment ids; \
         reply with what happened and we answer within 24 hours, crediting or refunding your \
         Stars.</p>\
         <h2>Поддержка по оплате</h2>\
         <p>Оплатили, но NDN не пришли? Отправьте боту <b>/paysupport</b> — он покажет ваши \
         последние платежи; опишите проблему, и мы ответим в течение 24 часов.</p>",
    )
}
