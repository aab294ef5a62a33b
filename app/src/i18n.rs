//! The Mini App's words in English and Russian.

use crate::api::{ApiError, AuthFailure, OrderState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    Ru,
}

impl Lang {
    /// Telegram's `language_code` (`ru`, `ru-RU`, `en`, …); anything but Russian is English.
    pub fn from_code(code: &str) -> Self {
        if code
            .get(..2)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case("ru"))
        {
            Self::Ru
        } else {
            Self::En
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Ru => "ru",
        }
    }
}

/// A problem the buyer can meet, in words they can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    SessionExpired,
    SessionInvalid,
    Network,
    Server,
    InvoiceFailed,
    RateLimited(u64),
    PaymentFailed,
    OldClient,
    NoConfirmation,
}

impl Problem {
    /// What went wrong with a call, `during_purchase` telling invoice failures from the rest.
    pub fn from_api(error: &ApiError, during_purchase: bool) -> Self {
        match error {
            ApiError::Unauthorized(AuthFailure::Expired) => Self::SessionExpired,
            ApiError::Unauthorized(_) => Self::SessionInvalid,
            ApiError::RateLimited { retry_after_secs } => Self::RateLimited(*retry_after_secs),
            ApiError::Framework(server_fn::error::ServerFnErrorErr::Request(_)) => Self::Network,
            _ if during_purchase => Self::InvoiceFailed,
            _ => Self::Server,
        }
    }
}

pub struct Texts {
    pub balance: &'static str,
    pub packages: &'static str,
    pub buy: &'static str,
    pub best_value: &'static str,
    pub history: &'static str,
    pub history_empty: &'static str,
    pub available: &'static str,
    pub held: &'static str,
    pub spent: &'static str,
    pub credited_by_shop: &'static str,
    pub confirming: &'static str,
    pub credited: &'static str,
    pub retry: &'static str,
    pub dismiss: &'static str,
    pub open_in_telegram: &'static str,
    pub open_in_telegram_hint: &'static str,
    pub support: &'static str,
    pub privacy: &'static str,
    pub loading: &'static str,
}

const EN: Texts = Texts {
    balance: "Your balance",
    packages: "Buy NDN",
    buy: "Buy",
    best_value: "Best value",
    history: "History",
    history_empty: "No purchases yet",
    available: "Available",
    held: "Reserved",
    spent: "Spent",
    credited_by_shop: "Credited",
    confirming: "Confirming payment…",
    credited: "NDN credited",
    retry: "Retry",
    dismiss: "OK",
    open_in_telegram: "Open this app in Telegram",
    open_in_telegram_hint: "NDN is sold inside Telegram. Open the bot and tap “Open shop”.",
    support: "Payment support",
    privacy: "Privacy policy",
    loading: "Loading…",
};

const RU: Texts = Texts {
    balance: "Ваш баланс",
    packages: "Купить NDN",
    buy: "Купить",
    best_value: "Выгоднее всего",
    history: "История",
    history_empty: "Покупок пока нет",
    available: "Доступно",
    held: "Зарезервировано",
    spent: "Потрачено",
    credited_by_shop: "Начислено",
    confirming: "Подтверждаем оплату…",
    credited: "NDN зачислены",
    retry: "Повторить",
    dismiss: "Понятно",
    open_in_telegram: "Откройте приложение в Telegram",
    open_in_telegram_hint: "NDN продаются внутри Telegram. Откройте бота и нажмите «Открыть магазин».",
    support: "Поддержка по оплате",
    privacy: "Политика конфиденциальности",
    loading: "Загрузка…",
};

pub fn texts(lang: Lang) -> &'static Texts {
    match lang {
        Lang::En => &EN,
        Lang::Ru => &RU,
    }
}

pub fn status(lang: Lang, state: OrderState) -> &'static str {
    match (lang, state) {
        (Lang::En, OrderState::Pending) => "Pending",
        (Lang::En, OrderState::Paid) => "Paid",
        (Lang::En, OrderState::Refunded) => "Refunded",
        (Lang::En, OrderState::Expired) => "Expired",
        (Lang::En, OrderState::Failed) => "Failed",
        (Lang::Ru, OrderState::Pending) => "Ожидает оплаты",
        (Lang::Ru, OrderState::Paid) => "Оплачено",
        (Lang::Ru, OrderState::Refunded) => "Возврат",
        (Lang::Ru, OrderState::Expired) => "Истёк",
        (Lang::Ru, OrderState::Failed) => "Ошибка",
    }
}

pub fn problem(lang: Lang, problem: Problem) -> String {
    let text = match (lang, problem) {
        (Lang::En, Problem::SessionExpired) => {
            "Your session has expired. Close the app and open it again."
        }
        (Lang::Ru, Problem::SessionExpired) => {
            "Сессия истекла. Закройте приложение и откройте его снова."
        }
        (Lang::En, Problem::SessionInvalid) => {
            "Telegram could not confirm who you are. Reopen the app from the bot."
        }
        (Lang::Ru, Problem::SessionInvalid) => {
            "Telegram не подтвердил вашу личность. Откройте приложение из бота заново."
        }
        (Lang::En, Problem::Network) => "No connection. Check your network and retry.",
        (Lang::Ru, Problem::Network) => "Нет соединения. Проверьте сеть и повторите.",
        (Lang::En, Problem::Server) => "Something went wrong on our side. Please retry.",
        (Lang::Ru, Problem::Server) => "У нас что-то пошло не так. Повторите, пожалуйста.",
        (Lang::En, Problem::InvoiceFailed) => {
            "Could not create the invoice. Nothing was charged; please retry."
        }
        (Lang::Ru, Problem::InvoiceFailed) => {
            "Не удалось создать счёт. Звёзды не списаны, повторите попытку."
        }
        (Lang::En, Problem::RateLimited(seconds)) => {
            return format!("Too many attempts. Try again in {seconds} s.");
        }
        (Lang::Ru, Problem::RateLimited(seconds)) => {
            return format!("Слишком много попыток. Повторите через {seconds} с.");
        }
        (Lang::En, Problem::PaymentFailed) => {
            "The payment did not go through. No NDN were credited."
        }
        (Lang::Ru, Problem::PaymentFailed) => "Оплата не прошла. NDN не зачислены.",
        (Lang::En, Problem::OldClient) => {
            "Your Telegram app is too old to pay here. Please update Telegram."
        }
        (Lang::Ru, Problem::OldClient) => {
            "Ваша версия Telegram не поддерживает оплату. Обновите Telegram."
        }
        (Lang::En, Problem::NoConfirmation) => {
            "Telegram has not confirmed the payment yet. If Stars were taken, your NDN will arrive automatically and the bot will tell you."
        }
        (Lang::Ru, Problem::NoConfirmation) => {
            "Telegram ещё не подтвердил оплату. Если звёзды списаны, NDN придут автоматически, и бот сообщит об этом."
        }
    };
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_comes_from_the_code_prefix() {
        assert_eq!(Lang::from_code("ru"), Lang::Ru);
        assert_eq!(Lang::from_code("RU-ru"), Lang::Ru);
        assert_eq!(Lang::from_code("en"), Lang::En);
        assert_eq!(Lang::from_code("uk"), Lang::En);
        assert_eq!(Lang::from_code(""), Lang::En);
    }

    #[test]
    fn expired_session_says_reopen() {
        let problem = Problem::from_api(&ApiError::Unauthorized(AuthFailure::Expired), false);
        assert_eq!(problem, Problem::SessionExpired);
        assert!(super::problem(Lang::En, problem).contains("open it again"));
    }
}
