// Subscriptions and their deliveries: each subscription's status, last success and last
// failure (GET /subscriptions), the outbox (GET /admin/v1/notifications) and the dead
// letters, which an operator replays or drops (/admin/v1/deadLetters).

import { API, call } from './api.js';

const $ = (id) => document.getElementById(id);

function row(cells) {
  const tr = document.createElement('tr');
  for (const c of cells) {
    const td = document.createElement('td');
    if (c instanceof Node) td.append(c); else td.textContent = c === undefined || c === null ? '' : String(c);
    tr.append(td);
  }
  return tr;
}

function button(label, onClick) {
  const b = document.createElement('button');
  b.type = 'button'; b.textContent = label;
  b.addEventListener('click', onClick);
  return b;
}

export function createDeliveries() {
  async function load() {
    $('deliveries-error').textContent = '';
    const errors = [];
    try {
      const subs = (await call('GET', `${API}/subscriptions`, { params: { limit: 1000 } })).body || [];
      $('subscriptions').tBodies[0].replaceChildren(...subs.map((s) => {
        const n = s.notification || {};
        const types = (s.entities || []).map((e) => e.type).join(', ');
        return row([s.id, n.status || s.status, types, n.timesSent, n.lastSuccess, n.lastFailure]);
      }));
    } catch (e) { errors.push(`subscriptions: ${e.message}`); }
    try {
      const o = (await call('GET', '/admin/v1/notifications')).body;
      $('outbox').textContent = `outbox: ${o.pending} pending, ${o.deadLetters} dead letters, ${o.unmatched} changes not yet matched`;
    } catch (e) { errors.push(`outbox: ${e.message}`); }
    try {
      const dead = (await call('GET', '/admin/v1/deadLetters')).body || [];
      $('dead-letters').tBodies[0].replaceChildren(...dead.map((d) => {
        const act = document.createElement('span');
        act.append(
          button('Replay', () => settle('POST', '/admin/v1/deadLetters/replay', d.id)),
          ' ',
          button('Drop', () => { if (window.confirm(`Drop dead letter ${d.id}?`)) settle('DELETE', '/admin/v1/deadLetters', d.id); }),
        );
        const tr = row([d.id, d.subscriptionId, d.changes, d.attempts, d.lastError, d.createdAt, act]);
        tr.dataset.id = d.id;
        return tr;
      }));
    } catch (e) { errors.push(`dead letters: ${e.message}`); }
    $('deliveries-error').textContent = errors.join('\n');
  }

  async function settle(method, path, id) {
    try {
      const r = await call(method, path, { params: { id } });
      $('outbox').textContent = JSON.stringify(r.body);
    } catch (e) { $('deliveries-error').textContent = e.message; return; }
    await load();
  }

  $('deliveries-reload').addEventListener('click', load);
  return { load };
}
