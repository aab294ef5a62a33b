// The sandbox host page: plays the Telegram client around the Mini App iframe, speaking the
// postMessage protocol of the official telegram-web-app.js, and shows the bot chat.
'use strict';

const $ = (id) => document.getElementById(id);
const themes = {
  light: { bg_color: '#ffffff', text_color: '#000000', hint_color: '#707579', link_color: '#2481cc', button_color: '#2481cc', button_text_color: '#ffffff', secondary_bg_color: '#f1f1f4', section_bg_color: '#f1f1f4' },
  dark: { bg_color: '#17212b', text_color: '#f5f5f5', hint_color: '#708499', link_color: '#6ab3f3', button_color: '#5288c1', button_text_color: '#ffffff', secondary_bg_color: '#232e3c', section_bg_color: '#232e3c' },
};

let users = [];
let user = null;
let invoice = null;
const transcripts = new Map(); // user id -> [{ from, text, id, markup }]

async function api(path, options) {
  const response = await fetch(path, options);
  if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
  const type = response.headers.get('content-type') || '';
  return type.includes('json') ? response.json() : response.text();
}

function post(path, body) {
  return api(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
}

function log(text) {
  const item = document.createElement('li');
  item.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  $('events').prepend(item);
}

function toMiniApp(eventType, eventData) {
  $('miniapp').contentWindow?.postMessage(JSON.stringify({ eventType, eventData }), '*');
}

// Each launch asks the server for launch data first; a user switch right after a language
// switch starts a second one before the first is answered. Only the newest launch may load the
// frame: an older answer arriving last would open the Mini App as the previous user.
let launches = 0;

async function launch() {
  const launchNumber = ++launches;
  const who = user;
  const language = $('lang').value;
  const lang = language ? `&lang=${language}` : '';
  const { init_data: initData } = await api(`/sandbox/api/launch?user=${who.id}${lang}`);
  if (launchNumber !== launches) {
    log(`launch as user ${who.id} dropped: a newer launch came first`);
    return;
  }
  const fragment = new URLSearchParams({
    tgWebAppData: initData,
    tgWebAppVersion: '8.0',
    tgWebAppPlatform: 'web',
    tgWebAppThemeParams: JSON.stringify(themes[$('theme').value]),
  });
  $('settings').hidden = true;
  hideSheet();
  log(`launch as user ${who.id}, ${language || "the user's language"}`);
  // Tests wait for `data-loaded`: the user and language of the page the frame has finished
  // loading (not of a launch still on its way).
  const frame = $('miniapp');
  const launched = `${who.id}:${language}`;
  frame.dataset.loaded = '';
  frame.addEventListener('load', () => {
    if (launchNumber === launches) frame.dataset.loaded = launched;
  }, { once: true });
  // The query string forces a reload even when only the fragment changes.
  frame.src = `/?launch=${Date.now()}#${fragment}`;
}

window.addEventListener('message', (event) => {
  if (event.source !== $('miniapp').contentWindow) return;
  let message;
  try { message = JSON.parse(event.data); } catch { return; }
  const { eventType, eventData } = message;
  log(`${eventType} ${eventData ? JSON.stringify(eventData) : ''}`);
  switch (eventType) {
    case 'web_app_request_theme':
      toMiniApp('theme_changed', { theme_params: themes[$('theme').value] });
      break;
    case 'web_app_request_viewport': {
      const height = $('miniapp').clientHeight;
      toMiniApp('viewport_changed', { height, is_state_stable: true, is_expanded: true });
      break;
    }
    case 'web_app_setup_settings_button':
      $('settings').hidden = !(eventData && eventData.is_visible);
      break;
    case 'web_app_open_invoice':
      showSheet(eventData.slug);
      break;
    case 'web_app_open_popup':
      showPopup(eventData);
      break;
    case 'web_app_request_file_download':
      // Telegram asks the user, then downloads; the sandbox downloads at once.
      toMiniApp('file_download_requested', { status: 'downloading' });
      download(eventData.url, eventData.file_name);
      break;
    case 'web_app_trigger_haptic_feedback':
      document.body.dataset.lastHaptic = eventData.notification_type || eventData.impact_style || eventData.type;
      break;
    default:
      break;
  }
});

// Telegram's popup (showPopup, showConfirm, showAlert): a message and up to three buttons.
function showPopup({ title, message, buttons }) {
  $('popup-title').textContent = title || '';
  $('popup-title').hidden = !title;
  $('popup-message').textContent = message;
  const labels = { ok: 'OK', close: 'Close', cancel: 'Cancel' };
  const row = $('popup-buttons');
  row.replaceChildren();
  for (const button of buttons || [{ id: '', type: 'close' }]) {
    const element = document.createElement('button');
    element.textContent = button.text || labels[button.type] || 'OK';
    element.dataset.buttonId = button.id;
    if (button.type === 'ok' || button.type === 'default') element.className = 'primary';
    if (button.type === 'destructive') element.className = 'destructive';
    element.addEventListener('click', () => {
      $('popup').hidden = true;
      toMiniApp('popup_closed', { button_id: button.id });
    });
    row.append(element);
  }
  $('popup').hidden = false;
}

function download(url, fileName) {
  const link = document.createElement('a');
  link.href = url;
  link.download = fileName;
  document.body.append(link);
  link.click();
  link.remove();
}

async function showSheet(slug) {
  try {
    invoice = await api(`/sandbox/api/invoice/${encodeURIComponent(slug)}`);
  } catch (error) {
    log(`invoice ${slug}: ${error.message}`);
    toMiniApp('invoice_closed', { slug, status: 'failed' });
    return;
  }
  $('sheet-item').textContent = invoice.title;
  $('sheet-amount').textContent = invoice.amount;
  $('sheet-error').hidden = true;
  for (const id of ['pay', 'pay-fail', 'cancel']) $(id).disabled = false;
  $('pay').textContent = 'Pay';
  $('pay').hidden = false;
  $('pay-fail').hidden = false;
  $('cancel').textContent = 'Cancel';
  $('sheet').dataset.outcome = 'cancelled';
  $('sheet').hidden = false;
}

function hideSheet() {
  $('sheet').hidden = true;
  invoice = null;
}

function closeSheet(status) {
  if (!invoice) return;
  const { slug } = invoice;
  hideSheet();
  toMiniApp('invoice_closed', { slug, status });
  refreshCharges();
}

async function pay(fail) {
  for (const id of ['pay', 'pay-fail', 'cancel']) $(id).disabled = true;
  $('pay').textContent = 'Processing…';
  let result;
  try {
    result = await post('/sandbox/api/pay', { user: user.id, slug: invoice.slug, fail });
  } catch (error) {
    result = { status: 'failed', error: error.message };
  }
  if (result.status === 'paid') {
    closeSheet('paid');
    return;
  }
  $('sheet-error').textContent = result.error || 'Payment failed';
  $('sheet-error').hidden = false;
  $('pay').hidden = true;
  $('pay-fail').hidden = true;
  $('cancel').textContent = 'Close';
  $('cancel').disabled = false;
  $('sheet').dataset.outcome = 'failed';
}

function transcript() {
  if (!transcripts.has(user.id)) transcripts.set(user.id, []);
  return transcripts.get(user.id);
}

function renderChat() {
  const list = $('messages');
  list.replaceChildren();
  for (const line of transcript()) {
    const item = document.createElement('li');
    item.className = line.from;
    item.textContent = line.text;
    const buttons = line.markup?.inline_keyboard?.flat() ?? [];
    for (const button of buttons) {
      if (!button.web_app) continue;
      const open = document.createElement('button');
      open.textContent = button.text;
      open.addEventListener('click', launch);
      item.append(open);
    }
    list.append(item);
  }
  list.scrollTop = list.scrollHeight;
}

async function refreshChat() {
  const who = user;
  const messages = await api(`/sandbox/api/chat?user=${who.id}`);
  // The user switched meanwhile: this answer is another chat's.
  if (who !== user) return;
  const lines = transcript();
  const seen = new Set(lines.filter((line) => line.id).map((line) => line.id));
  let changed = false;
  for (const message of messages) {
    if (seen.has(message.id)) continue;
    lines.push({ from: 'bot', id: message.id, text: message.text, markup: message.reply_markup });
    changed = true;
  }
  if (changed) renderChat();
  // Tests wait for this before counting the chat's messages.
  $('messages').dataset.loadedFor = String(user.id);
}

async function refreshCharges() {
  const who = user;
  const charges = await api(`/sandbox/api/charges?user=${who.id}`);
  if (who !== user) return;
  const list = $('charges');
  list.replaceChildren();
  if (charges.length === 0) {
    const empty = document.createElement('li');
    empty.textContent = 'No payments yet';
    list.append(empty);
  }
  for (const charge of charges) {
    const item = document.createElement('li');
    item.textContent = `${charge.amount} ⭐ · ${charge.id.slice(0, 18)}… `;
    const refund = document.createElement('button');
    refund.textContent = charge.refunded ? 'Refunded' : 'Refund';
    refund.disabled = charge.refunded;
    refund.addEventListener('click', async () => {
      refund.disabled = true;
      await post('/sandbox/api/refund', { charge_id: charge.id });
      refreshCharges();
    });
    item.append(refund);
    list.append(item);
  }
}

let receivedShown = '';

async function refreshReceived() {
  const received = await api('/sandbox/api/received');
  const key = JSON.stringify(received);
  if (key === receivedShown) return;
  receivedShown = key;
  const list = $('received');
  list.replaceChildren();
  if (received.length === 0) {
    const empty = document.createElement('li');
    empty.textContent = 'No events yet: buy NDN to see payment.credited arrive';
    list.append(empty);
  }
  for (const event of received) {
    const item = document.createElement('li');
    item.className = event.verified ? 'verified' : 'invalid';
    item.dataset.type = event.event_type;
    const mark = event.verified ? '✓ signature valid' : `✗ ${event.problem}`;
    const who = event.user_id ? ` · user ${event.user_id}` : '';
    const what = event.summary ? ` · ${event.summary}` : '';
    const again = event.repeat ? ' · repeat (ignored)' : '';
    item.textContent = `${event.event_type}${who}${what} — ${mark}${again}`;
    item.title = event.event_id;
    list.append(item);
  }
}

async function saveKnobs() {
  const knobs = await post('/sandbox/api/knobs', {
    copies: Number($('copies').value) || 1,
    delay_secs: Number($('delay').value) || 0,
    drop_first: $('drop-first').checked,
  });
  log(`knobs ${JSON.stringify(knobs)}`);
}

async function start() {
  users = await api('/sandbox/api/users');
  for (const candidate of users) {
    const option = document.createElement('option');
    option.value = candidate.id;
    option.textContent = `${candidate.first_name} (${candidate.language_code}${candidate.operator ? ', operator' : ''})`;
    $('user').append(option);
  }
  user = users[0];
  const knobs = await api('/sandbox/api/knobs');
  $('copies').value = knobs.copies;
  $('delay').value = knobs.delay_secs;
  $('drop-first').checked = knobs.drop_first;

  $('user').addEventListener('change', () => {
    user = users.find((candidate) => String(candidate.id) === $('user').value);
    renderChat();
    refreshCharges().catch(log);
    launch().catch(log);
  });
  $('lang').addEventListener('change', () => launch().catch(log));
  $('unmatched').addEventListener('click', async () => {
    await post('/sandbox/api/unmatched', { user: user.id, stars: 225 });
    refreshCharges();
  });
  $('theme').addEventListener('change', () => {
    document.body.dataset.theme = $('theme').value;
    toMiniApp('theme_changed', { theme_params: themes[$('theme').value] });
  });
  $('settings').addEventListener('click', () => toMiniApp('settings_button_pressed'));
  $('pay').addEventListener('click', () => pay(false));
  $('pay-fail').addEventListener('click', () => pay(true));
  $('cancel').addEventListener('click', () => closeSheet($('sheet').dataset.outcome));
  for (const id of ['copies', 'delay', 'drop-first']) $(id).addEventListener('change', saveKnobs);
  $('command-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = $('command').value.trim();
    if (!text) return;
    $('command').value = '';
    transcript().push({ from: 'me', text });
    renderChat();
    await post('/sandbox/api/command', { user: user.id, text });
  });

  await launch();
  refreshCharges();
  setInterval(() => refreshChat().catch((error) => log(`chat: ${error.message}`)), 500);
  refreshReceived();
  setInterval(() => refreshReceived().catch((error) => log(`receiver: ${error.message}`)), 500);
}

start().catch((error) => log(`sandbox failed to start: ${error.message}`));
