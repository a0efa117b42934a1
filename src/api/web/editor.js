// firelane zone editor (operators, admins) — plain ES2020, no framework, no build step.
//
// Loaded before app.js; defines window.firelaneEditor.render(container, api), which app.js
// calls for #/zones and #/zones/<camera>. `api` (from app.js) supplies:
//   apiFetch(path, opts), apiJson(path, opts)  fetch with the Bearer token; throw ApiError
//                                                (err.status, err.code, err.body = parsed JSON)
//   showError(err), clearError()                 the page's error banner
//   el(tag, attrs, ...children)                  DOM builder (text is always escaped)
//   fmtTime(iso)                                 local time formatting
//   camera                                       camera id from the hash, or null
//   signal, alive(), onDispose(fn)               the view's lifetime (navigation, logout)
//   openCamera(id)                               navigate to #/zones/<id>
// All data goes into the DOM via textContent/attributes, never innerHTML; no inline
// styles or handlers (the page's CSP forbids them).
'use strict';

(() => {
  const POLL_MS = 2000;        // live scores/states
  const FRAME_MS = 5000;       // minimum spacing of frame refreshes
  const PLACEHOLDER = { w: 1600, h: 900 }; // 16:9 drawing surface when there is no frame
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const STATES = ['clear', 'obstructed', 'violation', 'inactive'];

  // ---------------------------------------------------------------- small helpers

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null) node.setAttribute(k, String(v));
    }
    return node;
  }

  const round4 = (v) => Math.round(v * 10000) / 10000;
  const clamp01 = (v) => Math.min(1, Math.max(0, v));

  function fmtScore(x) {
    return typeof x === 'number' && Number.isFinite(x) ? x.toFixed(2) : '—';
  }

  function liveState(zone) {
    const s = zone && zone.live && zone.live.state;
    return STATES.includes(s) ? s : 'unknown';
  }

  /** "" -> null, "0,5" / "0.5" -> 0.5; anything else not numeric -> NaN. */
  function parseOptNumber(text) {
    const t = String(text || '').trim().replace(',', '.');
    if (t === '') return null;
    const n = Number(t);
    return Number.isFinite(n) ? n : NaN;
  }

  /** "mon-fri" -> ["mon-fri"], "sat, sun" / "sat sun" -> ["sat", "sun"]. */
  function parseDays(text) {
    return String(text || '').toLowerCase().split(/[\s,]+/).filter(Boolean);
  }

  function parseList(text) {
    return String(text || '').split(/[\s,]+/).filter(Boolean);
  }

  function numText(v) {
    return typeof v === 'number' && Number.isFinite(v) ? String(v) : '';
  }

  /** A problem in the server's shape, for checks done here before sending. */
  function problem(item, field, message) {
    return { item, field, message };
  }

  /**
   * The editable copy of a zone: form values kept as the strings typed, so half-typed
   * input survives re-renders; converted to the PUT body only on save.
   */
  function draftFromZone(z) {
    const sched = z.schedule || null;
    const windows = [];
    if (sched) {
      for (const mode of ['active', 'inactive']) {
        for (const w of Array.isArray(sched[mode]) ? sched[mode] : []) {
          windows.push({
            mode,
            days: Array.isArray(w.days) ? w.days.join(',') : String(w.days || ''),
            from: w.from || '',
            to: w.to || '',
          });
        }
      }
    }
    return {
      isNew: false,
      origId: z.id,
      id: z.id,
      name: z.name || '',
      polygon: (Array.isArray(z.polygon) ? z.polygon : []).map((p) => [Number(p[0]), Number(p[1])]),
      threshold: numText(z.threshold),
      grace_s: numText(z.grace_s),
      clear_s: numText(z.clear_s),
      site: z.site || '',
      sensors: (z.sensors || []).join(', '),
      timezone: (sched && sched.timezone) || '',
      windows,
      effective: z.effective || null,
      dirty: false,
    };
  }

  function newDraft() {
    return {
      isNew: true, origId: null, id: '', name: '', polygon: [],
      threshold: '', grace_s: '', clear_s: '', site: '', sensors: '',
      timezone: '', windows: [], effective: null, dirty: false,
    };
  }

  /** The configured (not live) part of a zone, to notice changes made elsewhere. */
  function configKey(z) {
    return JSON.stringify([z.name || null, z.polygon, z.threshold, z.grace_s, z.clear_s,
      z.site, z.sensors, z.schedule || null]);
  }

  // ---------------------------------------------------------------- the editor

  class Editor {
    constructor(container, api) {
      this.root = container;
      this.api = api;
      this.el = api.el;
      this.data = null;          // last GET /api/cameras answer
      this.cam = api.camera;     // camera id shown
      this.zones = new Map();    // id -> ZONE (this camera, from the server)
      this.allZoneIds = new Set(); // every camera's zone ids (new ids must be unused)
      this.draft = null;         // the selected zone being edited (see draftFromZone)
      this.selPoint = null;      // index into draft.polygon
      this.adding = false;       // clicks on the frame add points
      this.drag = null;          // {pointerId, index, moved}
      this.swallowClick = false; // the click that ends a drag must not add a point
      this.stopped = false;      // polling gave up (403)
      this.loadErrorShown = false;
      this.saving = false;
      this.epoch = 0;            // bumped by writes: older poll answers are dropped
      this.pollTimer = null;
      this.frame = { capturedAt: null, src: null, fetchedAt: 0, loading: false, w: 0, h: 0 };
      this.unit = 1;             // viewBox units per CSS pixel (for handle/label sizes)
      this.configSha = null;
      this.historyVersions = [];
      this.zonesLayerKey = null; // what the zones layer / list were last built from
      this.zoneListKey = null;
      this.layerNodes = new Map(); // zone id -> drawn parts (see zoneShape)
      this.draftNodes = null;
      this.listNodes = new Map();
    }

    get alive() { return this.api.alive(); }

    // ------------------------------------------------------------ layout

    build() {
      const el = this.el;
      this.warning = el('div', { class: 'editor-warning', role: 'alert', 'data-testid': 'reload-error', hidden: true });
      this.select = el('select', { id: 'ze-camera', 'data-testid': 'camera-select' });
      this.select.addEventListener('change', () => this.onCameraChange());
      this.frameInfo = el('span', { class: 'muted small', 'data-testid': 'frame-info' });
      this.configInfo = el('span', { class: 'muted small config-info' });
      this.liveInfo = el('span', { class: 'muted small', 'aria-live': 'polite' });

      this.btnNew = el('button', { type: 'button', 'data-testid': 'new-zone' }, 'New zone');
      this.btnAdd = el('button', { type: 'button', class: 'secondary', 'aria-pressed': 'false', 'data-testid': 'add-points' }, 'Add points');
      this.btnDelPoint = el('button', { type: 'button', class: 'secondary', 'data-testid': 'delete-point' }, 'Delete point');
      this.btnDiscard = el('button', { type: 'button', class: 'secondary', 'data-testid': 'discard' }, 'Discard changes');
      this.btnNew.addEventListener('click', () => this.startNewZone());
      this.btnAdd.addEventListener('click', () => { this.adding = !this.adding; this.refreshDraft(); });
      this.btnDelPoint.addEventListener('click', () => this.deletePoint());
      this.btnDiscard.addEventListener('click', () => this.discard());

      // The frame: an <img> (or a 16:9 placeholder) with an SVG overlay of the same size.
      this.img = el('img', { class: 'zone-frame-img', alt: 'Latest camera frame', hidden: true, draggable: 'false' });
      this.placeholder = el('div', { class: 'zone-frame-placeholder' }, 'no frame yet');
      this.svg = svg('svg', { class: 'zone-overlay', preserveAspectRatio: 'none', role: 'img', 'aria-label': 'Zones over the camera frame' });
      this.zonesLayer = svg('g', { class: 'zones-layer' });
      this.draftLayer = svg('g', { class: 'draft-layer' });
      this.svg.append(this.zonesLayer, this.draftLayer);
      this.frameEl = el('div', { class: 'zone-frame', 'data-testid': 'frame' }, this.img, this.placeholder, this.svg);
      this.hint = el('p', { class: 'muted small editor-hint' });
      this.zoneList = el('ul', { class: 'zone-list', 'aria-label': 'Zones of this camera' });

      this.formBox = el('div', { class: 'zone-form-box' });
      this.status = el('p', { class: 'save-status', 'data-testid': 'save-status', 'aria-live': 'polite' });
      this.problems = el('ul', { class: 'problems', 'data-testid': 'problems', 'aria-live': 'polite', hidden: true });

      this.historyList = el('ol', { class: 'history-list' });
      this.historyStatus = el('p', { class: 'save-status small', 'aria-live': 'polite' });
      this.historyProblems = el('ul', { class: 'problems', 'data-testid': 'restore-problems', hidden: true });

      this.editorEl = el('div', { class: 'editor' });
      this.root.replaceChildren(this.editorEl);
      this.editorEl.append(
          this.warning,
          el('div', { class: 'editor-head' },
            el('div', { class: 'camera-pick' },
              el('label', { for: 'ze-camera' }, 'Camera'),
              this.select),
            el('div', { class: 'editor-meta' }, this.frameInfo, this.configInfo, this.liveInfo)),
          el('div', { class: 'editor-grid' },
            el('div', { class: 'editor-stage' },
              el('div', { class: 'editor-toolbar' }, this.btnNew, this.btnAdd, this.btnDelPoint, this.btnDiscard),
              this.frameEl,
              this.hint,
              this.zoneList),
            el('div', { class: 'editor-side' }, this.formBox, this.status, this.problems)),
          el('section', { class: 'config-history', 'aria-labelledby': 'ze-history-h' },
            el('h2', { id: 'ze-history-h' }, 'Configuration history'),
            this.historyStatus,
            this.historyProblems,
            this.historyList));

      // Pointer events (mouse, pen and touch alike) on the overlay.
      this.svg.addEventListener('pointerdown', (e) => this.onPointerDown(e));
      this.svg.addEventListener('pointermove', (e) => this.onPointerMove(e));
      this.svg.addEventListener('pointerup', (e) => this.onPointerUp(e));
      this.svg.addEventListener('pointercancel', (e) => this.onPointerUp(e));
      this.svg.addEventListener('click', (e) => this.onFrameClick(e));

      const onKey = (e) => this.onKeyDown(e);
      document.addEventListener('keydown', onKey);
      this.api.onDispose(() => document.removeEventListener('keydown', onKey));

      // Handles and labels are sized in screen pixels: recompute when the frame resizes.
      if ('ResizeObserver' in window) {
        const ro = new ResizeObserver(() => this.renderOverlay());
        ro.observe(this.frameEl);
        this.api.onDispose(() => ro.disconnect());
      }
      this.api.onDispose(() => {
        clearTimeout(this.pollTimer);
        this.pollTimer = null;
        this.dropFrame();
      });

      this.renderForm();
      this.updateControls();
    }

    // Frees the shown frame's object URL and forgets it.
    dropFrame() {
      if (this.frame.src) URL.revokeObjectURL(this.frame.src);
      this.frame.src = null;
    }

    async start() {
      this.build();
      this.liveInfo.textContent = 'Loading…';
      await this.poll();
      if (!this.alive) return;
      this.loadHistory();
      this.schedulePoll();
    }

    // ------------------------------------------------------------ data: cameras, zones, live state

    schedulePoll() {
      clearTimeout(this.pollTimer);
      if (!this.alive || this.stopped) return;
      this.pollTimer = setTimeout(async () => {
        // A hidden tab does not need live scores; keep the timer so it resumes.
        if (!document.hidden) await this.poll();
        this.schedulePoll();
      }, POLL_MS);
    }

    async poll() {
      const epoch = this.epoch;
      let data;
      try {
        data = await this.api.apiJson('/api/cameras', { signal: this.api.signal });
      } catch (err) {
        if (!this.alive || err.name === 'AbortError') return;
        if (err.status === 403) {
          // Retrying cannot help: say so and stop polling.
          this.stopped = true;
          clearTimeout(this.pollTimer);
          this.api.showError(err);
        } else if (!this.data && !this.loadErrorShown) {
          this.loadErrorShown = true; // banner once; keep retrying quietly
          this.api.showError(err);
        }
        this.liveInfo.textContent = this.data
          ? `Live update failed: ${err.message}` : 'Could not load cameras.';
        return;
      }
      if (!this.alive || epoch !== this.epoch) return; // a save/delete/restore raced this answer
      this.applyData(data);
    }

    pollNow() {
      this.epoch++;
      clearTimeout(this.pollTimer);
      this.poll().finally(() => this.schedulePoll());
    }

    applyData(data) {
      const first = !this.data;
      this.data = data;
      const cameras = Array.isArray(data.cameras) ? data.cameras : [];
      this.allZoneIds = new Set();
      for (const c of cameras) for (const z of c.zones || []) this.allZoneIds.add(z.id);

      // Camera picker: rebuild only when the set of cameras changes (keeps focus/scroll).
      const ids = cameras.map((c) => c.id);
      if (this.select.dataset.ids !== JSON.stringify(ids)) {
        this.select.replaceChildren(...ids.map((id) => this.el('option', { value: id }, id)));
        this.select.dataset.ids = JSON.stringify(ids);
      }
      if (!ids.includes(this.cam)) {
        if (this.cam && first) this.liveInfo.textContent = `No camera "${this.cam}"; showing the first one.`;
        this.cam = ids[0] || null;
      } else {
        this.liveInfo.textContent = `Live · ${new Date().toLocaleTimeString()}`;
      }
      if (this.cam) this.select.value = this.cam;
      this.editorEl.dataset.camera = this.cam || ''; // lets tests tell this view from the last one
      this.select.disabled = ids.length === 0;
      if (ids.length === 0) this.liveInfo.textContent = 'No cameras configured.';

      const cam = cameras.find((c) => c.id === this.cam) || null;
      this.zones = new Map((cam && cam.zones ? cam.zones : []).map((z) => [z.id, z]));

      // Config banner and version.
      const cfg = data.config || {};
      this.setReloadError(cfg.reload_error);
      this.configInfo.textContent = cfg.version !== undefined && cfg.version !== null
        ? `config v${cfg.version}${cfg.sha256 ? ` · ${String(cfg.sha256).slice(0, 12)}` : ''}` : '';
      if (!first && (cfg.sha256 !== this.configSha || cfg.version !== this.configVersion)) this.loadHistory(); // changed elsewhere
      this.configSha = cfg.sha256 || null;
      this.configVersion = cfg.version ?? null;

      // The selected zone: follow server changes unless the user has edits of their own.
      if (this.draft && !this.draft.isNew && !this.draft.dirty && !this.drag) {
        const z = this.zones.get(this.draft.origId);
        if (!z) {
          this.selectZone(null, { force: true });
        } else if (configKey(z) !== this.draft.serverKey) {
          this.setDraft(draftFromZone(z), configKey(z));
        }
      }

      this.updateFrameInfo(cam);
      this.maybeRefreshFrame(cam, first);
      if (first) this.renderOverlay();
      else this.renderZonesLayer(); // no-op unless outlines changed
      this.refreshLive();
      this.renderZoneList();
      this.updateControls();
    }

    setReloadError(text) {
      const has = text !== null && text !== undefined && String(text) !== '';
      this.warning.textContent = has ? `The configuration file could not be reloaded: ${text}` : '';
      this.warning.hidden = !has;
    }

    cameraSensors() {
      const sensors = this.data && Array.isArray(this.data.sensors) ? this.data.sensors : [];
      return sensors;
    }

    // ------------------------------------------------------------ frame image

    updateFrameInfo(cam) {
      const latest = cam && cam.latest;
      if (!cam) { this.frameInfo.textContent = ''; return; }
      // Cluster mode: another instance judges this camera and has its frames.
      const away = cam.holder && !cam.holder.here;
      this.frameInfo.textContent = away
        ? `Judged by instance ${cam.holder.instance}${cam.holder.api_url ? ` (${cam.holder.api_url})` : ''}: live frame fetched from there`
        : latest
          ? `Frame ${this.api.fmtTime(latest.captured_at)}${latest.width ? ` · ${latest.width}×${latest.height}` : ''}`
          : 'No frame yet';
    }

    maybeRefreshFrame(cam, force) {
      const latest = cam && cam.latest;
      const away = cam && cam.holder && !cam.holder.here;
      if (!latest && away && cam.holder.api_url) {
        // Cluster mode: this instance asks the holder for the frame; poll it
        // at the frame interval, since its capture time is not known here.
        if (this.frame.loading) return;
        if (!force && Date.now() - this.frame.fetchedAt < FRAME_MS) return;
        this.loadFrame(cam.id, `remote ${Date.now()}`);
        return;
      }
      if (!latest) {
        if (!this.frame.src) this.showPlaceholder(away ? `live frame on instance ${cam.holder.instance}` : 'no frame yet');
        return;
      }
      if (this.frame.loading || latest.captured_at === this.frame.capturedAt) return;
      if (!force && Date.now() - this.frame.fetchedAt < FRAME_MS) return;
      this.loadFrame(cam.id, latest.captured_at);
    }

    async loadFrame(camId, capturedAt) {
      this.frame.loading = true;
      this.frame.fetchedAt = Date.now();
      let src = null;
      try {
        const res = await this.api.apiFetch(`/api/cameras/${encodeURIComponent(camId)}/latest.jpg`,
          { signal: this.api.signal });
        const blob = await res.blob();
        if (!this.alive || camId !== this.cam) return;
        src = URL.createObjectURL(blob);
        // Decode off-screen first so the visible image never flashes empty.
        const probe = new Image();
        probe.src = src;
        await probe.decode();
        if (!this.alive || camId !== this.cam) { URL.revokeObjectURL(src); return; }
        const old = this.frame.src;
        this.img.src = src;
        this.frame.src = src;
        this.frame.capturedAt = capturedAt;
        this.frame.w = probe.naturalWidth;
        this.frame.h = probe.naturalHeight;
        if (old) URL.revokeObjectURL(old);
        this.img.hidden = false;
        this.placeholder.hidden = true;
        this.renderOverlay();
      } catch (err) {
        if (src && src !== this.frame.src) URL.revokeObjectURL(src);
        if (!this.alive || err.name === 'AbortError') return;
        if (err.status === 404) {
          // No frame since start, or (cluster) none yet at a new holder: a
          // frame shown before is no longer the live picture.
          this.frame.capturedAt = capturedAt;
          this.dropFrame();
          this.showPlaceholder('no frame yet');
        } else if (!this.frame.src) {
          this.frame.capturedAt = capturedAt; // don't retry a broken frame every poll
          this.showPlaceholder(err instanceof Error && err.status ? `frame unavailable (${err.message})` : 'frame could not be decoded');
        }
      } finally {
        this.frame.loading = false;
      }
    }

    showPlaceholder(text) {
      this.placeholder.textContent = text;
      this.placeholder.hidden = false;
      this.img.hidden = true;
      this.renderOverlay();
    }

    /** The overlay's coordinate system: the frame's pixels, or 16:9 for the placeholder. */
    dims() {
      if (!this.img.hidden && this.frame.w > 0 && this.frame.h > 0) return { w: this.frame.w, h: this.frame.h };
      return PLACEHOLDER;
    }

    /** A pointer event -> [x, y] fractions of the frame, clamped and rounded to 4 decimals. */
    toFraction(e) {
      const r = this.svg.getBoundingClientRect();
      if (r.width <= 0 || r.height <= 0) return null;
      return [round4(clamp01((e.clientX - r.left) / r.width)), round4(clamp01((e.clientY - r.top) / r.height))];
    }

    // ------------------------------------------------------------ overlay rendering

    renderOverlay() {
      const { w, h } = this.dims();
      this.svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
      const width = this.svg.getBoundingClientRect().width;
      this.unit = width > 0 ? w / width : 1;
      this.svg.classList.toggle('editing', !!this.draft);
      this.svg.classList.toggle('adding', !!this.draft && this.adding);
      this.renderZonesLayer();
      this.renderDraftLayer();
    }

    /**
     * Other zones of the camera. Rebuilt only when their outlines (or the drawing scale)
     * change: polls every 2 s repaint live state in place (refreshLive), so a click or
     * tap never lands on an element that is being replaced.
     */
    renderZonesLayer() {
      const skip = this.draft && !this.draft.isNew ? this.draft.origId : null;
      const zones = [...this.zones.values()].filter((z) => z.id !== skip);
      const { w, h } = this.dims();
      const key = JSON.stringify([w, h, this.unit, zones.map((z) => [z.id, z.name, z.polygon, z.tiles])]);
      if (key === this.zonesLayerKey) return;
      this.zonesLayerKey = key;
      this.layerNodes = new Map();
      this.zonesLayer.replaceChildren(...zones.map((z) => {
        const parts = this.zoneShape(z.id, z.name, z.polygon || [], false);
        parts.tiles = this.tileShapes(parts.g, z);
        this.layerNodes.set(z.id, parts);
        this.paintLive(parts, z);
        return parts.g;
      }));
    }

    /** The selected zone with its corner handles; rebuilt on every edit (it is small). */
    renderDraftLayer() {
      const d = this.draft;
      this.draftNodes = null;
      if (!d) { this.draftLayer.replaceChildren(); return; }
      const label = d.isNew ? (d.id.trim() || 'new zone') : d.origId;
      const parts = this.zoneShape(d.isNew ? null : d.origId, d.name, d.polygon, true, label);
      const saved = d.isNew ? null : this.zones.get(d.origId) || null;
      // The saved tiles while the outline is as saved; a moved outline is
      // tiled anew when it is saved.
      if (saved && JSON.stringify(saved.polygon) === JSON.stringify(d.polygon)) {
        parts.tiles = this.tileShapes(parts.g, saved);
      }
      this.paintLive(parts, saved);
      if (!d.isNew) this.draftNodes = parts;
      const { w, h } = this.dims();
      const u = this.unit;
      const handles = d.polygon.map((p, i) => {
        const g = svg('g', { class: `zone-handle${i === this.selPoint ? ' selected' : ''}`, 'data-index': i });
        g.append(
          svg('circle', { class: 'hit', cx: p[0] * w, cy: p[1] * h, r: 16 * u }),
          svg('circle', { class: 'dot', cx: p[0] * w, cy: p[1] * h, r: (i === this.selPoint ? 8 : 6) * u }));
        const t = svg('title');
        t.textContent = `Point ${i + 1}: ${p[0]}, ${p[1]}`;
        g.append(t);
        return g;
      });
      this.draftLayer.replaceChildren(parts.g, ...handles);
    }

    /**
     * One zone: polygon (polyline while under 3 points) with an "id · name  score" label.
     * `id` null = an unsaved new zone (test ids zone-draft / score-draft). Colours come
     * from paintLive.
     */
    zoneShape(id, name, polygon, selected, labelText) {
      const { w, h } = this.dims();
      const u = this.unit;
      const g = svg('g', { class: `zone${selected ? ' selected' : ''}`, 'data-zone': id || '' });
      const pts = polygon.map((p) => `${round4(p[0] * w)},${round4(p[1] * h)}`).join(' ');
      const poly = svg(polygon.length >= 3 ? 'polygon' : 'polyline', {
        class: 'zone-poly', points: pts, 'data-testid': id ? `zone-${id}` : 'zone-draft',
      });
      g.append(poly);
      let score = null;
      if (polygon.length > 0) {
        // Label at the vertex average; good enough for the convex-ish shapes of lanes.
        const cx = polygon.reduce((a, p) => a + p[0], 0) / polygon.length * w;
        const cy = polygon.reduce((a, p) => a + p[1], 0) / polygon.length * h;
        const text = svg('text', { class: 'zone-label', x: cx, y: cy, 'font-size': 13 * u, 'text-anchor': 'middle' });
        text.append(document.createTextNode(`${labelText || id}${name ? ` · ${name}` : ''} `));
        score = svg('tspan', { class: 'zone-score', 'data-testid': id ? `score-${id}` : 'score-draft' });
        text.append(score);
        g.append(text);
      }
      const title = svg('title');
      g.append(title);
      return { g, poly, score, title, label: labelText || id, selected };
    }

    /**
     * A long zone is scored as overlapping tiles (the server sends each as
     * its four corners in frame fractions, turned with a slanted strip):
     * each drawn as a thin outline with its own live score at its centre,
     * alternating above and below the centre so neighbours' scores do not
     * run into each other.
     */
    tileShapes(g, zone) {
      const tiles = Array.isArray(zone.tiles) ? zone.tiles : [];
      if (tiles.length < 2) return [];
      const { w, h } = this.dims();
      const u = this.unit;
      return tiles.map((t, i) => {
        const pts = t.map((p) => [p[0] * w, p[1] * h]);
        const box = svg('polygon', {
          class: 'zone-tile', points: pts.map((p) => p.join(',')).join(' '),
          'data-testid': `tile-${zone.id}-${i}`,
        });
        const cx = pts.reduce((a, p) => a + p[0], 0) / pts.length;
        const cy = pts.reduce((a, p) => a + p[1], 0) / pts.length + (i % 2 ? 8 : -4) * u;
        const text = svg('text', {
          class: 'zone-tile-score', x: cx, y: cy, 'text-anchor': 'middle', 'font-size': 11 * u,
        });
        g.append(box, text);
        return text;
      });
    }

    /** Colour, score and tooltip of one drawn zone from its live state. */
    paintLive(parts, zone) {
      const state = zone ? liveState(zone) : 'unknown';
      const score = fmtScore(zone && zone.live ? zone.live.score : null);
      const tileScores = zone && zone.live && Array.isArray(zone.live.tiles) ? zone.live.tiles : [];
      (parts.tiles || []).forEach((text, i) => {
        const s = fmtScore(i < tileScores.length ? tileScores[i] : null);
        if (text.textContent !== s) text.textContent = s;
      });
      parts.g.setAttribute('class', `zone state-${state}${parts.selected ? ' selected' : ''}`);
      parts.poly.setAttribute('data-state', state);
      if (parts.score && parts.score.textContent !== score) parts.score.textContent = score;
      parts.title.textContent = `${parts.label}: ${state}${zone ? `, score ${score}` : ''}`;
    }

    refreshLive() {
      for (const [id, parts] of this.layerNodes || []) this.paintLive(parts, this.zones.get(id) || null);
      if (this.draftNodes && this.draft && !this.draft.isNew) {
        this.paintLive(this.draftNodes, this.zones.get(this.draft.origId) || null);
      }
    }

    /** The zone list beside the frame; like the overlay, rebuilt only when zones come or go. */
    renderZoneList() {
      const el = this.el;
      const selected = this.draft && !this.draft.isNew ? this.draft.origId : null;
      const zones = [...this.zones.values()];
      const key = JSON.stringify(zones.map((z) => [z.id, z.name]));
      if (key !== this.zoneListKey) {
        this.zoneListKey = key;
        this.listNodes = new Map();
        const items = zones.map((z) => {
          const badge = el('span', { class: 'badge' });
          const score = el('span', { class: 'zone-item-score' });
          const btn = el('button', { type: 'button', class: 'zone-item', dataset: { zone: z.id } },
            el('span', { class: 'zone-item-id' }, z.id),
            z.name ? el('span', { class: 'muted' }, z.name) : null,
            badge, score);
          btn.addEventListener('click', () => this.selectZone(z.id));
          const link = el('a', { class: 'small', hidden: true }, 'open violation');
          this.listNodes.set(z.id, { btn, badge, score, link });
          return el('li', null, btn, link);
        });
        if (items.length === 0) items.push(el('li', { class: 'muted small' }, 'No zones on this camera yet.'));
        this.zoneList.replaceChildren(...items);
      }
      for (const z of zones) {
        const n = this.listNodes.get(z.id);
        const state = liveState(z);
        n.btn.className = `zone-item state-${state}`;
        n.btn.setAttribute('aria-pressed', String(z.id === selected));
        n.badge.className = `badge badge-zone-${state}`;
        n.badge.textContent = state;
        n.score.textContent = fmtScore(z.live ? z.live.score : null);
        const vid = z.live && z.live.violation_id;
        n.link.hidden = !vid;
        if (vid) n.link.href = `#/v/${encodeURIComponent(vid)}`;
      }
    }

    // ------------------------------------------------------------ selection and drafts

    confirmDiscard() {
      const d = this.draft;
      if (!d || !d.dirty) return true;
      return window.confirm(`Discard unsaved changes to ${d.isNew ? 'the new zone' : `zone "${d.origId}"`}?`);
    }

    setDraft(draft, serverKey) {
      this.draft = draft;
      if (draft) draft.serverKey = serverKey || null;
      this.selPoint = null;
      this.renderForm();
      this.renderOverlay();
      this.renderZoneList();
      this.updateControls();
    }

    clearMessages() {
      this.status.textContent = '';
      this.status.className = 'save-status';
      this.showProblems(this.problems, []);
    }

    selectZone(id, { force = false } = {}) {
      if (this.draft && !this.draft.isNew && this.draft.origId === id) return;
      if (!force && !this.confirmDiscard()) return;
      this.adding = false;
      this.clearMessages();
      const z = id ? this.zones.get(id) : null;
      this.setDraft(z ? draftFromZone(z) : null, z ? configKey(z) : null);
    }

    startNewZone() {
      if (!this.confirmDiscard()) return;
      this.clearMessages();
      this.adding = true;
      this.setDraft(newDraft());
      this.hint.textContent = 'Click (or tap) on the frame to add the zone\'s corners in order around it.';
    }

    discard() {
      const d = this.draft;
      if (!d) return;
      if (!this.confirmDiscard()) return;
      this.clearMessages();
      this.adding = false;
      const z = d.isNew ? null : this.zones.get(d.origId);
      this.setDraft(z ? draftFromZone(z) : null, z ? configKey(z) : null);
    }

    markDirty() {
      if (!this.draft) return;
      this.draft.dirty = true;
      this.updateControls();
    }

    /** Re-render just what a polygon edit changes (cheap enough for every pointermove). */
    refreshDraft() {
      this.svg.classList.toggle('adding', !!this.draft && this.adding);
      this.renderDraftLayer();
      this.updateControls();
    }

    // ------------------------------------------------------------ pointer and keyboard editing

    onPointerDown(e) {
      this.swallowClick = false; // a new gesture: its click is a real one
      const handle = e.target.closest && e.target.closest('.zone-handle');
      if (!handle || !this.draft) return;
      e.preventDefault();
      const index = Number(handle.getAttribute('data-index'));
      this.selPoint = index;
      // Capture on the <svg>, which outlives the re-rendered handles during the drag.
      this.drag = { pointerId: e.pointerId, index, moved: false };
      try { this.svg.setPointerCapture(e.pointerId); } catch (_) { /* pointer already gone */ }
      this.refreshDraft();
    }

    onPointerMove(e) {
      const dr = this.drag;
      if (!dr || dr.pointerId !== e.pointerId || !this.draft) return;
      const p = this.toFraction(e);
      if (!p) return;
      e.preventDefault();
      const cur = this.draft.polygon[dr.index];
      if (!cur || (cur[0] === p[0] && cur[1] === p[1])) return;
      this.draft.polygon[dr.index] = p;
      dr.moved = true;
      this.markDirty();
      this.refreshDraft();
    }

    onPointerUp(e) {
      const dr = this.drag;
      if (!dr || dr.pointerId !== e.pointerId) return;
      this.drag = null;
      try { this.svg.releasePointerCapture(e.pointerId); } catch (_) { /* not captured */ }
      // The click that follows this pointerup (targeted at the <svg>, which held the
      // capture) must neither add a point nor deselect. Reset by the next pointerdown
      // in case no click comes.
      this.swallowClick = true;
      this.refreshDraft();
      this.renderForm(); // the points list in the form
    }

    onFrameClick(e) {
      if (this.swallowClick) { this.swallowClick = false; return; }
      if (e.target.closest && e.target.closest('.zone-handle')) return;
      const d = this.draft;
      if (d && this.adding) {
        const p = this.toFraction(e);
        if (!p) return;
        this.addPoint(p);
        return;
      }
      const g = e.target.closest && e.target.closest('g.zone[data-zone]');
      const id = g && g.getAttribute('data-zone');
      if (id && this.zones.has(id) && !(d && d.origId === id)) {
        this.selectZone(id);
      } else if (d && this.selPoint !== null) {
        this.selPoint = null;
        this.refreshDraft();
      }
    }

    addPoint(p) {
      const d = this.draft;
      let at = d.polygon.length;
      // A new zone is drawn corner by corner; a point added to an existing zone goes into
      // the nearest edge, so it refines the outline instead of cutting across it.
      if (!d.isNew && d.polygon.length >= 3) at = this.nearestEdgeInsert(d.polygon, p);
      d.polygon.splice(at, 0, p);
      this.selPoint = at;
      this.markDirty();
      this.refreshDraft();
      this.renderForm();
    }

    nearestEdgeInsert(poly, p) {
      const { w, h } = this.dims(); // measure in pixels, not fractions (aspect ratio)
      const dist = (a, b) => Math.hypot((a[0] - b[0]) * w, (a[1] - b[1]) * h);
      let best = poly.length;
      let bestCost = Infinity;
      for (let i = 0; i < poly.length; i++) {
        const a = poly[i];
        const b = poly[(i + 1) % poly.length];
        const cost = dist(a, p) + dist(p, b) - dist(a, b);
        if (cost < bestCost) { bestCost = cost; best = i + 1; }
      }
      return best;
    }

    deletePoint() {
      const d = this.draft;
      if (!d || this.selPoint === null || !d.polygon[this.selPoint]) return;
      d.polygon.splice(this.selPoint, 1);
      this.selPoint = d.polygon.length ? Math.min(this.selPoint, d.polygon.length - 1) : null;
      this.markDirty();
      this.refreshDraft();
      this.renderForm();
    }

    onKeyDown(e) {
      if (!this.alive || !this.draft) return;
      // Keys typed into the form belong to the form.
      const t = e.target;
      if (t && t.closest && t.closest('input, textarea, select, [contenteditable]')) return;
      if ((e.key === 'Delete' || e.key === 'Backspace') && this.selPoint !== null) {
        e.preventDefault();
        this.deletePoint();
      } else if (e.key === 'Escape' && this.adding) {
        this.adding = false;
        this.refreshDraft();
      }
    }

    updateControls() {
      const d = this.draft;
      const polyOk = !!d && d.polygon.length >= 3;
      this.btnAdd.disabled = !d;
      this.btnAdd.textContent = this.adding && d ? 'Stop adding' : 'Add points';
      this.btnAdd.setAttribute('aria-pressed', String(!!d && this.adding));
      this.btnDelPoint.disabled = !d || this.selPoint === null;
      this.btnDiscard.disabled = !d;
      this.btnNew.disabled = !this.cam;
      if (this.btnSave) {
        this.btnSave.disabled = this.saving || !polyOk || !d.id.trim();
        this.btnSave.title = !polyOk ? 'A zone needs at least 3 points' : !d.id.trim() ? 'The zone needs an id' : '';
      }
      if (this.btnDelete) this.btnDelete.disabled = this.saving;
      if (!d) {
        this.hint.textContent = this.zones.size
          ? 'Select a zone (on the frame or in the list) to edit it, or start a new one.'
          : 'Click "New zone", then click on the frame to place its corners.';
      } else if (this.adding) {
        this.hint.textContent = d.isNew
          ? `Click on the frame to add corners in order (${d.polygon.length} so far, at least 3). Drag a corner to move it.`
          : 'Click on the frame to add a corner on the nearest edge. Drag a corner to move it.';
      } else {
        this.hint.textContent = 'Drag a corner to move it; select one and press Delete to remove it.';
      }
    }

    // ------------------------------------------------------------ the zone form

    renderForm() {
      const el = this.el;
      const d = this.draft;
      this.btnSave = null;
      this.btnDelete = null;
      if (!d) {
        this.formBox.replaceChildren(el('p', { class: 'muted' }, 'No zone selected.'));
        return;
      }
      const eff = d.effective || {};
      const input = (key, label, attrs) => {
        const id = `ze-${key}`;
        const node = el('input', { id, type: 'text', spellcheck: 'false', autocapitalize: 'off', autocomplete: 'off', ...attrs });
        node.value = d[key];
        node.addEventListener('input', () => {
          d[key] = node.value;
          this.markDirty();
          if (key === 'id' || key === 'name') this.renderDraftLayer();
        });
        return el('div', { class: `field field-${key}` }, el('label', { for: id }, label), node);
      };
      const dflt = (v, unit) => (v !== undefined && v !== null ? `default (${v}${unit || ''})` : 'default');

      const form = el('form', { class: 'zone-form', autocomplete: 'off', novalidate: true },
        el('h2', null, d.isNew ? 'New zone' : `Zone ${d.origId}`),
        el('div', { class: 'form-grid' },
          input('id', 'Id', { 'data-testid': 'zone-id', readonly: !d.isNew, required: true, placeholder: 'e.g. north-lane-c' }),
          input('name', 'Name', { 'data-testid': 'zone-name', placeholder: 'optional' }),
          input('threshold', 'Threshold (0–1)', { 'data-testid': 'zone-threshold', inputmode: 'decimal', placeholder: dflt(eff.threshold) }),
          input('grace_s', 'Grace (s)', { 'data-testid': 'zone-grace', inputmode: 'decimal', placeholder: dflt(eff.grace_s, ' s') }),
          input('clear_s', 'Clear (s)', { 'data-testid': 'zone-clear', inputmode: 'decimal', placeholder: dflt(eff.clear_s, ' s') }),
          input('site', 'Site', { 'data-testid': 'zone-site', placeholder: 'default' }),
          input('sensors', 'Linked sensors (comma-separated ids)', { 'data-testid': 'zone-sensors', placeholder: 'none' })),
        this.sensorHint(),
        this.scheduleFieldset(),
        el('p', { class: 'muted small points-summary' },
          `${d.polygon.length} point${d.polygon.length === 1 ? '' : 's'}`,
          d.polygon.length ? `: ${d.polygon.map((p) => `(${p[0]}, ${p[1]})`).join(' ')}` : ''));

      this.btnSave = el('button', { type: 'submit', 'data-testid': 'save-zone' }, 'Save');
      const actions = el('div', { class: 'form-actions' }, this.btnSave);
      if (!d.isNew) {
        this.btnDelete = el('button', { type: 'button', class: 'danger', 'data-testid': 'delete-zone' }, 'Delete zone');
        this.btnDelete.addEventListener('click', () => this.deleteZone());
        actions.append(this.btnDelete);
      }
      form.append(actions);
      form.addEventListener('submit', (e) => { e.preventDefault(); this.save(); });
      this.formBox.replaceChildren(form);
      this.updateControls();
    }

    sensorHint() {
      const sensors = this.cameraSensors();
      if (!sensors.length) return null;
      return this.el('p', { class: 'muted small' }, 'Known sensors: ',
        sensors.map((s) => `${s.id}${s.zone ? ` (${s.zone})` : ''}`).join(', '));
    }

    scheduleFieldset() {
      const el = this.el;
      const d = this.draft;
      const list = el('ol', { class: 'windows' });
      const renderRows = () => {
        list.replaceChildren(...d.windows.map((w, i) => {
          const mode = el('select', { 'aria-label': `Window ${i + 1} mode`, 'data-testid': 'window-mode' },
            el('option', { value: 'active' }, 'active'),
            el('option', { value: 'inactive' }, 'inactive'));
          mode.value = w.mode;
          const text = (key, label, placeholder, extra) => {
            const node = el('input', { type: 'text', 'aria-label': `Window ${i + 1} ${label}`, placeholder, spellcheck: 'false', autocapitalize: 'off', ...extra });
            node.value = w[key];
            node.addEventListener('input', () => { w[key] = node.value; this.markDirty(); });
            return node;
          };
          mode.addEventListener('change', () => { w.mode = mode.value; this.markDirty(); });
          const remove = el('button', { type: 'button', class: 'secondary icon', 'aria-label': `Remove window ${i + 1}` }, '×');
          remove.addEventListener('click', () => { d.windows.splice(i, 1); this.markDirty(); renderRows(); });
          return el('li', { class: 'window' },
            mode,
            text('days', 'days', 'mon-fri or sat,sun', { 'data-testid': 'window-days' }),
            text('from', 'from', 'HH:MM', { inputmode: 'numeric', maxlength: 5, 'data-testid': 'window-from' }),
            text('to', 'to', 'HH:MM', { inputmode: 'numeric', maxlength: 5, 'data-testid': 'window-to' }),
            remove);
        }));
      };
      renderRows();
      const add = el('button', { type: 'button', class: 'secondary', 'data-testid': 'add-window' }, 'Add window');
      add.addEventListener('click', () => {
        d.windows.push({ mode: 'active', days: 'mon-fri', from: '07:00', to: '19:00' });
        this.markDirty();
        renderRows();
      });
      const tz = el('input', { id: 'ze-timezone', type: 'text', placeholder: 'site\'s timezone', spellcheck: 'false', autocapitalize: 'off', 'data-testid': 'zone-timezone' });
      tz.value = d.timezone;
      tz.addEventListener('input', () => { d.timezone = tz.value; this.markDirty(); });
      return el('fieldset', { class: 'schedule' },
        el('legend', null, 'Schedule'),
        el('div', { class: 'field' }, el('label', { for: 'ze-timezone' }, 'Timezone (e.g. Europe/Rome)'), tz),
        list,
        add,
        el('p', { class: 'muted small' },
          'No windows: always watched. Active windows: watched only then; inactive windows: not watched then. Times are HH:MM; "to" may be 24:00.'));
    }

    /** The PUT body from the draft, plus problems found before sending. */
    body() {
      const d = this.draft;
      const item = `zone "${d.id.trim() || '(new)'}"`;
      const problems = [];
      const id = d.id.trim();
      if (!id) problems.push(problem(item, 'id', 'is required'));
      if (d.isNew && this.allZoneIds.has(id)) problems.push(problem(item, 'id', 'is already used by another zone'));
      if (d.polygon.length < 3) problems.push(problem(item, 'polygon', `needs at least 3 points, got ${d.polygon.length}`));
      const num = (field) => {
        const v = parseOptNumber(d[field]);
        if (Number.isNaN(v)) problems.push(problem(item, field, `"${d[field]}" is not a number`));
        return Number.isNaN(v) ? null : v;
      };
      const body = {
        camera: this.cam,
        name: d.name.trim() || null,
        polygon: d.polygon.map((p) => [round4(p[0]), round4(p[1])]),
        threshold: num('threshold'),
        grace_s: num('grace_s'),
        clear_s: num('clear_s'),
        site: d.site.trim() || null,
        sensors: parseList(d.sensors),
        schedule: null,
      };
      const tz = d.timezone.trim();
      if (tz || d.windows.length) {
        const sched = { timezone: tz || null, active: [], inactive: [] };
        d.windows.forEach((w, i) => {
          const days = parseDays(w.days);
          if (!days.length) problems.push(problem(item, `schedule window ${i + 1}`, 'days are required (e.g. mon-fri)'));
          sched[w.mode === 'inactive' ? 'inactive' : 'active'].push({ days, from: w.from.trim(), to: w.to.trim() });
        });
        body.schedule = sched;
      }
      return { id, body, problems };
    }

    showProblems(list, problems) {
      list.replaceChildren(...problems.map((p) => this.el('li', null,
        typeof p === 'string' ? p : [p.item, p.field, p.message].filter((x) => x !== undefined && x !== null && x !== '').join(': '))));
      list.hidden = problems.length === 0;
    }

    /** 422 answers carry `problems`; anything else becomes one line. */
    problemsOf(err) {
      const b = err && err.body;
      if (b && Array.isArray(b.problems) && b.problems.length) return b.problems;
      return [err.message || String(err)];
    }

    setStatus(node, text, kind) {
      node.textContent = text;
      node.className = `save-status${kind ? ` ${kind}` : ''}${node === this.historyStatus ? ' small' : ''}`;
    }

    async save() {
      const d = this.draft;
      if (!d || this.saving) return;
      const { id, body, problems } = this.body();
      this.showProblems(this.problems, problems);
      if (problems.length) {
        this.setStatus(this.status, 'Not saved — fix the problems below.', 'bad');
        return;
      }
      this.saving = true;
      this.updateControls();
      this.setStatus(this.status, 'Saving…');
      this.api.clearError();
      try {
        const res = await this.api.apiJson(`/api/zones/${encodeURIComponent(id)}`, {
          method: 'PUT',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify(body),
          signal: this.api.signal,
        });
        if (!this.alive) return;
        this.epoch++; // polls already in flight predate this write
        const z = res.zone;
        this.zones.set(z.id, z);
        this.allZoneIds.add(z.id);
        this.adding = false;
        this.setDraft(draftFromZone(z), configKey(z));
        this.afterWrite(res.config);
        this.setStatus(this.status, `Saved — version ${res.config ? res.config.version : '?'}`, 'ok');
      } catch (err) {
        if (!this.alive || err.name === 'AbortError') return;
        this.setStatus(this.status, 'Not saved.', 'bad');
        if (err.status === 422 || err.status === 400) this.showProblems(this.problems, this.problemsOf(err));
        else this.api.showError(err);
      } finally {
        this.saving = false;
        if (this.alive) this.updateControls();
      }
    }

    async deleteZone() {
      const d = this.draft;
      if (!d || d.isNew || this.saving) return;
      if (!window.confirm(`Delete zone "${d.origId}"? This writes a new configuration version.`)) return;
      this.saving = true;
      this.updateControls();
      this.clearMessages();
      this.setStatus(this.status, 'Deleting…');
      try {
        const res = await this.api.apiJson(`/api/zones/${encodeURIComponent(d.origId)}`,
          { method: 'DELETE', signal: this.api.signal });
        if (!this.alive) return;
        this.epoch++;
        this.zones.delete(d.origId);
        this.allZoneIds.delete(d.origId);
        this.adding = false;
        this.setDraft(null);
        this.afterWrite(res.config);
        this.setStatus(this.status, `Deleted ${res.deleted || d.origId} — version ${res.config ? res.config.version : '?'}`, 'ok');
      } catch (err) {
        if (!this.alive || err.name === 'AbortError') return;
        this.setStatus(this.status, 'Not deleted.', 'bad');
        if (err.status === 422) this.showProblems(this.problems, this.problemsOf(err));
        else this.api.showError(err);
      } finally {
        this.saving = false;
        if (this.alive) this.updateControls();
      }
    }

    /** After a write: new config info, fresh live data and history. */
    afterWrite(cfg) {
      if (cfg) {
        this.setReloadError(cfg.reload_error);
        this.configSha = cfg.sha256 || this.configSha;
        this.configVersion = cfg.version ?? this.configVersion;
      }
      this.pollNow();
      this.loadHistory();
    }

    // ------------------------------------------------------------ config history

    async loadHistory() {
      let data;
      try {
        data = await this.api.apiJson('/api/config/history', { signal: this.api.signal });
      } catch (err) {
        if (!this.alive || err.name === 'AbortError') return;
        this.setStatus(this.historyStatus, `Could not load the history: ${err.message}`, 'bad');
        return;
      }
      if (!this.alive) return;
      this.historyVersions = Array.isArray(data.versions) ? data.versions : [];
      this.renderHistory();
    }

    renderHistory() {
      const el = this.el;
      const current = this.configVersion;
      let currentMarked = false;
      const rows = this.historyVersions.map((v) => {
        // The running text's version (ids are the history's).
        const isCurrent = !currentMarked && current !== null && current !== undefined && v.id === current;
        if (isCurrent) currentMarked = true;
        const restore = el('button', { type: 'button', class: 'secondary', 'data-testid': 'restore', disabled: isCurrent }, 'Restore');
        restore.addEventListener('click', () => this.restore(v));
        const pre = el('pre', { class: 'toml' });
        const details = el('details', { class: 'history-toml' }, el('summary', null, 'TOML'), pre);
        details.addEventListener('toggle', () => { if (details.open && !pre.textContent) this.loadToml(v.id, pre); });
        return el('li', { class: `history-row${isCurrent ? ' current' : ''}`, 'data-testid': 'history-row', dataset: { id: v.id } },
          el('div', { class: 'history-main' },
            el('strong', null, `#${v.id}`),
            isCurrent ? el('span', { class: 'badge badge-zone-clear' }, 'current') : null,
            el('time', { datetime: v.at, title: v.at }, this.api.fmtTime(v.at)),
            el('span', null, v.actor || '—'),
            el('span', { class: 'badge' }, v.source || '?'),
            el('code', { class: 'sha', title: v.sha256 || '' }, String(v.sha256 || '').slice(0, 12))),
          el('div', { class: 'history-actions' }, restore),
          details);
      });
      if (!rows.length) rows.push(el('li', { class: 'muted small' }, 'No versions recorded yet.'));
      this.historyList.replaceChildren(...rows);
    }

    async loadToml(id, pre) {
      pre.textContent = 'Loading…';
      try {
        const v = await this.api.apiJson(`/api/config/history/${encodeURIComponent(id)}`, { signal: this.api.signal });
        if (this.alive) pre.textContent = typeof v.toml === 'string' ? v.toml : '';
      } catch (err) {
        if (this.alive && err.name !== 'AbortError') pre.textContent = `Could not load: ${err.message}`;
      }
    }

    async restore(v) {
      if (this.saving) return;
      const unsaved = this.draft && this.draft.dirty ? ' Unsaved zone edits will be lost.' : '';
      if (!window.confirm(`Restore configuration version #${v.id} from ${this.api.fmtTime(v.at)}?${unsaved}`)) return;
      this.saving = true;
      this.updateControls();
      this.showProblems(this.historyProblems, []);
      this.setStatus(this.historyStatus, `Restoring #${v.id}…`);
      try {
        const res = await this.api.apiJson(`/api/config/history/${encodeURIComponent(v.id)}/restore`,
          { method: 'POST', signal: this.api.signal });
        if (!this.alive) return;
        this.epoch++;
        this.adding = false;
        this.clearMessages();
        this.setDraft(null); // the zone may differ or be gone in the restored config
        this.afterWrite(res.config);
        this.setStatus(this.historyStatus, `Restored #${v.id} — now version ${res.config ? res.config.version : '?'}`, 'ok');
      } catch (err) {
        if (!this.alive || err.name === 'AbortError') return;
        this.setStatus(this.historyStatus, `Could not restore #${v.id}.`, 'bad');
        if (err.status === 422) this.showProblems(this.historyProblems, this.problemsOf(err));
        else this.api.showError(err);
      } finally {
        this.saving = false;
        if (this.alive) this.updateControls();
      }
    }

    // ------------------------------------------------------------ camera change

    onCameraChange() {
      const id = this.select.value;
      if (id === this.cam) return;
      if (!this.confirmDiscard()) { this.select.value = this.cam; return; }
      // Through the hash, so back/forward and reloads keep the camera; app.js re-renders.
      this.api.openCamera(id);
    }
  }

  window.firelaneEditor = {
    /** Renders the editor into `container`; see the top of this file for `api`. */
    render(container, api) {
      const editor = new Editor(container, api);
      editor.start().catch((err) => { if (api.alive()) api.showError(err); });
      return editor;
    },
  };
})();
