// Test-only: drives one login in headless Chromium (Debian's /usr/bin/chromium) through
// playwright-core, as a person would: open the URL, fill the OP's login form, accept consent,
// wait for the callback page. Usage: node chromium_login.mjs URL [login]
// Every request off loopback is refused (the OP's pages import web fonts).
import { chromium } from 'playwright-core';

const [url, login = 'alice'] = process.argv.slice(2);
const LOOP = new Set(['localhost', '127.0.0.1', '[::1]']);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-domain-reliability', '--no-pings',
    '--dns-prefetch-disable', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1',
    '--proxy-server=http://127.0.0.1:9', '--proxy-bypass-list=localhost;127.0.0.1;[::1]',
  ],
});
try {
  const page = await browser.newPage();
  await page.route('**/*', (r) => (LOOP.has(new URL(r.request().url()).hostname) ? r.continue() : r.abort()));
  await page.goto(url);
  await page.fill('input[name=login]', login);
  await page.fill('input[name=password]', 'anything');
  await page.click('button[type=submit]');
  await page.waitForSelector('input[name=prompt][value=consent]', { state: 'attached' });
  await Promise.all([page.waitForURL(/\/login-callback/), page.click('button[type=submit]')]);
  console.log('CALLBACK_BODY', (await page.textContent('body'))?.slice(0, 200));
} finally {
  await browser.close();
}
