//! The operator console, a tab of the Mini App shown only to operators (the server says who is
//! one, and checks it again on every call): overview with the 30-day chart and the download of
//! the books, held payments, find a buyer, health and the audit log. Every action asks for
//! Telegram's confirmation first and carries an id of its own, so a retried request changes
//! nothing twice.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::ApiError;
use crate::console::{self as api, BuyerCard, Day, Figures, Health, HeldPayment, Overview};
use crate::format;
use crate::i18n::Lang;
use crate::telegram;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tab {
    Overview,
    Held,
    Find,
    Health,
}

/// What an answer looks like on screen: loading, the view, or why not.
type Loaded<T> = Option<Result<T, ApiError>>;

/// The console's words.
struct Words {
    overview: &'static str,
    held: &'static str,
    find: &'static str,
    health: &'static str,
    today: &'static str,
    week: &'static str,
    month: &'static str,
    stars: &'static str,
    ndn_sold: &'static str,
    purchases: &'static str,
    refunds: &'static str,
    spends: &'static str,
    grants: &'static str,
    chart: &'static str,
    held_count: &'static str,
    pending: &'static str,
    failed: &'static str,
    bot_stars: &'static str,
    unknown: &'static str,
    export: &'static str,
    from: &'static str,
    to: &'static str,
    credit: &'static str,
    refund: &'static str,
    confirm_credit: &'static str,
    confirm_refund: &'static str,
    none_held: &'static str,
    search_hint: &'static str,
    search: &'static str,
    not_found: &'static str,
    balance: &'static str,
    reserved: &'static str,
    payments: &'static str,
    history: &'static str,
    grant: &'static str,
    amount: &'static str,
    reason: &'static str,
    confirm_grant: &'static str,
    reconcile: &'static str,
    confirm_reconcile: &'static str,
    failed_messages: &'static str,
    none_failed: &'static str,
    retry: &'static str,
    keys: &'static str,
    revoke: &'static str,
    confirm_revoke: &'static str,
    revoked: &'static str,
    never_used: &'static str,
    audit: &'static str,
    error: &'static str,
    loading: &'static str,
    repeated: &'static str,
}

const EN: Words = Words {
    overview: "Overview",
    held: "Held",
    find: "Find",
    health: "Health",
    today: "Today",
    week: "7 days",
    month: "30 days",
    stars: "Stars received",
    ndn_sold: "NDN sold",
    purchases: "Purchases",
    refunds: "Refunds",
    spends: "Spends",
    grants: "Grants",
    chart: "Last 30 days: Stars (bars) and purchases (dots), days in UTC",
    held_count: "Held payments",
    pending: "Notifications waiting",
    failed: "Notifications failed",
    bot_stars: "Bot's Stars",
    unknown: "unknown",
    export: "Download the books",
    from: "From",
    to: "To",
    credit: "Credit",
    refund: "Refund",
    confirm_credit: "Credit this payment's NDN to the buyer?",
    confirm_refund: "Refund the Stars of this payment and take its NDN back?",
    none_held: "No payment is held.",
    search_hint: "User id, @username or charge id",
    search: "Find",
    not_found: "No buyer found.",
    balance: "Balance",
    reserved: "Reserved",
    payments: "Payments",
    history: "History",
    grant: "Grant",
    amount: "NDN",
    reason: "Reason (the buyer sees it)",
    confirm_grant: "Grant these NDN to the buyer?",
    reconcile: "Reconcile with Telegram now",
    confirm_reconcile: "Read Telegram's Star transactions and apply what the books miss?",
    failed_messages: "Failed notifications",
    none_failed: "No failed notification.",
    retry: "Retry",
    keys: "API keys",
    revoke: "Revoke",
    confirm_revoke: "Revoke this API key? Services using it stop at once.",
    revoked: "revoked",
    never_used: "never used",
    audit: "Audit log",
    error: "Something went wrong",
    loading: "Loading…",
    repeated: "(done before)",
};

const RU: Words = Words {
    overview: "Обзор",
    held: "Задержанные",
    find: "Поиск",
    health: "Состояние",
    today: "Сегодня",
    week: "7 дней",
    month: "30 дней",
    stars: "Получено звёзд",
    ndn_sold: "Продано NDN",
    purchases: "Покупки",
    refunds: "Возвраты",
    spends: "Списания",
    grants: "Начисления",
    chart: "30 дней: звёзды (столбцы) и покупки (точки), дни по UTC",
    held_count: "Задержанные платежи",
    pending: "Уведомления в очереди",
    failed: "Неотправленные уведомления",
    bot_stars: "Звёзды бота",
    unknown: "неизвестно",
    export: "Скачать книги учёта",
    from: "С",
    to: "По",
    credit: "Зачислить",
    refund: "Вернуть",
    confirm_credit: "Зачислить покупателю NDN за этот платёж?",
    confirm_refund: "Вернуть звёзды за этот платёж и списать его NDN?",
    none_held: "Задержанных платежей нет.",
    search_hint: "ID, @username или ID платежа",
    search: "Найти",
    not_found: "Покупатель не найден.",
    balance: "Баланс",
    reserved: "Зарезервировано",
    payments: "Платежи",
    history: "История",
    grant: "Начислить",
    amount: "NDN",
    reason: "Причина (её увидит покупатель)",
    confirm_grant: "Начислить покупателю эти NDN?",
    reconcile: "Сверить с Telegram",
    confirm_reconcile: "Прочитать звёздные транзакции Telegram и применить недостающее?",
    failed_messages: "Неотправленные уведомления",
    none_failed: "Неотправленных уведомлений нет.",
    retry: "Повторить",
    keys: "Ключи API",
    revoke: "Отозвать",
    confirm_revoke: "Отозвать ключ? Сервисы с ним сразу перестанут работать.",
    revoked: "отозван",
    never_used: "не использовался",
    audit: "Журнал действий",
    error: "Что-то пошло не так",
    loading: "Загрузка…",
    repeated: "(уже сделано)",
};

fn words(lang: Lang) -> &'static Words {
    match lang {
        Lang::En => &EN,
        Lang::Ru => &RU,
    }
}

/// A payment status or transfer kind as the server names it, in the console's language.
fn term(lang: Lang, name: &str) -> String {
    let ru = match name {
        "credited" => "зачислен",
        "held" => "задержан",
        "refunded" => "возвращён",
        "purchase" => "покупка",
        "refund" => "возврат",
        "grant" => "начисление",
        "spend" => "списание",
        other => other,
    };
    match lang {
        Lang::En => name.to_owned(),
        Lang::Ru => ru.to_owned(),
    }
}

/// A fresh id for one confirmed tap.
fn action_id() -> String {
    format!(
        "{:x}-{:x}",
        js_sys::Date::now() as u64,
        (js_sys::Math::random() * 4_294_967_296.0) as u64
    )
}

/// Asks Telegram's confirmation, then runs the action with a fresh id; its result (or the
/// error) goes to `outcome`, and `then` runs after it (to reload what it changed).
fn confirmed_action<F, Fut>(
    question: &'static str,
    outcome: RwSignal<Option<String>>,
    lang: Lang,
    action: F,
    then: impl Fn() + 'static,
) where
    F: FnOnce(String) -> Fut + 'static,
    Fut: Future<Output = Result<api::ActionDone, ApiError>> + 'static,
{
    telegram::confirm(question, move |yes| {
        if !yes {
            return;
        }
        spawn_local(async move {
            let text = match action(action_id()).await {
                Ok(done) if done.repeated => format!("{} {}", done.result, words(lang).repeated),
                Ok(done) => done.result,
                Err(error) => format!("{}: {error}", words(lang).error),
            };
            outcome.set(Some(text));
            then();
        });
    });
}

/// Loads `fetch` into a signal now and whenever `reload` is bumped.
fn loader<T, Fut>(fetch: impl Fn() -> Fut + Copy + 'static) -> (RwSignal<Loaded<T>>, RwSignal<u32>)
where
    T: Send + Sync + 'static,
    Fut: Future<Output = Result<T, ApiError>> + 'static,
{
    let data = RwSignal::new(None);
    let reload = RwSignal::new(0u32);
    Effect::new(move |_| {
        reload.track();
        spawn_local(async move { data.set(Some(fetch().await)) });
    });
    (data, reload)
}

#[component]
pub fn Console(lang: Lang) -> impl IntoView {
    let tab = RwSignal::new(Tab::Overview);
    let w = words(lang);
    let button = move |which: Tab, label: &'static str| {
        view! {
            <button
                class="tab"
                role="tab"
                aria-selected=move || (tab.get() == which).to_string()
                on:click=move |_| tab.set(which)
            >
                {label}
            </button>
        }
    };
    view! {
        <section class="console" data-testid="console">
            <nav class="tabs sub" role="tablist">
                {button(Tab::Overview, w.overview)}
                {button(Tab::Held, w.held)}
                {button(Tab::Find, w.find)}
                {button(Tab::Health, w.health)}
            </nav>
            {move || match tab.get() {
                Tab::Overview => view! { <OverviewView lang /> }.into_any(),
                Tab::Held => view! { <HeldView lang /> }.into_any(),
                Tab::Find => view! { <FindView lang /> }.into_any(),
                Tab::Health => view! { <HealthView lang /> }.into_any(),
            }}
        </section>
    }
}

/// Shows `loaded` with `show`, or loading, or the error.
fn with_loaded<T: Clone + Send + Sync + 'static, V: IntoView + 'static>(
    lang: Lang,
    loaded: RwSignal<Loaded<T>>,
    show: impl Fn(T) -> V + Send + Sync + 'static,
) -> impl IntoView {
    move || match loaded.get() {
        None => view! { <p class="hint">{words(lang).loading}</p> }.into_any(),
        Some(Err(error)) => view! {
            <p class="hint error" role="alert">{words(lang).error} ": " {error.to_string()}</p>
        }
        .into_any(),
        Some(Ok(value)) => show(value).into_any(),
    }
}

#[component]
fn OverviewView(lang: Lang) -> impl IntoView {
    let w = words(lang);
    let (overview, _) = loader(api::console_overview);
    view! {
        <div data-testid="console-overview">
            {with_loaded(lang, overview, move |o: Overview| {
                let star_balance = match o.star_balance {
                    Some(b) => format!("{} ⭐ ({})", format::grouped(b.amount), format::date_time(b.read_at)),
                    None => w.unknown.to_owned(),
                };
                view! {
                    <table class="figures">
                        <thead><tr><th></th><th>{w.today}</th><th>{w.week}</th><th>{w.month}</th></tr></thead>
                        <tbody>
                            {figure_row(w.stars, [o.today, o.week, o.month], |f| f.stars)}
                            {figure_row(w.ndn_sold, [o.today, o.week, o.month], |f| f.ndn_sold)}
                            {figure_row(w.purchases, [o.today, o.week, o.month], |f| f.purchases)}
                            {figure_row(w.refunds, [o.today, o.week, o.month], |f| f.refunds)}
                            {figure_row(w.spends, [o.today, o.week, o.month], |f| f.spends)}
                            {figure_row(w.grants, [o.today, o.week, o.month], |f| f.grants)}
                        </tbody>
                    </table>
                    <Chart days=o.days caption=w.chart />
                    <dl class="counts">
                        <dt>{w.held_count}</dt><dd data-testid="held-count">{o.held_payments}</dd>
                        <dt>{w.pending}</dt><dd>{o.pending_notifications}</dd>
                        <dt>{w.failed}</dt><dd>{o.failed_notifications}</dd>
                        <dt>{w.bot_stars}</dt><dd data-testid="bot-stars">{star_balance}</dd>
                    </dl>
                }
            })}
            <Export lang />
        </div>
    }
}

fn figure_row(
    label: &'static str,
    periods: [Figures; 3],
    pick: fn(&Figures) -> i64,
) -> impl IntoView {
    view! {
        <tr>
            <th scope="row">{label}</th>
            {periods.iter().map(|f| view! { <td>{format::grouped(pick(f))}</td> }).collect_view()}
        </tr>
    }
}

/// Daily Stars as bars and purchases as dots, scaled to their own maxima; colours come from the
/// theme, so the chart reads in light and dark.
#[component]
fn Chart(days: Vec<Day>, caption: &'static str) -> impl IntoView {
    const WIDTH: f64 = 300.0;
    const HEIGHT: f64 = 100.0;
    let slot = WIDTH / days.len().max(1) as f64;
    let top_stars = days.iter().map(|d| d.stars).max().unwrap_or(0).max(1) as f64;
    let top_purchases = days.iter().map(|d| d.purchases).max().unwrap_or(0).max(1) as f64;
    let bars = days
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let height = d.stars as f64 / top_stars * (HEIGHT - 8.0);
            let title = format!("{}: {} ⭐, {}", format::date(d.start), d.stars, d.purchases);
            view! {
                <rect class="bar" x=format!("{:.1}", i as f64 * slot + 1.0) y=format!("{:.1}", HEIGHT - height)
                    width=format!("{:.1}", slot - 2.0) height=format!("{:.1}", height)>
                    <title>{title}</title>
                </rect>
            }
        })
        .collect_view();
    let dots = days
        .iter()
        .enumerate()
        .filter(|(_, d)| d.purchases > 0)
        .map(|(i, d)| {
            let y = HEIGHT - d.purchases as f64 / top_purchases * (HEIGHT - 8.0);
            view! {
                <circle class="dot" cx=format!("{:.1}", (i as f64 + 0.5) * slot) cy=format!("{:.1}", y) r="2.5" />
            }
        })
        .collect_view();
    view! {
        <figure class="chart" data-testid="chart">
            <svg viewBox=format!("0 0 {WIDTH} {HEIGHT}") role="img" aria-label=caption>
                <line class="axis" x1="0" y1=HEIGHT x2=WIDTH y2=HEIGHT />
                {bars}
                {dots}
            </svg>
            <figcaption class="hint">{caption}</figcaption>
        </figure>
    }
}

#[component]
fn Export(lang: Lang) -> impl IntoView {
    let w = words(lang);
    let today = format::date(js_sys::Date::now() as i64 / 1000);
    let month_start = format!("{}-01", &today[..7]);
    let from = RwSignal::new(month_start);
    let to = RwSignal::new(today);
    let problem = RwSignal::new(None::<String>);
    let download = move |format: &'static str| {
        spawn_local(async move {
            let (from, to) = (from.get_untracked(), to.get_untracked());
            match api::console_export(from.clone(), to.clone(), format.to_owned()).await {
                Ok(link) => {
                    problem.set(None);
                    let origin = web_sys::window()
                        .and_then(|window| window.location().origin().ok())
                        .unwrap_or_default();
                    telegram::download(
                        &format!("{origin}{link}"),
                        &format!("ndn-transfers-{from}-to-{to}.{format}"),
                    );
                }
                Err(error) => problem.set(Some(error.to_string())),
            }
        });
    };
    view! {
        <section class="export">
            <h2>{w.export}</h2>
            <label>{w.from} " " <input type="date" prop:value=from on:input=move |e| from.set(event_target_value(&e)) /></label>
            <label>{w.to} " " <input type="date" prop:value=to on:input=move |e| to.set(event_target_value(&e)) /></label>
            <div class="row">
                <button class="button small" data-testid="export-csv" on:click=move |_| download("csv")>"CSV"</button>
                <button class="button small" on:click=move |_| download("json")>"JSON"</button>
            </div>
            {move || problem.get().map(|p| view! { <p class="hint error" role="alert">{p}</p> })}
        </section>
    }
}

#[component]
fn HeldView(lang: Lang) -> impl IntoView {
    let w = words(lang);
    let (held, reload) = loader(api::console_held);
    let outcome = RwSignal::new(None::<String>);
    view! {
        <div data-testid="console-held">
            <Outcome outcome />
            {with_loaded(lang, held, move |payments: Vec<HeldPayment>| {
                if payments.is_empty() {
                    return view! { <p class="hint">{w.none_held}</p> }.into_any();
                }
                payments
                    .into_iter()
                    .map(|p| {
                        let (credit_id, refund_id) = (p.charge_id.clone(), p.charge_id.clone());
                        let who = match &p.username {
                            Some(name) => format!("{} @{name} ({})", p.first_name, p.user_id),
                            None => format!("{} ({})", p.first_name, p.user_id),
                        };
                        let bump = move || reload.update(|n| *n += 1);
                        view! {
                            <article class="card held-payment" data-charge=p.charge_id.clone()>
                                <p><strong>{who}</strong></p>
                                <p>{format::grouped(p.stars)} " ⭐ · " {format::date(p.created_at)}
                                    {p.ndn.map(|ndn| format!(" · {} NDN", format::grouped(ndn)))}</p>
                                <p class="hint">{p.reason}</p>
                                <code class="hint">{p.charge_id.clone()}</code>
                                <div class="row">
                                    <button class="button small" disabled=p.ndn.is_none() on:click=move |_| {
                                        let charge = credit_id.clone();
                                        confirmed_action(w.confirm_credit, outcome, lang,
                                            move |id| api::console_credit(id, charge), bump);
                                    }>{w.credit}</button>
                                    <button class="button small destructive" on:click=move |_| {
                                        let charge = refund_id.clone();
                                        confirmed_action(w.confirm_refund, outcome, lang,
                                            move |id| api::console_refund(id, charge), bump);
                                    }>{w.refund}</button>
                                </div>
                            </article>
                        }
                    })
                    .collect_view()
                    .into_any()
            })}
        </div>
    }
}

/// The last action's result.
#[component]
fn Outcome(outcome: RwSignal<Option<String>>) -> impl IntoView {
    move || {
        outcome
            .get()
            .map(|text| view! { <p class="outcome" role="status" data-testid="outcome">{text}</p> })
    }
}

#[component]
fn FindView(lang: Lang) -> impl IntoView {
    let w = words(lang);
    let query = RwSignal::new(String::new());
    let found = RwSignal::new(None::<Result<BuyerCard, ApiError>>);
    let outcome = RwSignal::new(None::<String>);
    let search = move || {
        let text = query.get_untracked();
        spawn_local(async move { found.set(Some(api::console_find(text).await)) });
    };
    view! {
        <div data-testid="console-find">
            <form class="row" on:submit=move |e| { e.prevent_default(); search(); }>
                <input type="search" placeholder=w.search_hint aria-label=w.search_hint
                    prop:value=query on:input=move |e| query.set(event_target_value(&e)) />
                <button class="button small" type="submit">{w.search}</button>
            </form>
            <Outcome outcome />
            {move || match found.get() {
                None => ().into_any(),
                Some(Err(ApiError::NotFound)) => view! { <p class="hint">{w.not_found}</p> }.into_any(),
                Some(Err(error)) => view! { <p class="hint error">{error.to_string()}</p> }.into_any(),
                Some(Ok(card)) => view! { <BuyerView lang card outcome on_change=search /> }.into_any(),
            }}
        </div>
    }
}

#[component]
fn BuyerView(
    lang: Lang,
    card: BuyerCard,
    outcome: RwSignal<Option<String>>,
    on_change: impl Fn() + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let w = words(lang);
    let user_id = card.user_id;
    let amount = RwSignal::new(String::new());
    let reason = RwSignal::new(String::new());
    let payments = card
        .payments
        .into_iter()
        .map(|p| {
            let charge = p.charge_id.clone();
            let refundable = p.status != "refunded";
            view! {
                <li data-charge=p.charge_id.clone()>
                    <span>{format::date(p.created_at)}</span>
                    <span>{format::grouped(p.stars)} " ⭐ → " {format::grouped(p.ndn)} " NDN"</span>
                    <span class="hint">{term(lang, &p.status)}</span>
                    {refundable.then(|| view! {
                        <button class="link destructive" on:click=move |_| {
                            let charge = charge.clone();
                            confirmed_action(w.confirm_refund, outcome, lang,
                                move |id| api::console_refund(id, charge), on_change);
                        }>{w.refund}</button>
                    })}
                </li>
            }
        })
        .collect_view();
    let history = card
        .history
        .into_iter()
        .map(|t| {
            let sign = if t.ndn < 0 { "−" } else { "+" };
            view! {
                <li>
                    <span>{format::date(t.created_at)}</span>
                    <span>{term(lang, &t.kind)}</span>
                    <span>{sign} {format::grouped(t.ndn.abs())} " NDN"</span>
                    <span class="hint">{t.reason.unwrap_or(t.reference)}</span>
                </li>
            }
        })
        .collect_view();
    let grant = move |_| {
        let (Ok(ndn), text) = (
            amount.get_untracked().trim().parse::<i64>(),
            reason.get_untracked(),
        ) else {
            outcome.set(Some(format!("{}: {}", w.error, w.amount)));
            return;
        };
        confirmed_action(
            w.confirm_grant,
            outcome,
            lang,
            move |id| api::console_grant(id, user_id, ndn, text),
            on_change,
        );
    };
    view! {
        <article class="card buyer" data-testid="buyer-card">
            <p><strong>{card.first_name}</strong> {card.username.map(|u| format!(" @{u}"))} " (" {user_id.get()} ")"</p>
            <p>{w.balance} ": " <span data-testid="buyer-balance">{format::grouped(card.balance)}</span> " NDN · "
                {w.reserved} ": " {format::grouped(card.held)} " NDN"</p>
            <h3>{w.payments}</h3>
            <ul class="lines">{payments}</ul>
            <h3>{w.history}</h3>
            <ul class="lines">{history}</ul>
            <h3>{w.grant}</h3>
            <div class="row">
                <input type="number" min="1" inputmode="numeric" placeholder=w.amount aria-label=w.amount
                    prop:value=amount on:input=move |e| amount.set(event_target_value(&e)) />
                <input type="text" maxlength="200" placeholder=w.reason aria-label=w.reason
                    prop:value=reason on:input=move |e| reason.set(event_target_value(&e)) />
                <button class="button small" on:click=grant>{w.grant}</button>
            </div>
        </article>
    }
}

#[component]
fn HealthView(lang: Lang) -> impl IntoView {
    let w = words(lang);
    let (health, reload) = loader(api::console_health);
    let outcome = RwSignal::new(None::<String>);
    let bump = move || reload.update(|n| *n += 1);
    view! {
        <div data-testid="console-health">
            <button class="button small" on:click=move |_| {
                confirmed_action(w.confirm_reconcile, outcome, lang, api::console_reconcile, bump);
            }>{w.reconcile}</button>
            <Outcome outcome />
            {with_loaded(lang, health, move |h: Health| {
                let failed = if h.failed.is_empty() {
                    view! { <p class="hint">{w.none_failed}</p> }.into_any()
                } else {
                    h.failed.into_iter().map(|m| {
                        let id = m.id;
                        view! {
                            <li>
                                <span>{format::date(m.created_at)} " → " {m.chat_id}</span>
                                <span>{m.text}</span>
                                <span class="hint">{m.error.unwrap_or_default()}</span>
                                <button class="link" on:click=move |_| {
                                    confirmed_action(w.retry, outcome, lang,
                                        move |action| api::console_retry(action, id), bump);
                                }>{w.retry}</button>
                            </li>
                        }
                    }).collect_view().into_any()
                };
                let keys = h.keys.into_iter().map(|k| {
                    let id = k.id;
                    let used = k.last_used_at.map_or(w.never_used.to_owned(), format::date);
                    view! {
                        <li>
                            <span><strong>{k.name}</strong> " · " {k.scopes}</span>
                            <span class="hint">{used}</span>
                            {match k.revoked_at {
                                Some(_) => view! { <span class="hint">{w.revoked}</span> }.into_any(),
                                None => view! {
                                    <button class="link destructive" on:click=move |_| {
                                        confirmed_action(w.confirm_revoke, outcome, lang,
                                            move |action| api::console_revoke(action, id), bump);
                                    }>{w.revoke}</button>
                                }.into_any(),
                            }}
                        </li>
                    }
                }).collect_view();
                let actions = h.actions.into_iter().map(|a| view! {
                    <li>
                        <span>{format::date(a.created_at)} " · " {a.operator_id}</span>
                        <span><strong>{a.action}</strong> " " {a.target}</span>
                        <span class="hint">{a.result}</span>
                    </li>
                }).collect_view();
                view! {
                    <h3>{w.failed_messages}</h3>
                    <ul class="lines">{failed}</ul>
                    <h3>{w.keys}</h3>
                    <ul class="lines">{keys}</ul>
                    <h3>{w.audit}</h3>
                    <ul class="lines" data-testid="audit-log">{actions}</ul>
                }
            })}
        </div>
    }
}
