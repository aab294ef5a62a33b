//! The home screen: balance, packages, the purchase and the history.

use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::prelude::*;

use crate::api::{self, BalanceEvent, EntryKind, HistoryEntry, OrderState, Package, WalletView};
use crate::format;
use crate::i18n::{self, Lang, Problem};
use crate::live;
use crate::telegram;

/// How long "Confirming payment…" may last before the buyer is told it is taking long.
const CONFIRMATION_PATIENCE_MS: f64 = 60_000.0;
const POLL_EVERY_MS: u64 = 1_500;
/// With the live stream open, a poll only every this many ticks, as a safety net.
const POLL_TICKS_WHEN_LIVE: u32 = 4;
/// A stream that ended is opened again after this long, doubling up to the maximum while
/// the server cannot be reached.
const RECONNECT_FIRST_MS: u32 = 1_000;
const RECONNECT_MAX_MS: u32 = 60_000;

#[derive(Debug, Clone, PartialEq)]
enum Screen {
    Loading,
    OutsideTelegram,
    Failed(Problem),
    Ready(WalletView),
}

#[derive(Debug, Clone, PartialEq)]
enum Checkout {
    Idle,
    /// `create_invoice` is running for this package.
    Creating(String),
    /// Telegram's payment sheet is on screen.
    Open {
        order_id: String,
        ndn: i64,
    },
    /// The sheet closed as paid or pending; waiting for the server to confirm.
    Confirming {
        order_id: String,
        ndn: i64,
    },
    Credited {
        ndn: i64,
    },
    Failed(Problem),
}

impl Checkout {
    fn busy(&self) -> bool {
        matches!(
            self,
            Self::Creating(_) | Self::Open { .. } | Self::Confirming { .. }
        )
    }

    fn order_id(&self) -> Option<&str> {
        match self {
            Self::Open { order_id, .. } | Self::Confirming { order_id, .. } => Some(order_id),
            _ => None,
        }
    }
}

/// The signals of the home screen; all `Copy`, so handlers can capture them freely.
#[derive(Clone, Copy)]
struct Shop {
    lang: RwSignal<Lang>,
    screen: RwSignal<Screen>,
    checkout: RwSignal<Checkout>,
    stream_open: RwSignal<bool>,
    subscription: StoredValue<Option<live::Subscription>, LocalStorage>,
    reconnect_ms: StoredValue<u32>,
    watch: StoredValue<Option<IntervalHandle>>,
}

impl Shop {
    fn new() -> Self {
        Self {
            lang: RwSignal::new(Lang::En),
            screen: RwSignal::new(Screen::Loading),
            checkout: RwSignal::new(Checkout::Idle),
            stream_open: RwSignal::new(false),
            subscription: StoredValue::new_local(None),
            reconnect_ms: StoredValue::new(RECONNECT_FIRST_MS),
            watch: StoredValue::new(None),
        }
    }

    fn start(self) {
        if let Some(app) = telegram::web_app() {
            app.ready();
            app.expand();
        }
        if let Some(code) = telegram::language_code() {
            self.lang.set(Lang::from_code(&code));
        }
        if telegram::init_data().is_none() {
            self.screen.set(Screen::OutsideTelegram);
            return;
        }
        telegram::show_settings_button(|| {
            if let Some(window) = web_sys::window() {
                let _ = window.location().set_href("/privacy");
            }
        });
        self.load();
    }

    fn load(self) {
        spawn_local(async move {
            // The page started the first wallet request while the WebAssembly loaded.
            match telegram::early_wallet()
                .await
                .and_then(|json| serde_json::from_str::<WalletView>(&json).ok())
            {
                Some(view) => self.show_wallet(view),
                None => self.fetch(false),
            }
        });
    }

    /// Shows the wallet and, the first time, subscribes to its live events.
    fn show_wallet(self, view: WalletView) {
        self.lang.set(Lang::from_code(&view.user.language));
        let token = view.events_token.clone();
        // The balance first; the stream opens behind it.
        self.screen.set(Screen::Ready(view));
        if self.subscription.with_value(Option::is_none) {
            let subscription = live::subscribe(
                &token,
                live::Callbacks {
                    on_event: move |event| self.on_balance_event(event),
                    on_health: move |open| self.on_stream_health(open),
                    on_closed: move || self.on_stream_closed(),
                },
            );
            self.subscription.set_value(subscription);
        }
    }

    /// Asks for the wallet (and a stream token). `reconnecting`: the wallet is on screen and
    /// only the stream ended; a network failure then retries later instead of hiding it.
    fn fetch(self, reconnecting: bool) {
        spawn_local(async move {
            match api::wallet().await {
                Ok(view) => self.show_wallet(view),
                Err(error) => {
                    let problem = Problem::from_api(&error, false);
                    let signed_out =
                        matches!(problem, Problem::SessionExpired | Problem::SessionInvalid);
                    if reconnecting && !signed_out {
                        // Unless another path opened a stream meanwhile, try again later.
                        if self.subscription.with_value(Option::is_none) {
                            self.on_stream_closed();
                        }
                    } else {
                        self.screen.set(Screen::Failed(problem));
                    }
                }
            }
        });
    }

    fn on_stream_health(self, open: bool) {
        self.stream_open.set(open);
        if open {
            self.reconnect_ms.set_value(RECONNECT_FIRST_MS);
        }
    }

    /// The stream ended for good (its token expired with the launch data, or the server
    /// refused it): while waiting, checkouts poll; then a fresh token is asked for, and an
    /// expired launch is told to reopen the app.
    fn on_stream_closed(self) {
        // Called from the stream's own callback: the subscription (which owns that callback)
        // is dropped once the callback has returned.
        if let Some(ended) = self.subscription.try_update_value(Option::take).flatten() {
            spawn_local(async move { drop(ended) });
        }
        self.stream_open.set(false);
        let delay = self.reconnect_ms.get_value();
        self.reconnect_ms
            .set_value(delay.saturating_mul(2).min(RECONNECT_MAX_MS));
        set_timeout(
            move || self.fetch(true),
            std::time::Duration::from_millis(u64::from(delay)),
        );
    }

    fn set_balance(self, balance: i64) {
        self.screen.update(|screen| {
            if let Screen::Ready(view) = screen {
                view.balance = balance;
            }
        });
    }

    fn on_balance_event(self, event: BalanceEvent) {
        self.set_balance(event.balance);
        if let (Some(order_id), Some(OrderState::Paid)) = (&event.order_id, event.status) {
            self.confirmed(order_id);
        }
        // A credit or refund changes the history too.
        self.load();
    }

    /// The server says `order_id` is paid.
    fn confirmed(self, order_id: &str) {
        let current = self.checkout.get_untracked();
        if let (Some(current_id), Checkout::Open { ndn, .. } | Checkout::Confirming { ndn, .. }) =
            (current.order_id(), &current)
            && current_id == order_id
        {
            self.checkout.set(Checkout::Credited { ndn: *ndn });
            self.stop_watching();
            telegram::haptic("success");
        }
    }

    fn buy(self, package: Package) {
        if self.checkout.get_untracked().busy() {
            return;
        }
        // Clients before 6.1 cannot open an invoice: say so before any order is created.
        let Some(app) = telegram::web_app().filter(|app| app.is_version_at_least("6.1")) else {
            self.checkout.set(Checkout::Failed(Problem::OldClient));
            return;
        };
        self.checkout.set(Checkout::Creating(package.id.clone()));
        spawn_local(async move {
            let invoice = match api::create_invoice(package.id.clone()).await {
                Ok(invoice) => invoice,
                Err(error) => {
                    self.checkout
                        .set(Checkout::Failed(Problem::from_api(&error, true)));
                    telegram::haptic("error");
                    return;
                }
            };
            let order_id = invoice.order_id.clone();
            self.checkout.set(Checkout::Open {
                order_id: order_id.clone(),
                ndn: package.ndn,
            });
            let on_closed = Closure::once_into_js(move |status: String| {
                self.invoice_closed(&status, order_id, package.ndn);
            });
            if app.open_invoice(&invoice.invoice_url, &on_closed).is_err() {
                self.checkout.set(Checkout::Failed(Problem::InvoiceFailed));
            }
        });
    }

    /// The sheet's status only chooses what to show while the server decides.
    fn invoice_closed(self, status: &str, order_id: String, ndn: i64) {
        let still_open = self.checkout.get_untracked().order_id() == Some(order_id.as_str());
        if !still_open {
            return;
        }
        match status {
            "paid" | "pending" => {
                self.checkout.set(Checkout::Confirming {
                    order_id: order_id.clone(),
                    ndn,
                });
                self.watch(order_id);
            }
            "failed" => {
                self.checkout.set(Checkout::Failed(Problem::PaymentFailed));
                telegram::haptic("error");
            }
            _ => self.checkout.set(Checkout::Idle),
        }
    }

    /// Polls `order_status` while the live stream is down (and rarely while it is up), and
    /// gives up waiting visibly after a minute.
    fn watch(self, order_id: String) {
        self.stop_watching();
        let started = js_sys::Date::now();
        let ticks = StoredValue::new(0u32);
        let handle = set_interval_with_handle(
            move || {
                if self.checkout.get_untracked().order_id() != Some(order_id.as_str()) {
                    self.stop_watching();
                    return;
                }
                if js_sys::Date::now() - started > CONFIRMATION_PATIENCE_MS {
                    self.checkout.set(Checkout::Failed(Problem::NoConfirmation));
                    self.stop_watching();
                    return;
                }
                let tick = ticks.get_value() + 1;
                ticks.set_value(tick);
                if self.stream_open.get_untracked() && !tick.is_multiple_of(POLL_TICKS_WHEN_LIVE) {
                    return;
                }
                let order_id = order_id.clone();
                spawn_local(async move {
                    if let Ok(status) = api::order_status(order_id.clone()).await {
                        self.set_balance(status.balance);
                        if status.status == OrderState::Paid {
                            self.confirmed(&order_id);
                            self.load();
                        }
                    }
                });
            },
            std::time::Duration::from_millis(POLL_EVERY_MS),
        );
        self.watch.set_value(handle.ok());
    }

    fn stop_watching(self) {
        if let Some(handle) = self.watch.get_value() {
            handle.clear();
            self.watch.set_value(None);
        }
    }
}

#[component]
pub fn Home() -> impl IntoView {
    let shop = Shop::new();
    // Effects run only in the browser, after hydration: the server and the first client
    // render both show the skeleton.
    Effect::new(move |_| shop.start());
    let lang = shop.lang;
    // Operators only: their tabs, the console's element (filled when first opened), and
    // whether it is the console that shows.
    let console_open = RwSignal::new(false);
    let console_host = NodeRef::<leptos::html::Div>::new();
    let operator =
        Memo::new(move |_| matches!(shop.screen.get(), Screen::Ready(view) if view.operator));

    view! {
        <main class="app" data-live=move || if shop.stream_open.get() { "open" } else { "closed" }>
            {move || {
                operator
                    .get()
                    .then(|| {
                        view! {
                            <OperatorTabs lang=lang.get_untracked() console=console_open host=console_host />
                        }
                    })
            }}
            <div class="screen" hidden=move || console_open.get()>
            {move || match shop.screen.get() {
                // The language as it is now, not tracked: the skeleton may be showing the
                // balance the page's script wrote into it (`shell::EARLY_WALLET`), and the
                // language read from the launch data must not redraw it back to "Loading".
                Screen::Loading => view! { <Skeleton lang=lang.get_untracked() /> }.into_any(),
                Screen::OutsideTelegram => {
                    let texts = i18n::texts(lang.get());
                    view! {
                        <section class="notice" data-testid="outside-telegram">
                            <h1>{texts.open_in_telegram}</h1>
                            <p>{texts.open_in_telegram_hint}</p>
                        </section>
                    }
                        .into_any()
                }
                Screen::Failed(problem) => {
                    view! {
                        <section class="notice error" role="alert" data-testid="load-error">
                            <p>{i18n::problem(lang.get(), problem)}</p>
                            <button class="button" on:click=move |_| {
                                shop.screen.set(Screen::Loading);
                                shop.load();
                            }>{i18n::texts(lang.get()).retry}</button>
                        </section>
                    }
                        .into_any()
                }
                Screen::Ready(view) => view! { <Wallet shop view /> }.into_any(),
            }}
            </div>
            {move || {
                operator
                    .get()
                    .then(|| {
                        view! {
                            <div class="console-host" node_ref=console_host hidden=move || !console_open.get()></div>
                        }
                    })
            }}
            <CheckoutBanner shop />
        </main>
    }
}

/// An operator's tabs, above the screen: their own wallet, and the console. Rendered only
/// once the server said the user is an operator.
#[component]
fn OperatorTabs(
    lang: Lang,
    console: RwSignal<bool>,
    host: NodeRef<leptos::html::Div>,
) -> impl IntoView {
    let (wallet, console_label) = match lang {
        Lang::En => ("Wallet", "Console"),
        Lang::Ru => ("Кошелёк", "Консоль"),
    };
    let mounted = StoredValue::new(false);
    let open = move |show: bool| {
        console.set(show);
        if show && !mounted.get_value() {
            mounted.set_value(true);
            if let Some(host) = host.get_untracked() {
                let host: web_sys::HtmlElement = host.into();
                leptos::task::spawn_local(async move { open_console(lang, host).await });
            }
        }
    };
    let tab = move |show: bool, label: &'static str| {
        view! {
            <button class="tab" role="tab" aria-selected=move || (console.get() == show).to_string()
                on:click=move |_| open(show)>{label}</button>
        }
    };
    view! {
        <nav class="tabs" role="tablist" data-testid="operator-tabs">
            {tab(false, wallet)}
            {tab(true, console_label)}
        </nav>
    }
}

/// Mounts the console into `host`. Its code is a WebAssembly chunk of its own (`cargo leptos
/// build --split`), fetched when an operator first opens the tab: buyers never download it.
#[leptos::lazy]
fn open_console(lang: Lang, host: web_sys::HtmlElement) {
    leptos::mount::mount_to(host, move || view! { <crate::console_ui::Console lang /> }).forget();
}

#[component]
fn Skeleton(lang: Lang) -> impl IntoView {
    let texts = i18n::texts(lang);
    view! {
        <section class="balance-card" aria-busy="true" data-testid="skeleton">
            <p class="label">{texts.balance}</p>
            <p class="balance skeleton-line">{texts.loading}</p>
        </section>
        <section class="packages" aria-hidden="true">
            <h2>{texts.packages}</h2>
            <div class="package skeleton"></div>
            <div class="package skeleton"></div>
            <div class="package skeleton"></div>
        </section>
    }
}

#[component]
fn Wallet(shop: Shop, view: WalletView) -> impl IntoView {
    let lang = shop.lang.get_untracked();
    let texts = i18n::texts(lang);
    let best = best_value(&view.packages);
    let packages = view
        .packages
        .into_iter()
        .map(|package| {
            let is_best = best.as_deref() == Some(package.id.as_str());
            view! { <PackageCard shop package is_best /> }
        })
        .collect_view();
    view! {
        <section class="balance-card">
            <p class="label">{texts.balance}</p>
            <p class="balance" data-testid="balance">
                {format::grouped(view.balance)}
                " NDN"
            </p>
            {(view.held > 0)
                .then(|| {
                    view! {
                        <p class="held" data-testid="held">
                            <span>
                                {texts.available} ": " {format::grouped(view.balance - view.held)}
                                " NDN"
                            </span>
                            <span>{texts.held} ": " {format::grouped(view.held)} " NDN"</span>
                        </p>
                    }
                })}
        </section>
        <section class="packages">
            <h2>{texts.packages}</h2>
            {packages}
        </section>
        <History lang entries=view.history />
        <footer class="links">
            <a href="/privacy">{texts.privacy}</a>
            <a href="/support">{texts.support}</a>
        </footer>
    }
}

/// The package with the most NDN per Star.
fn best_value(packages: &[Package]) -> Option<String> {
    packages
        .iter()
        .filter(|package| package.stars > 0)
        .max_by(|a, b| (a.ndn * b.stars).cmp(&(b.ndn * a.stars)))
        .filter(|_| packages.len() > 1)
        .map(|package| package.id.clone())
}

#[component]
fn PackageCard(shop: Shop, package: Package, is_best: bool) -> impl IntoView {
    let texts = i18n::texts(shop.lang.get_untracked());
    let id = package.id.clone();
    let creating = move || shop.checkout.get() == Checkout::Creating(id.clone());
    let label = format!("{} {} NDN, {} ⭐", texts.buy, package.ndn, package.stars);
    let buy = package.clone();
    view! {
        <article class="package" data-package=package.id.clone()>
            <div class="package-amount">
                <span class="ndn">{format::grouped(package.ndn)} " NDN"</span>
                {is_best.then(|| view! { <span class="badge">{texts.best_value}</span> })}
            </div>
            <button
                class="button buy"
                aria-label=label
                disabled=move || shop.checkout.get().busy()
                aria-busy=move || creating().to_string()
                on:click=move |_| shop.buy(buy.clone())
            >
                {format::grouped(package.stars)}
                " ⭐"
            </button>
        </article>
    }
}

#[component]
fn History(lang: Lang, entries: Vec<HistoryEntry>) -> impl IntoView {
    let texts = i18n::texts(lang);
    let body = if entries.is_empty() {
        view! { <p class="hint">{texts.history_empty}</p> }.into_any()
    } else {
        view! { <ul>{entries.into_iter().map(|entry| view! { <Entry lang entry /> }).collect_view()}</ul> }
            .into_any()
    };
    view! {
        <section class="history" data-testid="history">
            <h2>{texts.history}</h2>
            {body}
        </section>
    }
}

/// A purchase (with its Stars and status), or a spend or credit (with its reason).
#[component]
fn Entry(lang: Lang, entry: HistoryEntry) -> impl IntoView {
    let texts = i18n::texts(lang);
    let (class, label) = match (entry.kind, entry.status) {
        (EntryKind::Purchase, status) => {
            let status = status.unwrap_or(OrderState::Paid);
            (
                format!("purchase {}", status.as_str()),
                i18n::status(lang, status),
            )
        }
        (EntryKind::Spend, _) => ("spend".to_owned(), texts.spent),
        (EntryKind::Credit, _) => ("credit".to_owned(), texts.credited_by_shop),
    };
    let sign = if entry.ndn < 0 { "−" } else { "+" };
    let detail = match (entry.stars, entry.reason) {
        (Some(stars), _) => {
            view! { <span class="stars">{format::grouped(stars)} " ⭐"</span> }.into_any()
        }
        (None, Some(reason)) => view! { <span class="reason">{reason}</span> }.into_any(),
        (None, None) => ().into_any(),
    };
    view! {
        <li class=class>
            <span class="date">{format::date(entry.created_at)}</span>
            <span class="ndn">{sign} {format::grouped(entry.ndn.abs())} " NDN"</span>
            {detail}
            <span class="status">{label}</span>
        </li>
    }
}

#[component]
fn CheckoutBanner(shop: Shop) -> impl IntoView {
    move || {
        let lang = shop.lang.get();
        let texts = i18n::texts(lang);
        match shop.checkout.get() {
            Checkout::Idle | Checkout::Creating(_) | Checkout::Open { .. } => ().into_any(),
            Checkout::Confirming { .. } => view! {
                <div class="banner progress" role="status" data-testid="confirming">
                    <span class="spinner" aria-hidden="true"></span>
                    {texts.confirming}
                </div>
            }
            .into_any(),
            Checkout::Credited { ndn } => view! {
                <div class="banner success" role="status" data-testid="credited">
                    "+" {format::grouped(ndn)} " " {texts.credited}
                    <button class="link" on:click=move |_| shop.checkout.set(Checkout::Idle)>
                        {texts.dismiss}
                    </button>
                </div>
            }
            .into_any(),
            Checkout::Failed(problem) => view! {
                <div class="banner error" role="alert" data-testid="checkout-error">
                    {i18n::problem(lang, problem)}
                    <button class="link" on:click=move |_| shop.checkout.set(Checkout::Idle)>
                        {texts.dismiss}
                    </button>
                </div>
            }
            .into_any(),
        }
    }
}
