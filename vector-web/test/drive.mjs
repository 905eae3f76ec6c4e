// Drives the vector search page in headless Chromium and prints what happened as JSON.
//
//   node drive.mjs PAGE_URL INDEX_ID QUERY K NPROBE NEXT_PAGES [EXTRA]
//
// EXTRA is appended to the page's query string (e.g. `&model=ID&texts=ID&text=sunny`).
// Session 1 loads the index, searches, and clicks "next page" NEXT_PAGES times; session 2
// reloads the page in the same browser profile and does the same (everything should come
// from IndexedDB); session 3 uses a fresh profile with a simulated full storage quota.
// Every request for /v1/chunks/* is recorded. CHROMIUM overrides /usr/bin/chromium.
// With DSI_FUND_URL and DSI_FUND_TOKEN (an oracle and its admin token), the driver acts as
// an app funding its user between sessions 1 and 2: it adds DSI_FUND_UNITS (default one
// token) to the page key's credit (POST /v1/credits).
import { launch } from './browser.mjs';

const [url, index, query, k, nprobe, nextPages, extra = ''] = process.argv.slice(2);
if (!nextPages) {
  console.error('usage: node drive.mjs PAGE_URL INDEX_ID QUERY K NPROBE NEXT_PAGES [EXTRA]');
  process.exit(2);
}

const browser = await launch();

async function session(page, more = '') {
  const target = `${url}?index=${index}&query=${encodeURIComponent(query)}&k=${k}&nprobe=${nprobe}${extra}${more}`;
  await page.goto(target);
  const settled = () => page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset.state));
  await settled();
  const text = async (sel) => (await page.textContent(sel)) ?? '';
  const ids = async () => page.$$eval('#results tbody tr', (rows) => rows.map((r) => Number(r.children[1].textContent)));
  const texts = async () => page.$$eval('#results tbody tr', (rows) => rows.map((r) => r.children[3]?.textContent ?? null));
  const out = { pages: [], texts: [], error: '', warning: '', status: '', info: '' };
  const step = async (selector) => {
    await page.click(selector);
    await settled();
    out.error = await text('#error');
    return !out.error;
  };
  if (await step('#load') && await step('#search')) {
    out.pages.push(await ids());
    out.texts.push(await texts());
    for (let i = 0; i < Number(nextPages); i += 1) {
      if (!(await step('#next'))) break;
      out.pages.push(await ids());
      out.texts.push(await texts());
    }
  }
  out.warning = await text('#warning');
  out.status = await text('#status');
  out.info = await text('#info');
  out.credit = await text('#credit');
  out.nodeId = await page.evaluate(() => window.dsi.nodeId);
  out.stats = await page.evaluate(() => ({ ...window.dsi.stats, requested: undefined }));
  return out;
}

const result = {};
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  const requested = [];
  page.on('request', (r) => {
    const m = r.url().match(/\/v1\/chunks\/([0-9a-f]{64})/);
    if (m) requested.push(m[1]);
  });
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') console.error(`page: ${m.text()}`); });
  result.first = await session(page);
  result.first.requested = requested.splice(0);
  if (process.env.DSI_FUND_URL) {
    const r = await fetch(`${process.env.DSI_FUND_URL}/v1/credits`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${process.env.DSI_FUND_TOKEN}` },
      body: JSON.stringify({ downloader: result.first.nodeId, amount: process.env.DSI_FUND_UNITS || '1000000000000' }),
    });
    if (!r.ok) throw new Error(`funding the page's key: HTTP ${r.status}: ${await r.text()}`);
  }
  result.second = await session(page); // same profile: a reload
  result.second.requested = requested.splice(0);
  await context.close();

  const quota = await browser.newContext();
  result.quota = await session(await quota.newPage(), '&simulate-quota');
  await quota.close();
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
