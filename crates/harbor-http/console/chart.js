// A hand-written SVG line chart: one series per entity, time on x, numbers on y, with
// ticks and a legend. Non-numeric values are left out.

const NS = 'http://www.w3.org/2000/svg';
const COLORS = ['#0a6ebd', '#d9480f', '#2b8a3e', '#862e9c', '#c2255c', '#5c940d'];

function el(name, attrs = {}, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** Round steps for an axis of `span` with about `n` ticks. */
function step(span, n) {
  const raw = span / n;
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) || raw;
}

/** series: [{ name, points: [[timeMs, number], ...] }] */
export function lineChart(series, { width = 860, height = 360, unit = '' } = {}) {
  const svg = el('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img' });
  const pad = { l: 60, r: 40, t: 16, b: 48 };
  const all = series.flatMap((s) => s.points);
  if (!all.length) {
    svg.append(el('text', { x: width / 2, y: height / 2, 'text-anchor': 'middle' }, 'no numeric values in this window'));
    return svg;
  }
  let t0 = Math.min(...all.map((p) => p[0])); let t1 = Math.max(...all.map((p) => p[0]));
  let v0 = Math.min(...all.map((p) => p[1])); let v1 = Math.max(...all.map((p) => p[1]));
  if (t0 === t1) { t0 -= 30000; t1 += 30000; }
  if (v0 === v1) { v0 -= 1; v1 += 1; }
  const vs = step(v1 - v0, 5);
  v0 = Math.floor(v0 / vs) * vs; v1 = Math.ceil(v1 / vs) * vs;
  const x = (t) => pad.l + ((t - t0) / (t1 - t0)) * (width - pad.l - pad.r);
  const y = (v) => height - pad.b - ((v - v0) / (v1 - v0)) * (height - pad.t - pad.b);

  for (let v = v0; v <= v1 + vs / 2; v += vs) {
    svg.append(el('line', { class: 'grid', x1: pad.l, x2: width - pad.r, y1: y(v), y2: y(v) }));
    svg.append(el('text', { x: pad.l - 6, y: y(v) + 4, 'text-anchor': 'end' }, `${+v.toFixed(6)}${unit}`));
  }
  const ts = 5;
  for (let i = 0; i <= ts; i++) {
    const t = t0 + ((t1 - t0) * i) / ts;
    const d = new Date(t);
    const label = t1 - t0 > 2 * 86400000 ? d.toISOString().slice(0, 10) : d.toISOString().slice(11, 19);
    svg.append(el('line', { class: 'grid', x1: x(t), x2: x(t), y1: pad.t, y2: height - pad.b }));
    svg.append(el('text', { x: x(t), y: height - pad.b + 16, 'text-anchor': 'middle' }, label));
  }
  svg.append(el('line', { class: 'axis', x1: pad.l, x2: pad.l, y1: pad.t, y2: height - pad.b }));
  svg.append(el('line', { class: 'axis', x1: pad.l, x2: width - pad.r, y1: height - pad.b, y2: height - pad.b }));

  const legend = el('g', { class: 'legend' });
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = [...s.points].sort((a, b) => a[0] - b[0]);
    svg.append(el('polyline', {
      points: pts.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' '),
      fill: 'none', stroke: color, 'stroke-width': 2, 'data-series': s.name,
    }));
    for (const p of pts) {
      const dot = el('circle', { cx: x(p[0]), cy: y(p[1]), r: 3, fill: color, class: 'sample' });
      dot.append(el('title', {}, `${new Date(p[0]).toISOString()}: ${p[1]}`));
      svg.append(dot);
    }
    legend.append(el('rect', { x: pad.l + i * 220, y: height - 18, width: 10, height: 10, fill: color }));
    legend.append(el('text', { x: pad.l + i * 220 + 14, y: height - 9 }, s.name.length > 30 ? `…${s.name.slice(-29)}` : s.name));
  });
  svg.append(legend);
  return svg;
}
