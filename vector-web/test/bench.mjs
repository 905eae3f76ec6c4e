// Times queries inside the vector search page in headless Chromium (for vector-bench).
//
//   node bench.mjs PAGE_URL INDEX_ID QUERIES.json K NPROBE
//
// QUERIES.json is an array of query vectors. Each query runs twice: cold (its pages are
// fetched over loopback, verified in wasm and stored in IndexedDB) and warm (pages already in
// the wasm searcher). Prints {"cold_ms": [...], "warm_ms": [...], "ids": [[...], ...]}.
import { readFileSync } from 'node:fs';
import { launch } from './browser.mjs';

const [url, index, queriesFile, k, nprobe] = process.argv.slice(2);
if (!nprobe) {
  console.error('usage: node bench.mjs PAGE_URL INDEX_ID QUERIES.json K NPROBE');
  process.exit(2);
}
const queries = JSON.parse(readFileSync(queriesFile, 'utf8'));
const browser = await launch();
try {
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${url}?index=${index}`);
  const settled = () => page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset.state));
  await settled();
  await page.click('#load');
  await settled();
  const error = await page.textContent('#error');
  if (error) throw new Error(`loading the index: ${error}`);
  const out = { cold_ms: [], warm_ms: [], ids: [] };
  for (const q of queries) {
    const text = JSON.stringify(q);
    const cold = await page.evaluate(([t, kk, np]) => window.dsi.timeQuery(t, kk, np), [text, Number(k), Number(nprobe)]);
    const warm = await page.evaluate(([t, kk, np]) => window.dsi.timeQuery(t, kk, np), [text, Number(k), Number(nprobe)]);
    out.cold_ms.push(cold.ms);
    out.warm_ms.push(warm.ms);
    out.ids.push(cold.ids);
  }
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
