// Opens a node's dashboard in headless Chromium and prints what it shows as JSON.
//
//   node dashboard.mjs DASHBOARD_URL [SCREENSHOT.png]
//
// Waits for the page to render its status, then reads the node id, the cumulative
// earnings, the standing, the receipts waiting, the rows of the per-epoch table, and the
// texts of the disk and bandwidth cards. With SCREENSHOT the full page is saved there.
import { launch } from './browser.mjs';

const [url, screenshot] = process.argv.slice(2);
if (!url) {
  console.error('usage: node dashboard.mjs DASHBOARD_URL [SCREENSHOT.png]');
  process.exit(2);
}
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const failed = [];
  page.on('requestfailed', (r) => failed.push(r.url()));
  page.on('request', (r) => { if (!r.url().startsWith(new URL(url).origin)) failed.push(`external: ${r.url()}`); });
  await page.goto(url);
  await page.waitForFunction(() => document.body.dataset.state === 'ready');
  const text = async (sel) => (await page.$(sel) ? (await page.textContent(sel)) ?? '' : '');
  const out = {
    node: await text('#node'),
    cumulative: await text('#cumulative'),
    standing: await text('#standing'),
    availability: await text('#availability'),
    openEpoch: await text('#open-epoch'),
    claims: await text('#claims'),
    pending: await text('#pending'),
    epochRows: await page.$$eval('#epochs table tr', (rows) => rows.length - 1),
    storage: await text('#storage'),
    bandwidth: await text('#bandwidth'),
    receipts: await text('#receipts'),
    error: await text('#error'),
    failed,
  };
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
