//! A typed client for the Bot API methods the product calls.

use std::time::Duration;

use crate::wallet::ids::UserId;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Clone, thiserror::Error)]
pub enum BotApiError {
    /// Telegram answered `ok: false`.
    #[error("{method}: Telegram error {code}: {description}")]
    Api {
        method: &'static str,
        code: u16,
        description: String,
        retry_after: Option<u64>,
    },
    /// No usable answer: connection failure, timeout, or a body that is not the envelope.
    #[error("{method}: {problem}")]
    Transport {
        method: &'static str,
        problem: String,
    },
}

impl BotApiError {
    /// Seconds Telegram asked us to wait (429).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Api { retry_after, .. } => *retry_after,
            Self::Transport { .. } => None,
        }
    }

    /// Whether trying the same call later can succeed (429, 5xx, network).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Api { code, .. } => *code == 429 || *code >= 500,
            Self::Transport { .. } => true,
        }
    }

    pub fn description(&self) -> &str {
        match self {
            Self::Api { description, .. } => description,
            Self::Transport { problem, .. } => problem,
        }
    }
}

#[derive(Deserialize)]
struct Envelope<T> {
    ok: bool,
    result: Option<T>,
    error_code: Option<u16>,
    description: Option<String>,
    parameters: Option<ResponseParameters>,
}

#[derive(Deserialize)]
struct ResponseParameters {
    retry_after: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct BotUser {
    pub id: i64,
    pub first_name: String,
    #[serde(default)]
    pub username: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, Default)]
pub struct WebhookInfo {
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub pending_update_count: i64,
    #[serde(default)]
    pub last_error_date: Option<i64>,
    #[serde(default)]
    pub last_error_message: Option<String>,
    #[serde(default)]
    pub max_connections: Option<i64>,
    #[serde(default)]
    pub allowed_updates: Option<Vec<String>>,
    #[serde(default)]
    pub ip_address: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct StarTransactions {
    pub transactions: Vec<StarTransaction>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct StarTransaction {
    pub id: String,
    pub amount: i64,
    pub date: i64,
    #[serde(default)]
    pub source: Option<serde_json::Value>,
    #[serde(default)]
    pub receiver: Option<serde_json::Value>,
}

/// The bot's own Stars (`getMyStarBalance`); fractions of a Star are not used here.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
pub struct StarAmount {
    pub amount: i64,
}

/// What `createInvoiceLink` needs for a Stars invoice: one price, no provider token, no tips.
#[derive(Debug, Clone)]
pub struct StarsInvoice<'a> {
    pub title: &'a str,
    pub description: &'a str,
    pub payload: &'a str,
    pub label: &'a str,
    pub amount: i64,
}

#[derive(Clone)]
pub struct BotApi {
    http: reqwest::Client,
    metrics: Option<std::sync::Arc<crate::telemetry::metrics::Metrics>>,
    /// `{api_url}/bot{token}` or `{api_url}/bot{token}/test`; never logged.
    base: String,
}

impl BotApi {
    pub fn new(api_url: &str, token: &str, test_env: bool) -> Self {
        Self::with_timeout(api_url, token, test_env, Duration::from_secs(15))
    }

    /// A client whose calls give up after `timeout` (then they count as transient failures).
    pub fn with_timeout(api_url: &str, token: &str, test_env: bool, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .expect("a TLS backend is compiled in");
        let test = if test_env { "/test" } else { "" };
        Self {
            http,
            metrics: None,
            base: format!("{}/bot{token}{test}", api_url.trim_end_matches('/')),
        }
    }

    /// Counts failed calls by method in `metrics`.
    pub fn with_metrics(
        mut self,
        metrics: std::sync::Arc<crate::telemetry::metrics::Metrics>,
    ) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub async fn call<P: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: &'static str,
        params: &P,
    ) -> Result<R, BotApiError> {
        self.call_within(method, params, None).await
    }

    async fn call_within<P: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: &'static str,
        params: &P,
        timeout: Option<Duration>,
    ) -> Result<R, BotApiError> {
        let result = self.send(method, params, timeout).await;
        if let (Err(error), Some(metrics)) = (&result, &self.metrics) {
            let label = crate::telemetry::metrics::Method { method };
            metrics.bot_api_errors.get_or_create(&label).inc();
            if let BotApiError::Api { code: 429, .. } = error {
                metrics.bot_api_rate_limited.get_or_create(&label).inc();
            }
        }
        result
    }

    async fn send<P: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: &'static str,
        params: &P,
        timeout: Option<Duration>,
    ) -> Result<R, BotApiError> {
        let transport = |problem: String| BotApiError::Transport { method, problem };
        let mut request = self
            .http
            .post(format!("{}/{method}", self.base))
            .json(params);
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        let response = request
            .send()
            .await
            // The URL holds the token: drop it from the error before anyone can print it.
            .map_err(|e| transport(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        let header_retry = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = response
            .bytes()
            .await
            .map_err(|e| transport(e.without_url().to_string()))?;
        let envelope: Envelope<R> = serde_json::from_slice(&body)
            .map_err(|e| transport(format!("HTTP {status}, unreadable answer: {e}")))?;
        match (envelope.ok, envelope.result) {
            (true, Some(result)) => Ok(result),
            (true, None) => Err(transport("ok without result".into())),
            (false, _) => Err(BotApiError::Api {
                method,
                code: envelope.error_code.unwrap_or(status),
                description: envelope.description.unwrap_or_default(),
                retry_after: envelope
                    .parameters
                    .and_then(|p| p.retry_after)
                    .or(header_retry),
            }),
        }
    }

    /// Long polling: waits up to `timeout_secs` for updates from `offset` on.
    pub async fn get_updates(
        &self,
        offset: i64,
        timeout_secs: u64,
        allowed_updates: &[&str],
    ) -> Result<Vec<serde_json::Value>, BotApiError> {
        let params = json!({ "offset": offset, "timeout": timeout_secs, "allowed_updates": allowed_updates });
        let patience = Some(Duration::from_secs(timeout_secs + 10));
        self.call_within("getUpdates", &params, patience).await
    }

    pub async fn get_me(&self) -> Result<BotUser, BotApiError> {
        self.call("getMe", &json!({})).await
    }

    pub async fn create_invoice_link(
        &self,
        invoice: &StarsInvoice<'_>,
    ) -> Result<String, BotApiError> {
        let params = json!({
            "title": invoice.title,
            "description": invoice.description,
            "payload": invoice.payload,
            "currency": "XTR",
            "prices": [{ "label": invoice.label, "amount": invoice.amount }],
        });
        self.call("createInvoiceLink", &params).await
    }

    pub async fn answer_pre_checkout_query(
        &self,
        answer: &crate::telegram::updates::PreCheckoutAnswer,
    ) -> Result<bool, BotApiError> {
        self.call(crate::telegram::updates::PreCheckoutAnswer::METHOD, answer)
            .await
    }

    /// Sends a message; `params` may add `reply_markup` and the like.
    pub async fn send_message(
        &self,
        chat_id: i64,
        text: &str,
        reply_markup: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, BotApiError> {
        let mut params = json!({ "chat_id": chat_id, "text": text });
        if let Some(markup) = reply_markup {
            params["reply_markup"] = markup.clone();
        }
        self.call("sendMessage", &params).await
    }

    pub async fn refund_star_payment(
        &self,
        user_id: UserId,
        charge_id: &str,
    ) -> Result<bool, BotApiError> {
        let params = json!({ "user_id": user_id, "telegram_payment_charge_id": charge_id });
        self.call("refundStarPayment", &params).await
    }

    pub async fn get_star_transactions(
        &self,
        offset: u32,
        limit: u32,
    ) -> Result<StarTransactions, BotApiError> {
        self.call(
            "getStarTransactions",
            &json!({ "offset": offset, "limit": limit }),
        )
        .await
    }

    pub async fn get_my_star_balance(&self) -> Result<StarAmount, BotApiError> {
        self.call("getMyStarBalance", &json!({})).await
    }

    pub async fn set_webhook(&self, params: &serde_json::Value) -> Result<bool, BotApiError> {
        self.call("setWebhook", params).await
    }

    pub async fn get_webhook_info(&self) -> Result<WebhookInfo, BotApiError> {
        self.call("getWebhookInfo", &json!({})).await
    }

    pub async fn delete_webhook(&self, drop_pending_updates: bool) -> Result<bool, BotApiError> {
        self.call(
            "deleteWebhook",
            &json!({ "drop_pending_updates": drop_pending_updates }),
        )
        .await
    }

    pub async fn set_my_commands(&self, params: &serde_json::Value) -> Result<bool, BotApiError> {
        self.call("setMyCommands", params).await
    }

    pub async fn set_chat_menu_button(
        &self,
        params: &serde_json::Value,
    ) -> Result<bool, BotApiError> {
        self.call("setChatMenuButton", params).await
    }
}
