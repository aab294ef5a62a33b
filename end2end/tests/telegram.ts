// Launches the Mini App the way Telegram does: signed initData, version, platform and theme in
// the URL fragment, read by the official telegram-web-app.js.
import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { APIRequestContext, expect, Page } from '@playwright/test';

// The sandbox's token and webhook secret (server/src/config.rs): public by design, they only
// exist in sandbox mode (NDN_SANDBOX=1, no bot token, loopback only).
export const SANDBOX_TOKEN = '1000000001:SANDBOX-local-ndn-token-is-not-a-secret';
export const SANDBOX_SECRET = 'sandbox-webhook-secret';

export interface Buyer {
  id: number;
  first_name: string;
  language_code: string;
}

export const themes = {
  light: { bg_color: '#ffffff', text_color: '#000000', hint_color: '#707579', button_color: '#3390ec', button_text_color: '#ffffff', secondary_bg_color: '#f4f4f5' },
  dark: { bg_color: '#212121', text_color: '#ffffff', hint_color: '#aaaaaa', button_color: '#8774e1', button_text_color: '#ffffff', secondary_bg_color: '#0f0f0f' },
};

/** A fresh buyer id per test, so tests never share a balance. */
export function newBuyer(language_code = 'en'): Buyer {
  return { id: 700_000_000 + Math.floor(Math.random() * 100_000_000), first_name: 'Ada', language_code };
}

export function signInitData(buyer: Buyer, ageSeconds = 0): string {
  const fields: Record<string, string> = {
    auth_date: String(Math.floor(Date.now() / 1000) - ageSeconds),
    query_id: 'AAHe2eTest',
    user: JSON.stringify(buyer),
  };
  const checkString = Object.keys(fields).sort().map((key) => `${key}=${fields[key]}`).join('\n');
  const secret = createHmac('sha256', 'WebAppData').update(SANDBOX_TOKEN).digest();
  const hash = createHmac('sha256', secret).update(checkString).digest('hex');
  return new URLSearchParams({ ...fields, hash }).toString();
}

export function launchUrl(
  buyer: Buyer,
  theme: keyof typeof themes = 'light',
  { version = '8.0', ageSeconds = 0 } = {},
): string {
  const fragment = new URLSearchParams({
    tgWebAppData: signInitData(buyer, ageSeconds),
    tgWebAppVersion: version,
    tgWebAppPlatform: 'web',
    tgWebAppThemeParams: JSON.stringify(themes[theme]),
  });
  return `/#${fragment.toString()}`;
}

/**
 * Fails the test on any console error or uncaught exception in the page, except lines matching
 * `expected` (browsers log every 4xx and every aborted request as an error).
 */
export function failOnConsoleErrors(page: Page, expected?: RegExp): () => void {
  const errors: string[] = [];
  const record = (text: string) => {
    if (!expected || !expected.test(text)) errors.push(text);
  };
  page.on('console', (message) => {
    if (message.type() === 'error') record(message.text());
  });
  page.on('pageerror', (error) => record(String(error)));
  // Name the resource behind a "Failed to load resource" console line.
  page.on('response', (response) => {
    if (response.status() >= 400) record(`${response.status()} ${response.url()}`);
  });
  return () => expect(errors, 'browser console errors').toEqual([]);
}

/** Posts an update to the webhook as Telegram would. */
export async function deliver(request: APIRequestContext, update: object) {
  return request.post('/webhook/telegram', {
    data: update,
    headers: { 'X-Telegram-Bot-Api-Secret-Token': SANDBOX_SECRET },
  });
}

/** A `successful_payment` message of `buyer` for `orderId`, as Telegram delivers it. */
export function successfulPayment(updateId: number, buyer: Buyer, orderId: string, stars: number, chargeId: string) {
  const from = { id: buyer.id, is_bot: false, first_name: buyer.first_name, language_code: buyer.language_code };
  return {
    update_id: updateId,
    message: {
      message_id: updateId, from, chat: { id: buyer.id, type: 'private' }, date: Math.floor(Date.now() / 1000),
      successful_payment: {
        currency: 'XTR', total_amount: stars, invoice_payload: orderId,
        telegram_payment_charge_id: chargeId, provider_payment_charge_id: '',
      },
    },
  };
}

let serviceKey: string | undefined;

/**
 * A service API key with every scope, made once with the server binary's `keys create` against
 * the end-to-end database (as an operator would).
 */
export function apiKey(): string {
  if (serviceKey) return serviceKey;
  const binary = process.env.NDN_SERVER_BIN;
  const database = process.env.NDN_E2E_DATABASE_URL;
  if (!binary || !database) throw new Error('NDN_SERVER_BIN and NDN_E2E_DATABASE_URL are needed');
  const output = execFileSync(
    binary,
    ['keys', 'create', '--name', `e2e-${Date.now()}`, '--scopes', 'read,spend,grant'],
    { cwd: '..', env: { PATH: process.env.PATH ?? '', NDN_SANDBOX: '1', DATABASE_URL: database, RUST_LOG: 'error' } },
  ).toString();
  const key = output.split('\n').find((line) => line.startsWith('ndn_'));
  if (!key) throw new Error(`no key in: ${output}`);
  serviceKey = key.trim();
  return serviceKey;
}
