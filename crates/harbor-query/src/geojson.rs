//! Strict GeoJSON geometry reading (RFC 7946 section 3.1), used both for geo-query
//! reference geometries and to reject bad GeoProperty values with a precise message.

use geo::{
    Coord, Geometry, GeometryCollection, LineString, MultiLineString, MultiPoint, MultiPolygon,
    Point, Polygon,
};
use serde_json::Value;

use crate::QueryError;

/// Deepest accepted nesting of GeometryCollections.
const MAX_COLLECTION_DEPTH: usize = 8;

/// Reads a GeoJSON geometry object (`{"type": ..., "coordinates": ...}` or a
/// GeometryCollection), checking the type, the nesting of coordinates, that positions hold
/// 2 or 3 numbers, that LineStrings have at least 2 positions and that Polygon rings are
/// closed with at least 4.
pub fn geojson_to_geometry(v: &Value) -> Result<Geometry<f64>, QueryError> {
    read_geometry(v, 0)
}

fn err(what: impl std::fmt::Display) -> QueryError {
    QueryError::new(format!("GeoJSON: {what}"))
}

fn read_geometry(v: &Value, depth: usize) -> Result<Geometry<f64>, QueryError> {
    let Value::Object(obj) = v else {
        return Err(err(format_args!(
            "a geometry must be a JSON object, got {}",
            kind(v)
        )));
    };
    let Some(ty) = obj.get("type") else {
        return Err(err("the geometry has no \"type\""));
    };
    let Some(ty) = ty.as_str() else {
        return Err(err(format_args!(
            "\"type\" must be a string, got {}",
            kind(ty)
        )));
    };
    if ty == "GeometryCollection" {
        if depth >= MAX_COLLECTION_DEPTH {
            return Err(err(format_args!(
                "GeometryCollections nested deeper than {MAX_COLLECTION_DEPTH}"
            )));
        }
        let Some(Value::Array(members)) = obj.get("geometries") else {
            return Err(err("a GeometryCollection needs a \"geometries\" array"));
        };
        let geoms = members
            .iter()
            .map(|m| read_geometry(m, depth + 1))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Geometry::GeometryCollection(GeometryCollection(geoms)));
    }
    let Some(coords) = obj.get("coordinates") else {
        return Err(err(format_args!("the {ty} has no \"coordinates\"")));
    };
    geometry_from_coordinates(ty, coords)
}

/// Builds a geometry of the given GeoJSON type name from its `coordinates` member.
pub(crate) fn geometry_from_coordinates(ty: &str, c: &Value) -> Result<Geometry<f64>, QueryError> {
    Ok(match ty {
        "Point" => Geometry::Point(Point(position(c, ty)?)),
        "MultiPoint" => Geometry::MultiPoint(MultiPoint(
            array(c, ty)?
                .iter()
                .map(|p| position(p, ty).map(Point))
                .collect::<Result<_, _>>()?,
        )),
        "LineString" => Geometry::LineString(line(c, ty)?),
        "MultiLineString" => Geometry::MultiLineString(MultiLineString(
            array(c, ty)?
                .iter()
                .map(|l| line(l, ty))
                .collect::<Result<_, _>>()?,
        )),
        "Polygon" => Geometry::Polygon(polygon(c, ty)?),
        "MultiPolygon" => Geometry::MultiPolygon(MultiPolygon(
            array(c, ty)?
                .iter()
                .map(|p| polygon(p, ty))
                .collect::<Result<_, _>>()?,
        )),
        other => {
            return Err(err(format_args!(
                "unknown geometry type \"{other}\" (expected Point, MultiPoint, LineString, \
                 MultiLineString, Polygon, MultiPolygon or GeometryCollection)"
            )))
        }
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn array<'a>(v: &'a Value, ty: &str) -> Result<&'a Vec<Value>, QueryError> {
    v.as_array().ok_or_else(|| {
        err(format_args!(
            "{ty} coordinates: expected an array, got {}",
            kind(v)
        ))
    })
}

fn position(v: &Value, ty: &str) -> Result<Coord<f64>, QueryError> {
    let xs = array(v, ty)?;
    if !(2..=3).contains(&xs.len()) {
        return Err(err(format_args!(
            "{ty} coordinates: a position has 2 or 3 numbers [longitude, latitude], got {}",
            v
        )));
    }
    let num = |x: &Value| {
        x.as_f64().filter(|f| f.is_finite()).ok_or_else(|| {
            err(format_args!(
                "{ty} coordinates: a position holds numbers, got {} in {v}",
                kind(x)
            ))
        })
    };
    Ok(Coord {
        x: num(&xs[0])?,
        y: num(&xs[1])?,
    })
}

fn line(v: &Value, ty: &str) -> Result<LineString<f64>, QueryError> {
    let pts = array(v, ty)?
        .iter()
        .map(|p| position(p, ty))
        .collect::<Result<Vec<_>, _>>()?;
    if pts.len() < 2 {
        return Err(err(format_args!(
            "{ty} coordinates: a line needs at least 2 positions, got {}",
            pts.len()
        )));
    }
    Ok(LineString(pts))
}

fn polygon(v: &Value, ty: &str) -> Result<Polygon<f64>, QueryError> {
    let rings = array(v, ty)?;
    if rings.is_empty() {
        return Err(err(format_args!(
            "{ty} coordinates: a polygon needs at least one ring"
        )));
    }
    let mut read = Vec::with_capacity(rings.len());
    for (i, r) in rings.iter().enumerate() {
        let pts = array(r, ty)?
            .iter()
            .map(|p| position(p, ty))
            .collect::<Result<Vec<_>, _>>()?;
        if pts.len() < 4 {
            return Err(err(format_args!(
                "{ty} coordinates: ring {} needs at least 4 positions, got {}",
                i + 1,
                pts.len()
            )));
        }
        if pts.first() != pts.last() {
            return Err(err(format_args!(
                "{ty} coordinates: ring {} is not closed (its first and last positions differ)",
                i + 1
            )));
        }
        read.push(LineString(pts));
    }
    let exterior = read.remove(0);
    Ok(Polygon::new(exterior, read))
}
