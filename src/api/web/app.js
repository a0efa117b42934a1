// firelane officer page — plain ES2020, no framework, no build step.
// All data is put into the DOM with textContent / properties, never innerHTML.
'use strict';

(() => {
  const TOKEN_KEY = 'firelane.token';
  const PAGE_SIZE = 25;
  const MAX_IMAGE_FETCHES = 4;
  const REVIEW_STATUSES = ['confirmed', 'dismissed', 'cited'];
  const KIND_ORDER = ['first', 'confirm', 'clear'];
  const KIND_LABEL = {
    first: 'First obstructed frame',
    confirm: 'Confirmed (grace period ran out)',
    clear: 'Cleared',
  };
  const VARIANT_ORDER = ['annotated', 'original'];

  // ---------------------------------------------------------------- state

  const state = {
    token: null,
    me: null,
    lastListHash: '#/',
    // Per-view resources: bumped/replaced on every navigation.
    view: null,
  };

  const $ = (sel) => document.querySelector(sel);

  // ---------------------------------------------------------------- DOM helpers

  /** el('div', {class: 'x', dataset: {id: 1}}, 'text', childNode, ...) — text is always escaped. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === 'class') node.className = v;
        else if (k === 'dataset') Object.assign(node.dataset, v);
        else if (k === 'text') node.textContent = v;
        else if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
        else if (v === true) node.setAttribute(k, '');
        else node.setAttribute(k, String(v));
      }
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  // ---------------------------------------------------------------- formatting

  function fmtTime(s) {
    if (!s) return '—';
    const d = new Date(s);
    if (Number.isNaN(d.getTime())) return String(s);
    return d.toLocaleString(undefined, {
      year: 'numeric', month: 'short', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit',
    });
  }

  function timeEl(s) {
    return el('time', s ? { datetime: s, title: s } : null, fmtTime(s));
  }

  function fmtDuration(sec) {
    if (typeof sec !== 'number' || !Number.isFinite(sec)) return '—';
    const total = Math.max(0, Math.round(sec));
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = total % 60;
    if (h > 0) return `${h}h ${String(m).padStart(2, '0')}m ${String(s).padStart(2, '0')}s`;
    if (m > 0) return `${m}m ${String(s).padStart(2, '0')}s`;
    return `${s}s`;
  }

  function fmtScore(x) {
    return typeof x === 'number' && Number.isFinite(x) ? x.toFixed(2) : '—';
  }

  function fmtBytes(n) {
    if (typeof n !== 'number') return '';
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  }

  function badge(word, extraClass) {
    return el('span', { class: `badge badge-${word}${extraClass ? ' ' + extraClass : ''}` }, word);
  }

  /** "2026-11-29T05:00:00.000Z" -> "2026-11-29T06:00:00" (local, for datetime-local inputs). */
  function isoToLocalInput(iso) {
    const d = new Date(iso);
    if (!iso || Number.isNaN(d.getTime())) return '';
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  }

  /** datetime-local value (local wall time) -> RFC 3339 UTC with milliseconds, or null. */
  function localInputToIso(v) {
    if (!v) return null;
    // "YYYY-MM-DDTHH:MM[:SS]" without an offset is parsed as local time.
    const d = new Date(v);
    if (Number.isNaN(d.getTime())) throw new Error(`Invalid date/time: ${v}`);
    return d.toISOString();
  }

  // ---------------------------------------------------------------- errors

  class ApiError extends Error {
    constructor(status, code, message, body) {
      super(message);
      this.status = status;
      this.code = code;
      // The parsed JSON error body (or null): the zone editor reads `problems` from a 422.
      this.body = body === undefined ? null : body;
    }
  }

  function showError(err) {
    if (!err) return;
    if (err.name === 'AbortError') return;
    let text;
    if (err instanceof ApiError) {
      text = `${err.message || 'Request failed'} (${err.code || 'error'}, HTTP ${err.status})`;
    } else if (err instanceof TypeError) {
      text = `Network error: ${err.message}`;
    } else {
      text = err.message || String(err);
    }
    $('#error-text').textContent = text;
    show($('#error'), true);
  }

  function clearError() {
    $('#error-text').textContent = '';
    show($('#error'), false);
  }

  // ---------------------------------------------------------------- API

  async function readError(res) {
    let code = `http_${res.status}`;
    let message = res.statusText || `HTTP ${res.status}`;
    let parsed = null;
    try {
      const body = await res.json();
      if (body && typeof body === 'object') {
        parsed = body;
        if (typeof body.error === 'string') code = body.error;
        if (typeof body.message === 'string' && body.message) message = body.message;
      }
    } catch (_) { /* not JSON */ }
    return new ApiError(res.status, code, message, parsed);
  }

  /**
   * fetch() with the Bearer header. Throws ApiError for non-2xx responses.
   * A 401 (token revoked/expired) sends the user back to the login form.
   */
  async function apiFetch(path, opts = {}, token = state.token) {
    const headers = new Headers(opts.headers || {});
    if (token) headers.set('Authorization', `Bearer ${token}`);
    const res = await fetch(path, { ...opts, headers, cache: 'no-store', credentials: 'omit' });
    if (!res.ok) {
      const err = await readError(res);
      if (res.status === 401 && token === state.token && state.token) {
        sessionExpired(err.message);
      }
      throw err;
    }
    return res;
  }

  async function apiJson(path, opts) {
    const res = await apiFetch(path, opts);
    return res.json();
  }

  // ---------------------------------------------------------------- view resources (blob URLs, aborts)

  /** Simple semaphore so at most N image fetches are in flight. */
  function makeLimiter(n) {
    let active = 0;
    const queue = [];
    const next = () => {
      if (active >= n || queue.length === 0) return;
      active++;
      const { fn, resolve, reject } = queue.shift();
      Promise.resolve().then(fn).then(resolve, reject).finally(() => { active--; next(); });
    };
    return (fn) => new Promise((resolve, reject) => { queue.push({ fn, resolve, reject }); next(); });
  }
  const imageLimit = makeLimiter(MAX_IMAGE_FETCHES);

  class View {
    constructor() {
      this.abort = new AbortController();
      this.blobUrls = new Set();
      this.images = new Map(); // api url -> Promise<{src, sha256}>
      this.observer = null;
      this.cleanups = []; // registered by the zone editor (timers, listeners)
    }
    get alive() { return state.view === this && !this.abort.signal.aborted; }
    dispose() {
      this.abort.abort();
      if (this.observer) this.observer.disconnect();
      for (const u of this.blobUrls) URL.revokeObjectURL(u);
      this.blobUrls.clear();
      this.images.clear();
      this.evidenceNode = null;
      for (const fn of this.cleanups.splice(0)) {
        try { fn(); } catch (err) { console.error('view cleanup failed', err); }
      }
    }
    /** Fetch an image with the Bearer header, return a blob: URL (cached per view). */
    image(url, { verify = false } = {}) {
      if (!this.images.has(url)) {
        const p = imageLimit(async () => {
          if (!this.alive) throw new DOMException('view closed', 'AbortError');
          const res = await apiFetch(url, { signal: this.abort.signal });
          const buf = await res.arrayBuffer();
          let sha256 = null;
          if (verify && globalThis.crypto && crypto.subtle) {
            const digest = await crypto.subtle.digest('SHA-256', buf);
            sha256 = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
          }
          const type = res.headers.get('Content-Type') || 'image/jpeg';
          const src = URL.createObjectURL(new Blob([buf], { type }));
          if (!this.alive) { URL.revokeObjectURL(src); throw new DOMException('view closed', 'AbortError'); }
          this.blobUrls.add(src);
          return { src, sha256 };
        });
        p.catch(() => this.images.delete(url)); // allow retry on a later render
        this.images.set(url, p);
      }
      return this.images.get(url);
    }
  }

  function newView() {
    if (state.view) state.view.dispose();
    state.view = new View();
    return state.view;
  }

  /** Load url into <img>; on failure mark it broken (and surface non-abort errors). */
  async function loadInto(view, img, url, opts) {
    img.classList.add('loading');
    try {
      const r = await view.image(url, opts);
      if (!view.alive) return null;
      img.src = r.src;
      img.classList.remove('loading');
      return r;
    } catch (err) {
      if (!view.alive || err.name === 'AbortError') return null;
      img.classList.remove('loading');
      img.classList.add('broken');
      img.alt = `${img.alt || 'image'} (failed to load)`;
      if (!(err instanceof ApiError && err.status === 401)) showError(err);
      return null;
    }
  }

  // ---------------------------------------------------------------- session

  function setUserHeader() {
    const me = state.me;
    $('#user').textContent = me ? `${me.name} (${me.role})` : '';
    show($('#session'), !!me);
    show($('#nav-zones'), canEditZones());
  }

  function canReview() {
    return !!state.me && (state.me.role === 'officer' || state.me.role === 'admin');
  }

  function canEditZones() {
    return !!state.me && (state.me.role === 'operator' || state.me.role === 'admin');
  }

  function showLogin(message) {
    if (state.view) { state.view.dispose(); state.view = null; }
    state.token = null;
    state.me = null;
    setUserHeader();
    show($('#list-view'), false);
    show($('#detail-view'), false);
    show($('#zones-view'), false);
    show($('#login-view'), true);
    $('#detail').replaceChildren();
    $('#zones').replaceChildren();
    $('#violations').replaceChildren();
    $('#login-error').textContent = message || '';
    const input = $('#token');
    input.value = '';
    input.focus();
  }

  function sessionExpired(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    clearError();
    showLogin(`Your session is no longer valid — please log in again. (${message || 'unauthorized'})`);
  }

  async function login(token) {
    const res = await apiFetch('/api/me', {}, token);
    const me = await res.json();
    state.token = token;
    state.me = me;
    sessionStorage.setItem(TOKEN_KEY, token);
    setUserHeader();
    show($('#login-view'), false);
    $('#login-error').textContent = '';
    route();
  }

  async function onLoginSubmit(ev) {
    ev.preventDefault();
    const btn = $('#login');
    const token = $('#token').value.trim();
    $('#login-error').textContent = '';
    if (!token) {
      $('#login-error').textContent = 'Enter your access token.';
      return;
    }
    btn.disabled = true;
    try {
      await login(token);
    } catch (err) {
      let msg;
      if (err instanceof ApiError && err.status === 401) {
        msg = `Login failed: the token was not accepted (${err.message}).`;
      } else if (err instanceof ApiError) {
        msg = `Login failed: ${err.message} (HTTP ${err.status}).`;
      } else {
        msg = `Login failed: cannot reach the server (${err.message}).`;
      }
      $('#login-error').textContent = msg;
      $('#token').select();
    } finally {
      btn.disabled = false;
    }
  }

  function logout() {
    sessionStorage.removeItem(TOKEN_KEY);
    clearError();
    showLogin('');
  }

  // ---------------------------------------------------------------- routing

  function decodePart(s) {
    try { return decodeURIComponent(s); } catch (_) { return s; }
  }

  function parseHash() {
    const h = location.hash.replace(/^#/, '') || '/';
    const m = /^\/v\/([^/?#]+)\/?$/.exec(h);
    if (m) return { name: 'detail', id: decodePart(m[1]) };
    const z = /^\/zones(?:\/([^/?#]+))?\/?$/.exec(h);
    if (z) return { name: 'zones', camera: z[1] ? decodePart(z[1]) : null };
    const q = h.indexOf('?');
    return { name: 'list', params: new URLSearchParams(q >= 0 ? h.slice(q + 1) : '') };
  }

  function route() {
    if (!state.token || !state.me) return;
    clearError();
    const r = parseHash();
    const zones = r.name === 'zones';
    show($('#zones-view'), zones);
    $('#nav-zones').classList.toggle('active', zones);
    document.title = zones ? 'firelane — zones' : 'firelane — violations';
    if (zones) {
      show($('#list-view'), false);
      show($('#detail-view'), false);
      renderZones(r.camera);
    } else if (r.name === 'detail') {
      $('#zones').replaceChildren();
      show($('#list-view'), false);
      show($('#detail-view'), true);
      $('#back').setAttribute('href', state.lastListHash);
      renderDetail(r.id);
    } else {
      state.lastListHash = location.hash || '#/';
      $('#zones').replaceChildren();
      show($('#detail-view'), false);
      show($('#list-view'), true);
      renderList(r.params);
    }
  }

  // ---------------------------------------------------------------- list view

  const FILTER_KEYS = ['camera', 'zone', 'status', 'review', 'from', 'to'];

  function filtersToForm(params) {
    const active = FILTER_KEYS.filter((k) => params.get(k));
    $('#filter-summary').textContent = active.length ? `(${active.length} active)` : '';
    // Open by default on wide screens, or whenever a filter is active; collapsed on phones.
    if (active.length || window.matchMedia('(min-width: 701px)').matches) $('#filter-box').open = true;
    $('#f-camera').value = params.get('camera') || '';
    $('#f-zone').value = params.get('zone') || '';
    $('#f-status').value = params.get('status') || '';
    $('#f-review').value = params.get('review') || '';
    $('#f-from').value = isoToLocalInput(params.get('from'));
    $('#f-to').value = isoToLocalInput(params.get('to'));
  }

  function formToParams() {
    const p = new URLSearchParams();
    const camera = $('#f-camera').value.trim();
    const zone = $('#f-zone').value.trim();
    if (camera) p.set('camera', camera);
    if (zone) p.set('zone', zone);
    if ($('#f-status').value) p.set('status', $('#f-status').value);
    if ($('#f-review').value) p.set('review', $('#f-review').value);
    const from = localInputToIso($('#f-from').value);
    const to = localInputToIso($('#f-to').value);
    if (from) p.set('from', from);
    if (to) p.set('to', to);
    return p;
  }

  function listHash(params) {
    const s = params.toString();
    return s ? `#/?${s}` : '#/';
  }

  function goList(params) {
    const h = listHash(params);
    if (location.hash === h) route(); // same filters: just refresh
    else location.hash = h;
  }

  function onApply(ev) {
    ev.preventDefault();
    let p;
    try {
      p = formToParams();
    } catch (err) {
      showError(err);
      return;
    }
    goList(p); // offset resets to 0 on a new filter
  }

  function onReset() {
    filtersToForm(new URLSearchParams());
    goList(new URLSearchParams());
  }

  function page(delta) {
    const p = parseHash();
    if (p.name !== 'list') return;
    const params = p.params;
    const offset = Math.max(0, (parseInt(params.get('offset'), 10) || 0) + delta * PAGE_SIZE);
    if (offset > 0) params.set('offset', String(offset));
    else params.delete('offset');
    goList(params);
  }

  function setPager(offset, count, total) {
    const info = total === 0 ? '0 of 0' : count === 0
      ? `none at ${offset + 1} of ${total}`
      : `${offset + 1}–${offset + count} of ${total}`;
    $('#page-info').textContent = info;
    const noPrev = offset <= 0;
    const noNext = offset + PAGE_SIZE >= total;
    for (const id of ['#prev', '#prev-bottom']) $(id).disabled = noPrev;
    for (const id of ['#next', '#next-bottom']) $(id).disabled = noNext;
  }

  function violationRow(view, v, observer) {
    const href = `#/v/${encodeURIComponent(v.id)}`;
    const img = el('img', {
      class: 'thumb', alt: `Thumbnail for ${v.id}`, width: 160, height: 90, decoding: 'async',
    });
    img.dataset.src = v.thumbnail_url || `/api/violations/${encodeURIComponent(v.id)}/thumb.jpg`;
    const row = el('li', { class: `violation status-${v.status}`, dataset: { id: v.id } },
      el('a', { class: 'row-link', href },
        el('div', { class: 'thumb-box' }, img),
        el('div', { class: 'row-main' },
          el('div', { class: 'row-title' },
            el('span', { class: 'zone' }, v.zone), ' · ',
            el('span', { class: 'camera' }, v.camera)),
          el('div', { class: 'row-time' }, timeEl(v.start)),
          el('div', { class: 'row-meta' },
            el('span', { class: 'duration', title: 'duration' }, fmtDuration(v.duration_s)),
            badge(v.status, 'status'),
            badge(v.review_status, 'review')))));
    if (observer) observer.observe(img);
    else loadInto(view, img, img.dataset.src);
    return row;
  }

  async function renderList(params) {
    const view = newView();
    filtersToForm(params);
    const offset = Math.max(0, parseInt(params.get('offset'), 10) || 0);
    const q = new URLSearchParams();
    for (const k of FILTER_KEYS) if (params.get(k)) q.set(k, params.get(k));
    q.set('limit', String(PAGE_SIZE));
    q.set('offset', String(offset));

    const list = $('#violations');
    const status = $('#list-status');
    status.textContent = 'Loading…';
    list.setAttribute('aria-busy', 'true');

    let data;
    try {
      data = await apiJson(`/api/violations?${q}`, { signal: view.abort.signal });
    } catch (err) {
      if (!view.alive) return;
      list.removeAttribute('aria-busy');
      status.textContent = 'Could not load violations.';
      showError(err);
      return;
    }
    if (!view.alive) return;
    list.removeAttribute('aria-busy');

    const items = Array.isArray(data.items) ? data.items : [];
    const total = typeof data.total === 'number' ? data.total : items.length;
    setPager(offset, items.length, total);
    status.textContent = items.length ? '' : 'No violations match these filters.';

    // Lazy-ish thumbnails: fetch when near the viewport, at most MAX_IMAGE_FETCHES at a time.
    let observer = null;
    if ('IntersectionObserver' in window) {
      observer = new IntersectionObserver((entries) => {
        for (const e of entries) {
          if (!e.isIntersecting) continue;
          observer.unobserve(e.target);
          loadInto(view, e.target, e.target.dataset.src);
        }
      }, { rootMargin: '400px 0px' });
      view.observer = observer;
    }
    list.replaceChildren(...items.map((v) => violationRow(view, v, observer)));
  }

  // ---------------------------------------------------------------- detail view

  function field(label, ...value) {
    return [el('dt', null, label), el('dd', null, ...value)];
  }

  function evidenceSection(view, v) {
    const evidence = Array.isArray(v.evidence) ? v.evidence : [];
    const byKind = new Map();
    for (const e of evidence) {
      if (!byKind.has(e.kind)) byKind.set(e.kind, []);
      byKind.get(e.kind).push(e);
    }
    const kinds = [...KIND_ORDER.filter((k) => byKind.has(k)),
      ...[...byKind.keys()].filter((k) => !KIND_ORDER.includes(k))];

    const section = el('section', { class: 'evidence-section', 'aria-labelledby': 'evidence-h' },
      el('h2', { id: 'evidence-h' }, 'Evidence'));
    if (kinds.length === 0) section.append(el('p', { class: 'muted' }, 'No evidence frames recorded.'));

    for (const kind of kinds) {
      const items = byKind.get(kind).slice().sort(
        (a, b) => VARIANT_ORDER.indexOf(a.variant) - VARIANT_ORDER.indexOf(b.variant));
      const first = items[0];
      const group = el('div', { class: 'evidence-group', dataset: { kind } },
        el('h3', null, KIND_LABEL[kind] || kind),
        el('p', { class: 'muted small' },
          'Captured ', timeEl(first.captured_at),
          first.score !== null && first.score !== undefined ? ` · score ${fmtScore(first.score)}` : ''));
      const pair = el('div', { class: 'evidence-pair' });
      for (const e of items) {
        const url = e.url || `/api/violations/${encodeURIComponent(v.id)}/evidence/${e.kind}/${e.variant}.jpg`;
        const img = el('img', {
          class: 'evidence', alt: `${e.kind} frame, ${e.variant}`, decoding: 'async',
          dataset: { kind: e.kind, variant: e.variant },
        });
        const link = el('a', { class: 'img-link', target: '_blank', rel: 'noopener' }, img);
        const verify = el('span', { class: 'verify muted' });
        pair.append(el('figure', { class: 'evidence-figure', dataset: { variant: e.variant } },
          link,
          el('figcaption', null,
            el('div', null, el('strong', null, e.variant), ' ', el('span', { class: 'muted' }, fmtBytes(e.bytes)), ' ', verify),
            el('div', { class: 'sha' }, el('span', { class: 'muted' }, 'sha256 '), el('code', null, e.sha256 || '—')))));
        loadInto(view, img, url, { verify: true }).then((r) => {
          if (!r || !view.alive) return;
          link.href = r.src;
          // crypto.subtle only exists in secure contexts (https, localhost); skip silently otherwise.
          if (!r.sha256) return;
          const expected = (e.sha256 || '').toLowerCase();
          if (expected && r.sha256 === expected) {
            verify.textContent = '✓ hash verified';
            verify.className = 'verify ok';
          } else {
            verify.textContent = '✗ hash MISMATCH';
            verify.className = 'verify bad';
          }
        });
      }
      group.append(pair);
      section.append(group);
    }
    return section;
  }

  function reviewHistory(v) {
    const reviews = Array.isArray(v.reviews) ? v.reviews : [];
    const section = el('section', { class: 'history', 'aria-labelledby': 'history-h' },
      el('h2', { id: 'history-h' }, 'Review history'));
    if (reviews.length === 0) {
      section.append(el('p', { class: 'muted', id: 'no-reviews' }, 'No reviews yet.'));
      return section;
    }
    section.append(el('ol', { id: 'reviews', class: 'reviews' },
      reviews.map((r) => el('li', { class: 'review-entry', dataset: { status: r.status } },
        el('div', { class: 'review-head' },
          badge(r.status), ' ',
          el('span', { class: 'actor' }, `${r.actor || '?'}${r.role ? ` (${r.role})` : ''}`), ' · ',
          timeEl(r.at)),
        r.note ? el('p', { class: 'note' }, r.note) : el('p', { class: 'note muted' }, '(no note)')))));
    return section;
  }

  function reviewBox(view, v) {
    const note = el('textarea', {
      id: 'review-note', rows: 3, maxlength: 2000, placeholder: 'Note (optional, max 2000 characters)',
    });
    const msg = el('p', { id: 'review-msg', class: 'muted small', 'aria-live': 'polite' });
    const buttons = REVIEW_STATUSES.map((s) => el('button', {
      type: 'button', class: `review review-${s}`, dataset: { status: s },
    }, s === 'confirmed' ? 'Confirm' : s === 'dismissed' ? 'Dismiss' : 'Cite'));

    const submit = async (status) => {
      const text = note.value;
      if (text.length > 2000) { showError(new Error('Note is longer than 2000 characters.')); return; }
      buttons.forEach((b) => { b.disabled = true; });
      msg.textContent = 'Saving…';
      clearError();
      try {
        const updated = await apiJson(`/api/violations/${encodeURIComponent(v.id)}/review`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ status, note: text }),
          signal: view.abort.signal,
        });
        if (!view.alive) return;
        drawDetail(view, updated, `Saved: ${updated.review_status}.`);
      } catch (err) {
        if (!view.alive) return;
        buttons.forEach((b) => { b.disabled = false; });
        msg.textContent = '';
        showError(err);
      }
    };
    buttons.forEach((b) => b.addEventListener('click', () => submit(b.dataset.status)));

    return el('section', { class: 'review-box', 'aria-labelledby': 'review-h' },
      el('h2', { id: 'review-h' }, 'Review'),
      el('label', { for: 'review-note' }, 'Note'),
      note,
      el('div', { class: 'review-buttons' }, buttons),
      msg);
  }

  async function downloadBundle(view, v, btn) {
    btn.disabled = true;
    const old = btn.textContent;
    btn.textContent = 'Preparing…';
    clearError();
    try {
      const res = await apiFetch(`/api/violations/${encodeURIComponent(v.id)}/bundle.zip`,
        { signal: view.abort.signal });
      const blob = await res.blob();
      const href = URL.createObjectURL(blob);
      const a = el('a', { href, download: `${v.id}.zip`, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      // Give the browser time to start the download before releasing the blob.
      setTimeout(() => URL.revokeObjectURL(href), 60_000);
    } catch (err) {
      if (view.alive) showError(err);
    } finally {
      btn.disabled = false;
      btn.textContent = old;
    }
  }

  function evidenceKey(v) {
    return JSON.stringify((v.evidence || []).map((e) => [e.kind, e.variant, e.sha256, e.url]));
  }

  function drawDetail(view, v, message) {
    const reviewStatus = el('span', {
      id: 'review-status', class: `badge badge-${v.review_status}`,
    }, v.review_status);

    const dl = el('dl', { class: 'facts' },
      field('ID', el('code', null, v.id)),
      field('Camera', v.camera),
      field('Zone', v.zone),
      field('Start', timeEl(v.start)),
      field('Confirmed', timeEl(v.confirmed_at)),
      field('Cleared', v.cleared ? timeEl(v.cleared) : el('span', { class: 'muted' }, 'not yet')),
      field('Duration', fmtDuration(v.duration_s), v.status === 'open' ? el('span', { class: 'muted' }, ' (so far)') : ''),
      field('Peak score', fmtScore(v.peak_score)),
      field('Model', v.model_name || '—', el('br'), el('code', { class: 'sha' }, v.model_sha256 || '—')),
      field('Status', badge(v.status)),
      field('End reason', v.end_reason || '—'),
      field('Review', reviewStatus));

    const head = el('div', { class: 'detail-head' },
      el('h1', null, `${v.zone} · ${v.camera}`));
    if (canReview()) {
      const btn = el('button', { id: 'download-bundle', type: 'button', class: 'secondary' }, 'Download evidence bundle (.zip)');
      btn.addEventListener('click', () => downloadBundle(view, v, btn));
      head.append(btn);
    }

    // Evidence first, then the review box (decide after looking), then the history.
    // After a review the evidence is unchanged: keep its DOM so images don't reflow/reload.
    const sameEvidence = message && view.evidenceNode && view.evidenceKey === evidenceKey(v);
    const evidence = sameEvidence ? view.evidenceNode : evidenceSection(view, v);
    view.evidenceNode = evidence;
    view.evidenceKey = evidenceKey(v);
    const parts = [head, dl, evidence];
    if (canReview()) parts.push(reviewBox(view, v));
    parts.push(reviewHistory(v));
    $('#detail').replaceChildren(...parts);
    if (message) {
      const m = $('#review-msg');
      if (m) m.textContent = message;
    }
  }

  async function renderDetail(id) {
    const view = newView();
    const box = $('#detail');
    box.replaceChildren(el('p', { class: 'muted' }, 'Loading…'));
    try {
      const v = await apiJson(`/api/violations/${encodeURIComponent(id)}`, { signal: view.abort.signal });
      if (!view.alive) return;
      drawDetail(view, v);
      window.scrollTo(0, 0);
    } catch (err) {
      if (!view.alive) return;
      box.replaceChildren(el('p', { class: 'muted' }, 'Could not load this violation.'));
      showError(err);
    }
  }

  // ---------------------------------------------------------------- zones view (editor.js)

  /**
   * Hands the zones view to editor.js (window.firelaneEditor.render). The editor gets
   * the API helpers and the view's lifetime: `signal` aborts and `onDispose` callbacks
   * run when the user navigates away, logs out or the session expires.
   */
  function renderZones(camera) {
    const view = newView();
    const box = $('#zones');
    box.replaceChildren();
    if (!canEditZones()) {
      box.append(el('p', { class: 'muted' }, 'The zone editor is for operators and admins.'));
      return;
    }
    const editor = window.firelaneEditor;
    if (!editor || typeof editor.render !== 'function') {
      box.append(el('p', { class: 'muted' }, 'The zone editor did not load (editor.js).'));
      return;
    }
    try {
      editor.render(box, {
        camera,
        me: state.me,
        apiFetch,
        apiJson,
        ApiError,
        showError,
        clearError,
        el,
        fmtTime,
        signal: view.abort.signal,
        alive: () => view.alive,
        onDispose: (fn) => { view.cleanups.push(fn); },
        openCamera: (id) => {
          const h = id ? `#/zones/${encodeURIComponent(id)}` : '#/zones';
          if (location.hash !== h) location.hash = h;
        },
      });
    } catch (err) {
      showError(err);
    }
  }

  // ---------------------------------------------------------------- boot

  function init() {
    $('#login-form').addEventListener('submit', onLoginSubmit);
    $('#logout').addEventListener('click', logout);
    $('#error-close').addEventListener('click', clearError);
    $('#filters').addEventListener('submit', onApply);
    $('#reset').addEventListener('click', onReset);
    $('#prev').addEventListener('click', () => page(-1));
    $('#next').addEventListener('click', () => page(1));
    $('#prev-bottom').addEventListener('click', () => page(-1));
    $('#next-bottom').addEventListener('click', () => page(1));
    $('#violations').addEventListener('click', (ev) => {
      // The whole row is a link; this also catches clicks on the row's padding.
      const row = ev.target.closest('.violation');
      if (!row || ev.target.closest('a')) return;
      location.hash = `#/v/${encodeURIComponent(row.dataset.id)}`;
    });
    window.addEventListener('hashchange', route);
    window.addEventListener('pagehide', () => { if (state.view) state.view.dispose(); });

    // `firelane demo` prints a link carrying its token (#token=flt_…):
    // taken once into the session, then dropped from the address bar.
    const linked = /^#token=(flt_[A-Za-z0-9_-]+)$/.exec(location.hash);
    if (linked) {
      sessionStorage.setItem(TOKEN_KEY, linked[1]);
      history.replaceState(null, '', location.pathname + location.search);
    }
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (!saved) { showLogin(''); return; }
    login(saved).catch((err) => {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin(err instanceof ApiError && err.status === 401
        ? 'Your saved session is no longer valid — please log in again.'
        : `Could not restore the session: ${err.message}`);
    });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
