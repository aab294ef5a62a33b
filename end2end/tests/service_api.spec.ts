// The operator's own service spends and grants NDN through the service API; the buyer's open
// Mini App shows it live: the balance, what is reserved, and the history with the reasons.
import { APIRequestContext, expect, Page, test } from '@playwright/test';
import { apiKey, failOnConsoleErrors, launchUrl, newBuyer } from './telegram';

const SCREENSHOTS = 'test-results/screens';

async function api(request: APIRequestContext, path: string, data: object, key: string) {
  const response = await request.post(path, {
    data,
    headers: {
      Authorization: `Bearer ${apiKey()}`,
      'Idempotency-Key': key,
    },
  });
  expect(response.status(), await response.text()).toBe(201);
  return response.json();
}

async function balanceIs(page: Page, ndn: string) {
  await expect(page.getByTestId('balance')).toHaveText(new RegExp(`^${ndn}\\s+NDN$`));
}

for (const [language, words] of [
  ['en', { credited: 'Credited', spent: 'Spent', available: 'Available', held: 'Reserved' }],
  ['ru', { credited: 'Начислено', spent: 'Потрачено', available: 'Доступно', held: 'Зарезервировано' }],
] as const) {
  test(`a credit, a debit and a hold made through the API show up live (${language})`, async ({ page, request }) => {
    const assertNoErrors = failOnConsoleErrors(page);
    const buyer = newBuyer(language);
    await page.goto(launchUrl(buyer, language === 'ru' ? 'dark' : 'light'));
    await balanceIs(page, '0');
    await expect(page.locator('main')).toHaveAttribute('data-live', 'open');

    await api(request, '/v1/credits', { user_id: buyer.id, amount: 100, reason: 'Welcome gift' }, `gift-${buyer.id}`);
    await balanceIs(page, '100');
    const history = page.getByTestId('history');
    await expect(history.locator('li.credit')).toContainText('Welcome gift');
    await expect(history.locator('li.credit')).toContainText(words.credited);

    await api(request, '/v1/debits', { user_id: buyer.id, amount: 30, reason: 'Sword of dawn' }, `sword-${buyer.id}`);
    await balanceIs(page, '70');
    await expect(history.locator('li.spend')).toContainText('−30 NDN');
    await expect(history.locator('li.spend')).toContainText('Sword of dawn');
    await expect(history.locator('li.spend')).toContainText(words.spent);

    await api(request, '/v1/holds', { user_id: buyer.id, amount: 20, expires_in: 600 }, `hold-${buyer.id}`);
    await expect(page.getByTestId('held')).toContainText(`${words.available}: 50 NDN`);
    await expect(page.getByTestId('held')).toContainText(`${words.held}: 20 NDN`);
    await page.screenshot({ path: `${SCREENSHOTS}/api-history-${language}.png`, fullPage: true });
    assertNoErrors();
  });
}
