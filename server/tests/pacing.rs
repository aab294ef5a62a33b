//! The bot's messages paced to Telegram's flood limits, which the fake Bot API enforces as
//! Telegram does (30 a second, one a second to a chat, 429 with `retry_after` past them): a
//! sale's burst, one buyer's quick purchases, and a 429 that pauses everything. On PostgreSQL
//! with two instances, so that the limits hold for the cluster.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use server::notifier::queue::Queue;
use server::sandbox::fake_telegram::{FakeTelegram, Fault, SentMessage};
use support::*;

/// The notifier's rate (the default of `BOT_MESSAGES_PER_SECOND`).
const PER_SECOND: usize = 25;

on_both_databases!(
    a_sale_of_500_buyers_is_paced_and_each_gets_one_message,
    one_buyers_quick_purchases_arrive_in_order_a_second_apart,
    a_429_stops_all_sending_for_its_retry_after,
);

/// One instance on SQLite (it is served by one), two on PostgreSQL; one fake Telegram.
struct Shop {
    instances: Vec<server::Running>,
    telegram: FakeTelegram,
    http: reqwest::Client,
    _database: Database,
}

impl Shop {
    async fn open(database: Database) -> Self {
        let (telegram, telegram_url) = serve_fake_telegram().await;
        let count = if database.admin.is_some() { 2 } else { 1 };
        let mut instances = Vec::new();
        for _ in 0..count {
            let vars = production_vars(&database.url, &telegram_url);
            let config = server::config::Config::from_vars(&vars).unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            instances.push(server::start(config, listener).await.unwrap());
        }
        Self {
            instances,
            telegram,
            http: reqwest::Client::new(),
            _database: database,
        }
    }

    /// The instance a buyer's requests go to (the buyers are spread over all of them).
    fn base(&self, buyer: i64) -> String {
        let index = usize::try_from(buyer).unwrap() % self.instances.len();
        format!("http://{}", self.instances[index].addr)
    }

    /// Creates an order of 100 NDN (50 Stars) for `buyer`.
    async fn order(&self, buyer: i64) -> String {
        let init_data = signed_init_data(buyer);
        let invoice = server_function(
            &self.http,
            &self.base(buyer),
            "create_invoice",
            &init_data,
            "package_id=ndn-100",
        )
        .await;
        invoice["order_id"].as_str().expect("an order").to_owned()
    }

    /// Telegram tells the shop that `buyer` paid `order`.
    async fn pay(&self, update_id: i64, buyer: i64, order: &str) {
        let charge = format!("pacing-charge-{update_id}");
        let response = self
            .http
            .post(format!("{}/webhook/telegram", self.base(update_id)))
            .header("X-Telegram-Bot-Api-Secret-Token", SECRET)
            .json(&successful_payment(update_id, buyer, order, 50, &charge))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    /// The messages Telegram got, once it holds `count` and the outbox has drained.
    async fn messages(&self, count: usize) -> Vec<SentMessage> {
        drained_messages(&self.instances[0].state.store, &self.telegram, count).await
    }

    fn rate_limited(&self) -> u64 {
        let label = server::telemetry::metrics::Method {
            method: "sendMessage",
        };
        self.instances
            .iter()
            .map(|instance| {
                instance
                    .state
                    .metrics
                    .bot_api_rate_limited
                    .get_or_create(&label)
                    .get()
            })
            .sum()
    }
}

/// The most messages the fake accepted within any one second.
fn busiest_second(messages: &[SentMessage]) -> usize {
    let mut times: Vec<Instant> = messages.iter().map(|message| message.sent_at).collect();
    times.sort();
    (0..times.len())
        .map(|first| {
            times[first..]
                .iter()
                .take_while(|at| at.duration_since(times[first]) < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0)
}

async fn a_sale_of_500_buyers_is_paced_and_each_gets_one_message(database: Database) {
    let shop = Shop::open(database).await;
    let buyers: Vec<i64> = (0..500).map(|index| 3_000_000 + index).collect();
    let orders: Vec<(i64, String)> = futures::stream::iter(buyers.iter().copied())
        .map(|buyer| {
            let shop = &shop;
            async move { (buyer, shop.order(buyer).await) }
        })
        .buffer_unordered(16)
        .collect()
        .await;

    // The sale: every buyer pays at once.
    let started = Instant::now();
    futures::stream::iter(orders.iter().enumerate())
        .map(|(index, (buyer, order))| {
            let shop = &shop;
            async move {
                shop.pay(i64::try_from(index).unwrap() + 1, *buyer, order)
                    .await
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    println!("500 payments delivered in {:?}", started.elapsed());

    let messages = shop.messages(500).await;
    let mut per_buyer: HashMap<i64, usize> = HashMap::new();
    for message in &messages {
        *per_buyer.entry(message.chat_id).or_default() += 1;
    }
    assert_eq!(messages.len(), 500, "every buyer is told once");
    assert!(buyers.iter().all(|buyer| per_buyer.get(buyer) == Some(&1)));

    let busiest = busiest_second(&messages);
    let refusals = shop.telegram.flood_refusals();
    let first = messages.iter().map(|m| m.sent_at).min().unwrap();
    let last = messages.iter().map(|m| m.sent_at).max().unwrap();
    println!(
        "busiest second {busiest}, 429s {refusals}, first to last {:?}, payments to last {:?}",
        last - first,
        last - started
    );
    assert!(
        busiest <= PER_SECOND,
        "{busiest} messages within one second"
    );
    assert!(refusals <= 3, "{refusals} refusals for going too fast");
    // Paced, not throttled into minutes: 500 / 25 = 20 s from the first to the last.
    assert!(
        last - first >= Duration::from_secs(19),
        "{:?}",
        last - first
    );
    assert!(
        last - started <= Duration::from_secs(30),
        "{:?}",
        last - started
    );
    // Both instances sent their share on PostgreSQL.
    for instance in &shop.instances {
        assert!(instance.state.metrics.notifications_sent.get() > 0);
    }
    assert_eq!(
        Queue::new(&shop.instances[0].state.store)
            .oldest_pending_age()
            .await
            .unwrap(),
        0
    );
}

async fn one_buyers_quick_purchases_arrive_in_order_a_second_apart(database: Database) {
    let shop = Shop::open(database).await;
    let buyer = 3_100_001;
    let mut orders = Vec::new();
    for _ in 0..5 {
        orders.push(shop.order(buyer).await);
    }
    for (index, order) in orders.iter().enumerate() {
        shop.pay(i64::try_from(index).unwrap() + 1, buyer, order)
            .await;
    }
    let messages = shop.messages(5).await;
    let balances: Vec<&str> = messages
        .iter()
        .map(|message| {
            message
                .text
                .split("balance ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(balances, ["100", "200", "300", "400", "500"], "in order");
    for pair in messages.windows(2) {
        let gap = pair[1].sent_at.duration_since(pair[0].sent_at);
        assert!(
            gap >= Duration::from_secs(1),
            "{gap:?} between two messages"
        );
    }
    assert_eq!(shop.telegram.flood_refusals(), 0);
}

async fn a_429_stops_all_sending_for_its_retry_after(database: Database) {
    let shop = Shop::open(database).await;
    shop.telegram.inject(Fault {
        method: "sendMessage".into(),
        status: 429,
        retry_after: Some(5),
        times: 1,
    });
    // Fifty buyers are two seconds of sending at the bot's rate: a pause that did not hold
    // would go on sending well past the grace below.
    let buyers: Vec<i64> = (0..50).map(|index| 3_200_000 + index).collect();
    for (index, buyer) in buyers.iter().enumerate() {
        let order = shop.order(*buyer).await;
        shop.pay(i64::try_from(index).unwrap() + 1, *buyer, &order)
            .await;
    }
    let mut refused = shop.telegram.too_many_requests();
    for _ in 0..600 {
        if !refused.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        refused = shop.telegram.too_many_requests();
    }
    let paused_from = *refused
        .first()
        .expect("the first message was refused with a 429");
    // A request already on its way when the 429 came back cannot be called back: the next
    // slot is 40 ms later, and on a loaded machine the answer may take longer than that to
    // reach the notifier (or, on a cluster, the other instance). Those land within the grace;
    // nothing leaves after it until the pause is over.
    let grace = Duration::from_secs(1);
    // Looked at near the end of the pause, counted from the 429 itself: the payments before
    // it may take seconds on a loaded machine.
    tokio::time::sleep_until((paused_from + Duration::from_millis(4_500)).into()).await;
    let store = &shop.instances[0].state.store;
    let during: Vec<Duration> = shop
        .telegram
        .sent_messages()
        .iter()
        .map(|message| message.sent_at.saturating_duration_since(paused_from))
        .collect();
    assert!(
        during.iter().all(|after| *after < grace),
        "sent during the pause, this long after the 429: {during:?}"
    );
    assert!(Queue::new(store).oldest_pending_age().await.unwrap() >= 1);

    let messages = shop.messages(buyers.len()).await;
    assert_eq!(messages.len(), buyers.len());
    let refused_at = shop.telegram.too_many_requests();
    assert_eq!(refused_at.len(), 1, "one 429, then no more");
    let resumed = messages
        .iter()
        .map(|m| m.sent_at)
        .filter(|at| at.saturating_duration_since(refused_at[0]) >= grace)
        .min()
        .unwrap();
    let pause = resumed.duration_since(refused_at[0]);
    assert!(
        pause >= Duration::from_secs(5),
        "sending resumed after {pause:?}"
    );
    assert!(
        pause < Duration::from_secs(8),
        "sending resumed after {pause:?}"
    );
    assert_eq!(shop.rate_limited(), 1, "ndn_bot_api_rate_limited_total");
    let mut told: Vec<i64> = messages.iter().map(|m| m.chat_id).collect();
    told.sort_unstable();
    assert_eq!(told, buyers);
    assert_eq!(Queue::new(store).oldest_pending_age().await.unwrap(), 0);
}
