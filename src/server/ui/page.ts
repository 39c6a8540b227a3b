/**
 * @module server/ui/page — the status page at `GET /`: one HTML document with its style and
 * script inline (no build step, no CDN). The page holds no data: it calls the API from the
 * browser (`/v1/status`, `/v2/list_documents`, `/metrics`, `/v1/retrieve`) with the bearer
 * token the user enters when the API answers 401. A Content-Security-Policy allows only the
 * inline script and style of this page (by hash) and calls to this server.
 */
import { createHash } from 'node:crypto';
import type { Hono } from 'hono';
import { CLIENT_JS } from './client.js';

const CSS = `
:root{--bg:#f6f7f9;--card:#fff;--line:#dde1e6;--ink:#1d2430;--muted:#6b7480;--ok:#1a7f37;--warn:#9a6700;--bad:#c4302b;--accent:#2f6feb}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;background:var(--bg);color:var(--ink)}
header{display:flex;align-items:center;gap:1em;padding:.8em 1.4em;background:#1d2430;color:#fff}
header h1{font-size:18px;margin:0}
header .spacer{flex:1}
header #updated{color:#aab3bf;font-size:12px}
main{max-width:1200px;margin:0 auto;padding:1em 1.4em 3em}
section{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:.8em 1em;margin:1em 0}
h2{font-size:15px;margin:.1em 0 .6em}
.badge{padding:.1em .6em;border-radius:10px;font-size:12px;background:#555;color:#fff}
.badge.ok{background:var(--ok);color:#fff}.badge.warn{background:var(--warn);color:#fff}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:.8em;margin:1em 0}
.card{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:.7em .9em}
.card .label{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .value{font-size:22px;font-weight:600;overflow-wrap:anywhere}
.sub{color:var(--muted);font-size:12px}.sub.bad{color:var(--bad)}
table{width:100%;border-collapse:collapse}
th,td{text-align:left;padding:.35em .5em;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;color:var(--muted);font-weight:600}
td.path{font-family:ui-monospace,monospace;overflow-wrap:anywhere}
td.err{color:var(--bad);overflow-wrap:anywhere}
td.num{text-align:right}
.mono{font-family:ui-monospace,monospace;font-size:12px;color:var(--muted)}
.state{font-weight:600;font-size:12px}
.ok{color:var(--ok)}.warn{color:var(--warn)}.bad{color:var(--bad)}
.muted{color:var(--muted)}
.toolbar{display:flex;gap:.6em;align-items:center;flex-wrap:wrap;margin-bottom:.6em}
input,select,button{font:inherit;padding:.3em .5em;border:1px solid var(--line);border-radius:4px;background:#fff}
button{cursor:pointer;background:var(--accent);color:#fff;border-color:var(--accent)}
button:disabled{opacity:.4;cursor:default}
#q{flex:1;min-width:220px}
#filter{min-width:240px}
#k{width:5em}
.toolbar .spacer{flex:1}
.docs-link{color:#aab3bf}
#auth{border-color:var(--warn);background:#fff8e6}
#error{border-color:var(--bad);color:var(--bad);background:#fff0f0}
ol#hits{list-style:none;padding:0;margin:0}
.hit{border-top:1px solid var(--line);padding:.5em 0}
.hit-head{display:flex;gap:.6em;align-items:baseline;flex-wrap:wrap}
.hit .rank{color:var(--muted)}
.hit .path{font-family:ui-monospace,monospace;font-weight:600}
.score{font-size:12px;padding:0 .4em;border-radius:3px;background:#eef1f5;font-family:ui-monospace,monospace}
.score.bm25{background:#e7f0ff}.score.vector{background:#eaf7ee}.score.fused{background:#fdf0e3}
.excerpt{margin:.3em 0 0;white-space:pre-wrap;color:#333}
`;

const BODY = `
<header><h1>livedex</h1><span id="ready" class="badge">loading…</span><span class="spacer"></span><span id="updated"></span><a href="docs" class="docs-link">API reference</a></header>
<main>
<section id="auth" hidden>
  <h2>Token needed</h2>
  <p id="auth-why"></p>
  <form id="auth-form" class="toolbar"><input id="token" type="password" autocomplete="off" placeholder="bearer token" aria-label="bearer token"><button type="submit">Use token</button><span class="sub">kept in this tab only (sessionStorage)</span></form>
</section>
<section id="error" hidden></section>
<div class="cards">
  <div class="card"><div class="label">Documents</div><div class="value" id="c-docs">—</div><div class="sub" id="c-docs-sub"></div></div>
  <div class="card"><div class="label">Chunks</div><div class="value" id="c-chunks">—</div><div class="sub" id="c-chunks-sub"></div></div>
  <div class="card"><div class="label">Queue depth</div><div class="value" id="c-queue">—</div><div class="sub" id="c-queue-sub"></div></div>
  <div class="card"><div class="label">Ingest rate</div><div class="value" id="c-rate">—</div><div class="sub" id="c-rate-sub"></div></div>
  <div class="card"><div class="label">Change → indexed lag</div><div class="value" id="c-lag">—</div><div class="sub" id="c-lag-sub"></div></div>
  <div class="card"><div class="label">Model</div><div class="value" id="c-model">—</div><div class="sub" id="c-model-sub"></div></div>
</div>
<section>
  <h2>Search</h2>
  <form id="search" class="toolbar">
    <input id="q" type="search" placeholder="query" aria-label="query">
    <select id="mode" aria-label="mode"><option value="hybrid">hybrid</option><option value="bm25">bm25</option><option value="vector">vector</option></select>
    <input id="k" type="number" min="1" max="100" value="5" aria-label="hits">
    <button type="submit">Search</button><span id="search-note" class="sub"></span>
  </form>
  <ol id="hits"></ol>
</section>
<section>
  <h2>Sources</h2>
  <table><thead><tr><th>source</th><th>state</th><th>error</th><th>failures</th><th>last sync</th><th>details</th></tr></thead><tbody id="sources-body"></tbody></table>
</section>
<section>
  <h2>Documents</h2>
  <div class="toolbar">
    <input id="filter" type="search" placeholder="filter by path" aria-label="filter by path">
    <select id="status-filter" aria-label="status"><option value="">all statuses</option><option value="FAILED">failed</option><option value="INGESTED">pending</option><option value="INDEXED">indexed</option></select>
    <span id="docs-count" class="sub"></span><span class="spacer"></span>
    <button id="prev" type="button">‹ prev</button><span id="page" class="sub"></span><button id="next" type="button">next ›</button>
  </div>
  <table><thead><tr><th>path</th><th>status</th><th>error</th><th>modified</th></tr></thead><tbody id="docs-body"></tbody></table>
</section>
</main>
`;

const sha256 = (s: string) => `'sha256-${createHash('sha256').update(s, 'utf8').digest('base64')}'`;

/** The page and the headers it is served with. */
export interface StatusPage {
  html: string;
  headers: Record<string, string>;
}

/** Builds the status page (pure: the same text every time). */
export function statusPage(): StatusPage {
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>livedex status</title><style>${CSS}</style></head><body>${BODY}<script>${CLIENT_JS}</script></body></html>`;
  const csp = [
    "default-src 'none'",
    `script-src ${sha256(CLIENT_JS)}`,
    `style-src ${sha256(CSS)}`,
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  return {
    html,
    headers: {
      'content-security-policy': csp,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'cache-control': 'no-cache',
    },
  };
}

/** Mounts `GET /`: the status page (open: it holds no data; its API calls carry the token). */
export function mountStatusPage(app: Hono): void {
  let page: StatusPage | null = null;
  app.get('/', (c) => {
    page ??= statusPage();
    return c.html(page.html, 200, page.headers);
  });
}
