// Reads byte ranges through a node-lite gateway with `fetch` in headless Chromium and prints
// what the page saw as JSON, one object per request.
//
//   node range.mjs PAGE_URL REQUEST...
//
// The page is opened at PAGE_URL (its origin is the page's origin); each REQUEST is
// `URL RANGE` joined by a space (RANGE like `bytes=0-99`, or `-` for none). For each the
// driver prints {status, contentRange, contentType, length, hex} (the body in hex).
// CHROMIUM overrides /usr/bin/chromium.
import { launch } from './browser.mjs';

const [pageUrl, ...requests] = process.argv.slice(2);
if (!pageUrl || requests.length === 0) {
  console.error('usage: node range.mjs PAGE_URL "URL RANGE"...');
  process.exit(2);
}

const browser = await launch();
try {
  const page = await browser.newPage();
  await page.goto(pageUrl);
  const out = [];
  for (const request of requests) {
    const [url, range] = request.split(' ');
    out.push(await page.evaluate(async ([url, range]) => {
      const headers = range === '-' ? {} : { Range: range };
      const response = await fetch(url, { headers });
      const bytes = new Uint8Array(await response.arrayBuffer());
      return {
        status: response.status,
        contentRange: response.headers.get('content-range'),
        contentType: response.headers.get('content-type'),
        length: bytes.length,
        hex: Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(''),
      };
    }, [url, range]));
  }
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
