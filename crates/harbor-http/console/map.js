// A hand-written canvas map: Web Mercator, pan with the mouse, zoom with the wheel or the
// buttons, points clustered on a grid, and raster tiles only when an operator configured a
// tile URL (there is no tile server in the broker). Without tiles it draws a graticule.

import { cluster, createPoints, project, unproject } from './cluster.js';

export function createMap(canvas, { onPick, onMove }) {
  const ctx = canvas.getContext('2d');
  const points = createPoints();
  const flashes = new Map(); // id -> time of its last live update
  const tiles = new Map();   // url -> Image
  let tileUrl = '';
  let view = { cx: 0.5, cy: 0.5, zoom: 2 };
  let dirty = false;
  let marks = [];
  let moved = null;

  const size = () => ({ width: canvas.clientWidth, height: canvas.clientHeight });
  const scale = () => 256 * 2 ** view.zoom;

  function resize() {
    const ratio = window.devicePixelRatio || 1;
    const { width, height } = size();
    canvas.width = Math.max(1, Math.round(width * ratio));
    canvas.height = Math.max(1, Math.round(height * ratio));
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    redraw();
  }

  function redraw() {
    if (!dirty) { dirty = true; requestAnimationFrame(draw); }
  }

  function changed() {
    redraw();
    clearTimeout(moved);
    moved = setTimeout(() => onMove && onMove(), 250);
  }

  function draw() {
    dirty = false;
    const { width, height } = size();
    const s = scale();
    ctx.clearRect(0, 0, width, height);
    ctx.fillStyle = '#dfe8ee';
    ctx.fillRect(0, 0, width, height);
    if (tileUrl) drawTiles(width, height, s); else drawGraticule(width, height, s);
    const started = performance.now();
    marks = cluster(points, { cx: view.cx, cy: view.cy, scale: s, width, height });
    const now = Date.now();
    for (const m of marks) {
      if (m.n === 1) {
        const fresh = flashes.has(m.id) && now - flashes.get(m.id) < 2000;
        ctx.beginPath();
        ctx.arc(m.x, m.y, fresh ? 7 : 5, 0, 2 * Math.PI);
        ctx.fillStyle = fresh ? '#ff7a00' : '#0a6ebd';
        ctx.fill();
        ctx.strokeStyle = '#fff'; ctx.lineWidth = 1.5; ctx.stroke();
      } else {
        const r = 9 + 4 * Math.log10(m.n);
        ctx.beginPath();
        ctx.arc(m.x, m.y, r, 0, 2 * Math.PI);
        ctx.fillStyle = 'rgba(10, 110, 189, 0.78)';
        ctx.fill();
        ctx.fillStyle = '#fff';
        ctx.font = '11px system-ui, sans-serif';
        ctx.textAlign = 'center'; ctx.textBaseline = 'middle';
        ctx.fillText(m.n >= 1000 ? `${Math.round(m.n / 100) / 10}k` : String(m.n), m.x, m.y);
      }
    }
    canvas.dataset.points = String(points.length);
    canvas.dataset.marks = String(marks.length);
    canvas.dataset.drawMs = (performance.now() - started).toFixed(1);
    if ([...flashes.values()].some((t) => now - t < 2000)) setTimeout(redraw, 500);
  }

  function drawGraticule(width, height, s) {
    const [w, n] = unproject(view.cx - width / 2 / s, view.cy - height / 2 / s);
    const [e, so] = unproject(view.cx + width / 2 / s, view.cy + height / 2 / s);
    const span = Math.max(e - w, 1e-6);
    const step = [90, 30, 10, 5, 2, 1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001]
      .find((d) => span / d >= 4) || 0.001;
    ctx.strokeStyle = '#c5d3dc'; ctx.lineWidth = 1;
    ctx.fillStyle = '#7b8d99'; ctx.font = '10px system-ui, sans-serif';
    ctx.textAlign = 'left'; ctx.textBaseline = 'top';
    for (let lon = Math.ceil(w / step) * step; lon <= e; lon += step) {
      const x = (project(lon, 0)[0] - view.cx) * s + width / 2;
      ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, height); ctx.stroke();
      ctx.fillText(`${+lon.toFixed(3)}°`, x + 2, 2);
    }
    for (let lat = Math.ceil(so / step) * step; lat <= n; lat += step) {
      const y = (project(0, lat)[1] - view.cy) * s + height / 2;
      ctx.beginPath(); ctx.moveTo(0, y); ctx.lineTo(width, y); ctx.stroke();
      ctx.fillText(`${+lat.toFixed(3)}°`, 2, y + 2);
    }
  }

  function drawTiles(width, height, s) {
    const z = Math.max(0, Math.min(19, Math.round(view.zoom)));
    const n = 2 ** z;
    const px = s / n; // size of one tile on screen
    const left = view.cx - width / 2 / s; const top = view.cy - height / 2 / s;
    const x0 = Math.floor(left * n); const y0 = Math.max(0, Math.floor(top * n));
    const x1 = Math.floor((left + width / s) * n); const y1 = Math.min(n - 1, Math.floor((top + height / s) * n));
    for (let ty = y0; ty <= y1; ty++) {
      for (let tx = x0; tx <= x1; tx++) {
        const wx = ((tx % n) + n) % n;
        const src = tileUrl.replace('{z}', z).replace('{x}', wx).replace('{y}', ty);
        let img = tiles.get(src);
        if (!img) {
          if (tiles.size > 512) tiles.clear();
          img = new Image();
          img.onload = redraw;
          img.src = src;
          tiles.set(src, img);
        }
        if (img.complete && img.naturalWidth) {
          ctx.drawImage(img, (tx / n - left) * s, (ty / n - top) * s, px + 0.5, px + 0.5);
        }
      }
    }
  }

  function zoomAt(sx, sy, dz) {
    const { width, height } = size();
    const s0 = scale();
    const mx = view.cx + (sx - width / 2) / s0; const my = view.cy + (sy - height / 2) / s0;
    view.zoom = Math.max(0, Math.min(20, view.zoom + dz));
    const s1 = scale();
    view.cx = mx - (sx - width / 2) / s1; view.cy = my - (sy - height / 2) / s1;
    changed();
  }

  let drag = null;
  canvas.addEventListener('mousedown', (e) => {
    drag = { x: e.clientX, y: e.clientY, cx: view.cx, cy: view.cy, moved: false };
    canvas.classList.add('dragging');
  });
  window.addEventListener('mousemove', (e) => {
    if (!drag) return;
    const dx = e.clientX - drag.x; const dy = e.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
    view.cx = drag.cx - dx / scale(); view.cy = drag.cy - dy / scale();
    changed();
  });
  window.addEventListener('mouseup', (e) => {
    if (!drag) return;
    const wasClick = !drag.moved;
    drag = null;
    canvas.classList.remove('dragging');
    if (wasClick) pick(e);
  });
  canvas.addEventListener('wheel', (e) => {
    e.preventDefault();
    const r = canvas.getBoundingClientRect();
    zoomAt(e.clientX - r.left, e.clientY - r.top, -Math.sign(e.deltaY) * 0.5);
  }, { passive: false });

  function pick(e) {
    const r = canvas.getBoundingClientRect();
    const x = e.clientX - r.left; const y = e.clientY - r.top;
    let best = null; let bestD = 18 * 18;
    for (const m of marks) {
      const d = (m.x - x) ** 2 + (m.y - y) ** 2;
      if (d < bestD) { best = m; bestD = d; }
    }
    if (!best) return;
    if (best.id) onPick && onPick(best.id);
    else zoomAt(best.x, best.y, 2);
  }

  new ResizeObserver(resize).observe(canvas);
  resize();

  return {
    points,
    put(id, lon, lat) { points.put(id, lon, lat); redraw(); },
    remove(id) { points.remove(id); redraw(); },
    flash(id) { flashes.set(id, Date.now()); redraw(); },
    clear() { points.clear(); redraw(); },
    zoomBy(dz) { const { width, height } = size(); zoomAt(width / 2, height / 2, dz); },
    setTiles(url) { tileUrl = url; tiles.clear(); redraw(); },
    /** Where a point of an entity is on screen (for the tests and the keyboard). */
    screenOf(id) {
      const ll = points.lonLat(id);
      if (!ll) return null;
      const [x, y] = project(ll[0], ll[1]);
      const { width, height } = size();
      return { x: (x - view.cx) * scale() + width / 2, y: (y - view.cy) * scale() + height / 2 };
    },
    /** The visible area as [west, south, east, north], and whether it is the whole world. */
    bounds() {
      const { width, height } = size();
      const s = scale();
      const [w, n] = unproject(view.cx - width / 2 / s, view.cy - height / 2 / s);
      const [e, so] = unproject(view.cx + width / 2 / s, view.cy + height / 2 / s);
      const world = w <= -180 && e >= 180;
      return { box: [Math.max(-180, w), Math.max(-85, so), Math.min(180, e), Math.min(85, n)], world };
    },
    /** Shows every point. */
    fit() {
      if (!points.length) return;
      const xs = points.xs(); const ys = points.ys();
      let x0 = 1; let x1 = 0; let y0 = 1; let y1 = 0;
      for (let i = 0; i < points.length; i++) {
        x0 = Math.min(x0, xs[i]); x1 = Math.max(x1, xs[i]);
        y0 = Math.min(y0, ys[i]); y1 = Math.max(y1, ys[i]);
      }
      const { width, height } = size();
      const span = Math.max(x1 - x0, y1 - y0, 1e-7);
      view.zoom = Math.max(0, Math.min(18, Math.log2((Math.min(width, height) * 0.8) / (256 * span))));
      view.cx = (x0 + x1) / 2; view.cy = (y0 + y1) / 2;
      changed();
    },
  };
}
