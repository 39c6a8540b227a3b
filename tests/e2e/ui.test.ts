/**
 * The status page at `/`, driven in headless Chromium (Debian's `chromium` + `playwright-core`)
 * against a real server with a token: it asks for the token, lists the documents of the folder
 * (paginated, searchable), shows the failed file with its reason, runs a search with per-leg
 * scores, and shows hostile file names as text. Saves a screenshot and prints its path.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startServer, tempDir, type TestServer } from '../helpers/livedex.js';

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'ui-test-token-0123456789abcdef';
const HOSTILE = '<img src=x onerror=window.__pwned=1>.md';
const WAIT = 90_000;
/** Code run in the page, as text (this project type-checks without the DOM library). */
const js = String.raw;

/** Installs Debian's chromium when it is missing and this process may (root, apt-get); else the reason it cannot. */
function ensureChromium(): string | null {
  if (existsSync(CHROMIUM)) return null;
  if (process.getuid?.() !== 0) return `${CHROMIUM} is missing and this process is not root: install it with \`apt-get install -y --no-install-recommends chromium\``;
  const apt = (args: string[]) => spawnSync('apt-get', args, { stdio: 'inherit', timeout: 900_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  const install = ['install', '-y', '--no-install-recommends', 'chromium'];
  if (apt(install).status !== 0) {
    apt(['update']);
    apt(install);
  }
  return existsSync(CHROMIUM) ? null : `${CHROMIUM} is missing and \`apt-get install chromium\` did not provide it`;
}

const missing = ensureChromium();

describe('status page in headless Chromium', { skip: missing ?? false }, () => {
  let folder: { path: string; cleanup(): Promise<void> };
  let data: { path: string; cleanup(): Promise<void> };
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];
  const dialogs: string[] = [];

  before(async () => {
    folder = await tempDir();
    data = await tempDir();
    await writeFile(join(folder.path, 'harbor.md'), '# Harbor\n\nThe harbor lantern burns all night so the fishing boats find the quay.\n');
    await writeFile(join(folder.path, 'meadow.txt'), 'The meadow orchard grows quinces and medlars behind the old mill.\n');
    await writeFile(join(folder.path, 'broken.pdf'), Buffer.from('%PDF-1.7\n\u0000\u0001garbage bytes, not a pdf at all\u00ff\u00fe', 'latin1'));
    await writeFile(join(folder.path, HOSTILE), '# Hostile\n\nA lantern note with <script>window.__pwned=2</script> markup in its text.\n');
    // Enough documents for a second page (25 a page).
    await writeFile(Buffer.concat([Buffer.from(join(folder.path, 'bad-')), Buffer.from([0xff]), Buffer.from('.md')]), 'a name that is not UTF-8');
    await mkdir(join(folder.path, 'many'));
    for (let i = 0; i < 26; i++) await writeFile(join(folder.path, 'many', `note-${String(i).padStart(2, '0')}.txt`), `Filler note number ${i} about tides and ropes.\n`);
    server = await startServer(folder.path, { dataDir: data.path, config: { auth: { tokens: [TOKEN] } } });
    await server.ready;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], timeout: WAIT });
    // The checks below run code in the page (string evaluation), which the page's CSP forbids;
    // bypassing it also proves that escaping alone keeps hostile names inert. The CSP itself is
    // checked by the first test, with a page that enforces it.
    page = await browser.newPage({ viewport: { width: 1280, height: 900 }, bypassCSP: true });
    page.setDefaultTimeout(WAIT);
    page.on('pageerror', (err) => pageErrors.push(String(err)));
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
  });

  after(async () => {
    await browser?.close();
    await server?.close();
    await folder?.cleanup();
    await data?.cleanup();
  });

  it('serves the page without a token, with a strict CSP, while the API stays behind the token', async () => {
    const res = await fetch(`${server.url}/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'sha256-/);
    assert.doesNotMatch(csp, /unsafe-inline/);
    const html = await res.text();
    assert.doesNotMatch(html, /<script[^>]+src=|<link[^>]+href=/, 'no external script or style (the server may be offline)');
    assert.equal((await fetch(`${server.url}/v1/status`)).status, 401);

    // Under its own CSP the inline script runs (it asks for the token) and nothing is refused.
    const strict = await browser.newPage();
    const violations: string[] = [];
    strict.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) violations.push(m.text());
    });
    strict.on('pageerror', (err) => violations.push(String(err)));
    await strict.goto(`${server.url}/`);
    await strict.locator('#auth').waitFor({ state: 'visible', timeout: WAIT });
    await strict.close();
    assert.deepEqual(violations, []);
  });

  it('asks for the token, refuses a wrong one, then loads with the right one (kept in sessionStorage)', async () => {
    const nav = await page.goto(`${server.url}/`);
    assert.equal(nav?.status(), 200);
    await page.locator('#auth').waitFor({ state: 'visible' });
    assert.match(await page.locator('#auth-why').textContent() ?? '', /needs a token/);
    await page.fill('#token', 'not-the-token');
    await page.click('#auth-form button');
    await page.waitForFunction(js`/refused/.test(document.getElementById('auth-why').textContent ?? '')`);
    await page.fill('#token', TOKEN);
    await page.click('#auth-form button');
    await page.waitForFunction(js`document.querySelectorAll('#docs-body tr.doc').length > 0`);
    assert.equal(await page.locator('#auth').isHidden(), true);
    assert.equal(await page.evaluate(js`sessionStorage.getItem('livedex.token')`), TOKEN);
  });

  it('shows counts, the queue, ingest figures and the source', async () => {
    await page.waitForFunction(js`document.getElementById('c-docs').textContent === '30'`);
    assert.match(await page.locator('#c-docs-sub').textContent() ?? '', /29 indexed · 0 pending · 1 failed/);
    assert.equal(await page.locator('#c-queue').textContent(), '0');
    assert.ok(Number(await page.locator('#c-chunks').textContent()) >= 29);
    // The lag comes from /metrics: a duration once a change has settled.
    await page.waitForFunction(js`/\d/.test(document.getElementById('c-lag').textContent ?? '')`);
    assert.match(await page.locator('#c-lag-sub').textContent() ?? '', /mean .* over 30/);
    // The rate needs two scrapes; it is a figure per minute (whatever the speed of this machine).
    await page.waitForFunction(js`/\/min$/.test(document.getElementById('c-rate').textContent ?? '')`);
    const source = page.locator('#sources-body tr');
    assert.equal(await source.count(), 1);
    assert.equal(await source.locator('td').nth(1).textContent(), 'idle');
    assert.match(await source.locator('td').nth(5).textContent() ?? '', /bad-\\\\xFF\.md.*file name is not valid UTF-8/);
    assert.equal(await page.locator('#ready').textContent(), 'ready');
  });

  it('lists the documents on pages and filters them by path', async () => {
    assert.equal(await page.locator('#docs-body tr.doc').count(), 25);
    assert.equal(await page.locator('#page').textContent(), 'page 1 of 2');
    await page.click('#next');
    assert.equal(await page.locator('#docs-body tr.doc').count(), 5);
    assert.equal(await page.locator('#page').textContent(), 'page 2 of 2');
    await page.fill('#filter', 'meadow');
    await page.waitForFunction(js`document.querySelectorAll('#docs-body tr.doc').length === 1`);
    assert.match(await page.locator('#docs-body tr.doc td.path').textContent() ?? '', /meadow\.txt$/);
    assert.equal(await page.locator('#docs-body tr.doc td.state').textContent(), 'INDEXED');
    assert.equal(await page.locator('#docs-count').textContent(), '1 of 30 documents');
  });

  it('finds the failed file with its reason', async () => {
    await page.fill('#filter', '');
    await page.selectOption('#status-filter', 'FAILED');
    await page.waitForFunction(js`document.querySelectorAll('#docs-body tr.doc').length === 1`);
    const row = page.locator('#docs-body tr.doc');
    assert.match(await row.locator('td.path').textContent() ?? '', /broken\.pdf$/);
    assert.equal(await row.locator('td.state').textContent(), 'FAILED');
    const reason = (await row.locator('td.err').textContent()) ?? '';
    assert.ok(reason.length > 5, `a reason is shown: ${JSON.stringify(reason)}`);
    // The reason shown is the API's, verbatim.
    const listed = (await (await fetch(`${server.url}/v2/list_documents`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: '{"return_status":true}' })).json()) as Array<Record<string, unknown>>;
    assert.equal(reason, listed.find((d) => String(d.path).endsWith('broken.pdf'))?._indexing_error);
    console.log(`# failed file reason shown: ${reason}`);
    await page.selectOption('#status-filter', '');
  });

  it('shows a hostile file name and text as text, running no script', async () => {
    await page.fill('#filter', 'onerror');
    await page.waitForFunction(js`document.querySelectorAll('#docs-body tr.doc').length === 1`);
    assert.equal(await page.locator('#docs-body tr.doc td.path').textContent(), join(folder.path, HOSTILE));
    assert.equal(await page.locator('#docs-body img').count(), 0);
    await page.fill('#q', 'lantern note markup');
    await page.click('#search button');
    await page.waitForFunction(js`document.querySelectorAll('#hits li.hit').length > 0`);
    const excerpts = await page.locator('#hits .excerpt').allTextContents();
    assert.ok(excerpts.some((t) => t.includes('<script>window.__pwned=2</script>')), excerpts.join(' | '));
    assert.equal(await page.locator('#hits img, #hits script').count(), 0);
    assert.equal(await page.evaluate(js`typeof window.__pwned`), 'undefined');
    assert.deepEqual(dialogs, []);
    await page.fill('#filter', '');
  });

  it('runs a search and shows hits with path, excerpt, dist and per-leg scores', async () => {
    await page.fill('#q', 'harbor lantern quay');
    await page.selectOption('#mode', 'hybrid');
    await page.click('#search button');
    await page.waitForFunction(js`/for "harbor lantern quay"/.test(document.getElementById('search-note').textContent ?? '')`);
    const hits = page.locator('#hits li.hit');
    assert.ok((await hits.count()) >= 1);
    const top = hits.first();
    assert.match(await top.locator('.path').textContent() ?? '', /harbor\.md$/);
    assert.match(await top.locator('.excerpt').textContent() ?? '', /harbor lantern burns all night/);
    assert.match(await top.locator('.score.dist').textContent() ?? '', /^dist \d+\.\d{4}$/);
    for (const leg of ['bm25', 'vector', 'fused']) assert.match(await top.locator(`.score.${leg}`).textContent() ?? '', new RegExp(`^${leg} -?\\d+\\.\\d{4}$`));

    await page.selectOption('#mode', 'bm25');
    await page.click('#search button');
    await page.waitForFunction(js`document.querySelector('#hits li.hit .score.bm25') && !document.querySelector('#hits li.hit .score.vector')`);
  });

  it('saves a screenshot, with no page error on the way', async () => {
    await page.selectOption('#mode', 'hybrid');
    await page.fill('#q', 'harbor lantern quay');
    await page.click('#search button');
    await page.waitForFunction(js`document.querySelector('#hits li.hit .score.fused')`);
    await page.selectOption('#status-filter', '');
    await page.fill('#filter', '');
    // Kept after the test (the server's temp folders are removed) so that it can be looked at.
    const dir = await mkdtemp(join(tmpdir(), 'livedex-ui-'));
    const file = join(dir, 'status-page.png');
    await page.screenshot({ path: file, fullPage: true });
    assert.ok(existsSync(file));
    console.log(`# screenshot: ${file}`);
    assert.deepEqual(pageErrors, []);
  });
});

if (missing) console.log(`# status page test skipped: ${missing}`);
