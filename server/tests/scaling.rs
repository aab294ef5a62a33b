//! Several server instances on one PostgreSQL database: exactly-once credit, a shared
//! notification queue, live events across instances, recovery from a database outage.

mod support;

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use server::sandbox::fake_telegram::FakeTelegram;
use support::*;

struct Cluster {
    instances: Vec<server::Running>,
    telegram: FakeTelegram,
    telegram_url: String,
    database: Database,
    http: reqwest::Client,
}

/// An instance on the cluster's database, talking to the Bot API at `api_url`.
async fn instance(database: &Database, api_url: &str) -> server::Running {
    let mut vars = production_vars(&database.url, api_url);
    vars.insert("OUTBOX_LEASE".into(), "2".into());
    // Each test buyer creates many orders quickly.
    vars.insert("INVOICE_RATE_PER_MINUTE".into(), "100000".into());
    vars.insert("MAX_PENDING_ORDERS".into(), "100000".into());
    let config = server::config::Config::from_vars(&vars).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    server::start(config, listener).await.unwrap()
}

impl Cluster {
    async fn start(instances: usize) -> Option<Self> {
        let database = Database::postgres().await?;
        let (telegram, telegram_url) = serve_fake_telegram().await;
        let mut running = Vec::new();
        for _ in 0..instances {
            running.push(instance(&database, &telegram_url).await);
        }
        Some(Self {
            instances: running,
            telegram,
            telegram_url,
            database,
            http: reqwest::Client::new(),
        })
    }

    fn base(&self, index: usize) -> String {
        format!(
            "http://{}",
            self.instances[index % self.instances.len()].addr
        )
    }

    async fn call(&self, index: usize, user_id: i64, function: &str, body: &str) -> Value {
        let init_data = signed_init_data(user_id);
        server_function(&self.http, &self.base(index), function, &init_data, body).await
    }

    async fn order(&self, index: usize, user_id: i64, package: &str) -> String {
        let invoice = self
            .call(
                index,
                user_id,
                "create_invoice",
                &format!("package_id={package}"),
            )
            .await;
        invoice["order_id"].as_str().unwrap().to_owned()
    }

    async fn deliver(&self, index: usize, update: &Value) -> u16 {
        self.http
            .post(format!("{}/webhook/telegram", self.base(index)))
            .header("X-Telegram-Bot-Api-Secret-Token", SECRET)
            .json(update)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn count(&self, sql: &str) -> i64 {
        scalar(&self.instances[0].state.store, sql).await
    }

    /// How many messages Telegram got, once it has `count` and the outbox has drained.
    async fn wait_for_messages(&self, count: usize) -> usize {
        drained_messages(&self.instances[0].state.store, &self.telegram, count)
            .await
            .len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_deliveries_spread_over_two_instances_credit_once() {
    let Some(cluster) = Cluster::start(2).await else {
        return;
    };
    let order_id = cluster.order(0, BUYER, "ndn-500").await;
    let update = successful_payment(1, BUYER, &order_id, 225, "charge-spread");
    let deliveries = (0..20).map(|i| cluster.deliver(i, &update));
    let statuses = futures::future::join_all(deliveries).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(cluster.count("SELECT COUNT(*) FROM transfers").await, 1);
    assert_eq!(
        cluster
            .count("SELECT balance FROM users WHERE id = 279058397")
            .await,
        500
    );
    assert_eq!(cluster.wait_for_messages(1).await, 1);
    assert_books_balance(&cluster.instances[0].state.store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_purchases_over_two_instances_credit_and_notify_each_once() {
    let Some(cluster) = Cluster::start(2).await else {
        return;
    };
    let buyers: Vec<i64> = (0..10).map(|i| 900_000 + i).collect();
    let orders: Vec<(i64, String)> = futures::stream::iter(0..200usize)
        .map(|i| {
            let cluster = &cluster;
            let buyer = buyers[i % buyers.len()];
            async move { (buyer, cluster.order(i, buyer, "ndn-100").await) }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let statuses: Vec<u16> = futures::stream::iter(orders.iter().enumerate())
        .map(|(i, (buyer, order_id))| {
            let cluster = &cluster;
            let update = successful_payment(i as i64, *buyer, order_id, 50, &format!("charge-{i}"));
            async move { cluster.deliver(i, &update).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 200));
    assert_eq!(
        cluster
            .count("SELECT COUNT(*) FROM transfers WHERE kind = 'purchase'")
            .await,
        200
    );
    assert_eq!(
        cluster
            .count("SELECT CAST(SUM(balance) AS BIGINT) FROM users")
            .await,
        200 * 100
    );
    // Twenty messages to each chat, one a second at most (1.1 s, counted from the recorded
    // delivery, and the next claim pass): at least 22 s, so the wait is twice that.
    assert_eq!(cluster.wait_for_messages(200).await, 200);
    assert_eq!(
        cluster
            .count("SELECT COUNT(*) FROM outbox WHERE status = 'sent'")
            .await,
        200
    );
    // Every buyer got exactly one notice per purchase.
    for buyer in buyers {
        let received = cluster
            .telegram
            .sent_messages()
            .iter()
            .filter(|m| m.chat_id == buyer)
            .count();
        assert_eq!(received, 20, "buyer {buyer}");
    }
    assert_books_balance(&cluster.instances[0].state.store).await;
}

/// A Bot API that accepts connections and never answers.
async fn black_hole() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_held_by_a_killed_instance_are_sent_by_the_other() {
    let Some(mut cluster) = Cluster::start(0).await else {
        return;
    };
    // Instance A claims the messages, then hangs on a Bot API that never answers.
    let stuck = instance(&cluster.database, &black_hole().await).await;
    cluster.instances.push(stuck);
    for i in 0..3 {
        let update = successful_payment(
            i,
            BUYER + i,
            "no-such-order",
            10,
            &format!("charge-held-{i}"),
        );
        assert_eq!(cluster.deliver(0, &update).await, 200);
    }
    let claimed = "SELECT COUNT(*) FROM outbox WHERE locked_until > 0 AND status = 'pending'";
    for _ in 0..50 {
        if cluster.count(claimed).await >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A's worker leased what it claimed and is stuck sending it; the rest still waits.
    assert!(
        cluster.count(claimed).await >= 1,
        "instance A holds a message"
    );
    cluster.instances.remove(0).kill();

    let survivor = instance(&cluster.database, &cluster.telegram_url).await;
    cluster.instances.push(survivor);
    assert_eq!(cluster.wait_for_messages(3).await, 3);
    let mut chats: Vec<i64> = cluster
        .telegram
        .sent_messages()
        .iter()
        .map(|m| m.chat_id)
        .collect();
    chats.sort_unstable();
    assert_eq!(chats, [BUYER, BUYER + 1, BUYER + 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stream_on_one_instance_sees_a_credit_made_on_the_other() {
    let Some(cluster) = Cluster::start(2).await else {
        return;
    };
    let wallet = cluster.call(1, BUYER, "wallet", "").await;
    let token = wallet["events_token"].as_str().unwrap();
    let response = cluster
        .http
        .get(format!("{}/api/events?token={token}", cluster.base(1)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut response = response;
    // Let instance B's listener subscribe before the credit happens.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let order_id = cluster.order(1, BUYER, "ndn-500").await;
    assert_eq!(
        cluster
            .deliver(
                0,
                &successful_payment(1, BUYER, &order_id, 225, "charge-live")
            )
            .await,
        200
    );
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(chunk)) = response.chunk().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains(r#""balance":500"#) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "stream on B saw: {seen}");
    assert!(seen.contains(&order_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_the_database_is_gone_and_recovers_by_itself() {
    let Some(cluster) = Cluster::start(1).await else {
        return;
    };
    let (admin, name) = cluster.database.admin.clone().unwrap();
    let ready = || async {
        cluster
            .http
            .get(format!("{}/readyz", cluster.base(0)))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(ready().await, 200);

    let admin = sqlx::AnyPool::connect(&admin).await.unwrap();
    alter_database(&admin, &name, "WITH ALLOW_CONNECTIONS false").await;
    let mut saw_unready = false;
    for _ in 0..20 {
        if ready().await == 503 {
            saw_unready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        saw_unready,
        "readyz must fail while the database refuses connections"
    );

    alter_database(&admin, &name, "WITH ALLOW_CONNECTIONS true").await;
    let mut recovered = false;
    for _ in 0..50 {
        if ready().await == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered, "the instance reconnects by itself");
    let order_id = cluster.order(0, BUYER, "ndn-100").await;
    assert_eq!(
        cluster
            .deliver(
                0,
                &successful_payment(1, BUYER, &order_id, 50, "after-outage")
            )
            .await,
        200
    );
    // The payment after the outage is credited, not only acknowledged.
    assert_eq!(cluster.call(0, BUYER, "wallet", "").await["balance"], 100);
    assert_eq!(cluster.count("SELECT COUNT(*) FROM transfers").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_work_runs_on_one_instance_at_a_time() {
    let Some(cluster) = Cluster::start(2).await else {
        return;
    };
    let (a, b) = (
        &cluster.instances[0].state.store,
        &cluster.instances[1].state.store,
    );
    let (release, hold) = tokio::sync::oneshot::channel::<()>();
    let holder = a.exclusively(42, async move {
        let _ = hold.await;
        "a ran"
    });
    let contender = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let while_held = b.exclusively(42, async { "b ran" }).await.unwrap();
        let _ = release.send(());
        while_held
    };
    let (held, while_held) = tokio::join!(holder, contender);
    assert_eq!(held.unwrap(), Some("a ran"));
    assert_eq!(while_held, None, "B skips while A holds the lock");
    assert_eq!(
        b.exclusively(42, async { "b ran" }).await.unwrap(),
        Some("b ran")
    );
}
