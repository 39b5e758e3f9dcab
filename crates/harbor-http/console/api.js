// The console's only way to the broker: its public NGSI-LD API and its /admin endpoints,
// with the credential and tenant the operator entered. A refusal becomes a Problem that
// carries the broker's ProblemDetails as it came.

export const session = {
  key: sessionStorage.getItem('infoharbor.key') || '',
  tenant: localStorage.getItem('infoharbor.tenant') || '',
};

export function login(key, tenant) {
  session.key = key.trim();
  session.tenant = tenant.trim();
  sessionStorage.setItem('infoharbor.key', session.key);
  localStorage.setItem('infoharbor.tenant', session.tenant);
}

export class Problem extends Error {
  constructor(status, body) {
    const title = (body && body.title) || `HTTP ${status}`;
    const detail = (body && body.detail) || '';
    super(detail ? `${title}: ${detail}` : title);
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.body = body;
  }
}

/** The headers every request carries: the credential and the tenant. */
export function headers(extra = {}) {
  const h = { ...extra };
  if (session.key) h['X-API-Key'] = session.key;
  if (session.tenant) h['NGSILD-Tenant'] = session.tenant;
  return h;
}

/** `path` with its query parameters; empty values are left out. */
export function url(path, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

/** One request; resolves to { status, body, headers }, rejects with a Problem. */
export async function call(method, path, { params, body, signal } = {}) {
  const init = { method, headers: headers({ Accept: 'application/json' }), signal };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(url(path, params), init);
  const text = await resp.text();
  let parsed = null;
  if (text) {
    try { parsed = JSON.parse(text); } catch { parsed = { title: `HTTP ${resp.status}`, detail: text }; }
  }
  if (!resp.ok) throw new Problem(resp.status, parsed);
  return { status: resp.status, body: parsed, headers: resp.headers };
}

export const API = '/ngsi-ld/v1';

/** One page of a query; `total` when the broker counted (NGSILD-Results-Count). */
export async function queryEntities(params, signal) {
  const r = await call('GET', `${API}/entities`, { params, signal });
  const total = r.headers.get('NGSILD-Results-Count');
  return { items: r.body || [], total: total === null ? null : Number(total) };
}

export function retrieveEntity(id, params = {}) {
  return call('GET', `${API}/entities/${encodeURIComponent(id)}`, { params }).then((r) => r.body);
}

export function patchAttribute(id, attr, fragment) {
  return call('PATCH', `${API}/entities/${encodeURIComponent(id)}/attrs/${encodeURIComponent(attr)}`, { body: fragment });
}

export function deleteEntity(id) {
  return call('DELETE', `${API}/entities/${encodeURIComponent(id)}`);
}

/** The `options` parameter of a representation. */
export function options(format) {
  return format === 'normalized' ? undefined : format;
}
