import { defineConfig } from '@playwright/test';

// The server under test is the release build (the optimised wasm is what buyers get), started
// by ../scripts/test with a fresh SQLite database in sandbox mode.
const port = Number(process.env.NDN_E2E_PORT ?? 3210);

export default defineConfig({
  testDir: './tests',
  timeout: 60_000,
  expect: { timeout: 10_000 },
  workers: 1,
  retries: 0,
  reporter: [['list']],
  outputDir: 'test-results',
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    screenshot: 'only-on-failure',
    launchOptions: {
      executablePath: '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    },
  },
  webServer: process.env.NDN_SERVER_BIN
    ? {
        command: process.env.NDN_SERVER_BIN,
        cwd: '..',
        url: `http://127.0.0.1:${port}/readyz`,
        reuseExistingServer: false,
        timeout: 60_000,
        gracefulShutdown: { signal: 'SIGTERM', timeout: 5_000 },
        stdout: 'pipe',
        env: {
          LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
          LEPTOS_SITE_ROOT: process.env.LEPTOS_SITE_ROOT ?? 'target/site',
          LEPTOS_OUTPUT_NAME: 'ndn',
          LEPTOS_ENV: 'PROD',
          NDN_SANDBOX: '1',
          DATABASE_URL: process.env.NDN_E2E_DATABASE_URL ?? 'sqlite://target/e2e/ndn.db',
          RUST_LOG: 'warn',
          // The two sandbox users buy in most tests, within a minute.
          INVOICE_RATE_PER_MINUTE: '100',
        },
      }
    : undefined,
});
