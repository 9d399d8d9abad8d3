// The status page in headless Chromium: sign in with a read token, see
// the totals and the top swarm, open the swarm's page, find a chart with
// data points. Run by e2e/status_browser_test.go against a running
// daemon; every check that fails exits non-zero with its reason.
//
// Environment: STATUS_URL (http://host:port/status), TOKEN, INFO_HASH
// (the swarm expected on top), WANT_SWARMS, WANT_SEEDERS, WANT_LEECHERS,
// WANT_SNATCHES, USER_DATA_DIR (a fresh directory), and SCREENSHOT (a
// path, optional) for the documentation's picture of the swarm's page.
import { chromium } from 'playwright-core';

const env = (k) => {
  const v = process.env[k];
  if (v === undefined) throw new Error(`${k} is not set`);
  return v;
};
const statusURL = env('STATUS_URL');
const origin = new URL(statusURL).origin;

function check(ok, what) {
  if (!ok) throw new Error(what);
}

const context = await chromium.launchPersistentContext(env('USER_DATA_DIR'), {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1000, height: 900 },
});
try {
  const page = context.pages()[0] || await context.newPage();
  const outside = [];
  page.on('request', (r) => { if (!r.url().startsWith(origin)) outside.push(r.url()); });
  const failed = [];
  page.on('console', (m) => { if (m.type() === 'error') failed.push(m.text()); });

  await page.goto(statusURL);
  check(await page.locator('input#token').count() === 1, 'no sign-in form at ' + statusURL);
  await page.fill('input#token', env('TOKEN'));
  await Promise.all([page.waitForURL(statusURL), page.click('button[type=submit]')]);

  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === 'chihaya_session');
  check(session && session.httpOnly && session.sameSite === 'Strict', 'session cookie not HttpOnly + SameSite=Strict: ' + JSON.stringify(session));

  const text = async (sel) => (await page.locator(sel).innerText()).trim();
  for (const [sel, want] of [['#total-swarms', 'WANT_SWARMS'], ['#total-seeders', 'WANT_SEEDERS'], ['#total-leechers', 'WANT_LEECHERS'], ['#total-snatches', 'WANT_SNATCHES']]) {
    const got = await text(sel);
    check(got === env(want), `${sel}: ${got}, want ${env(want)}`);
  }
  // The front page reads on a phone too.
  await page.setViewportSize({ width: 390, height: 844 });
  const frontOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(frontOverflow <= 1, `the front page is ${frontOverflow}px wider than a phone's screen`);
  await page.setViewportSize({ width: 1000, height: 900 });

  const top = page.locator('#top tr.swarm a').first();
  const topHash = (await top.innerText()).trim();
  check(topHash === env('INFO_HASH'), `top swarm ${topHash}, want ${env('INFO_HASH')}`);

  await Promise.all([page.waitForURL('**/status/torrents/' + env('INFO_HASH')), top.click()]);
  check((await text('#info-hash')) === env('INFO_HASH'), 'the swarm page shows another info hash');
  const charts = page.locator('svg.chart');
  check(await charts.count() === 2, `${await charts.count()} charts, want 2 (hour, day)`);
  const points = await charts.first().locator('circle.pt').count();
  check(points >= 6, `${points} data points in the hour chart, want at least 2 per series`);
  const box = await charts.first().boundingBox();
  check(box && box.width > 300 && box.height > 100, 'the chart is not drawn at a readable size: ' + JSON.stringify(box));
  const lines = await charts.first().locator('polyline').count();
  check(lines === 3, `${lines} lines in the hour chart, want 3`);

  // Readable on a phone: nothing wider than the screen but the scrollers.
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 1, `the page is ${overflow}px wider than a phone's screen`);

  check(outside.length === 0, 'requests outside the tracker: ' + outside.join(', '));
  check(failed.length === 0, 'console errors: ' + failed.join('; '));

  if (process.env.SCREENSHOT) {
    await page.setViewportSize({ width: 900, height: 900 });
    await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  }
  console.log(`ok: signed in, totals and top swarm ${topHash.slice(0, 8)} seen, ${points} points charted`);
} finally {
  await context.close();
}
