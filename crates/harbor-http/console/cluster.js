// Web Mercator and grid clustering, without the DOM. Positions are kept in Mercator units
// (x and y in [0, 1], y downwards); the screen is that plane scaled by 256 * 2^zoom.

const MAX_LAT = 85.05112878;

export function project(lon, lat) {
  const l = Math.max(-MAX_LAT, Math.min(MAX_LAT, lat));
  const s = Math.sin((l * Math.PI) / 180);
  return [(lon + 180) / 360, 0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)];
}

export function unproject(x, y) {
  const lon = x * 360 - 180;
  const lat = (Math.atan(Math.sinh(Math.PI * (1 - 2 * y))) * 180) / Math.PI;
  return [lon, lat];
}

/** A growable set of points: ids and Mercator positions, with an index by id. */
export function createPoints() {
  let xs = new Float64Array(1024);
  let ys = new Float64Array(1024);
  const ids = [];
  const at = new Map();
  return {
    get length() { return ids.length; },
    ids, xs: () => xs, ys: () => ys,
    clear() { ids.length = 0; at.clear(); },
    has(id) { return at.has(id); },
    put(id, lon, lat) {
      const [x, y] = project(lon, lat);
      let i = at.get(id);
      if (i === undefined) {
        i = ids.length;
        if (i === xs.length) {
          const nx = new Float64Array(xs.length * 2); nx.set(xs); xs = nx;
          const ny = new Float64Array(ys.length * 2); ny.set(ys); ys = ny;
        }
        ids.push(id);
        at.set(id, i);
      }
      xs[i] = x; ys[i] = y;
    },
    remove(id) {
      const i = at.get(id);
      if (i === undefined) return;
      const last = ids.length - 1;
      if (i !== last) {
        ids[i] = ids[last]; xs[i] = xs[last]; ys[i] = ys[last];
        at.set(ids[i], i);
      }
      ids.pop();
      at.delete(id);
    },
    lonLat(id) {
      const i = at.get(id);
      return i === undefined ? null : unproject(xs[i], ys[i]);
    },
  };
}

/**
 * Groups the points visible in a view into cells of `cell` pixels: one mark per non-empty
 * cell, at the mean of its points, with their count and (when it is alone) its id. Linear in
 * the number of points, so 100,000 take a few milliseconds.
 */
export function cluster(points, view, cell = 48) {
  const { cx, cy, scale, width, height } = view;
  const xs = points.xs(); const ys = points.ys();
  const left = cx - width / 2 / scale; const top = cy - height / 2 / scale;
  const cols = Math.ceil(width / cell) + 1;
  const cells = new Map();
  for (let i = 0; i < points.length; i++) {
    const sx = (xs[i] - left) * scale; const sy = (ys[i] - top) * scale;
    if (sx < -cell || sy < -cell || sx > width + cell || sy > height + cell) continue;
    const key = (Math.floor(sy / cell) + 1) * (cols + 2) + Math.floor(sx / cell) + 1;
    const c = cells.get(key);
    if (c) { c.n += 1; c.sx += sx; c.sy += sy; } else cells.set(key, { n: 1, sx, sy, i });
  }
  const marks = [];
  for (const c of cells.values()) {
    marks.push({ x: c.sx / c.n, y: c.sy / c.n, n: c.n, id: c.n === 1 ? points.ids[c.i] : null });
  }
  return marks;
}
