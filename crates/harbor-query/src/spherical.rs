//! Great-circle distances between geometries given in longitude/latitude degrees, for the
//! `near` geo-relationship: the distance is to the whole reference geometry, not to one
//! representative point.

use geo::{Coord, Geometry, Intersects};

/// Mean Earth radius in metres (the value the haversine formula conventionally uses).
pub(crate) const EARTH_RADIUS_M: f64 = 6_371_008.8;

type V3 = [f64; 3];

fn unit(c: Coord<f64>) -> V3 {
    let (lon, lat) = (c.x.to_radians(), c.y.to_radians());
    [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
}

fn cross(a: V3, b: V3) -> V3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn dot(a: V3, b: V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn norm(a: V3) -> f64 {
    dot(a, a).sqrt()
}

/// Angle between two unit vectors, stable for tiny and near-antipodal angles.
fn angle(a: V3, b: V3) -> f64 {
    norm(cross(a, b)).atan2(dot(a, b))
}

/// Great-circle distance between two positions, in metres.
pub(crate) fn point_distance(a: Coord<f64>, b: Coord<f64>) -> f64 {
    angle(unit(a), unit(b)) * EARTH_RADIUS_M
}

/// Distance from `p` to the shorter great-circle arc from `a` to `b`, in metres.
fn arc_distance(p: Coord<f64>, a: Coord<f64>, b: Coord<f64>) -> f64 {
    let (pv, av, bv) = (unit(p), unit(a), unit(b));
    let n = cross(av, bv);
    let nn = norm(n);
    let to_ends = angle(pv, av).min(angle(pv, bv));
    if nn < 1e-15 {
        return to_ends * EARTH_RADIUS_M;
    }
    let nh = [n[0] / nn, n[1] / nn, n[2] / nn];
    let off = dot(pv, nh);
    let c = [
        pv[0] - off * nh[0],
        pv[1] - off * nh[1],
        pv[2] - off * nh[2],
    ];
    if norm(c) < 1e-15 {
        return to_ends * EARTH_RADIUS_M;
    }
    let on_arc = dot(cross(av, c), n) >= 0.0 && dot(cross(c, bv), n) >= 0.0;
    if on_arc {
        angle(pv, c).min(to_ends) * EARTH_RADIUS_M
    } else {
        to_ends * EARTH_RADIUS_M
    }
}

/// The vertices and edges of a geometry.
#[derive(Default)]
struct Parts {
    points: Vec<Coord<f64>>,
    segments: Vec<(Coord<f64>, Coord<f64>)>,
}

fn collect(g: &Geometry<f64>, out: &mut Parts) {
    let line = |ls: &geo::LineString<f64>, out: &mut Parts| {
        out.points.extend(ls.0.iter().copied());
        out.segments.extend(ls.lines().map(|l| (l.start, l.end)));
    };
    match g {
        Geometry::Point(p) => out.points.push(p.0),
        Geometry::MultiPoint(mp) => out.points.extend(mp.0.iter().map(|p| p.0)),
        Geometry::Line(l) => line(&geo::LineString(vec![l.start, l.end]), out),
        Geometry::LineString(ls) => line(ls, out),
        Geometry::MultiLineString(mls) => mls.0.iter().for_each(|ls| line(ls, out)),
        Geometry::Polygon(p) => {
            line(p.exterior(), out);
            p.interiors().iter().for_each(|ls| line(ls, out));
        }
        Geometry::MultiPolygon(mp) => {
            mp.0.iter()
                .for_each(|p| collect(&Geometry::Polygon(p.clone()), out))
        }
        Geometry::GeometryCollection(gc) => gc.0.iter().for_each(|g| collect(g, out)),
        Geometry::Rect(r) => collect(&Geometry::Polygon(r.to_polygon()), out),
        Geometry::Triangle(t) => collect(&Geometry::Polygon(t.to_polygon()), out),
    }
}

fn distance_to_parts(p: Coord<f64>, parts: &Parts) -> f64 {
    let mut best = f64::INFINITY;
    for q in &parts.points {
        best = best.min(point_distance(p, *q));
    }
    for (a, b) in &parts.segments {
        best = best.min(arc_distance(p, *a, *b));
    }
    best
}

/// Shortest great-circle distance between two geometries, in metres; 0 when they touch or
/// overlap (overlap judged in the lon/lat plane).
pub(crate) fn geometry_distance(a: &Geometry<f64>, b: &Geometry<f64>) -> f64 {
    if a.intersects(b) {
        return 0.0;
    }
    let (mut pa, mut pb) = (Parts::default(), Parts::default());
    collect(a, &mut pa);
    collect(b, &mut pb);
    let from_a = pa.points.iter().map(|p| distance_to_parts(*p, &pb));
    let from_b = pb.points.iter().map(|p| distance_to_parts(*p, &pa));
    from_a.chain(from_b).fold(f64::INFINITY, f64::min)
}
