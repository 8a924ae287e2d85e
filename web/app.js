/* kfleet dashboard: one page, plain JavaScript, no build step, no CDN.
 *
 * Everything it shows comes from kfleetd's API with the user's bearer token
 * (kept in this tab's sessionStorage): the same paths, roles, Origin and
 * Content-Type rules as kubectl and the kfleet CLI. Pages follow the API's
 * watches (fetch streams of one JSON event a line), so a change made with
 * the CLI shows without a reload. Text always goes in as text nodes (h()),
 * never as HTML. docs/internals/ui.md describes the pages and their calls.
 */
'use strict';

const API = '/apis/kfleet.io/v1';
const PHASES = ['Pending', 'Scheduled', 'Provisioning', 'Running', 'Degraded', 'Upgrading',
  'Migrating', 'Deleting'];
const GRADES = ['G0', 'G1', 'G2', 'G3', 'G4', 'G5'];
const PAGE_SIZES = [50, 100, 500];

const state = {
  token: sessionStorage.getItem('kfleet.token') || '',
  user: null,
  role: null,
  auth: false,
  kinds: new Set(), // plurals /apis/kfleet.io/v1 lists
  watches: [], // open watches of the current page
  timers: [],
  epoch: 0, // bumps on every page change: late answers of an old page are dropped
};

/* --- DOM ------------------------------------------------------------------ */

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'style') Object.assign(el.style, v); // CSSOM: the CSP forbids style attributes
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function $(sel) { return document.querySelector(sel); }

/* Replaces el's content with children (arrays flattened, nulls skipped). */
function fill(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

function pct(x) { return x === undefined || x === null ? '–' : `${Math.round(x * 100)}%`; }

function phaseChip(p, href) {
  const txt = p || 'Unknown';
  return href ? h('a', { class: `chip phase-${txt}`, href }, txt)
    : h('span', { class: `chip phase-${txt}` }, txt);
}

function age(ts) {
  if (!ts) return '';
  const s = Math.max(0, (Date.now() - Date.parse(ts)) / 1000);
  if (s < 120) return `${Math.round(s)}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

function get(o, path, dflt) {
  let v = o;
  for (const k of path.split('.')) {
    if (v === null || typeof v !== 'object' || !(k in v)) return dflt;
    v = v[k];
  }
  return v;
}

function banner(msg) {
  const b = $('#banner');
  b.textContent = msg || '';
  b.hidden = !msg;
}

function canWrite() { return state.role === 'admin' || state.role === 'editor'; }

/* --- the API -------------------------------------------------------------- */

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

function headers(extra) {
  const hd = Object.assign({ Accept: 'application/json' }, extra || {});
  if (state.token) hd.Authorization = `Bearer ${state.token}`;
  return hd;
}

async function api(method, path, body, contentType) {
  const opts = { method, headers: headers(), credentials: 'omit', cache: 'no-store' };
  if (body !== undefined) {
    opts.headers['Content-Type'] = contentType || 'application/json';
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(path, opts);
  let json = null;
  try { json = await resp.json(); } catch (e) { json = null; }
  if (resp.status === 401) {
    if (state.token) signOut('the token was refused (401); sign in again');
    else showLogin('');
    throw new ApiError(401, json);
  }
  if (!resp.ok) throw new ApiError(resp.status, json);
  return json;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

async function list(plural, params) {
  return api('GET', `${API}/${plural}${query(params)}`);
}

/* Every object of a kind, page by page (small kinds: regions, units, ...). */
async function listAll(plural, params) {
  let items = [];
  let cont = '';
  let rv = '';
  do {
    const l = await list(plural, Object.assign({}, params, { limit: 1000, continue: cont }));
    items = items.concat(l.items || []);
    cont = get(l, 'metadata.continue', '');
    if (!rv) rv = get(l, 'metadata.resourceVersion', '');
  } while (cont);
  return { items, resourceVersion: rv };
}

/* A watch: onEvent(type, object) for each event after resourceVersion rv;
 * when the server ends the stream (its timeout) it resumes from the last
 * version seen; on 410 Gone or an ERROR it calls onEvent('RESYNC') and the
 * page reloads what it shows. Stopped with the page (stopWatches). */
function watch(plural, params, rv, onEvent) {
  const w = { ctrl: null, stopped: false, rv };
  const run = async () => {
    while (!w.stopped) {
      w.ctrl = new AbortController();
      const p = Object.assign({}, params, {
        watch: 'true', resourceVersion: w.rv, allowWatchBookmarks: 'true',
      });
      try {
        const resp = await fetch(`${API}/${plural}${query(p)}`, {
          headers: headers(), signal: w.ctrl.signal, credentials: 'omit', cache: 'no-store',
        });
        if (resp.status === 410) { onEvent('RESYNC'); return; }
        if (!resp.ok) throw new Error(`watch ${plural}: HTTP ${resp.status}`);
        setLive(true);
        const reader = resp.body.getReader();
        const dec = new TextDecoder();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          let nl;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (!line) continue;
            const ev = JSON.parse(line);
            const v = get(ev, 'object.metadata.resourceVersion', '');
            if (ev.type === 'ERROR') { onEvent('RESYNC'); return; }
            if (v) w.rv = v;
            if (ev.type !== 'BOOKMARK') onEvent(ev.type, ev.object);
          }
        }
      } catch (e) {
        if (w.stopped) return;
        setLive(false);
        await new Promise((r) => setTimeout(r, 2000));
      }
    }
  };
  state.watches.push(w);
  run();
  return w;
}

function stopWatches() {
  for (const w of state.watches) {
    w.stopped = true;
    if (w.ctrl) w.ctrl.abort();
  }
  state.watches = [];
  for (const t of state.timers) clearTimeout(t);
  state.timers = [];
}

function setLive(on) {
  const el = $('#live');
  el.hidden = false;
  el.classList.toggle('off', !on);
  el.textContent = on ? 'live' : 'reconnecting';
}

/* Calls fn at most every ms milliseconds while events keep coming. */
function debounce(fn, ms) {
  let t = null;
  return () => {
    if (t) return;
    t = setTimeout(() => { t = null; fn(); }, ms);
    state.timers.push(t);
  };
}

/* --- session -------------------------------------------------------------- */

async function signIn() {
  let s;
  try {
    s = await api('GET', '/ui/session');
  } catch (e) {
    if (e.status !== 401) showLogin(`kfleetd did not answer: ${e.message}`);
    return false;
  }
  state.user = s.user;
  state.role = s.role;
  state.auth = s.authentication;
  const disc = await api('GET', API);
  state.kinds = new Set((disc.resources || []).map((r) => r.name).filter((n) => !n.includes('/')));
  $('#login').hidden = true;
  $('#nav').hidden = false;
  $('#signout').hidden = !state.auth;
  const who = $('#whoami');
  who.replaceChildren(state.auth ? `${state.user} (${state.role})` : 'no authentication (loopback)');
  if (!canWrite()) who.append(' ', h('span', { class: 'readonly', id: 'readonly' }, 'read-only'));
  return true;
}

function showLogin(msg) {
  stopWatches();
  $('#view').replaceChildren();
  $('#nav').hidden = true;
  $('#signout').hidden = true;
  $('#whoami').replaceChildren();
  $('#login').hidden = false;
  $('#login-error').textContent = msg || '';
  $('#token').focus();
}

function signOut(msg) {
  sessionStorage.removeItem('kfleet.token');
  state.token = '';
  showLogin(msg);
}

/* --- router --------------------------------------------------------------- */

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [p, q] = raw.split('?');
  return { parts: p.split('/').filter(Boolean).map(decodeURIComponent),
    params: new URLSearchParams(q || '') };
}

async function render() {
  stopWatches();
  const epoch = ++state.epoch;
  const { parts, params } = parseHash();
  const page = parts[0] || 'overview';
  for (const a of document.querySelectorAll('#nav a'))
    a.classList.toggle('active', a.dataset.nav === page);
  const view = $('#view');
  fill(view, h('p', { class: 'muted' }, 'Loading…'));
  try {
    if (page === 'clusters' && parts[1]) await pageCluster(view, parts[1], epoch);
    else if (page === 'clusters') await pageClusters(view, params, epoch);
    else if (page === 'work') await pageWork(view, epoch);
    else await pageOverview(view, epoch);
    // the first render of this page, for bench/ui (performance.getEntriesByName)
    if (current(epoch)) performance.mark(`kf-render:${page}${parts[1] ? ':one' : ''}`);
  } catch (e) {
    if (e.status === 401) return;
    fill(view, h('p', { class: 'error' }, `Could not load this page: ${e.message}`));
  }
}

function current(epoch) { return epoch === state.epoch; }

/* --- overview ------------------------------------------------------------- */

/* Counts from kfleetd's /metrics (kfleet_guest_clusters by phase, grade and
 * unit; kfleet_hosts[_ready] by unit and zone): one small answer whatever the
 * fleet's size. null when the monitoring controller does not run. */
async function fleetCounts() {
  const resp = await fetch('/metrics', { headers: headers({ Accept: 'text/plain' }),
    credentials: 'omit', cache: 'no-store' });
  if (!resp.ok) return null;
  const text = await resp.text();
  const out = { clusters: [], hosts: {}, ready: {} };
  let seen = false;
  const re = /^(kfleet_guest_clusters|kfleet_hosts|kfleet_hosts_ready)\{([^}]*)\} ([0-9.eE+-]+)$/;
  for (const line of text.split('\n')) {
    if (line.startsWith('# TYPE kfleet_guest_clusters ')) seen = true;
    const m = re.exec(line);
    if (!m) continue;
    const labels = {};
    for (const kv of m[2].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[kv[1]] = kv[2];
    const n = Number(m[3]);
    if (m[1] === 'kfleet_guest_clusters') out.clusters.push({ ...labels, n });
    else out[m[1] === 'kfleet_hosts' ? 'hosts' : 'ready'][`${labels.unit}\t${labels.zone}`] = n;
  }
  return seen ? out : null;
}

/* The same counts from LISTs, when /metrics has none. */
async function fleetCountsByList() {
  const out = { clusters: [], hosts: {}, ready: {} };
  const agg = {};
  const cl = await listAll('guestclusters');
  for (const c of cl.items) {
    const k = `${get(c, 'status.phase', 'Pending')}\t${get(c, 'status.grade', '')}\t${get(c, 'status.unit', '')}`;
    agg[k] = (agg[k] || 0) + 1;
  }
  for (const [k, n] of Object.entries(agg)) {
    const [phase, grade, unit] = k.split('\t');
    out.clusters.push({ phase, grade, unit, n });
  }
  const hosts = await listAll('hosts');
  for (const x of hosts.items) {
    if (get(x, 'spec.role') !== 'meta') continue;
    const k = `${get(x, 'spec.unit', '')}\t${get(x, 'spec.zone', '')}`;
    out.hosts[k] = (out.hosts[k] || 0) + 1;
    out.ready[k] = (out.ready[k] || 0) + (get(x, 'status.ready') ? 1 : 0);
  }
  return out;
}

function waterBar(res, u) {
  const ratio = get(u, `status.waterLevel.${res}`);
  const mark = get(u, 'status.mark', get(u, 'spec.waterLevel', 0.6));
  const w = Math.min(1, ratio || 0);
  return h('div', { class: 'res', dataset: { res } },
    h('div', { class: 'bar-label' },
      h('span', {}, `${res} ${pct(ratio)}`), h('span', {}, `mark ${pct(mark)}`)),
    h('div', { class: 'bar', title: `${res}: requests ${pct(ratio)} of allocatable; mark ${pct(mark)}` },
      h('div', { class: `fill${ratio > mark ? ' over' : ''}`, style: { width: `${(w * 100).toFixed(1)}%` } }),
      h('div', { class: 'mark', style: { left: `${(Math.min(1, mark) * 100).toFixed(1)}%` } })));
}

function unitCard(u, counts) {
  const name = u.metadata.name;
  const byPhase = {};
  for (const c of counts.clusters) if (c.unit === name) byPhase[c.phase] = (byPhase[c.phase] || 0) + c.n;
  const zones = get(u, 'spec.zones', []).map((z) => {
    const k = `${name}\t${z}`;
    const total = counts.hosts[k] || 0;
    const ready = counts.ready[k] || 0;
    const cls = total && ready === total ? 'zone' : ready ? 'zone part' : 'zone down';
    return h('span', { class: cls, title: `${ready} of ${total} hosts Ready in ${z}` },
      `${z} ${ready}/${total}`);
  });
  const grades = get(u, 'status.clustersByGrade', {});
  const cordoned = get(u, 'spec.cordoned', false);
  const above = get(u, 'status.aboveWaterLevel', false);
  const card = h('div', { class: `unit${above ? ' above' : ''}`, dataset: { unit: name } },
    h('div', { class: 'unit-head' },
      h('h3', {}, h('a', { href: `#/clusters?unit=${encodeURIComponent(name)}` }, name)),
      h('span', { class: 'muted' }, `${get(u, 'status.clusters', 0)} clusters · ${get(u, 'status.nodes', 0)} nodes`),
      cordoned ? h('span', { class: 'chip phase-Pending' }, 'cordoned') : null,
      above ? h('span', { class: 'chip phase-Pending' }, `needs ${get(u, 'status.hostsNeeded', '?')} hosts`) : null),
    waterBar('cpu', u), waterBar('memory', u),
    h('div', { class: 'chips' },
      Object.keys(byPhase).sort((a, b) => PHASES.indexOf(a) - PHASES.indexOf(b)).map((p) =>
        h('a', { class: `chip phase-${p}`, href: `#/clusters?unit=${encodeURIComponent(name)}&phase=${p}` },
          `${p} ${byPhase[p]}`)),
      GRADES.filter((g) => grades[g]).map((g) =>
        h('a', { class: 'chip', href: `#/clusters?unit=${encodeURIComponent(name)}&grade=${g}` }, `${g} ${grades[g]}`))),
    h('div', { class: 'zones' }, 'hosts Ready:', zones));
  if (canWrite()) {
    card.append(h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'cordon', onclick: () => cordon(name, !cordoned) },
        cordoned ? 'Uncordon' : 'Cordon')));
  }
  return card;
}

async function cordon(unit, on) {
  try {
    await api('PATCH', `${API}/units/${encodeURIComponent(unit)}`, { spec: { cordoned: on } },
      'application/merge-patch+json');
  } catch (e) {
    banner(`Could not ${on ? 'cordon' : 'uncordon'} ${unit}: ${e.message}`);
  }
}

async function pageOverview(view, epoch) {
  const [regions, units, probe] = await Promise.all([listAll('regions'), listAll('units'),
    list('guestclusters', { limit: 1 })]);
  let counts = await fleetCounts();
  const fromMetrics = !!counts;
  if (!counts) counts = await fleetCountsByList();
  if (!current(epoch)) return;
  drawOverview(view, regions.items, units.items, counts, fromMetrics);
  const reload = debounce(async () => {
    try {
      const [r2, u2] = await Promise.all([listAll('regions'), listAll('units')]);
      const c2 = fromMetrics ? await fleetCounts() : await fleetCountsByList();
      if (current(epoch) && c2) drawOverview(view, r2.items, u2.items, c2, fromMetrics);
    } catch (e) { /* the next event retries */ }
  }, 700);
  const onEvent = (t) => (t === 'RESYNC' ? render() : reload());
  watch('regions', {}, regions.resourceVersion, onEvent);
  watch('units', {}, units.resourceVersion, onEvent);
  watch('guestclusters', {}, get(probe, 'metadata.resourceVersion', ''), onEvent);
  watch('hosts', {}, get(probe, 'metadata.resourceVersion', ''), onEvent);
}

function drawOverview(view, regions, units, counts, fromMetrics) {
  const phaseTotals = {};
  const gradeTotals = {};
  let total = 0;
  for (const c of counts.clusters) {
    phaseTotals[c.phase] = (phaseTotals[c.phase] || 0) + c.n;
    if (c.grade) gradeTotals[c.grade] = (gradeTotals[c.grade] || 0) + c.n;
    total += c.n;
  }
  const hostsTotal = Object.values(counts.hosts).reduce((a, b) => a + b, 0);
  const hostsReady = Object.values(counts.ready).reduce((a, b) => a + b, 0);
  const above = units.filter((u) => get(u, 'status.aboveWaterLevel')).length;
  const byRegion = {};
  for (const u of units) (byRegion[get(u, 'spec.region', '')] ||= []).push(u);
  const regionNames = [...new Set(regions.map((r) => r.metadata.name).concat(Object.keys(byRegion)))].sort();
  const pendingByRegion = {};
  fill(view, 
    h('h1', {}, 'Fleet overview'),
    h('div', { class: 'tiles' },
      h('div', { class: 'tile', id: 'tile-clusters' }, h('div', { class: 'n' }, total.toLocaleString('en')), h('div', { class: 'l' }, 'guest clusters')),
      h('div', { class: 'tile' }, h('div', { class: 'n' }, regionNames.length), h('div', { class: 'l' }, 'regions')),
      h('div', { class: 'tile' }, h('div', { class: 'n' }, units.length), h('div', { class: 'l' }, `units${above ? `, ${above} above the water level` : ''}`)),
      h('div', { class: 'tile', id: 'tile-hosts' }, h('div', { class: 'n' }, `${hostsReady}/${hostsTotal}`), h('div', { class: 'l' }, 'meta hosts Ready'))),
    h('div', { class: 'chips', id: 'phases' },
      PHASES.filter((p) => phaseTotals[p]).map((p) => h('a', { class: `chip phase-${p}`, href: `#/clusters?phase=${p}` }, `${p} ${phaseTotals[p].toLocaleString('en')}`)),
      GRADES.filter((g) => gradeTotals[g]).map((g) => h('a', { class: 'chip', href: `#/clusters?grade=${g}` }, `${g} ${gradeTotals[g].toLocaleString('en')}`))),
    regionNames.map((rn) => {
      const r = regions.find((x) => x.metadata.name === rn);
      const us = (byRegion[rn] || []).sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
      pendingByRegion[rn] = 0;
      return h('section', { class: 'region', dataset: { region: rn } },
        h('div', { class: 'region-head' },
          h('h2', {}, h('a', { href: `#/clusters?region=${encodeURIComponent(rn)}` }, rn)),
          h('span', { class: 'muted' }, `zones ${get(r, 'spec.zones', []).join(', ') || '–'}`),
          get(r, 'spec.complianceTags', []).map((t) => h('span', { class: 'chip' }, t)),
          h('span', { class: 'muted' }, `${us.length} units`)),
        us.length ? h('div', { class: 'units' }, us.map((u) => unitCard(u, counts)))
          : h('p', { class: 'muted' }, 'No units in this region yet.'));
    }),
    h('p', { class: 'muted' }, fromMetrics ? 'Counts from kfleetd\'s fleet-state metrics; bars are requests over allocatable, the black line the unit\'s water level.'
      : 'Counts from the cluster and host lists; bars are requests over allocatable, the black line the unit\'s water level.'));
}

/* --- clusters list -------------------------------------------------------- */

const FILTERS = [
  { key: 'region', field: 'spec.region', label: 'Region' },
  { key: 'unit', field: 'status.unit', label: 'Unit' },
  { key: 'phase', field: 'status.phase', label: 'Phase', options: PHASES },
  { key: 'grade', field: 'status.grade', label: 'Grade', options: GRADES },
  { key: 'profile', field: 'spec.profile', label: 'Profile' },
  { key: 'version', field: 'spec.version', label: 'Version' },
];

/* The list's query from the page's filters: field selectors for the
 * filters, metadata.name for a name, a label selector for "key=value". */
function clusterQuery(params) {
  const fields = [];
  for (const f of FILTERS) {
    const v = params.get(f.key);
    if (v) fields.push(`${f.field}=${v}`);
  }
  const q = (params.get('q') || '').trim();
  let labels = '';
  // "a=b", "a!=b", "!a", "a in (x,y)", "a notin (x)": a label selector; else
  // the start of a name (kfleetd's "metadata.name^=": it reads that range only)
  if (q && /[=!]|\s(not)?in\s*\(/.test(q)) labels = q;
  else if (q) fields.push(`metadata.name^=${q.replace(/[\\,=]/g, '\\$&')}`);
  return { fieldSelector: fields.join(','), labelSelector: labels };
}

async function pageClusters(view, params, epoch) {
  const sel = clusterQuery(params);
  const size = Number(params.get('limit')) || 100;
  const conts = (params.get('pages') || '').split('~').filter(Boolean); // continue tokens of pages so far
  const cont = conts.length ? conts[conts.length - 1] : '';
  const [regions, units, profiles, page] = await Promise.all([
    listAll('regions'), listAll('units'), listAll('profiles'),
    list('guestclusters', Object.assign({ limit: size, continue: cont }, sel))]);
  if (!current(epoch)) return;
  const choices = {
    region: regions.items.map((x) => x.metadata.name),
    unit: units.items.map((x) => x.metadata.name),
    profile: profiles.items.map((x) => x.metadata.name),
  };
  const go = (changes) => {
    const p = new URLSearchParams(params);
    for (const [k, v] of Object.entries(changes)) { if (v) p.set(k, v); else p.delete(k); }
    location.hash = `#/clusters?${p.toString()}`;
  };
  const form = h('form', { class: 'filters', id: 'filters', onsubmit: (e) => {
    e.preventDefault();
    const fd = new FormData(e.target);
    const ch = { pages: '' };
    for (const [k, v] of fd.entries()) ch[k] = String(v).trim();
    go(ch);
  } },
  h('label', {}, 'Name starts with, or label selector', h('input', { name: 'q', value: params.get('q') || '', placeholder: 'web-, or team=a', size: 18 })),
  FILTERS.map((f) => {
    const cur = params.get(f.key) || '';
    let opts = f.options || choices[f.key];
    if (opts && cur && !opts.includes(cur)) opts = opts.concat([cur]); // a name no object has (yet)
    if (!opts) return h('label', {}, f.label, h('input', { name: f.key, value: cur, size: 8, placeholder: 'any' }));
    return h('label', {}, f.label, h('select', { name: f.key, onchange: (e) => e.target.form.requestSubmit() },
      h('option', { value: '' }, 'any'), opts.map((o) => h('option', { value: o, selected: o === cur }, o))));
  }),
  h('label', {}, 'Rows', h('select', { name: 'limit', onchange: (e) => e.target.form.requestSubmit() },
    PAGE_SIZES.map((n) => h('option', { value: n, selected: n === size }, n)))),
  h('button', { type: 'submit', class: 'primary' }, 'Filter'),
  h('button', { type: 'button', onclick: () => { location.hash = '#/clusters'; } }, 'Clear'));
  const tbody = h('tbody', {});
  const rows = new Map();
  const drawRow = (c) => {
    const n = c.metadata.name;
    const tr = h('tr', { dataset: { name: n } },
      h('td', {}, h('a', { href: `#/clusters/${encodeURIComponent(n)}` }, n)),
      h('td', {}, get(c, 'spec.region', '')),
      h('td', {}, get(c, 'status.unit', '')),
      h('td', { class: 'phase' }, phaseChip(get(c, 'status.phase', ''))),
      h('td', {}, get(c, 'status.grade', get(c, 'spec.grade', ''))),
      h('td', {}, get(c, 'spec.profile', get(c, 'status.profile', ''))),
      h('td', {}, get(c, 'status.version', get(c, 'spec.version', ''))),
      h('td', {}, get(c, 'spec.expectedNodes', '')),
      h('td', { class: 'muted' }, (get(c, 'status.message', '') || '').slice(0, 120)),
      h('td', {}, age(c.metadata.creationTimestamp)));
    const old = rows.get(n);
    if (old) { old.replaceWith(tr); tr.classList.add('flash'); }
    rows.set(n, tr);
    return tr;
  };
  for (const c of page.items || []) tbody.append(drawRow(c));
  const next = get(page, 'metadata.continue', '');
  const pageNo = conts.length + 1;
  const first = pageNo === 1 ? 0 : (pageNo - 1) * size;
  const shown = (page.items || []).length;
  fill(view, 
    h('h1', {}, 'Clusters'), form,
    h('div', { class: 'pager' },
      h('button', { type: 'button', id: 'prev', disabled: pageNo === 1, onclick: () => go({ pages: conts.slice(0, -1).join('~') }) }, '← Previous'),
      h('span', { id: 'range' }, shown ? `rows ${first + 1}–${first + shown}, page ${pageNo}` : 'no cluster matches'),
      h('button', { type: 'button', id: 'next', disabled: !next, onclick: () => go({ pages: conts.concat([next]).join('~') }) }, 'Next →')),
    h('table', { id: 'clusters' },
      h('thead', {}, h('tr', {}, ['Name', 'Region', 'Unit', 'Phase', 'Grade', 'Profile', 'Version', 'Nodes', 'Message', 'Age'].map((x) => h('th', {}, x)))),
      tbody));
  /* Live: rows on this page change in place; a cluster added or deleted
   * reloads the page (the server decides what the page holds). */
  const reload = debounce(async () => {
    try {
      const p2 = await list('guestclusters', Object.assign({ limit: size, continue: cont }, sel));
      if (!current(epoch)) return;
      tbody.replaceChildren();
      rows.clear();
      for (const c of p2.items || []) tbody.append(drawRow(c));
    } catch (e) { /* the next event retries */ }
  }, 500);
  watch('guestclusters', sel, get(page, 'metadata.resourceVersion', ''), (type, obj) => {
    if (type === 'RESYNC') return render();
    if (type === 'MODIFIED' && rows.has(obj.metadata.name)) drawRow(obj);
    else if (type === 'ADDED' || type === 'DELETED' || type === 'MODIFIED') reload();
    return undefined;
  });
}

/* --- one cluster ---------------------------------------------------------- */

async function pageCluster(view, name, epoch) {
  const load = async () => {
    const c = await api('GET', `${API}/guestclusters/${encodeURIComponent(name)}`);
    const [members, events] = await Promise.all([
      listAll('controlplanemembers', { fieldSelector: `spec.cluster=${name}` }),
      listAll('events', { fieldSelector: `spec.involvedObject.kind=GuestCluster,spec.involvedObject.name=${name}` })
        .catch(() => ({ items: [], resourceVersion: '' }))]);
    const backups = state.kinds.has('backups')
      ? await listAll('backups', { fieldSelector: `spec.cluster=${name}` }) : null;
    let explain = null;
    if (get(c, 'status.phase', 'Pending') === 'Pending') {
      explain = await api('GET', `${API}/guestclusters/${encodeURIComponent(name)}/explain`)
        .catch((e) => ({ error: e.message }));
    }
    return { c, members, events, backups, explain };
  };
  let d;
  try {
    d = await load();
  } catch (e) {
    if (e.status === 404) {
      fill(view, h('h1', {}, name), h('p', { class: 'error' }, `guestcluster "${name}" does not exist (any more).`),
        h('p', {}, h('a', { href: '#/clusters' }, 'All clusters')));
      return;
    }
    throw e;
  }
  if (!current(epoch)) return;
  drawCluster(view, name, d);
  const reload = debounce(async () => {
    try {
      const d2 = await load();
      if (current(epoch)) drawCluster(view, name, d2);
    } catch (e) {
      if (e.status === 404 && current(epoch)) render();
    }
  }, 400);
  const rv = get(d.c, 'metadata.resourceVersion', '');
  const onEvent = (t) => (t === 'RESYNC' ? render() : reload());
  watch('guestclusters', { fieldSelector: `metadata.name=${name}` }, rv, onEvent);
  watch('controlplanemembers', { fieldSelector: `spec.cluster=${name}` }, d.members.resourceVersion || rv, onEvent);
  watch('events', { fieldSelector: `spec.involvedObject.name=${name}` }, d.events.resourceVersion || rv, onEvent);
  if (d.backups) watch('backups', { fieldSelector: `spec.cluster=${name}` }, d.backups.resourceVersion || rv, onEvent);
}

function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.filter((p) => p[1] !== undefined && p[1] !== '' && p[1] !== null)
    .map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function drawCluster(view, name, d) {
  const { c, members, events, backups, explain } = d;
  const st = c.status || {};
  const sp = c.spec || {};
  const net = st.network || {};
  const zones = {};
  for (const m of members.items) (zones[get(m, 'spec.zone', '?')] ||= []).push(m);
  const actions = h('div', { class: 'actions' },
    h('button', { type: 'button', id: 'kubeconfig', disabled: state.role !== 'admin',
      title: state.role === 'admin' ? 'the admin kubeconfig of this cluster' : 'admin only',
      onclick: () => downloadKubeconfig(name) }, 'Download kubeconfig'),
    canWrite() ? h('button', { type: 'button', id: 'pause', onclick: () => setPaused(name, !sp.paused) },
      sp.paused ? 'Resume reconciling' : 'Pause reconciling') : null,
    canWrite() ? h('button', { type: 'button', class: 'danger', id: 'delete', onclick: () => deleteCluster(name) }, 'Delete…') : null);
  fill(view, 
    h('p', {}, h('a', { href: '#/clusters' }, '← All clusters')),
    h('h1', {}, name, ' ', phaseChip(st.phase || 'Pending')),
    st.message ? h('p', { id: 'reason', class: st.phase === 'Pending' || st.phase === 'Degraded' ? 'error' : 'muted' }, st.message) : null,
    actions,
    drawUpgrade(st),
    drawRecovery(c),
    h('div', { class: 'grid2' },
      h('div', { class: 'card' }, h('h3', {}, 'Cluster'), kv([
        ['Phase', st.phase || 'Pending'], ['Grade', st.grade || sp.grade || '–'],
        ['Region', sp.region], ['Unit', st.unit || '(not placed)'],
        ['Profile', st.profile || sp.profile], ['Template', sp.template],
        ['Version', st.version || sp.version], ['Expected nodes', sp.expectedNodes],
        ['Paused', sp.paused ? 'yes' : ''], ['Created', c.metadata.creationTimestamp]])),
      h('div', { class: 'card' }, h('h3', {}, 'Network and endpoint'), kv([
        ['VPC', get(sp, 'network.vpc')], ['IP pool', net.ipPool],
        ['Node CIDR', net.nodeCIDR], ['Pod CIDR', net.podCIDR], ['Service CIDR', net.serviceCIDR],
        ['Kubernetes service IP', net.kubernetesServiceIP], ['DNS service IP', net.dnsServiceIP],
        ['API server endpoint', get(st, 'endpoints.apiServer')],
        ['etcd', (get(st, 'endpoints.etcd', []) || []).join(', ')]]))),
    h('h2', {}, 'Members by zone'),
    Object.keys(zones).length ? h('div', { class: 'grid2', id: 'members' }, Object.keys(zones).sort().map((z) =>
      h('div', { class: 'card', dataset: { zone: z } }, h('h3', {}, z),
        h('table', {}, h('thead', {}, h('tr', {}, ['Component', 'Host', 'Phase', 'Ready', 'Restarts'].map((x) => h('th', {}, x)))),
          h('tbody', {}, zones[z].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name)).map((m) =>
            h('tr', {}, h('td', {}, get(m, 'spec.component', '')), h('td', {}, get(m, 'spec.host', '')),
              h('td', {}, get(m, 'status.phase', 'Pending')), h('td', {}, get(m, 'status.ready') ? 'yes' : 'no'),
              h('td', {}, get(m, 'status.restarts', 0))))))))) : h('p', { class: 'muted' }, 'No members yet (placement creates them).'),
    explain ? drawExplain(explain) : null,
    backups ? drawBackups(c, backups.items) : null,
    h('h2', {}, 'Conditions'),
    (st.conditions || []).length ? h('table', { id: 'conditions' }, h('thead', {}, h('tr', {}, ['Type', 'Status', 'Reason', 'Message', 'Since'].map((x) => h('th', {}, x)))),
      h('tbody', {}, st.conditions.map((x) => h('tr', {}, h('td', {}, x.type), h('td', {}, x.status), h('td', {}, x.reason || ''),
        h('td', {}, x.message || ''), h('td', {}, age(x.lastTransitionTime)))))) : h('p', { class: 'muted' }, 'None yet.'),
    h('h2', {}, 'Events'),
    events.items.length ? h('table', { id: 'events' }, h('thead', {}, h('tr', {}, ['Type', 'Reason', 'Message', 'Count', 'Last seen'].map((x) => h('th', {}, x)))),
      h('tbody', {}, events.items.sort((a, b) => String(get(b, 'spec.lastTimestamp', '')).localeCompare(String(get(a, 'spec.lastTimestamp', '')))).map((e) =>
        h('tr', {}, h('td', {}, get(e, 'spec.type', '')), h('td', {}, get(e, 'spec.reason', '')), h('td', {}, get(e, 'spec.message', '')),
          h('td', {}, get(e, 'spec.count', 1)), h('td', {}, age(get(e, 'spec.lastTimestamp'))))))) : h('p', { class: 'muted' }, 'None.'));
}

/* The upgrade engine's status.upgrade and the Upgraded condition: from ->
 * to, the step, each member's state (docs/internals/upgrades.md). Shown
 * while an upgrade moves and after the last one, until the next. */
function drawUpgrade(st) {
  const up = st.upgrade;
  const cond = (st.conditions || []).find((x) => x.type === 'Upgraded');
  if (!up && !cond) return null;
  const moving = up && !up.finishedAt;
  return h('div', { class: 'card upgrade', id: 'upgrade' },
    h('h3', {}, moving ? 'Upgrade in progress' : 'Last upgrade', up ? ` ${up.from || '?'} → ${up.to || '?'}` : ''),
    kv([['Step', up ? up.step : undefined], ['Message', up ? up.message : undefined],
      ['Started', up && up.startedAt ? `${age(up.startedAt)} ago` : undefined],
      ['Finished', up && up.finishedAt ? `${age(up.finishedAt)} ago` : undefined],
      ['Upgraded', cond ? `${cond.status}${cond.reason ? ` (${cond.reason})` : ''}${cond.message ? `: ${cond.message}` : ''}` : undefined]]),
    up && (up.members || []).length ? h('table', { class: 'members' },
      h('thead', {}, h('tr', {}, ['Member', 'Component', 'Zone', 'From → to', 'State', 'Since'].map((x) => h('th', {}, x)))),
      h('tbody', {}, up.members.map((m) => h('tr', { dataset: { member: m.name || '' } },
        h('td', {}, m.name || ''), h('td', {}, m.component || ''), h('td', {}, m.zone || ''),
        h('td', {}, `${m.from || '?'} → ${m.to || '?'}`), h('td', { class: 'state' }, m.state || ''),
        h('td', {}, age(m.since)))))) : null);
}

/* What the restore, move and migrate actions asked for on this cluster
 * (their annotations: "<id> <backup>", "<id> <from> <to>") and how far the
 * controllers got: the restore's progress annotation, the Moved and
 * Migrated conditions (docs/internals/backups.md, migration.md). Shown
 * while one runs and after, until the next. */
function drawRecovery(c) {
  const an = get(c, 'metadata.annotations', {}) || {};
  const conds = get(c, 'status.conditions', []) || [];
  const condMsg = (type) => {
    const x = conds.find((y) => y.type === type);
    return x ? x.message || x.reason || '' : '';
  };
  const rows = [];
  let moving = false;
  const [rid, bname] = (an['kfleet.io/restore'] || '').split(' ');
  if (rid && bname) {
    const done = an['kfleet.io/restored'] === rid;
    moving ||= !done;
    rows.push(h('tr', { dataset: { what: 'restore' } }, h('td', {}, 'Restore'), h('td', {}, `from backup ${bname}`),
      h('td', { class: 'state' }, done ? 'done' : 'in progress'),
      h('td', {}, done ? '' : an['kfleet.io/restore-progress'] || 'asked; waiting for the backup controller')));
  }
  for (const [key, doneKey, cond, label] of [['kfleet.io/move', 'kfleet.io/moved', 'Moved', 'Move'],
    ['kfleet.io/migrate', 'kfleet.io/migrated', 'Migrated', 'Migration']]) {
    const [id, from, to] = (an[key] || '').split(' ');
    if (!id || !from) continue;
    const done = an[doneKey] === id;
    moving ||= !done;
    rows.push(h('tr', { dataset: { what: label.toLowerCase() } }, h('td', {}, label),
      h('td', {}, `unit ${from} → ${to === '*' ? 'another unit of the region' : to || '?'}`),
      h('td', { class: 'state' }, done ? 'done' : 'in progress'), h('td', {}, condMsg(cond))));
  }
  if (!rows.length) return null;
  return h('div', { class: 'card upgrade', id: 'recovery' },
    h('h3', {}, moving ? 'Restore or move in progress' : 'Last restore or move'),
    h('table', {}, h('thead', {}, h('tr', {}, ['What', 'Of', 'State', 'Progress'].map((x) => h('th', {}, x)))),
      h('tbody', {}, rows)));
}

function bytes(n) {
  if (n === undefined || n === null) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Number(n);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
}

/* The cluster's etcd snapshots, newest first, and its schedule; editors
 * and admins take one now (the Backup `kfleet backup create` writes), an
 * admin restores a Succeeded one (`kfleet restore`; a confirm first). */
function drawBackups(c, items) {
  const name = c.metadata.name;
  const sched = get(c, 'spec.backup', {}) || {};
  const when = (b) => get(b, 'status.completionTime', '') || get(b, 'metadata.creationTimestamp', '');
  const sorted = items.slice().sort((a, b) => String(when(b)).localeCompare(String(when(a))));
  const schedule = sched.enabled === false ? 'Scheduled backups are off for this cluster.'
    : `Scheduled every ${sched.interval || '6h'}; the newest ${sched.retain || 7} are kept.`;
  return h('div', { id: 'backups' },
    h('h2', {}, 'Backups'),
    h('p', { class: 'muted', id: 'backup-schedule' }, schedule),
    canWrite() ? h('div', { class: 'actions' },
      h('button', { type: 'button', id: 'backup-now', onclick: () => backupNow(name) }, 'Back up now')) : null,
    sorted.length ? h('table', { id: 'backup-list' },
      h('thead', {}, h('tr', {}, ['Backup', 'Phase', 'Revision', 'Size', 'Location', 'Host', 'Took', 'Finished', 'Message', '']
        .map((x) => h('th', {}, x)))),
      h('tbody', {}, sorted.map((b) => {
        const st = b.status || {};
        const ms = st.durationMillis;
        return h('tr', { dataset: { name: b.metadata.name } },
          h('td', {}, b.metadata.name), h('td', { class: 'phase' }, phaseChip(st.phase || 'Pending')),
          h('td', {}, st.revision === undefined ? '' : st.revision), h('td', { class: 'size' }, bytes(st.size)),
          h('td', {}, st.location || ''), h('td', {}, st.host || ''),
          h('td', {}, ms === undefined ? '' : `${(ms / 1000).toFixed(1)} s`),
          h('td', {}, st.completionTime ? `${age(st.completionTime)} ago` : ''),
          h('td', { class: st.phase === 'Failed' ? 'error' : 'muted' }, [st.reason, st.message].filter(Boolean).join(': ')),
          h('td', {}, state.role === 'admin' && st.phase === 'Succeeded'
            ? h('button', { type: 'button', class: 'danger restore', onclick: () => restoreFrom(name, b) }, 'Restore…') : null));
      }))) : h('p', { class: 'muted' }, 'No backups of this cluster yet.'));
}

async function backupNow(cluster) {
  // the name `kfleet backup create` gives: the cluster and the time to the ms
  const t = new Date().toISOString().replace(/[-:TZ.]/g, '');
  const name = `${cluster}-${t.slice(0, 8)}-${t.slice(8, 17)}`;
  try {
    await api('POST', `${API}/backups`, { apiVersion: 'kfleet.io/v1', kind: 'Backup',
      metadata: { name, labels: { 'kfleet.io/cluster': cluster } }, spec: { cluster } });
    banner('');
  } catch (e) { banner(`Could not back up ${cluster}: ${e.message}`); }
}

async function restoreFrom(cluster, b) {
  const rev = get(b, 'status.revision', '?');
  if (!window.confirm(`Restore ${cluster}'s etcd from backup ${b.metadata.name} (revision ${rev})? `
    + 'Every write made after that snapshot is lost, and the control plane restarts.')) return;
  try {
    const r = await api('POST', `${API}/backups/${encodeURIComponent(b.metadata.name)}/restore${query({ cluster })}`, {});
    banner(`Restore of ${cluster} from ${r.backup || b.metadata.name} (revision ${r.revision === undefined ? rev : r.revision}) started.`);
  } catch (e) { banner(`Could not restore ${cluster}: ${e.message}`); }
}

function drawExplain(x) {
  if (x.error) return h('div', { id: 'explain' }, h('h2', {}, 'Why it is Pending'), h('p', { class: 'error' }, x.error));
  return h('div', { id: 'explain' },
    h('h2', {}, 'Why it is Pending (kfleet explain)'),
    h('p', {}, x.decision || ''),
    h('p', { class: 'muted' }, `grade ${x.gradeReason || x.grade}`),
    h('table', {}, h('thead', {}, h('tr', {}, ['Unit', 'Verdict', 'Reason', 'CPU now → after', 'Memory now → after', 'Mark', 'Score'].map((t) => h('th', {}, t)))),
      h('tbody', {}, (x.units || []).map((u) => h('tr', {},
        h('td', {}, u.unit), h('td', { class: `verdict-${u.verdict}` }, u.verdict), h('td', {}, u.reason || ''),
        h('td', {}, `${pct(get(u, 'cpu.now'))} → ${pct(get(u, 'cpu.after'))}`),
        h('td', {}, `${pct(get(u, 'memory.now'))} → ${pct(get(u, 'memory.after'))}`),
        h('td', {}, pct(u.mark)), h('td', {}, u.total === undefined ? '' : u.total.toFixed(1)))))));
}

async function downloadKubeconfig(name) {
  try {
    const r = await api('GET', `${API}/guestclusters/${encodeURIComponent(name)}/kubeconfig`);
    const blob = new Blob([r.kubeconfig], { type: 'application/yaml' });
    const a = h('a', { href: URL.createObjectURL(blob), download: `${name}.kubeconfig` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    banner('');
  } catch (e) {
    banner(`Could not download the kubeconfig of ${name}: ${e.message}`);
  }
}

async function setPaused(name, paused) {
  try {
    await api('PATCH', `${API}/guestclusters/${encodeURIComponent(name)}`, { spec: { paused } },
      'application/merge-patch+json');
  } catch (e) { banner(`Could not change ${name}: ${e.message}`); }
}

async function deleteCluster(name) {
  if (!window.confirm(`Delete guest cluster ${name}? Its control plane and data go with it.`)) return;
  try {
    await api('DELETE', `${API}/guestclusters/${encodeURIComponent(name)}`);
  } catch (e) { banner(`Could not delete ${name}: ${e.message}`); }
}

/* --- work in progress ----------------------------------------------------- */

function progress(done, failed, active, desired) {
  const d = Math.max(desired, done + failed + active, 1);
  return h('div', { class: 'progress', title: `${done} succeeded, ${failed} failed, ${active} active of ${desired}` },
    h('div', { class: 'ok', style: { width: `${(100 * done) / d}%` } }),
    h('div', { class: 'failed', style: { width: `${(100 * failed) / d}%` } }),
    h('div', { class: 'active', style: { width: `${(100 * active) / d}%` } }));
}

/* Releases, as `kfleet rollout status` shows them: the target, the phase,
 * why it is paused, and a bar per wave (updated, failed, upgrading of the
 * wave's clusters). spec.paused shows at once, before the controller's
 * status says Paused. Pause/Resume/Abort are admin's (the server refuses
 * them to other roles anyway). */
function releaseCard(r) {
  const name = r.metadata.name;
  const sp = r.spec || {};
  const st = r.status || {};
  const target = st.targetVersion || sp.version || (sp.template ? `template ${sp.template}` : '?');
  const phase = sp.abort && st.phase !== 'Aborted' ? 'Aborting' : st.phase || 'Pending';
  const waves = st.waves || [];
  const total = get(st, 'clusters.total', 0);
  const card = h('div', { class: 'card release', dataset: { name } },
    h('div', { class: 'unit-head' },
      h('h3', {}, name), phaseChip(phase),
      h('span', { class: 'target' }, `→ ${target}`),
      waves.length ? h('span', { class: 'muted' }, `wave ${(st.currentWave || 0) + 1}/${waves.length}`) : null,
      h('span', { class: 'muted' },
        `${get(st, 'clusters.updated', 0)}/${total} clusters updated, ${get(st, 'clusters.failed', 0)} failed`)),
    sp.paused ? h('p', { class: 'paused error' }, st.pause
      ? `paused: ${st.pause.reason || ''}${st.pause.message ? `: ${st.pause.message}` : ''}`
      : 'paused: PausedByUser') : null,
    get(st, 'gate.error') ? h('p', { class: 'gate error' }, `health gate: ${st.gate.error}`) : null,
    waves.length ? h('table', { class: 'waves' },
      h('thead', {}, h('tr', {}, ['Wave', 'Progress', 'Updated', 'Upgrading', 'Failed', 'State'].map((x) => h('th', {}, x)))),
      h('tbody', {}, waves.map((w) => {
        const n = w.clusters || 0;
        const upd = (w.updated || 0) + (w.skipped || 0);
        const waiting = w.waitingForWindow ? `, ${w.waitingForWindow} waiting for their window` : '';
        return h('tr', { dataset: { wave: w.name || '' } }, h('td', {}, w.name || ''),
          h('td', {}, progress(upd, w.failed || 0, w.inProgress || 0, n)),
          h('td', { class: 'updated' }, `${w.updated || 0}/${n}`), h('td', {}, w.inProgress || 0),
          h('td', {}, w.failed || 0), h('td', {}, `${w.state || 'Pending'}${waiting}`));
      }))) : h('p', { class: 'muted' }, 'Not planned by the release controller yet.'));
  if (state.role === 'admin' && phase !== 'Aborted' && phase !== 'Completed' && !sp.abort) {
    card.append(h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'release-pause', onclick: () => patchRelease(name, { paused: !sp.paused }) },
        sp.paused ? 'Resume' : 'Pause'),
      h('button', { type: 'button', class: 'danger release-abort', onclick: () => {
        if (window.confirm(`Abort release ${name}? It cannot be resumed; clusters already moved stay on the new version.`))
          patchRelease(name, { abort: true });
      } }, 'Abort…')));
  }
  return card;
}

async function patchRelease(name, spec) {
  try {
    await api('PATCH', `${API}/releases/${encodeURIComponent(name)}`, { spec }, 'application/merge-patch+json');
    banner('');
  } catch (e) { banner(`Could not change release ${name}: ${e.message}`); }
}

function releasesPanel(items) {
  if (!items.length) return h('p', { class: 'muted' }, 'No releases.');
  return h('div', { id: 'releases' }, items.map(releaseCard));
}

/* Backups that need a look: the ones not Succeeded (taking, waiting for a
 * location or a Ready member, or Failed), at most BACKUPS_SHOWN, the
 * server filtering; Succeeded ones are on their cluster's page. */
const BACKUPS_SHOWN = 500;

function backupsPanel(items) {
  if (!items.length) return h('p', { class: 'muted', id: 'backups' }, 'Every backup has succeeded; none is being taken.');
  const failed = items.filter((b) => get(b, 'status.phase') === 'Failed').length;
  return h('div', { id: 'backups' },
    h('p', { class: 'muted' }, `${items.length - failed} being taken or waiting, ${failed} failed`
      + `${items.length >= BACKUPS_SHOWN ? ` (the first ${BACKUPS_SHOWN})` : ''}; succeeded ones are on each cluster's page.`),
    h('table', {}, h('thead', {}, h('tr', {}, ['Backup', 'Cluster', 'Phase', 'Host', 'Why', 'Age'].map((x) => h('th', {}, x)))),
      h('tbody', {}, items.map((b) => {
        const st = b.status || {};
        const cl = get(b, 'spec.cluster', '');
        return h('tr', { dataset: { name: b.metadata.name } }, h('td', {}, b.metadata.name),
          h('td', {}, h('a', { href: `#/clusters/${encodeURIComponent(cl)}` }, cl)),
          h('td', {}, phaseChip(st.phase || 'Pending')), h('td', {}, st.host || ''),
          h('td', { class: st.phase === 'Failed' ? 'error' : 'muted' }, [st.reason, st.message].filter(Boolean).join(': ')),
          h('td', {}, age(b.metadata.creationTimestamp)));
      }))));
}

/* Clusters whose control plane moves between units (phase Migrating), with
 * the Migrated condition's step. */
function migratingPanel(items) {
  if (!items.length) return h('p', { class: 'muted', id: 'migrating' }, 'No cluster is moving between units.');
  return h('table', { id: 'migrating' }, h('thead', {}, h('tr', {}, ['Cluster', 'From → to', 'Step'].map((x) => h('th', {}, x)))),
    h('tbody', {}, items.map((c) => {
      const [, from, to] = (get(c, 'metadata.annotations', {})['kfleet.io/migrate'] || '').split(' ');
      const cond = (get(c, 'status.conditions', []) || []).find((x) => x.type === 'Migrated');
      return h('tr', { dataset: { name: c.metadata.name } },
        h('td', {}, h('a', { href: `#/clusters/${encodeURIComponent(c.metadata.name)}` }, c.metadata.name)),
        h('td', {}, from ? `${from} → ${to}` : get(c, 'status.unit', '')), h('td', {}, cond ? cond.message || cond.reason || '' : ''));
    })));
}

const WORK_LISTS = {
  releases: () => listAll('releases'),
  backups: () => list('backups', { fieldSelector: 'status.phase!=Succeeded', limit: BACKUPS_SHOWN })
    .then((l) => ({ items: l.items || [], resourceVersion: get(l, 'metadata.resourceVersion', '') })),
};

async function pageWork(view, epoch) {
  const extra = ['releases', 'backups'].filter((k) => state.kinds.has(k));
  const migrating = () => list('guestclusters', { fieldSelector: 'status.phase=Migrating', limit: BACKUPS_SHOWN })
    .then((l) => ({ items: l.items || [], resourceVersion: get(l, 'metadata.resourceVersion', '') }));
  const [jobs, alerts, moving, ...others] = await Promise.all([
    listAll('broadcastjobs'),
    api('GET', `${API}/alerts`).catch((e) => ({ error: e })),
    migrating(),
    ...extra.map((k) => WORK_LISTS[k]())]);
  if (!current(epoch)) return;
  const draw = (j, al, mv, os) => {
    fill(view, 
      h('h1', {}, 'Work in progress'),
      h('h2', {}, 'BroadcastJobs'),
      j.items.length ? h('table', { id: 'jobs' }, h('thead', {}, h('tr', {}, ['Name', 'Phase', 'Progress', 'Succeeded', 'Failed', 'Active', 'Desired', 'Age'].map((x) => h('th', {}, x)))),
        h('tbody', {}, j.items.map((b) => {
          const s = b.status || {};
          return h('tr', { dataset: { name: b.metadata.name } }, h('td', {}, b.metadata.name), h('td', {}, phaseChip(s.phase || 'Pending')),
            h('td', {}, progress(s.succeeded || 0, s.failed || 0, s.active || 0, s.desired || 0)),
            h('td', {}, s.succeeded || 0), h('td', {}, s.failed || 0), h('td', {}, s.active || 0), h('td', {}, s.desired || 0),
            h('td', {}, age(b.metadata.creationTimestamp)));
        }))) : h('p', { class: 'muted' }, 'No BroadcastJobs.'),
      extra.map((k, i) => [h('h2', {}, k === 'releases' ? 'Releases' : 'Backups'),
        k === 'releases' ? releasesPanel(os[i].items) : backupsPanel(os[i].items)]),
      h('h2', {}, 'Clusters moving between units'),
      migratingPanel(mv.items),
      h('h2', {}, 'Firing alerts'),
      drawAlerts(al));
  };
  draw(jobs, alerts, moving, others);
  const reload = debounce(async () => {
    try {
      const [j2, a2, m2, ...o2] = await Promise.all([listAll('broadcastjobs'),
        api('GET', `${API}/alerts`).catch((e) => ({ error: e })), migrating(), ...extra.map((k) => WORK_LISTS[k]())]);
      if (current(epoch)) draw(j2, a2, m2, o2);
    } catch (e) { /* the next event retries */ }
  }, 700);
  const onEvent = (t) => (t === 'RESYNC' ? render() : reload());
  watch('broadcastjobs', {}, jobs.resourceVersion, onEvent);
  watch('guestclusters', { fieldSelector: 'status.phase=Migrating' }, moving.resourceVersion, onEvent);
  extra.forEach((k, i) => watch(k, k === 'backups' ? { fieldSelector: 'status.phase!=Succeeded' } : {},
    others[i].resourceVersion, onEvent));
  /* alerts have no watch: Alertmanager is asked again every 15 s */
  const poll = () => { reload(); state.timers.push(setTimeout(poll, 15000)); };
  state.timers.push(setTimeout(poll, 15000));
}

function drawAlerts(al) {
  if (al.error) {
    const msg = al.error.status === 404 || al.error.status === 503
      ? 'Monitoring is not running here (kfleetd --monitoring local or external shows the central Alertmanager\'s alerts).'
      : `Alertmanager could not be asked: ${al.error.message}`;
    return h('p', { class: 'muted', id: 'alerts' }, msg);
  }
  const items = al.alerts || [];
  if (!items.length) return h('p', { class: 'muted', id: 'alerts' }, `No alert is firing (${al.alertmanager || 'Alertmanager'}).`);
  return h('table', { id: 'alerts' }, h('thead', {}, h('tr', {}, ['Alert', 'Severity', 'Where', 'Summary', 'Since'].map((x) => h('th', {}, x)))),
    h('tbody', {}, items.map((a) => {
      const l = a.labels || {};
      const where = ['region', 'unit', 'cluster', 'host', 'instance'].filter((k) => l[k]).map((k) => `${k}=${l[k]}`).join(' ');
      return h('tr', {}, h('td', {}, l.alertname || ''), h('td', {}, l.severity || ''), h('td', {}, where),
        h('td', {}, get(a, 'annotations.summary', get(a, 'annotations.description', ''))), h('td', {}, age(a.startsAt)));
    })));
}

/* --- start ---------------------------------------------------------------- */

async function start() {
  if (await signIn()) render();
  else if (!$('#login-error').textContent) showLogin(state.token ? 'the token was refused; sign in again' : '');
}

document.addEventListener('DOMContentLoaded', () => {
  $('#login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    state.token = $('#token').value.trim();
    $('#token').value = '';
    sessionStorage.setItem('kfleet.token', state.token);
    $('#login-error').textContent = '';
    start();
  });
  $('#signout').addEventListener('click', () => signOut(''));
  window.addEventListener('hashchange', () => { if (state.role) render(); });
  start();
});
