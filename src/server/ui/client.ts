/**
 * @module server/ui/client — the browser script of the status page, as text. Plain ES2020 run
 * as is (no build step, no CDN: the server may be offline). Every value from the API reaches
 * the DOM through `textContent` or attributes set one by one, never through `innerHTML`:
 * file names and error messages are attacker-controlled.
 *
 * Kept as a string (no backticks, no `${` inside) so that it ships inside the compiled
 * `dist/` like any module; `page.ts` inlines it and allows it by hash in the CSP.
 */

/** The script of the page. */
export const CLIENT_JS = String.raw`
'use strict';
(function () {
  var REFRESH_MS = 5000;
  var PAGE_SIZE = 25;
  var TOKEN_KEY = 'livedex.token';
  var state = { docs: [], page: 0, filter: '', statusFilter: '', lastSettled: null, timer: null, needToken: false };

  function $(id) { return document.getElementById(id); }
  /** An element with text (never parsed as HTML) and a class. */
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function token() { try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; } }

  function AuthError() { this.name = 'AuthError'; }

  /** Calls the API with the token when there is one; a 401 asks for a (new) token. */
  function api(path, opts) {
    opts = opts || {};
    var headers = { accept: opts.accept || 'application/json' };
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    var t = token();
    if (t) headers.authorization = 'Bearer ' + t;
    return fetch(path, { method: opts.body !== undefined ? 'POST' : 'GET', headers: headers, body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined })
      .then(function (res) {
        if (res.status === 401) { askToken(t ? 'The token was refused.' : 'This server needs a token.'); throw new AuthError(); }
        if (opts.text) return res.ok ? res.text() : Promise.reject(new Error(path + ': HTTP ' + res.status));
        return res.json().then(function (body) {
          if (!res.ok) throw new Error((body && body.error && body.error.message) || (body && body.message) || (path + ': HTTP ' + res.status));
          return body;
        });
      });
  }

  function askToken(why) {
    state.needToken = true;
    $('auth').hidden = false;
    $('auth-why').textContent = why;
    $('token').focus();
  }

  function fmtAgo(unixSeconds) {
    if (unixSeconds === null || unixSeconds === undefined || !isFinite(unixSeconds)) return '—';
    var s = Math.max(0, Date.now() / 1000 - unixSeconds);
    if (s < 60) return Math.round(s) + ' s ago';
    if (s < 3600) return Math.round(s / 60) + ' min ago';
    if (s < 86400) return (s / 3600).toFixed(1) + ' h ago';
    return new Date(unixSeconds * 1000).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
  }
  function fmtSeconds(s) {
    if (s === null || s === undefined || !isFinite(s)) return '—';
    if (s < 1) return Math.round(s * 1000) + ' ms';
    if (s < 120) return s.toFixed(1) + ' s';
    return (s / 60).toFixed(1) + ' min';
  }
  function setCard(id, value, sub) {
    $(id).textContent = value;
    $(id + '-sub').textContent = sub || '';
  }
  function showError(where, err) {
    if (err instanceof AuthError) return;
    $('error').hidden = false;
    $('error').textContent = where + ': ' + (err && err.message ? err.message : String(err));
  }

  // ── status ──
  function renderStatus(s) {
    $('ready').textContent = s.ready ? 'ready' : 'first sync running';
    $('ready').className = 'badge ' + (s.ready ? 'ok' : 'warn');
    var d = s.documents || {};
    setCard('c-docs', d.total, d.indexed + ' indexed · ' + d.pending + ' pending · ' + d.failed + ' failed');
    $('c-docs-sub').className = d.failed > 0 ? 'sub bad' : 'sub';
    setCard('c-chunks', s.chunks, s.lastSeq !== undefined ? 'commit #' + s.lastSeq : '');
    var q = s.queue || {};
    setCard('c-queue', q.depth, (q.inFlight || 0) + ' in flight');
    var m = s.model || {};
    setCard('c-model', m.active || '—', m.building ? 'building ' + m.building.model + ': ' + m.building.done + '/' + m.building.total : '');
    var body = $('sources-body');
    clear(body);
    (s.sources || []).forEach(function (src) {
      var tr = document.createElement('tr');
      tr.appendChild(el('td', src.id, 'path'));
      tr.appendChild(el('td', src.state, 'state ' + (src.state === 'error' ? 'bad' : src.state === 'syncing' ? 'warn' : 'ok')));
      tr.appendChild(el('td', src.error || '', 'err'));
      tr.appendChild(el('td', src.failures || 0, 'num'));
      tr.appendChild(el('td', fmtAgo(src.last_sync_at)));
      // A source may report its cursor or position: shown as text when present.
      var extra = {};
      Object.keys(src).forEach(function (k) { if (['id', 'state', 'error', 'failures', 'last_sync_at'].indexOf(k) < 0) extra[k] = src[k]; });
      tr.appendChild(el('td', Object.keys(extra).length ? JSON.stringify(extra) : '', 'mono'));
      body.appendChild(tr);
    });
    if (!(s.sources || []).length) {
      var tr = document.createElement('tr');
      var td = el('td', 'no sources', 'muted'); td.colSpan = 6; tr.appendChild(td); body.appendChild(tr);
    }
  }

  // ── metrics ──
  /** Samples of Prometheus text: [{name, labels, value}]. */
  function parseMetrics(text) {
    var out = [];
    text.split('\n').forEach(function (line) {
      if (!line || line.charAt(0) === '#') return;
      var m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
      if (!m) return;
      var labels = {};
      var re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g, l;
      while ((l = re.exec(m[3] || ''))) labels[l[1]] = l[2];
      out.push({ name: m[1], labels: labels, value: Number(m[4]) });
    });
    return out;
  }
  function metric(samples, name, pred) {
    var found = null;
    samples.forEach(function (s) { if (s.name === name && (!pred || pred(s.labels))) found = (found || 0) + s.value; });
    return found;
  }
  function renderMetrics(text) {
    var samples = parseMetrics(text);
    var now = Date.now();
    var settled = metric(samples, 'livedex_documents_settled_total', function (l) { return l.state !== 'pending'; }) || 0;
    var rate = null;
    if (state.lastSettled && now > state.lastSettled.at) rate = (settled - state.lastSettled.n) / ((now - state.lastSettled.at) / 1000);
    state.lastSettled = { n: settled, at: now };
    setCard('c-rate', rate === null ? '—' : (rate * 60).toFixed(rate * 60 < 10 ? 1 : 0) + '/min', settled + ' settled since start');
    var lag = metric(samples, 'livedex_last_ingest_lag_seconds');
    var count = metric(samples, 'livedex_ingest_latency_seconds_count');
    var sum = metric(samples, 'livedex_ingest_latency_seconds_sum');
    var last = metric(samples, 'livedex_last_indexed_timestamp_seconds');
    setCard('c-lag', fmtSeconds(lag), (count ? 'mean ' + fmtSeconds(sum / count) + ' over ' + count : 'no change settled yet') + (last ? ' · last ' + fmtAgo(last) : ''));
  }

  // ── documents ──
  function renderDocs() {
    var f = state.filter.toLowerCase();
    var rows = state.docs.filter(function (d) {
      var p = String(d.path === undefined ? '' : d.path).toLowerCase();
      return (!f || p.indexOf(f) >= 0) && (!state.statusFilter || d._indexing_status === state.statusFilter);
    });
    rows.sort(function (a, b) {
      var fa = a._indexing_status === 'FAILED' ? 0 : 1, fb = b._indexing_status === 'FAILED' ? 0 : 1;
      return fa - fb || String(a.path).localeCompare(String(b.path));
    });
    var pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
    if (state.page >= pages) state.page = pages - 1;
    var body = $('docs-body');
    clear(body);
    rows.slice(state.page * PAGE_SIZE, (state.page + 1) * PAGE_SIZE).forEach(function (d) {
      var tr = document.createElement('tr');
      tr.className = 'doc';
      var st = d._indexing_status || '?';
      tr.appendChild(el('td', d.path === undefined ? '(no path)' : d.path, 'path'));
      tr.appendChild(el('td', st, 'state ' + (st === 'FAILED' ? 'bad' : st === 'INDEXED' ? 'ok' : 'warn')));
      tr.appendChild(el('td', d._indexing_error || '', 'err'));
      tr.appendChild(el('td', typeof d.modified_at === 'number' ? fmtAgo(d.modified_at) : ''));
      body.appendChild(tr);
    });
    if (!rows.length) {
      var tr = document.createElement('tr');
      var td = el('td', state.docs.length ? 'no document matches' : 'no documents yet', 'muted'); td.colSpan = 4; tr.appendChild(td); body.appendChild(tr);
    }
    $('docs-count').textContent = rows.length + ' of ' + state.docs.length + ' documents';
    $('page').textContent = 'page ' + (state.page + 1) + ' of ' + pages;
    $('prev').disabled = state.page === 0;
    $('next').disabled = state.page >= pages - 1;
  }

  // ── search ──
  function search(ev) {
    if (ev) ev.preventDefault();
    var q = $('q').value.trim();
    if (!q) return;
    var out = $('hits');
    $('search-note').textContent = 'searching…';
    api('v1/retrieve', { body: { query: q, k: Number($('k').value) || 5, mode: $('mode').value } })
      .then(function (hits) {
        clear(out);
        $('search-note').textContent = hits.length + ' hit' + (hits.length === 1 ? '' : 's') + ' for ' + JSON.stringify(q);
        hits.forEach(function (h, i) {
          var li = el('li', null, 'hit');
          var head = el('div', null, 'hit-head');
          head.appendChild(el('span', '#' + (i + 1), 'rank'));
          head.appendChild(el('span', h.metadata && h.metadata.path !== undefined ? h.metadata.path : '(no path)', 'path'));
          head.appendChild(el('span', 'dist ' + Number(h.dist).toFixed(4), 'score dist'));
          ['bm25', 'vector', 'fused'].forEach(function (leg) {
            if (h.scores && typeof h.scores[leg] === 'number') head.appendChild(el('span', leg + ' ' + h.scores[leg].toFixed(4), 'score ' + leg));
          });
          li.appendChild(head);
          var text = String(h.text || '');
          li.appendChild(el('p', text.length > 400 ? text.slice(0, 400) + '…' : text, 'excerpt'));
          out.appendChild(li);
        });
      })
      .catch(function (err) { if (!(err instanceof AuthError)) $('search-note').textContent = 'search failed: ' + err.message; });
  }

  // ── refresh ──
  function refresh() {
    $('error').hidden = true;
    return Promise.all([
      api('v1/status').then(renderStatus).catch(function (e) { showError('status', e); }),
      api('v2/list_documents', { body: { return_status: true } }).then(function (docs) { state.docs = Array.isArray(docs) ? docs : []; renderDocs(); }).catch(function (e) { showError('documents', e); }),
      api('metrics', { text: true, accept: 'text/plain' }).then(renderMetrics).catch(function (e) {
        if (!(e instanceof AuthError)) { setCard('c-rate', '—', 'metrics unavailable'); setCard('c-lag', '—', 'metrics unavailable'); }
      }),
    ]).then(function () {
      if (!state.needToken) $('auth').hidden = true;
      $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
    });
  }
  function loop() {
    refresh().then(function () { state.timer = setTimeout(loop, REFRESH_MS); });
  }

  document.addEventListener('DOMContentLoaded', function () {
    $('auth-form').addEventListener('submit', function (ev) {
      ev.preventDefault();
      try { sessionStorage.setItem(TOKEN_KEY, $('token').value.trim()); } catch (e) { /* private mode: kept for this page only */ }
      $('token').value = '';
      state.needToken = false;
      $('auth').hidden = true;
      clearTimeout(state.timer);
      loop();
    });
    $('search').addEventListener('submit', search);
    $('filter').addEventListener('input', function () { state.filter = $('filter').value; state.page = 0; renderDocs(); });
    $('status-filter').addEventListener('change', function () { state.statusFilter = $('status-filter').value; state.page = 0; renderDocs(); });
    $('prev').addEventListener('click', function () { state.page = Math.max(0, state.page - 1); renderDocs(); });
    $('next').addEventListener('click', function () { state.page++; renderDocs(); });
    loop();
  });
})();
`;
