// ringseed's built-in web page: a small client of the qBittorrent Web API v2
// on the same origin (cookie session). No framework, no build step.
//
// Every string that comes from the server (torrent names, categories, tags,
// tracker URLs and messages, error bodies) is hostile input: it is only ever
// put into the page through textContent, form values and dataset, never
// through innerHTML or HTML strings.
'use strict';

(() => {
  // Relative, so the page also works behind a reverse proxy under a sub-path.
  const API = 'api/v2/';
  const REFRESH_MS = 2000;
  const HIDDEN_REFRESH_MS = 10000;
  const TRACKER_RECHECK_MS = 30000;
  const MAX_TRACKER_FETCHES = 8;

  // qBittorrent's state strings: [label, group]. Groups drive the filters,
  // the stop/start button and the colours.
  const STATES = {
    uploading: ['Seeding', 'seeding'],
    stalledUP: ['Seeding', 'seeding'],
    forcedUP: ['Seeding (forced)', 'seeding'],
    queuedUP: ['Queued to seed', 'queued'],
    checkingUP: ['Checking', 'checking'],
    pausedUP: ['Stopped', 'stopped'],
    stoppedUP: ['Stopped', 'stopped'],
    downloading: ['Downloading', 'downloading'],
    forcedDL: ['Downloading (forced)', 'downloading'],
    metaDL: ['Fetching metadata', 'downloading'],
    forcedMetaDL: ['Fetching metadata', 'downloading'],
    stalledDL: ['Stalled', 'downloading'],
    queuedDL: ['Queued', 'queued'],
    checkingDL: ['Checking', 'checking'],
    checkingResumeData: ['Checking resume data', 'checking'],
    allocating: ['Allocating', 'downloading'],
    moving: ['Moving', 'checking'],
    pausedDL: ['Stopped', 'stopped'],
    stoppedDL: ['Stopped', 'stopped'],
    missingFiles: ['Missing files', 'error'],
    error: ['Error', 'error'],
    unknown: ['Unknown', 'unknown'],
  };
  // /torrents/trackers `status`.
  const TRACKER_STATUS = {
    0: 'disabled',
    1: 'not contacted',
    2: 'working',
    3: 'updating',
    4: 'not working',
  };

  const $ = (id) => document.getElementById(id);

  const st = {
    loggedIn: false,
    rid: 0,
    torrents: new Map(), // hash -> merged torrent object
    categories: Object.create(null), // name -> {name, savePath}
    tags: new Set(),
    server: {},
    syncMissing: false, // no sync/maindata: poll torrents/info instead
    legacyPause: false, // no torrents/stop: pause/resume (qBittorrent < 5)
    timer: null,
    inFlight: false,
    again: false,
    trackers: new Map(), // hash -> {at, list, error}
    openDetails: new Set(),
    generation: 0, // bumped on logout, so late answers are dropped
    categoriesKey: '',
  };

  class AuthError extends Error {}
  class HttpError extends Error {
    constructor(path, status, body) {
      super(`${path}: HTTP ${status}${body ? ` ${body}` : ''}`);
      this.status = status;
      this.body = body;
    }
  }

  // One API call. `data`: URLSearchParams/FormData/object for a POST,
  // undefined for a GET with `query`. A 403 means "no session": show the
  // login form.
  async function api(path, { data, query } = {}) {
    let url = API + path;
    if (query) url += `?${new URLSearchParams(query)}`;
    const init = { credentials: 'same-origin', cache: 'no-store', headers: {} };
    if (data !== undefined) {
      init.method = 'POST';
      if (data instanceof FormData || data instanceof URLSearchParams) {
        init.body = data;
      } else {
        init.body = new URLSearchParams(data);
      }
    }
    const res = await fetch(url, init);
    if (res.status === 403) {
      showLogin('Your session ended: log in again.');
      throw new AuthError('not logged in');
    }
    // Always read the body, even when empty, so that the request ends.
    const text = await res.text();
    if (!res.ok) throw new HttpError(path, res.status, text.trim().slice(0, 500));
    return { status: res.status, text };
  }

  async function apiJson(path, opts) {
    const { text } = await api(path, opts);
    return JSON.parse(text);
  }

  // ---------- formatting ----------

  function fmtBytes(n) {
    if (typeof n !== 'number' || !isFinite(n) || n < 0) return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i += 1;
    }
    return `${i === 0 ? n : n.toFixed(n < 10 ? 2 : n < 100 ? 1 : 0)} ${units[i]}`;
  }

  const fmtRate = (n) => `${fmtBytes(n || 0)}/s`;

  function fmtProgress(p) {
    if (typeof p !== 'number' || !isFinite(p)) return '–';
    if (p >= 1) return '100%';
    // Never round up to 100% before it is complete.
    return `${(Math.floor(p * 1000) / 10).toFixed(1)}%`;
  }

  function fmtRatio(r) {
    if (typeof r !== 'number' || !isFinite(r) || r < 0) return '–';
    if (r >= 9999) return '∞';
    return r.toFixed(2);
  }

  function hostOf(url) {
    try {
      const u = new URL(url);
      return u.host || url;
    } catch (_) {
      return url;
    }
  }

  function splitTags(s) {
    const out = [];
    for (const part of String(s || '').split(',')) {
      const t = part.trim();
      if (t && !out.includes(t)) out.push(t);
    }
    return out;
  }

  function stateOf(t) {
    return STATES[t.state] || [t.state ? String(t.state) : 'Unknown', 'unknown'];
  }

  // ---------- messages ----------

  let messageTimer = null;
  function message(text, kind = 'info') {
    const m = $('message');
    m.textContent = text;
    m.className = `message ${kind}`;
    m.hidden = false;
    clearTimeout(messageTimer);
    messageTimer = setTimeout(() => {
      m.hidden = true;
    }, kind === 'error' ? 15000 : 6000);
  }

  function errorText(e) {
    if (e instanceof HttpError) {
      return e.body ? `${e.body} (HTTP ${e.status})` : `HTTP ${e.status}`;
    }
    return e && e.message ? e.message : String(e);
  }

  function report(what, e) {
    if (e instanceof AuthError) return;
    message(`${what} failed: ${errorText(e)}`, 'error');
  }

  // ---------- login ----------

  function resetState() {
    st.generation += 1;
    st.rid = 0;
    st.torrents.clear();
    st.categories = dict();
    st.tags = new Set();
    st.server = {};
    st.trackers.clear();
    st.openDetails.clear();
    st.categoriesKey = '';
    clearTimeout(st.timer);
    st.timer = null;
    $('torrents').replaceChildren();
  }

  function showLogin(why) {
    const wasIn = st.loggedIn;
    st.loggedIn = false;
    resetState();
    for (const d of document.querySelectorAll('dialog[open]')) d.close('cancel');
    $('app').hidden = true;
    $('login').hidden = false;
    document.body.dataset.view = 'login';
    const err = $('login-error');
    if (why && wasIn) {
      err.textContent = why;
      err.hidden = false;
    }
    $(($('login-username').value ? 'login-password' : 'login-username')).focus();
  }

  function showApp() {
    st.loggedIn = true;
    resetState();
    $('login').hidden = true;
    $('login-error').hidden = true;
    $('app').hidden = false;
    document.body.dataset.view = 'app';
    api('app/version')
      .then((r) => {
        $('version').textContent = r.text.trim().slice(0, 40);
      })
      .catch(() => {});
    refreshNow();
  }

  async function login(ev) {
    ev.preventDefault();
    const err = $('login-error');
    const button = $('login-submit');
    err.hidden = true;
    button.disabled = true;
    try {
      const res = await fetch(`${API}auth/login`, {
        method: 'POST',
        credentials: 'same-origin',
        cache: 'no-store',
        body: new URLSearchParams({
          username: $('login-username').value,
          password: $('login-password').value,
        }),
      });
      const body = (await res.text()).trim();
      if (res.ok && body === 'Ok.') {
        $('login-password').value = '';
        showApp();
        return;
      }
      err.textContent = res.ok && body === 'Fails.'
        ? 'Wrong user name or password.'
        : `Login refused: ${body.slice(0, 300) || `HTTP ${res.status}`}`;
      err.hidden = false;
    } catch (e) {
      err.textContent = `Cannot reach the server: ${errorText(e)}`;
      err.hidden = false;
    } finally {
      button.disabled = false;
    }
  }

  async function logout() {
    try {
      await api('auth/logout', { data: {} });
    } catch (_) {
      // logged out either way
    }
    showLogin('');
    $('login-error').hidden = true;
  }

  // ---------- polling ----------

  function schedule() {
    clearTimeout(st.timer);
    if (!st.loggedIn) return;
    st.timer = setTimeout(refresh, document.hidden ? HIDDEN_REFRESH_MS : REFRESH_MS);
  }

  function refreshNow() {
    clearTimeout(st.timer);
    if (st.inFlight) {
      st.again = true;
      return;
    }
    refresh();
  }

  // Copies the server's fields; never `__proto__` (a hostile key).
  function merge(dst, src) {
    for (const [k, v] of Object.entries(src)) {
      if (k !== '__proto__') dst[k] = v;
    }
    return dst;
  }

  // Objects keyed by server strings (category names) have no prototype.
  const dict = (from) => merge(Object.create(null), from || {});

  function applyMaindata(d) {
    if (d.full_update) {
      st.torrents.clear();
      st.categories = dict();
      st.tags = new Set();
      st.server = {};
    }
    for (const [hash, t] of Object.entries(d.torrents || {})) {
      const cur = st.torrents.get(hash) || { hash };
      st.torrents.set(hash, merge(cur, t || {}));
    }
    for (const hash of d.torrents_removed || []) {
      st.torrents.delete(hash);
      st.trackers.delete(hash);
      st.openDetails.delete(hash);
    }
    for (const [name, c] of Object.entries(d.categories || {})) {
      st.categories[name] = merge(st.categories[name] || dict({ name }), c || {});
    }
    for (const name of d.categories_removed || []) delete st.categories[name];
    for (const tag of d.tags || []) st.tags.add(tag);
    for (const tag of d.tags_removed || []) st.tags.delete(tag);
    merge(st.server, d.server_state || {});
    if (typeof d.rid === 'number') st.rid = d.rid;
  }

  async function pollInfo() {
    // Without sync/maindata: the whole list each time.
    const [list, cats, tr] = await Promise.all([
      apiJson('torrents/info'),
      apiJson('torrents/categories').catch(() => ({})),
      apiJson('transfer/info').catch(() => ({})),
    ]);
    st.torrents.clear();
    for (const t of list) st.torrents.set(t.hash, merge({}, t));
    st.categories = dict();
    for (const [name, c] of Object.entries(cats || {})) st.categories[name] = dict(c);
    st.server = merge({}, tr || {});
  }

  async function refresh() {
    if (!st.loggedIn) return;
    st.inFlight = true;
    const gen = st.generation;
    try {
      if (!st.syncMissing) {
        try {
          const d = await apiJson('sync/maindata', { query: { rid: st.rid } });
          if (gen !== st.generation) return;
          applyMaindata(d);
        } catch (e) {
          if (!(e instanceof HttpError && e.status === 404)) throw e;
          st.syncMissing = true;
          await pollInfo();
        }
      } else {
        await pollInfo();
      }
      if (gen !== st.generation) return;
      await refreshTrackers(gen);
      if (gen !== st.generation) return;
      render();
      $('updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
      document.body.dataset.loaded = 'true';
      if ($('message').dataset.connection === 'lost') {
        $('message').hidden = true;
        delete $('message').dataset.connection;
      }
    } catch (e) {
      if (e instanceof AuthError) return;
      if (e instanceof HttpError) {
        report('Refresh', e);
      } else {
        message(`Connection lost (${errorText(e)}); retrying.`, 'error');
        $('message').dataset.connection = 'lost';
      }
    } finally {
      st.inFlight = false;
      if (st.again) {
        // Asked for while this one ran (an action, or a new login).
        st.again = false;
        refresh();
      } else if (gen === st.generation) {
        schedule();
      }
    }
  }

  // Tracker details: for open panels every refresh, and for torrents
  // whose `tracker` field says nothing works now and then (to tell "not
  // contacted" from "not working" and show the tracker's message).
  async function refreshTrackers(gen) {
    const now = Date.now();
    const want = [];
    for (const t of st.torrents.values()) {
      const cached = st.trackers.get(t.hash);
      if (st.openDetails.has(t.hash)) {
        want.push(t.hash);
      } else if (!t.tracker && t.trackers_count !== 0 &&
                 (!cached || now - cached.at > TRACKER_RECHECK_MS)) {
        want.push(t.hash);
      }
      if (want.length >= MAX_TRACKER_FETCHES) break;
    }
    await Promise.all(want.map(async (hash) => {
      try {
        const list = await apiJson('torrents/trackers', { query: { hash } });
        if (gen === st.generation) st.trackers.set(hash, { at: Date.now(), list, error: '' });
      } catch (e) {
        if (e instanceof AuthError) throw e;
        if (gen === st.generation) {
          st.trackers.set(hash, { at: Date.now(), list: null, error: errorText(e) });
        }
      }
    }));
  }

  // The real trackers of a /torrents/trackers answer (not the DHT, PeX and
  // LSD pseudo-entries).
  function realTrackers(list) {
    return (list || []).filter((tr) => !/^\*\* \[/.test(String(tr.url || '')));
  }

  // [css class, text] of a torrent's tracker status.
  function trackerSummary(t) {
    if (t.tracker) return ['working', `working (${hostOf(String(t.tracker))})`];
    if (t.trackers_count === 0) return ['none', 'no trackers'];
    const cached = st.trackers.get(t.hash);
    const real = cached && cached.list ? realTrackers(cached.list) : null;
    if (real) {
      if (real.length === 0) return ['none', 'no trackers'];
      const by = (s) => real.filter((tr) => tr.status === s);
      if (by(2).length) return ['working', `working (${hostOf(String(by(2)[0].url))})`];
      if (by(3).length) return ['updating', 'updating'];
      const bad = by(4);
      if (bad.length) {
        // The whole message is in the trackers panel.
        let msg = String(bad[0].msg || '');
        if (msg.length > 120) msg = `${msg.slice(0, 117)}…`;
        return ['error', msg ? `not working: ${msg}` : 'not working'];
      }
      if (by(1).length) return ['idle', 'not contacted yet'];
      return ['idle', 'disabled'];
    }
    return ['idle', 'no working tracker'];
  }

  // ---------- rendering ----------

  function sortedTorrents() {
    const list = [...st.torrents.values()];
    list.sort((a, b) => {
      const na = String(a.name || '').toLowerCase();
      const nb = String(b.name || '').toLowerCase();
      if (na !== nb) return na < nb ? -1 : 1;
      return String(a.hash) < String(b.hash) ? -1 : 1;
    });
    return list;
  }

  function matchesFilter(t) {
    const text = $('filter-text').value.trim().toLowerCase();
    if (text && !String(t.name || '').toLowerCase().includes(text)) return false;
    const cat = $('filter-category').value;
    if (cat !== '*' && String(t.category || '') !== cat) return false;
    const group = $('filter-state').value;
    if (group !== 'all' && stateOf(t)[1] !== group) return false;
    return true;
  }

  function el(tag, cls, attrs) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (attrs) for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    return e;
  }

  function field(row, name) {
    if (!row.fieldCache) row.fieldCache = Object.create(null);
    let node = row.fieldCache[name];
    if (!node) {
      node = row.querySelector(`[data-field="${name}"]`);
      row.fieldCache[name] = node;
    }
    return node;
  }

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  function makeRow(hash) {
    const row = el('article', 'torrent');
    row.dataset.hash = hash;
    row.id = `t-${hash}`;

    const head = el('div', 't-head');
    const name = el('h3', 't-name', { 'data-field': 'name' });
    const state = el('span', 't-state badge', { 'data-field': 'state' });
    head.append(name, state);

    const bar = el('div', 't-bar', { role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100' });
    const fill = el('div', 't-bar-fill');
    bar.append(fill);

    const meta = el('dl', 't-meta');
    const item = (label, key, cls) => {
      const box = el('div', `t-item ${cls}`);
      const dt = el('dt');
      dt.textContent = label;
      const dd = el('dd', '', { 'data-field': key });
      box.append(dt, dd);
      meta.append(box);
    };
    item('Progress', 'progress', 't-progress');
    item('Size', 'size', 't-size');
    item('Down', 'dlspeed', 't-dl');
    item('Up', 'upspeed', 't-ul');
    item('Ratio', 'ratio', 't-ratio');
    item('Peers', 'peers', 't-peers');
    item('Tracker', 'tracker', 't-tracker');
    item('Category', 'category', 't-category');
    item('Tags', 'tags', 't-tags');

    const message = el('p', 't-message error', { 'data-field': 'message' });
    message.hidden = true;

    const actions = el('div', 't-actions');
    const button = (action, text, cls) => {
      const b = el('button', cls || '', { type: 'button', 'data-action': action });
      b.textContent = text;
      actions.append(b);
      return b;
    };
    button('stop', 'Stop');
    button('start', 'Start', 'primary');
    button('edit', 'Category & tags');
    button('trackers', 'Trackers');
    button('delete', 'Delete', 'danger');

    const details = el('div', 't-details', { 'data-field': 'details' });
    details.hidden = true;

    row.append(head, bar, meta, message, actions, details);
    return row;
  }

  function renderDetails(row, t) {
    const box = field(row, 'details');
    const open = st.openDetails.has(t.hash);
    box.hidden = !open;
    row.querySelector('[data-action="trackers"]').setAttribute('aria-expanded', String(open));
    if (!open) return;
    const cached = st.trackers.get(t.hash);
    const nodes = [];
    const h = el('h4');
    h.textContent = 'Trackers';
    nodes.push(h);
    if (!cached) {
      const p = el('p', 'muted');
      p.textContent = 'Loading…';
      nodes.push(p);
    } else if (cached.error) {
      const p = el('p', 'error');
      p.textContent = cached.error;
      nodes.push(p);
    } else {
      const ul = el('ul', 'tracker-list');
      for (const tr of cached.list || []) {
        const li = el('li', 'tracker');
        const pseudo = /^\*\* \[/.test(String(tr.url || ''));
        if (pseudo) li.classList.add('pseudo');
        li.dataset.status = String(tr.status);
        const url = el('span', 'tracker-url');
        url.textContent = String(tr.url ?? '');
        const status = el('span', `tracker-status s${Number(tr.status)}`);
        status.textContent = TRACKER_STATUS[tr.status] || String(tr.status);
        li.append(url, status);
        if (!pseudo) {
          const info = el('span', 'tracker-info muted');
          const parts = [];
          if (typeof tr.num_seeds === 'number' && tr.num_seeds >= 0) parts.push(`${tr.num_seeds} seeds`);
          if (typeof tr.num_leeches === 'number' && tr.num_leeches >= 0) parts.push(`${tr.num_leeches} leechers`);
          if (tr.msg) parts.push(String(tr.msg));
          info.textContent = parts.join(' · ');
          li.append(info);
        }
        ul.append(li);
      }
      nodes.push(ul);
    }
    box.replaceChildren(...nodes);
  }

  function updateRow(row, t) {
    const [label, group] = stateOf(t);
    const progress = typeof t.progress === 'number' ? t.progress : 0;
    row.dataset.state = String(t.state || '');
    row.dataset.group = group;
    row.dataset.progress = String(progress);
    row.dataset.category = String(t.category || '');
    row.dataset.tags = splitTags(t.tags).join(',');
    row.dataset.name = String(t.name || '');

    setText(field(row, 'name'), String(t.name ?? t.hash));
    const stateEl = field(row, 'state');
    setText(stateEl, label);
    stateEl.className = `t-state badge g-${group}`;

    const pct = Math.max(0, Math.min(100, progress * 100));
    const bar = row.querySelector('.t-bar');
    bar.setAttribute('aria-valuenow', pct.toFixed(1));
    bar.querySelector('.t-bar-fill').style.width = `${pct}%`;
    bar.className = `t-bar g-${group}`;

    setText(field(row, 'progress'), fmtProgress(progress));
    setText(field(row, 'size'), fmtBytes(t.size ?? t.total_size));
    setText(field(row, 'dlspeed'), fmtRate(t.dlspeed));
    setText(field(row, 'upspeed'), fmtRate(t.upspeed));
    setText(field(row, 'ratio'), fmtRatio(t.ratio));
    const seeds = Number(t.num_seeds) || 0;
    const leechs = Number(t.num_leechs) || 0;
    setText(field(row, 'peers'), `${seeds + leechs} (${seeds} seeds, ${leechs} leechers)`);
    const [tcls, ttext] = trackerSummary(t);
    const trackerEl = field(row, 'tracker');
    setText(trackerEl, ttext);
    trackerEl.className = `tracker-${tcls}`;
    trackerEl.dataset.status = tcls;
    setText(field(row, 'category'), String(t.category || '—'));
    const tags = splitTags(t.tags);
    setText(field(row, 'tags'), tags.length ? tags.join(', ') : '—');

    const msg = field(row, 'message');
    const text = group === 'error' && t.state === 'missingFiles'
      ? 'The files are missing.'
      : '';
    setText(msg, text);
    msg.hidden = !text;

    const stopped = group === 'stopped';
    row.querySelector('[data-action="stop"]').hidden = stopped;
    row.querySelector('[data-action="start"]').hidden = !stopped;
    renderDetails(row, t);
  }

  function renderCategories() {
    const names = Object.keys(st.categories).sort();
    const key = JSON.stringify(names);
    if (key === st.categoriesKey) return;
    st.categoriesKey = key;
    const list = $('category-list');
    list.replaceChildren(...names.map((n) => {
      const o = el('option');
      o.value = n;
      return o;
    }));
    const sel = $('filter-category');
    const keep = sel.value;
    const opts = [];
    const all = el('option');
    all.value = '*';
    all.textContent = 'All categories';
    const none = el('option');
    none.value = '';
    none.textContent = 'No category';
    opts.push(all, none);
    for (const n of names) {
      const o = el('option');
      o.value = n;
      o.textContent = n;
      opts.push(o);
    }
    sel.replaceChildren(...opts);
    sel.value = names.includes(keep) || keep === '' || keep === '*' ? keep : '*';
  }

  function render() {
    renderCategories();
    const box = $('torrents');
    const existing = new Map();
    for (const row of box.children) existing.set(row.dataset.hash, row);
    const wanted = [];
    for (const t of sortedTorrents()) {
      if (!matchesFilter(t)) continue;
      let row = existing.get(t.hash);
      if (!row) row = makeRow(t.hash);
      updateRow(row, t);
      wanted.push(row);
      existing.delete(t.hash);
    }
    for (const row of existing.values()) row.remove();
    // Put the rows in order, moving only those out of place.
    let i = 0;
    for (const row of wanted) {
      if (box.children[i] !== row) box.insertBefore(row, box.children[i] || null);
      i += 1;
    }
    const n = st.torrents.size;
    $('count').textContent = `${n} torrent${n === 1 ? '' : 's'}${wanted.length !== n ? ` (${wanted.length} shown)` : ''}`;
    $('empty').hidden = wanted.length !== 0;
    $('empty').textContent = n === 0 ? 'No torrents yet: add one with “+ Add”.' : 'No torrent matches the filter.';
    $('global-dl').textContent = fmtRate(st.server.dl_info_speed);
    $('global-ul').textContent = fmtRate(st.server.up_info_speed);
  }

  // ---------- actions ----------

  async function stopStart(hash, start) {
    const [modern, legacy] = start ? ['start', 'resume'] : ['stop', 'pause'];
    const data = { hashes: hash };
    if (!st.legacyPause) {
      try {
        await api(`torrents/${modern}`, { data });
        return;
      } catch (e) {
        if (!(e instanceof HttpError && e.status === 404)) throw e;
        st.legacyPause = true; // qBittorrent before 5.0
      }
    }
    await api(`torrents/${legacy}`, { data });
  }

  async function ensureCategory(name) {
    if (!name || Object.prototype.hasOwnProperty.call(st.categories, name)) return;
    try {
      await api('torrents/createCategory', { data: { category: name, savePath: '' } });
    } catch (e) {
      // 409: it exists already (made meanwhile): fine.
      if (!(e instanceof HttpError && e.status === 409)) throw e;
    }
  }

  function openDialog(d) {
    if (typeof d.showModal === 'function') d.showModal();
    else d.setAttribute('open', '');
  }

  function closeDialog(d, value) {
    if (typeof d.close === 'function') d.close(value);
    else d.removeAttribute('open');
  }

  let dialogHash = null;

  function askDelete(hash) {
    const t = st.torrents.get(hash);
    if (!t) return;
    dialogHash = hash;
    $('delete-name').textContent = String(t.name ?? hash);
    $('delete-files').checked = false;
    openDialog($('delete-dialog'));
  }

  async function doDelete(ev) {
    ev.preventDefault();
    const d = $('delete-dialog');
    const submitter = ev.submitter;
    if (!submitter || submitter.value !== 'delete' || !dialogHash) {
      closeDialog(d, 'cancel');
      return;
    }
    const hash = dialogHash;
    const deleteFiles = $('delete-files').checked;
    const confirm = $('delete-confirm');
    confirm.disabled = true;
    try {
      await api('torrents/delete', { data: { hashes: hash, deleteFiles: String(deleteFiles) } });
      closeDialog(d, 'delete');
      message(deleteFiles ? 'Deleted, with its files.' : 'Deleted (files kept).');
      refreshNow();
    } catch (e) {
      closeDialog(d, 'cancel');
      report('Delete', e);
    } finally {
      confirm.disabled = false;
    }
  }

  function askEdit(hash) {
    const t = st.torrents.get(hash);
    if (!t) return;
    dialogHash = hash;
    $('edit-name').textContent = String(t.name ?? hash);
    $('edit-category').value = String(t.category || '');
    $('edit-tags').value = splitTags(t.tags).join(', ');
    $('edit-error').hidden = true;
    openDialog($('edit-dialog'));
  }

  async function doEdit(ev) {
    ev.preventDefault();
    const d = $('edit-dialog');
    const submitter = ev.submitter;
    if (!submitter || submitter.value !== 'save' || !dialogHash) {
      closeDialog(d, 'cancel');
      return;
    }
    const hash = dialogHash;
    const t = st.torrents.get(hash) || {};
    const category = $('edit-category').value.trim();
    const oldTags = splitTags(t.tags);
    const newTags = splitTags($('edit-tags').value);
    const add = newTags.filter((x) => !oldTags.includes(x));
    const remove = oldTags.filter((x) => !newTags.includes(x));
    const save = $('edit-save');
    save.disabled = true;
    try {
      if (category !== String(t.category || '')) {
        await ensureCategory(category);
        await api('torrents/setCategory', { data: { hashes: hash, category } });
      }
      if (remove.length) await api('torrents/removeTags', { data: { hashes: hash, tags: remove.join(',') } });
      if (add.length) await api('torrents/addTags', { data: { hashes: hash, tags: add.join(',') } });
      closeDialog(d, 'save');
      message('Saved.');
      refreshNow();
    } catch (e) {
      if (e instanceof AuthError) return;
      const err = $('edit-error');
      err.textContent = `Not saved: ${errorText(e)}`;
      err.hidden = false;
    } finally {
      save.disabled = false;
    }
  }

  async function onTorrentClick(ev) {
    const button = ev.target.closest('button[data-action]');
    if (!button) return;
    const row = button.closest('article.torrent');
    if (!row) return;
    const hash = row.dataset.hash;
    const action = button.dataset.action;
    if (action === 'delete') return askDelete(hash);
    if (action === 'edit') return askEdit(hash);
    if (action === 'trackers') {
      if (st.openDetails.has(hash)) st.openDetails.delete(hash);
      else st.openDetails.add(hash);
      const t = st.torrents.get(hash);
      if (t) renderDetails(row, t);
      refreshNow();
      return;
    }
    if (action === 'stop' || action === 'start') {
      button.disabled = true;
      try {
        await stopStart(hash, action === 'start');
        refreshNow();
      } catch (e) {
        report(action === 'start' ? 'Start' : 'Stop', e);
      } finally {
        button.disabled = false;
      }
    }
  }

  async function addTorrents(ev) {
    ev.preventDefault();
    const result = $('add-result');
    const files = $('add-file').files;
    const urls = $('add-urls').value.split(/\r?\n/).map((s) => s.trim()).filter(Boolean);
    result.hidden = false;
    result.className = 'result';
    if (!files.length && !urls.length) {
      result.textContent = 'Choose a .torrent file or give a magnet link or URL.';
      result.classList.add('error');
      return;
    }
    const fd = new FormData();
    for (const f of files) fd.append('torrents', f, f.name);
    if (urls.length) fd.append('urls', urls.join('\n'));
    const savepath = $('add-savepath').value.trim();
    const category = $('add-category').value.trim();
    const tags = splitTags($('add-tags').value);
    if (savepath) fd.append('savepath', savepath);
    if (category) fd.append('category', category);
    if (tags.length) fd.append('tags', tags.join(','));
    if ($('add-stopped').checked) {
      fd.append('stopped', 'true'); // qBittorrent 5
      fd.append('paused', 'true'); // before 5
    }
    const button = $('add-submit');
    button.disabled = true;
    result.textContent = 'Adding…';
    try {
      await ensureCategory(category);
      const body = (await api('torrents/add', { data: fd })).text.trim();
      if (body === 'Fails.') {
        result.textContent = 'The server refused it (already added, not a valid torrent, or a kind of link it does not support).';
        result.classList.add('error');
        return;
      }
      const n = files.length + urls.length;
      result.textContent = `Added ${n} torrent${n === 1 ? '' : 's'}.`;
      result.classList.add('ok');
      $('add-file').value = '';
      $('add-urls').value = '';
      refreshNow();
    } catch (e) {
      if (e instanceof AuthError) return;
      result.textContent = `Not added: ${errorText(e)}`;
      result.classList.add('error');
    } finally {
      button.disabled = false;
    }
  }

  function toggleAdd(open) {
    const form = $('add-form');
    const show = open === undefined ? form.hidden : open;
    form.hidden = !show;
    $('add-toggle').setAttribute('aria-expanded', String(show));
    if (show) {
      $('add-result').hidden = true;
    }
  }

  // ---------- start ----------

  async function boot() {
    $('login-form').addEventListener('submit', login);
    $('logout').addEventListener('click', logout);
    $('add-toggle').addEventListener('click', () => toggleAdd());
    $('add-cancel').addEventListener('click', () => toggleAdd(false));
    $('add-form').addEventListener('submit', addTorrents);
    $('torrents').addEventListener('click', onTorrentClick);
    $('delete-form').addEventListener('submit', doDelete);
    $('edit-form').addEventListener('submit', doEdit);
    for (const id of ['filter-text', 'filter-category', 'filter-state']) {
      $(id).addEventListener('input', render);
    }
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden && st.loggedIn) refreshNow();
    });
    // A session cookie from an earlier visit is enough: ask the API.
    try {
      const res = await fetch(`${API}app/version`, { credentials: 'same-origin', cache: 'no-store' });
      await res.text();
      if (res.ok) {
        showApp();
        return;
      }
    } catch (_) {
      // not reachable: the login form says so when used
    }
    showLogin('');
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
  else boot();
})();
