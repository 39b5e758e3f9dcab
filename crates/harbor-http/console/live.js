// Live changes from the broker's change feed (GET /console/events), read as Server-Sent
// Events over fetch so that the request carries the same credential headers as every other
// (EventSource cannot send headers). Reconnects when the stream ends: the broker closes
// streams after a few minutes so that a revoked key or a changed policy takes effect.

import { headers, url } from './api.js';

/**
 * Follows changes of entities of `type` (all types when empty) until `stop()`;
 * `onChange({ id, deleted, entity })` for each, `onReset()` when changes were missed,
 * `onState(text)` for the connection's state.
 */
export function follow({ type, onChange, onReset, onState }) {
  let stopped = false;
  let controller = null;
  let connected = false;

  async function once() {
    controller = new AbortController();
    const resp = await fetch(url('/console/events', { type: type || undefined, options: 'keyValues' }), {
      headers: headers({ Accept: 'text/event-stream' }),
      signal: controller.signal,
    });
    if (!resp.ok) {
      let detail = `HTTP ${resp.status}`;
      try { const b = await resp.json(); detail = `${b.title}: ${b.detail}`; } catch { /* not JSON */ }
      throw new Error(detail);
    }
    onState('live');
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        dispatch(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
  }

  function dispatch(block) {
    let event = 'message'; const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
    }
    if (event === 'change') onChange(JSON.parse(data.join('\n')));
    else if (event === 'reset') onReset();
    // A reconnect: what changed while the stream was down was not seen.
    else if (event === 'ready') { if (connected) onReset(); connected = true; }
  }

  (async () => {
    let wait = 500;
    while (!stopped) {
      try { await once(); wait = 500; } catch (e) {
        if (stopped) return;
        onState(`not live: ${e.message}`);
        wait = Math.min(wait * 2, 10000);
      }
      if (!stopped) await new Promise((r) => setTimeout(r, wait));
    }
  })();

  return { stop() { stopped = true; if (controller) controller.abort(); } };
}
