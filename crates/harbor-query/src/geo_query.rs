//! Geo-queries (4.10): `georel`, `geometry`, `coordinates` and `geoproperty` parsed into a
//! [`GeoQuery`] that tests Entities, plus a bounding box for R-tree pre-filtering.

use geo::{BoundingRect, Coord, Geometry, Rect, Relate};
use harbor_model::{AttrValue, Entity};
use serde_json::Value;

use crate::geojson::{geojson_to_geometry, geometry_from_coordinates};
use crate::spherical::{geometry_distance, EARTH_RADIUS_M};
use crate::QueryError;

/// The geo-relationship asked for; distances are in metres.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GeoRel {
    NearMax(f64),
    NearMin(f64),
    Within,
    Contains,
    Intersects,
    Equals,
    Disjoint,
    Overlaps,
}

/// A parsed geo-query. The geoproperty name is expanded.
#[derive(Debug, Clone, PartialEq)]
pub struct GeoQuery {
    pub rel: GeoRel,
    pub geometry: Geometry<f64>,
    pub geoproperty: String,
}

/// Reads the `coordinates` query parameter text (JSON array) into a JSON value.
pub fn parse_coordinates_text(text: &str) -> Result<Value, QueryError> {
    crate::QueryError::check_len("coordinates", text)?;
    let v: Value = serde_json::from_str(text.trim())
        .map_err(|e| QueryError::new(format!("coordinates: not a JSON array of numbers ({e})")))?;
    if !v.is_array() {
        return Err(QueryError::new("coordinates: must be a JSON array"));
    }
    Ok(v)
}

/// Parses a geo-query. `geoproperty` defaults to `location`; a given name is expanded
/// with `expand`.
pub fn parse_geo_query(
    georel: &str,
    geometry: &str,
    coordinates: &Value,
    geoproperty: Option<&str>,
    expand: &dyn Fn(&str) -> String,
) -> Result<GeoQuery, QueryError> {
    let rel = parse_georel(georel)?;
    if !matches!(
        geometry,
        "Point" | "MultiPoint" | "LineString" | "MultiLineString" | "Polygon" | "MultiPolygon"
    ) {
        return Err(QueryError::new(format!(
            "geometry: \"{geometry}\" is not one of Point, MultiPoint, LineString, \
             MultiLineString, Polygon, MultiPolygon"
        )));
    }
    let geom = geometry_from_coordinates(geometry, coordinates)
        .map_err(|e| QueryError::new(format!("coordinates: {}", e.detail)))?;
    let geoproperty = match geoproperty.map(str::trim) {
        None | Some("") => harbor_model::names::LOCATION.to_string(),
        Some(name) => {
            if name.contains(|c: char| c.is_whitespace() || "=<>!~;|()[]{}\",".contains(c)) {
                return Err(QueryError::new(format!(
                    "geoproperty: \"{name}\" is not a valid attribute name"
                )));
            }
            expand(name)
        }
    };
    Ok(GeoQuery {
        rel,
        geometry: geom,
        geoproperty,
    })
}

fn parse_georel(text: &str) -> Result<GeoRel, QueryError> {
    let bad = |what: &str| QueryError::new(format!("georel: {what}"));
    let mut parts = text.split(';');
    let name = parts.next().unwrap_or("").trim();
    let modifiers: Vec<&str> = parts.collect();
    let simple = match name {
        "within" => Some(GeoRel::Within),
        "contains" => Some(GeoRel::Contains),
        "intersects" => Some(GeoRel::Intersects),
        "equals" => Some(GeoRel::Equals),
        "disjoint" => Some(GeoRel::Disjoint),
        "overlaps" => Some(GeoRel::Overlaps),
        "near" => None,
        "" => return Err(bad("is empty")),
        other => {
            return Err(bad(&format!(
                "\"{other}\" is not one of near, within, contains, intersects, equals, \
                 disjoint, overlaps"
            )))
        }
    };
    if let Some(rel) = simple {
        if !modifiers.is_empty() {
            return Err(bad(&format!("\"{name}\" takes no modifier")));
        }
        return Ok(rel);
    }
    let [modifier] = modifiers[..] else {
        return Err(bad(
            "near needs exactly one of ';maxDistance==<metres>' or ';minDistance==<metres>'",
        ));
    };
    let (key, value) = modifier.split_once("==").ok_or_else(|| {
        bad(&format!(
            "expected maxDistance==<metres> or minDistance==<metres>, got \"{modifier}\""
        ))
    })?;
    let metres = value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|d| {
            d.is_finite() && *d > 0.0 && value.trim().starts_with(|c: char| c.is_ascii_digit())
        })
        .ok_or_else(|| {
            bad(&format!(
                "{key} must be a positive number of metres, got \"{value}\""
            ))
        })?;
    match key.trim() {
        "maxDistance" => Ok(GeoRel::NearMax(metres)),
        "minDistance" => Ok(GeoRel::NearMin(metres)),
        other => Err(bad(&format!(
            "\"{other}\" is not maxDistance or minDistance"
        ))),
    }
}

impl GeoQuery {
    /// Whether any instance of the geoproperty satisfies the relationship; an Entity
    /// without it (or with an unreadable value) does not match.
    pub fn matches(&self, e: &Entity) -> bool {
        e.attrs
            .get(&self.geoproperty)
            .into_iter()
            .flatten()
            .filter_map(|a| match &a.value {
                AttrValue::GeoProperty(v) | AttrValue::Property(v) => geojson_to_geometry(v).ok(),
                _ => None,
            })
            .any(|g| self.matches_geometry(&g))
    }

    /// Whether an Entity's geometry `g` stands in the relationship to the reference
    /// geometry (`g within reference`, `g contains reference`, ...).
    pub fn matches_geometry(&self, g: &Geometry<f64>) -> bool {
        let q = &self.geometry;
        match self.rel {
            GeoRel::NearMax(d) => geometry_distance(g, q) <= d,
            GeoRel::NearMin(d) => geometry_distance(g, q) >= d,
            GeoRel::Within => g.relate(q).is_within(),
            GeoRel::Contains => g.relate(q).is_contains(),
            GeoRel::Intersects => g.relate(q).is_intersects(),
            // The same coordinates are equal even when the polygon is not valid (a bow tie),
            // where the topological relation is undefined.
            GeoRel::Equals => g == q || g.relate(q).is_equal_topo(),
            GeoRel::Disjoint => g.relate(q).is_disjoint(),
            GeoRel::Overlaps => g.relate(q).is_overlaps(),
        }
    }

    /// A lon/lat box every matching geometry intersects, for R-tree pre-filtering; `None`
    /// when no box bounds the matches (`disjoint`, `near;minDistance`).
    pub fn bounding_rect(&self) -> Option<Rect<f64>> {
        let r = self.geometry.bounding_rect()?;
        match self.rel {
            GeoRel::Disjoint | GeoRel::NearMin(_) => None,
            GeoRel::NearMax(d) => Some(expand_rect(r, d)),
            _ => Some(r),
        }
    }
}

/// Grows `r` by `metres` in every direction, generously (1 % margin, whole longitude range
/// near the poles or across the antimeridian).
fn expand_rect(r: Rect<f64>, metres: f64) -> Rect<f64> {
    let dlat = (metres / EARTH_RADIUS_M).to_degrees() * 1.01;
    let min_y = (r.min().y - dlat).max(-90.0);
    let max_y = (r.max().y + dlat).min(90.0);
    let worst_lat = min_y.abs().max(max_y.abs());
    let (mut min_x, mut max_x) = (-180.0, 180.0);
    if worst_lat < 89.0 {
        let dlon = dlat / worst_lat.to_radians().cos();
        if r.min().x - dlon >= -180.0 && r.max().x + dlon <= 180.0 {
            min_x = r.min().x - dlon;
            max_x = r.max().x + dlon;
        }
    }
    Rect::new(Coord { x: min_x, y: min_y }, Coord { x: max_x, y: max_y })
}
