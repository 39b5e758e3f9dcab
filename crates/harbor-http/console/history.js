// The history of one attribute of one or several entities, through the Temporal API
// (GET /temporal/entities/{id}), each instance at its observedAt (else its modifiedAt) or, when asked, aggregated per period
// (aggrMethods, aggrPeriodDuration), drawn by chart.js.

import { API, call } from './api.js';
import { lineChart } from './chart.js';

const $ = (id) => document.getElementById(id);

/** `datetime-local` text as an ISO timestamp in UTC, or undefined. */
function iso(local) { return local ? new Date(local).toISOString() : undefined; }

/** The numeric samples of an attribute in a temporal answer, as [timeMs, value]. */
export function samples(attr, method) {
  const parts = Array.isArray(attr) ? attr : [attr];
  const out = [];
  for (const p of parts) {
    if (!p) continue;
    if (method) {
      for (const [v, start] of p[method] || []) if (typeof v === 'number') out.push([Date.parse(start), v]);
    } else {
      // One instance, normalized: at its index time, observedAt or else modifiedAt.
      const at = p.observedAt || p.modifiedAt;
      if (typeof p.value === 'number' && at) out.push([Date.parse(at), p.value]);
    }
  }
  return out;
}

export function createHistory() {
  const form = $('history-form');
  async function chart(ev) {
    if (ev) ev.preventDefault();
    const f = new FormData(form);
    const ids = String(f.get('ids')).split(',').map((s) => s.trim()).filter(Boolean);
    const attr = String(f.get('attr')).trim();
    const method = f.get('method');
    const from = iso(f.get('from')); const to = iso(f.get('to'));
    $('history-error').textContent = '';
    const params = { attrs: attr };
    if (from && to) Object.assign(params, { timerel: 'between', timeAt: from, endTimeAt: to });
    else if (from) Object.assign(params, { timerel: 'after', timeAt: from });
    else if (to) Object.assign(params, { timerel: 'before', timeAt: to });
    if (method) Object.assign(params, { options: 'aggregatedValues', aggrMethods: method, aggrPeriodDuration: f.get('period') });
    else params.options = 'sysAttrs';
    try {
      const series = [];
      for (const id of ids) {
        const r = await call('GET', `${API}/temporal/entities/${encodeURIComponent(id)}`, { params });
        series.push({ name: id, points: samples(r.body[attr], method) });
      }
      $('chart').replaceChildren(lineChart(series));
    } catch (e) {
      $('history-error').textContent = e.message;
    }
  }
  form.addEventListener('submit', chart);
  return {
    open(id, attr) {
      form.elements.ids.value = id;
      if (attr) form.elements.attr.value = attr;
      chart();
    },
  };
}
