// The console's entry: the login bar, the views (#map, #entities, #history, #deliveries),
// the map's data (a paged geo-query of the visible area) and its live updates.

import { login, queryEntities, retrieveEntity, session } from './api.js';
import { createMap } from './map.js';
import { createBrowser } from './entities.js';
import { createHistory } from './history.js';
import { createDeliveries } from './deliveries.js';
import { follow } from './live.js';

const $ = (id) => document.getElementById(id);

/** The broker's largest page; the map reads at most MAX_POINTS entities. */
const PAGE = 1000;
const MAX_POINTS = 100000;

const browser = createBrowser();
const history = createHistory();
const deliveries = createDeliveries();
let live = null;
let panelId = null;
let fitted = false;
let loaded = null; // { filter, box, complete } of what the map holds
let loading = null;

const map = createMap($('map'), { onPick: openPanel, onMove: () => loadMap(false) });
// Where an entity is drawn, for the browser tests (and anyone at the devtools).
$('map').screenOf = (id) => map.screenOf(id);

// ---- login -----------------------------------------------------------------------------

$('tenant').value = session.tenant;
$('key').value = session.key;
$('login').addEventListener('submit', (e) => {
  e.preventDefault();
  login($('key').value, $('tenant').value);
  connected();
});

function connected() {
  $('who').textContent = `${session.key ? 'key' : 'no key'} · ${session.tenant || 'default tenant'}`;
  loaded = null;
  if (live) { live.stop(); live = null; }
  if ($('map-type').value || $('map-q').value) loadMap(true);
  if (location.hash === '#deliveries') deliveries.load();
}

// ---- views -----------------------------------------------------------------------------

function route() {
  const name = (location.hash || '#map').slice(1);
  for (const v of document.querySelectorAll('.view')) v.hidden = v.id !== `view-${name}`;
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.view === name);
  if (name === 'deliveries') deliveries.load();
}
window.addEventListener('hashchange', route);
route();

// ---- the map's data ---------------------------------------------------------------------

function filter() {
  return { type: $('map-type').value.trim(), q: $('map-q').value.trim() };
}

function contains(outer, inner) {
  return outer[0] <= inner[0] && outer[1] <= inner[1] && outer[2] >= inner[2] && outer[3] >= inner[3];
}

/** Loads the entities of the filter in the visible area, unless the map already holds them. */
async function loadMap(force) {
  const f = filter();
  if (!f.type && !f.q) return;
  const { box, world } = map.bounds();
  const key = JSON.stringify(f);
  if (!force && loaded && loaded.key === key && loaded.complete && (loaded.world || contains(loaded.box, box))) return;
  if (loading) loading.abort();
  const controller = new AbortController();
  loading = controller;
  $('map-error').textContent = '';
  const params = { type: f.type, q: f.q, options: 'keyValues', attrs: 'location', limit: PAGE, count: 'true' };
  if (!world) {
    const [w, s, e, n] = box;
    Object.assign(params, {
      georel: 'within', geometry: 'Polygon',
      coordinates: JSON.stringify([[[w, s], [e, s], [e, n], [w, n], [w, s]]]),
    });
  }
  const started = performance.now();
  const fresh = [];
  let total = null;
  try {
    for (let offset = 0; offset < MAX_POINTS; offset += PAGE) {
      const page = await queryEntities({ ...params, offset }, controller.signal);
      if (total === null) total = page.total;
      fresh.push(...page.items);
      if (page.items.length < PAGE) break;
    }
  } catch (e) {
    if (e.name === 'AbortError') return;
    $('map-error').textContent = e.message;
    loading = null;
    return;
  }
  loading = null;
  map.clear();
  for (const e of fresh) placeOf(e);
  const complete = total === null || fresh.length >= total;
  loaded = { key, box, world, complete };
  $('map-count').textContent = `${map.points.length} shown${total !== null ? ` of ${total}` : ''}` +
    ` · loaded in ${Math.round(performance.now() - started)} ms`;
  $('map').dataset.loadMs = String(Math.round(performance.now() - started));
  if (!fitted && map.points.length) { fitted = true; map.fit(); }
  restartLive(f.type);
}

/** Puts an entity (keyValues) on the map when it has a Point location. */
function placeOf(e) {
  const g = e.location;
  if (g && g.type === 'Point' && Array.isArray(g.coordinates)) {
    map.put(e.id, g.coordinates[0], g.coordinates[1]);
    return true;
  }
  return false;
}

$('map-filter').addEventListener('submit', (e) => {
  e.preventDefault();
  localStorage.setItem('infoharbor.mapType', $('map-type').value);
  fitted = false;
  loadMap(true);
});
$('map-fit').addEventListener('click', () => map.fit());
$('zoom-in').addEventListener('click', () => map.zoomBy(1));
$('zoom-out').addEventListener('click', () => map.zoomBy(-1));

// The tile URL: a query parameter (?tiles=...) or the settings, kept in localStorage.
const tilesParam = new URLSearchParams(location.search).get('tiles');
if (tilesParam !== null) localStorage.setItem('infoharbor.tileUrl', tilesParam);
$('tile-url').value = localStorage.getItem('infoharbor.tileUrl') || '';
map.setTiles($('tile-url').value);
$('tile-save').addEventListener('click', () => {
  localStorage.setItem('infoharbor.tileUrl', $('tile-url').value.trim());
  map.setTiles($('tile-url').value.trim());
});
$('map-type').value = localStorage.getItem('infoharbor.mapType') || '';

// ---- the entity panel -------------------------------------------------------------------

async function openPanel(id) {
  panelId = id;
  try {
    const e = await retrieveEntity(id, { options: 'keyValues' });
    if (panelId !== id) return;
    $('panel').hidden = false;
    $('panel-title').textContent = id;
    const rows = [];
    for (const [k, v] of Object.entries(e)) {
      if (k === 'id' || k === '@context') continue;
      const dt = document.createElement('dt'); dt.textContent = k;
      const dd = document.createElement('dd');
      dd.textContent = typeof v === 'object' ? JSON.stringify(v) : String(v);
      dd.dataset.attr = k;
      rows.push(dt, dd);
    }
    $('panel-attrs').replaceChildren(...rows);
  } catch (err) {
    $('panel').hidden = false;
    $('panel-title').textContent = id;
    $('panel-attrs').textContent = err.message;
  }
}
$('panel-close').addEventListener('click', () => { $('panel').hidden = true; panelId = null; });
$('panel-open').addEventListener('click', () => panelId && browser.open(panelId));
$('panel-history').addEventListener('click', () => panelId && history.open(panelId));

// ---- live updates -----------------------------------------------------------------------

let liveType = null;
function restartLive(type) {
  if (live && liveType === type) return;
  if (live) live.stop();
  liveType = type;
  live = follow({
    type,
    onChange(c) {
      const f = filter();
      // With q, the map follows the entities it shows; new ones appear when it reloads.
      if (c.deleted) map.remove(c.id);
      else if (!f.q || map.points.has(c.id)) {
        if (placeOf(c.entity)) map.flash(c.id);
      }
      note(c);
      if (c.id === panelId) openPanel(c.id);
      browser.refresh(c.id);
    },
    onReset() { loadMap(true); },
    onState(text) { $('map').dataset.live = text; },
  });
}

function note(c) {
  const li = document.createElement('li');
  const attrs = Object.keys(c.entity || {}).filter((k) => k !== 'id' && k !== 'type');
  li.textContent = `${new Date().toISOString().slice(11, 23)} ${c.id} ${c.deleted ? 'deleted' : `changed (${attrs.join(', ')})`}`;
  li.dataset.id = c.id;
  const log = $('live-log');
  log.prepend(li);
  while (log.children.length > 50) log.lastChild.remove();
}

connected();
