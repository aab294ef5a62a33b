//! What the bot says, in English and Russian.

use app::format::grouped;
use app::i18n::Lang;

use crate::wallet::amounts::Stars;
use crate::wallet::checkout::Refusal;
use crate::wallet::model::{Notice, PaymentOutcome, RefundOutcome};
use crate::wallet::operations::Receipt;

/// Notifications queued with payments and refunds.
pub struct BotNotice;

impl Notice for BotNotice {
    fn payment(&self, lang: Lang, outcome: &PaymentOutcome, stars: Stars) -> Option<String> {
        match outcome {
            PaymentOutcome::Credited { ndn, balance, .. } => Some(match lang {
                Lang::En => format!(
                    "+{} NDN — balance {} NDN. Thank you!",
                    grouped(ndn.get()),
                    grouped(*balance)
                ),
                Lang::Ru => format!(
                    "+{} NDN — баланс {} NDN. Спасибо!",
                    grouped(ndn.get()),
                    grouped(*balance)
                ),
            }),
            PaymentOutcome::Held { .. } => Some(match lang {
                Lang::En => format!(
                    "We received your payment of {stars} ⭐ but could not match it to a purchase. \
                     It is saved and will be credited or refunded; /paysupport if you have questions."
                ),
                Lang::Ru => format!(
                    "Мы получили оплату {stars} ⭐, но не смогли сопоставить её с покупкой. \
                     Платёж сохранён и будет зачислен или возвращён; вопросы — /paysupport."
                ),
            }),
            PaymentOutcome::Duplicate => None,
        }
    }

    fn credit(&self, lang: Lang, receipt: &Receipt) -> Option<String> {
        let Receipt::Credit {
            amount,
            reason,
            funds,
            ..
        } = receipt
        else {
            return None;
        };
        Some(match lang {
            Lang::En => format!(
                "+{} NDN: {reason} — balance {} NDN.",
                grouped(amount.get()),
                grouped(funds.balance)
            ),
            Lang::Ru => format!(
                "+{} NDN: {reason} — баланс {} NDN.",
                grouped(amount.get()),
                grouped(funds.balance)
            ),
        })
    }

    fn refund(&self, lang: Lang, outcome: &RefundOutcome, stars: Stars) -> Option<String> {
        let RefundOutcome::Debited { ndn, balance, .. } = outcome else {
            return None;
        };
        Some(match lang {
            Lang::En => format!(
                "Refund: {stars} ⭐ returned, −{} NDN — balance {} NDN.",
                grouped(ndn.get()),
                grouped(*balance)
            ),
            Lang::Ru => format!(
                "Возврат: {stars} ⭐ возвращены, −{} NDN — баланс {} NDN.",
                grouped(ndn.get()),
                grouped(*balance)
            ),
        })
    }
}

/// The error Telegram shows in the payment sheet when a pre-checkout is refused.
pub fn refusal(lang: Lang, refusal: Refusal) -> &'static str {
    match (lang, refusal) {
        (Lang::En, Refusal::UnknownOrder) => {
            "This order was not found. Please start the purchase again."
        }
        (Lang::Ru, Refusal::UnknownOrder) => "Заказ не найден. Начните покупку заново.",
        (Lang::En, Refusal::NotYourOrder) => "This invoice belongs to another user.",
        (Lang::Ru, Refusal::NotYourOrder) => "Этот счёт выставлен другому пользователю.",
        (Lang::En, Refusal::AlreadyPaid) => "This order is already paid. Open the app to buy more.",
        (Lang::Ru, Refusal::AlreadyPaid) => {
            "Этот заказ уже оплачен. Откройте приложение, чтобы купить ещё."
        }
        (Lang::En, Refusal::Closed) => "This order is closed. Please start the purchase again.",
        (Lang::Ru, Refusal::Closed) => "Заказ закрыт. Начните покупку заново.",
        (Lang::En, Refusal::Expired) => {
            "This invoice has expired. Please start the purchase again."
        }
        (Lang::Ru, Refusal::Expired) => "Срок действия счёта истёк. Начните покупку заново.",
        (Lang::En, Refusal::WrongCurrency | Refusal::WrongAmount) => {
            "The price has changed. Please start the purchase again."
        }
        (Lang::Ru, Refusal::WrongCurrency | Refusal::WrongAmount) => {
            "Цена изменилась. Начните покупку заново."
        }
    }
}

/// The invoice description shown in Telegram's payment sheet (at most 255 characters).
pub fn invoice_description(lang: Lang, ndn: i64) -> String {
    match lang {
        Lang::En => format!(
            "{} NDN credited to your balance right after payment.",
            grouped(ndn)
        ),
        Lang::Ru => format!(
            "{} NDN поступят на баланс сразу после оплаты.",
            grouped(ndn)
        ),
    }
}

/// Bot commands and their replies.
pub mod commands {
    use super::*;

    /// `with_button`: the reply carries the button that opens the shop.
    pub fn start(lang: Lang, first_name: &str, with_button: bool) -> String {
        match (lang, with_button) {
            (Lang::En, true) => format!(
                "Hi, {first_name}! Buy NDN with Telegram Stars in our shop: tap the button below."
            ),
            (Lang::En, false) => {
                format!("Hi, {first_name}! Buy NDN with Telegram Stars in our shop.")
            }
            (Lang::Ru, true) => format!(
                "Привет, {first_name}! Покупайте NDN за Telegram Stars в нашем магазине: нажмите кнопку ниже."
            ),
            (Lang::Ru, false) => {
                format!("Привет, {first_name}! Покупайте NDN за Telegram Stars в нашем магазине.")
            }
        }
    }

    /// `/start` in a group: the shop opens in a private chat only (Telegram allows Mini App
    /// buttons there, and nobody else reads the answers).
    pub fn start_in_group(lang: Lang, with_button: bool) -> String {
        let head = match lang {
            Lang::En => "NDN is sold in a private chat with me",
            Lang::Ru => "NDN продаются в личном чате со мной",
        };
        let tail = match (lang, with_button) {
            (Lang::En, true) => ": tap the button below.",
            (Lang::Ru, true) => ": нажмите кнопку ниже.",
            (_, false) => ".",
        };
        format!("{head}{tail}")
    }

    pub fn private_chat_button(lang: Lang) -> &'static str {
        match lang {
            Lang::En => "Open a private chat",
            Lang::Ru => "Открыть личный чат",
        }
    }

    pub fn open_button(lang: Lang) -> &'static str {
        match lang {
            Lang::En => "Open shop",
            Lang::Ru => "Открыть магазин",
        }
    }

    pub fn balance(lang: Lang, balance: i64) -> String {
        match lang {
            Lang::En => format!("Your balance: {} NDN.", grouped(balance)),
            Lang::Ru => format!("Ваш баланс: {} NDN.", grouped(balance)),
        }
    }

    pub fn help(lang: Lang) -> &'static str {
        match lang {
            Lang::En => {
                "/start — open the shop\n/balance — your NDN balance\n/paysupport — help with a payment\n/privacy — privacy policy\n/terms — terms of sale"
            }
            Lang::Ru => {
                "/start — открыть магазин\n/balance — ваш баланс NDN\n/paysupport — помощь с оплатой\n/privacy — политика конфиденциальности\n/terms — условия продажи"
            }
        }
    }

    pub fn paysupport(lang: Lang, charges: &[String]) -> String {
        let list = if charges.is_empty() {
            String::new()
        } else {
            let ids: Vec<String> = charges.iter().map(|id| format!("• {id}")).collect();
            match lang {
                Lang::En => format!("\n\nYour recent payment ids:\n{}", ids.join("\n")),
                Lang::Ru => format!("\n\nВаши последние платежи:\n{}", ids.join("\n")),
            }
        };
        let head = match lang {
            Lang::En => {
                "Problem with a payment? Reply here describing what happened and include the payment id; we answer within 24 hours and refund Stars when NDN were not delivered."
            }
            Lang::Ru => {
                "Проблема с оплатой? Опишите её ответным сообщением и укажите идентификатор платежа; мы отвечаем в течение 24 часов и возвращаем звёзды, если NDN не были зачислены."
            }
        };
        format!("{head}{list}")
    }

    /// `url`: the Mini App's address, where the full policy is.
    pub fn privacy(lang: Lang, url: Option<&str>) -> String {
        let summary = match lang {
            Lang::En => {
                "We store your Telegram id, name, language and your purchases, only to run the shop."
            }
            Lang::Ru => {
                "Мы храним ваш Telegram id, имя, язык и покупки только для работы магазина."
            }
        };
        match (lang, url) {
            (Lang::En, Some(url)) => format!("{summary} Full policy: {url}privacy"),
            (Lang::Ru, Some(url)) => format!("{summary} Полная политика: {url}privacy"),
            (_, None) => summary.to_owned(),
        }
    }

    pub fn terms(lang: Lang) -> &'static str {
        match lang {
            Lang::En => {
                "NDN is a digital in-app currency sold for Telegram Stars. Purchases are credited immediately after payment; refunds are available through /paysupport."
            }
            Lang::Ru => {
                "NDN — цифровая внутренняя валюта, продаётся за Telegram Stars. Покупки зачисляются сразу после оплаты; возврат — через /paysupport."
            }
        }
    }

    pub fn unknown(lang: Lang) -> &'static str {
        match lang {
            Lang::En => "I don't know that command. /help lists what I can do.",
            Lang::Ru => "Не знаю такой команды. /help — список команд.",
        }
    }
}
