// The DSI vector search page: loads an index by content id from seeders, runs queries in
// WebAssembly, fetches only the pages a query needs, verifies every page against its chunk
// id (in wasm), pays seeders with signed receipts, and keeps pages in IndexedDB so that a
// reload fetches nothing twice.
import init, { Downloader, Index, TextEmbedder, contentChunks, contentText, parseQuery } from './pkg/vector_web.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

// What the page did, for people (the status line) and for the browser test.
const stats = { network: 0, cached: 0, networkBytes: 0, requested: [], receiptsAccepted: 0, queries: 0, embedMs: [] };
window.dsi = { stats };

const state = {
  index: null, cid: null, peers: [], query: null, k: 10, nprobe: 1, next: null, page: 0,
  embedder: null, modelCid: null, labels: null, textsCid: null,
};
const owed = new Map(); // peer -> signed receipts (JSON text) not yet sent
const seeders = new Map(); // peer -> GET /v1/node answer
let downloader = null;
let lastRequestMs = 0; // issue time of the last chunk request signed

// ---- IndexedDB: verified chunks by id --------------------------------------------------
let dbPromise = null;
function db() {
  dbPromise ??= new Promise((resolve, reject) => {
    const open = indexedDB.open('dsi-swarm', 1);
    open.onupgradeneeded = () => open.result.createObjectStore('chunks');
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
  });
  return dbPromise;
}

async function cached(key) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const req = d.transaction('chunks').objectStore('chunks').get(key);
    req.onsuccess = () => resolve(req.result ? new Uint8Array(req.result) : null);
    req.onerror = () => reject(req.error);
  });
}

async function forget(key) {
  const d = await db();
  return new Promise((resolve) => {
    const tx = d.transaction('chunks', 'readwrite');
    tx.objectStore('chunks').delete(key);
    tx.oncomplete = tx.onerror = tx.onabort = () => resolve();
  });
}

async function store(key, bytes) {
  if (params.has('simulate-quota')) {
    // Lets the browser test exercise the message below without filling a real disk.
    throw new DOMException('simulated', 'QuotaExceededError');
  }
  const d = await db();
  return new Promise((resolve, reject) => {
    const tx = d.transaction('chunks', 'readwrite');
    tx.objectStore('chunks').put(bytes, key);
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

let quotaWarned = false;
async function remember(key, bytes) {
  try {
    await store(key, bytes);
  } catch (e) {
    const quota = e && (e.name === 'QuotaExceededError' || /quota/i.test(String(e.message)));
    if (quota && !quotaWarned) {
      quotaWarned = true;
      $('warning').textContent =
        'Browser storage is full (quota exceeded): results are still correct, but pages are ' +
        'no longer kept in this browser and will be fetched from the swarm again next time. ' +
        "Free space for this site in the browser's settings to cache them.";
    } else if (!quota) {
      $('warning').textContent = `A page could not be cached in this browser: ${e}`;
    }
  }
}

// ---- the swarm ------------------------------------------------------------------------
const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
const unhex = (text) => new Uint8Array(text.match(/../g).map((h) => parseInt(h, 16)));

function identity() {
  let seed = localStorage.getItem('dsi-downloader-seed');
  if (!seed || seed.length !== 64) {
    seed = hex(crypto.getRandomValues(new Uint8Array(32)));
    localStorage.setItem('dsi-downloader-seed', seed);
  }
  return new Downloader(unhex(seed));
}

async function seeder(peer) {
  if (!seeders.has(peer)) {
    const r = await fetch(`${peer}/v1/node`, { signal: AbortSignal.timeout(10000) });
    if (!r.ok) throw new Error(`GET /v1/node: HTTP ${r.status}`);
    seeders.set(peer, await r.json());
  }
  return seeders.get(peer);
}

async function apiError(r) {
  const text = await r.text();
  try { return `HTTP ${r.status}: ${JSON.parse(text).message}`; } catch { return `HTTP ${r.status}: ${text}`; }
}

// Fetches a chunk from the first seeder that serves it and owes that seeder a receipt.
// The caller verifies the bytes (in wasm) before using or caching them.
async function fromSwarm(id) {
  const why = [];
  for (const peer of state.peers) {
    try {
      const info = await seeder(peer);
      stats.requested.push(id);
      // Each request is signed for this seeder and chunk, never issued before the last one
      // (a seeder refuses a request for an unpaid chunk that is not newer than the one it
      // served it on).
      const get = () => {
        lastRequestMs = Math.max(Date.now(), lastRequestMs);
        const header = downloader.chunkHeader(info.network, info.node_id, id, lastRequestMs);
        return fetch(`${peer}/v1/chunks/${id}`, { headers: { 'x-dsi-downloader': header } });
      };
      let r = await get();
      if (r.status === 429) {
        // The seeder serves a downloader only so far ahead of its receipts: pay, then ask again.
        await payPeer(peer);
        r = await get();
      }
      if (!r.ok) { why.push(`${peer}: ${await apiError(r)}`); continue; }
      const bytes = new Uint8Array(await r.arrayBuffer());
      stats.network += 1;
      stats.networkBytes += bytes.length;
      const nonce = crypto.getRandomValues(new Uint32Array(2));
      const receipt = downloader.receipt(info.network, info.epoch, info.node_id, id, bytes.length, Date.now(), nonce[0], nonce[1]);
      if (!owed.has(peer)) owed.set(peer, []);
      // Kept as signed JSON text: JSON.parse would round the 64-bit nonce.
      owed.get(peer).push(receipt);
      // Pay as we go on long contents (a text model is ~90 chunks): seeders stop serving a
      // downloader that owes them too many receipts (64 by default).
      if (owed.get(peer).length >= PAY_EVERY) await payPeer(peer);
      return bytes;
    } catch (e) {
      why.push(`${peer}: ${e.message || e}`);
    }
  }
  throw new Error(`chunk ${id} could not be fetched: ${why.join('; ') || 'no seeders given'}`);
}

const PAY_EVERY = 16;

async function pay() {
  await Promise.all([...owed.keys()].map(payPeer));
}

async function payPeer(peer) {
  const receipts = owed.get(peer);
  if (!receipts || receipts.length === 0) return;
  owed.delete(peer);
  try {
    const r = await fetch(`${peer}/v1/receipts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: `{"receipts":[${receipts.join(',')}]}`,
    });
    if (r.ok) {
      const answer = await r.json();
      const accepted = answer.results.filter((v) => v.status === 'accepted').length;
      stats.receiptsAccepted += accepted;
      const refused = answer.results.find((v) => v.status !== 'accepted');
      if (refused) console.warn(`${peer} refused receipts: ${JSON.stringify(refused)}`);
    } else {
      console.warn(`receipts to ${peer}: ${await apiError(r)}`);
    }
  } catch (e) {
    console.warn(`receipts to ${peer} not delivered`, e);
  }
}

// ---- credit: whether this browser's receipts pay ---------------------------------------
// Native units as tokens (12 decimals), from the decimal string the oracle sends.
function tokens(units) {
  const n = BigInt(units);
  const whole = n / 1000000000000n;
  const micro = (n % 1000000000000n) / 1000000n;
  return `${whole}.${micro.toString().padStart(6, '0')}`;
}

// The tracker a seeder names, if it is an absolute http(s) URL (a seeder chooses this text:
// nothing relative to this page, no other schemes), without a trailing slash.
function trackerUrl(text) {
  if (typeof text !== 'string' || text === '') return null;
  try {
    const url = new URL(text);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
    return url.href.replace(/\/+$/, '');
  } catch { return null; }
}

const digits = (v) => typeof v === 'string' ? /^\d{1,39}$/.test(v) : Number.isSafeInteger(v) && v >= 0;

// Asks the seeders' tracker (named in GET /v1/node) for this key's credit and says what it
// means: receipts debit the credit at the network's price per byte, or pay nothing. What
// the answer says is only shown (nothing is signed or paid on it); it is asked without
// cookies and given 5 s.
async function showCredit() {
  const el = $('credit');
  const id = downloader.nodeId();
  let tracker = null;
  for (const peer of state.peers) {
    try {
      tracker = trackerUrl((await seeder(peer)).tracker);
      if (tracker) break;
    } catch { /* the next seeder may answer */ }
  }
  stats.credit = null;
  if (!tracker) {
    el.dataset.credit = 'untracked';
    el.textContent = `This browser's key ${id} signs receipts, but the seeders name no tracker: nobody pays for them.`;
    return;
  }
  try {
    const r = await fetch(`${tracker}/v1/credits/${id}`, { credentials: 'omit', signal: AbortSignal.timeout(5000) });
    if (!r.ok) throw new Error(await apiError(r));
    const credit = await r.json();
    if (![credit.available, credit.spent, credit.price_per_byte].every(digits)) {
      throw new Error('the answer is not a credit');
    }
    stats.credit = credit.available;
    if (BigInt(credit.available) > 0n) {
      el.dataset.credit = 'funded';
      el.textContent = `This browser's key ${id} has ${tokens(credit.available)} tokens of credit ` +
        `(${tokens(credit.spent)} spent): its receipts pay the seeders ${credit.price_per_byte} units per byte.`;
    } else {
      el.dataset.credit = 'unfunded';
      el.textContent = `This browser's key ${id} has no credit: its receipts still count as evidence ` +
        'for the seeders, but pay them nothing. An app or you can fund it at the tracker ' +
        `(oracle credit ${id} --amount UNITS).`;
    }
  } catch (e) {
    el.dataset.credit = 'unknown';
    el.textContent = `The credit of this browser's key ${id} is unknown: ${tracker}: ${e.message || e}`;
  }
}

// ---- contents: the index, a text model, the indexed texts -------------------------------
// Fetches a whole content: its manifest (checked against the content id in wasm) and its
// chunks, from this browser's cache or the swarm, several at a time. The caller verifies the
// chunks (in wasm) before anything is cached or used.
async function loadContent(cid, what, progress) {
  let manifest = await cached(`manifest:${cid}`);
  let fresh = false;
  if (!manifest) {
    const why = [];
    for (const peer of state.peers) {
      try {
        const r = await fetch(`${peer}/v1/content/${cid}/manifest`);
        if (r.ok) { manifest = new Uint8Array(await r.arrayBuffer()); break; }
        why.push(`${peer}: ${await apiError(r)}`);
      } catch (e) { why.push(`${peer}: ${e.message || e}`); }
    }
    if (!manifest) throw new Error(`${what} ${cid} not found: ${why.join('; ')}`);
    fresh = true;
  }
  const ids = contentChunks(cid, manifest); // checks the manifest against the content id
  const parts = new Array(ids.length);
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < ids.length) {
      const i = next++;
      let bytes = await cached(ids[i]);
      if (bytes) stats.cached += 1; else bytes = await fromSwarm(ids[i]);
      parts[i] = bytes;
      done += 1;
      if (progress) progress(done, ids.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(6, ids.length) }, worker));
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { all.set(p, at); at += p.length; }
  // Called once `open` (which verifies every chunk) has accepted the bytes.
  const keep = async () => {
    if (fresh) await remember(`manifest:${cid}`, manifest);
    for (let i = 0; i < ids.length; i += 1) await remember(ids[i], parts[i]);
    await pay();
  };
  return { manifest, all, keep };
}

async function loadIndex(cid) {
  const { manifest, all, keep } = await loadContent(cid, 'index');
  const index = new Index(cid, manifest, all); // checks every chunk against its id
  await keep();
  return index;
}

async function loadModel(cid) {
  const { manifest, all, keep } = await loadContent(cid, 'text model', (done, total) => {
    $('info').textContent = `loading the text model: ${done} of ${total} chunks`;
  });
  const embedder = new TextEmbedder(cid, manifest, all); // checks every chunk against its id
  await keep();
  return embedder;
}

async function loadTexts(cid) {
  const { manifest, all, keep } = await loadContent(cid, 'text file');
  const text = contentText(cid, manifest, all); // checks every chunk against its id
  await keep();
  // Ids of a text index are 0-based line numbers (node-lite vectors build --text-file).
  return text.split(/\r?\n/);
}

async function resultPage(cursor) {
  for (;;) {
    const step = JSON.parse(state.index.step(state.query, state.k, state.nprobe, cursor));
    if (step.done) return step.done;
    // The pages of one step are independent: look them up and fetch them all at once.
    const got = await Promise.all(step.need.map(async ({ chunk }) => {
      const hit = await cached(chunk);
      return hit ? { chunk, bytes: hit, local: true } : { chunk, bytes: await fromSwarm(chunk), local: false };
    }));
    const fresh = [];
    for (const page of got) {
      if (page.local) {
        try { state.index.addPage(page.chunk, page.bytes); stats.cached += 1; continue; } catch { await forget(page.chunk); }
        page.bytes = await fromSwarm(page.chunk);
      }
      state.index.addPage(page.chunk, page.bytes); // throws (named) if a seeder sent wrong bytes
      fresh.push(page);
    }
    await Promise.all(fresh.map((page) => remember(page.chunk, page.bytes)));
    await pay();
  }
}

// ---- UI -------------------------------------------------------------------------------
function fail(e) {
  $('error').textContent = String(e && e.message ? e.message : e);
  document.body.dataset.state = 'error';
}

const size = (bytes) => (bytes < 1048576 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 1048576).toFixed(1)} MiB`);

function show(done) {
  const body = $('results').querySelector('tbody');
  body.replaceChildren();
  $('text-column').hidden = !state.labels;
  done.hits.forEach((h, i) => {
    const tr = document.createElement('tr');
    const cells = [done.page * state.k + i + 1, h.id, h.distance.toFixed(6)];
    if (state.labels) cells.push(state.labels[h.id] ?? '');
    for (const v of cells) {
      const td = document.createElement('td');
      td.textContent = v;
      tr.append(td);
    }
    body.append(tr);
  });
  $('results').hidden = false;
  state.next = done.next;
  $('next').disabled = !done.next;
  $('status').textContent =
    `page ${done.page + 1} · searched ${done.lists_probed} lists · chunks so far: ` +
    `${stats.network} from the swarm (${size(stats.networkBytes)}), ` +
    `${stats.cached} from this browser` + (done.next ? '' : ' · no more results');
}

async function run(action) {
  $('error').textContent = '';
  document.body.dataset.state = 'busy';
  try {
    await action();
    document.body.dataset.state = 'ready';
  } catch (e) {
    fail(e);
  }
}

const contentId = (field, what) => {
  const cid = $(field).value.trim();
  if (cid && !/^[0-9a-f]{64}$/.test(cid)) throw new Error(`a ${what} content id is 64 hex characters`);
  return cid;
};

$('load').onclick = () => run(async () => {
  const cid = contentId('index', 'index');
  if (!cid) throw new Error('give the index content id');
  const modelCid = contentId('model', 'text model');
  const textsCid = contentId('texts', 'text file');
  state.peers = ($('peers').value.trim() || location.origin).split(/[\s,]+/).map((p) => p.replace(/\/+$/, ''));
  state.index = await loadIndex(cid);
  state.cid = cid;
  const info = JSON.parse(state.index.info());
  state.embedder = null;
  if (modelCid) {
    const embedder = await loadModel(modelCid);
    if (embedder.dim() !== info.dim) {
      throw new Error(`the text model makes vectors of dimension ${embedder.dim()}, the index holds ${info.dim}`);
    }
    state.embedder = embedder;
    state.modelCid = modelCid;
  }
  state.labels = textsCid ? await loadTexts(textsCid) : null;
  state.textsCid = textsCid || null;
  if (!$('nprobe').value) $('nprobe').value = info.nprobe;
  $('info').textContent = `${info.vectors} vectors · dimension ${info.dim} · ${info.metric} · ` +
    `${info.lists} lists (${info.encoding}) · ${(info.page_bytes / 1048576).toFixed(2)} MiB of pages` +
    (state.embedder ? ` · text model ${state.embedder.name()}` : '') +
    (state.labels ? ` · texts shown` : '');
  $('text').disabled = !state.embedder;
  $('search').disabled = false;
  await showCredit();
});

// The query: text (embedded in wasm by the text model) if given, else the typed vector.
function queryVector() {
  const text = $('text').value.trim();
  if (text) {
    if (!state.embedder) throw new Error('searching by text needs a text model: give its content id and load again');
    const start = performance.now();
    const vector = state.embedder.embed(text);
    stats.embedMs.push(performance.now() - start);
    return vector;
  }
  return parseQuery($('query').value);
}

$('search').onclick = () => run(async () => {
  state.query = queryVector();
  state.k = Math.max(1, parseInt($('k').value, 10) || 10);
  state.nprobe = Math.max(1, parseInt($('nprobe').value, 10) || 1);
  stats.queries += 1;
  show(await resultPage(undefined));
});

$('next').onclick = () => run(async () => {
  if (state.next) show(await resultPage(state.next));
});

// For vector-bench: one query timed inside the page (fetch, verify, cache, search).
window.dsi.timeQuery = async (text, k, nprobe) => {
  state.query = parseQuery(text);
  state.k = k;
  state.nprobe = nprobe;
  const start = performance.now();
  const done = await resultPage(undefined);
  return { ms: performance.now() - start, ids: done.hits.map((h) => h.id) };
};

await init();
downloader = identity();
window.dsi.nodeId = downloader.nodeId();
for (const field of ['index', 'peers', 'model', 'texts', 'text', 'query', 'k', 'nprobe']) {
  if (params.has(field)) $(field).value = params.get(field);
}
document.body.dataset.state = 'ready';
