//! Geo-query input validation tables: georel, geometry, coordinates text, geoproperty and
//! strict GeoJSON reading, each bad input with the message it must produce.

use geo::Geometry;
use serde_json::{json, Value};

use super::ex;
use crate::{geojson_to_geometry, parse_coordinates_text, parse_geo_query};

pub(super) fn geom(v: Value) -> Geometry<f64> {
    geojson_to_geometry(&v).unwrap_or_else(|e| panic!("{v}: {e}"))
}

#[test]
fn invalid_geo_queries_are_rejected() {
    let point = json!([8, 40]);
    let cases = [
        (
            "near;maxDistance==0",
            "Point",
            point.clone(),
            "maxDistance must be a positive number",
        ),
        (
            "near;maxDistance==-100",
            "Point",
            point.clone(),
            "must be a positive number",
        ),
        (
            "near;maxDistance==inf",
            "Point",
            point.clone(),
            "must be a positive number",
        ),
        (
            "near;maxDistance==1e400",
            "Point",
            point.clone(),
            "must be a positive number",
        ),
        (
            "near;maxDistance==NaN",
            "Point",
            point.clone(),
            "must be a positive number",
        ),
        (
            "near;maxDistance==abc",
            "Point",
            point.clone(),
            "must be a positive number",
        ),
        (
            "near;maxDistance==5;minDistance==1",
            "Point",
            point.clone(),
            "exactly one of",
        ),
        ("near", "Point", point.clone(), "near needs exactly one of"),
        (
            "near;maxDistance=5",
            "Point",
            point.clone(),
            "expected maxDistance==<metres>",
        ),
        (
            "near;distance==5",
            "Point",
            point.clone(),
            "\"distance\" is not maxDistance",
        ),
        (
            "touches",
            "Point",
            point.clone(),
            "georel: \"touches\" is not one of",
        ),
        (
            "invalid",
            "Point",
            point.clone(),
            "georel: \"invalid\" is not one of",
        ),
        ("", "Point", point.clone(), "georel: is empty"),
        (
            "within;maxDistance==5",
            "Point",
            point.clone(),
            "\"within\" takes no modifier",
        ),
        (
            "within",
            "point",
            point.clone(),
            "geometry: \"point\" is not one of",
        ),
        (
            "within",
            "Circle",
            point.clone(),
            "geometry: \"Circle\" is not one of",
        ),
        (
            "within",
            "GeometryCollection",
            point.clone(),
            "is not one of",
        ),
        (
            "within",
            "Point",
            json!([1]),
            "coordinates: GeoJSON: Point coordinates: a position has 2 or 3 numbers",
        ),
        (
            "within",
            "Point",
            json!(["a", "b"]),
            "a position holds numbers, got a string",
        ),
        (
            "within",
            "Point",
            json!([[1, 2]]),
            "a position has 2 or 3 numbers",
        ),
        (
            "within",
            "LineString",
            json!([[0, 0]]),
            "a line needs at least 2 positions, got 1",
        ),
        (
            "within",
            "Polygon",
            json!([[[0, 0], [1, 0], [1, 1], [0, 1]]]),
            "ring 1 is not closed",
        ),
        (
            "within",
            "Polygon",
            json!([[[0, 0], [1, 0], [0, 0]]]),
            "ring 1 needs at least 4 positions, got 3",
        ),
        (
            "within",
            "Polygon",
            json!([]),
            "a polygon needs at least one ring",
        ),
        (
            "within",
            "MultiPolygon",
            json!([[[0, 0], [1, 0], [1, 1], [0, 0]]]),
            "expected an array, got a number",
        ),
    ];
    for (georel, geometry, coords, want) in cases {
        let err = parse_geo_query(georel, geometry, &coords, None, &ex)
            .expect_err(&format!("{georel} {geometry} {coords}"));
        assert!(
            err.detail.contains(want),
            "{georel} {geometry} {coords}: got {:?}, want {want:?}",
            err.detail
        );
    }
    let err = parse_geo_query("within", "Point", &point, Some("a b"), &ex).unwrap_err();
    assert!(err
        .detail
        .contains("geoproperty: \"a b\" is not a valid attribute name"));
}

#[test]
fn geoproperty_defaults_to_location_and_is_expanded() {
    let p = json!([8, 40]);
    let q = parse_geo_query("within", "Point", &p, None, &ex).unwrap();
    assert_eq!(q.geoproperty, "https://uri.etsi.org/ngsi-ld/location");
    let q = parse_geo_query("within", "Point", &p, Some("observationSpace"), &ex).unwrap();
    assert_eq!(q.geoproperty, "ex:observationSpace");
}

#[test]
fn coordinates_text_is_json() {
    assert_eq!(parse_coordinates_text("[8, 40]").unwrap(), json!([8, 40]));
    assert_eq!(
        parse_coordinates_text(" [[[0,0],[1,0],[1,1],[0,0]]] ").unwrap()[0][1],
        json!([1, 0])
    );
    for (text, want) in [
        ("8,40", "coordinates: not a JSON array of numbers"),
        ("[8,", "coordinates: not a JSON array of numbers"),
        ("{\"a\":1}", "coordinates: must be a JSON array"),
    ] {
        let err = parse_coordinates_text(text).unwrap_err();
        assert!(err.detail.contains(want), "{text}: {:?}", err.detail);
    }
}

#[test]
fn geojson_validation() {
    let ok = [
        json!({"type": "Point", "coordinates": [1, 2]}),
        json!({"type": "Point", "coordinates": [1, 2, 3]}),
        json!({"type": "MultiPoint", "coordinates": [[1, 2], [3, 4]]}),
        json!({"type": "LineString", "coordinates": [[1, 2], [3, 4]]}),
        json!({"type": "MultiLineString", "coordinates": [[[1, 2], [3, 4]]]}),
        json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}),
        json!({"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 0], [1, 1], [0, 0]]]]}),
        json!({"type": "GeometryCollection", "geometries": [{"type": "Point", "coordinates": [1, 2]}]}),
    ];
    for v in ok {
        geom(v);
    }
    let bad = [
        (
            json!([1, 2]),
            "GeoJSON: a geometry must be a JSON object, got an array",
        ),
        (
            json!({"coordinates": [1, 2]}),
            "GeoJSON: the geometry has no \"type\"",
        ),
        (
            json!({"type": 7, "coordinates": [1, 2]}),
            "\"type\" must be a string, got a number",
        ),
        (
            json!({"type": "Point"}),
            "GeoJSON: the Point has no \"coordinates\"",
        ),
        (
            json!({"type": "Circle", "coordinates": [1, 2]}),
            "unknown geometry type \"Circle\"",
        ),
        (
            json!({"type": "point", "coordinates": [1, 2]}),
            "unknown geometry type \"point\"",
        ),
        (
            json!({"type": "Point", "coordinates": [1, 2, 3, 4]}),
            "a position has 2 or 3 numbers",
        ),
        (
            json!({"type": "Point", "coordinates": [1, null]}),
            "holds numbers, got null",
        ),
        (
            json!({"type": "LineString", "coordinates": [[1, 2]]}),
            "at least 2 positions",
        ),
        (
            json!({"type": "LineString", "coordinates": [1, 2]}),
            "expected an array, got a number",
        ),
        (
            json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}),
            "ring 1 is not closed",
        ),
        (
            json!({"type": "Polygon", "coordinates": [[[0, 0], [9, 0], [9, 9], [0, 0]], [[1, 1], [2, 1], [1, 1]]]}),
            "ring 2 needs at least 4 positions",
        ),
        (
            json!({"type": "GeometryCollection"}),
            "needs a \"geometries\" array",
        ),
        (
            json!({"type": "GeometryCollection", "geometries": [{"type": "Point", "coordinates": []}]}),
            "a position has 2 or 3 numbers",
        ),
    ];
    for (v, want) in bad {
        let err = geojson_to_geometry(&v).expect_err(&v.to_string());
        assert!(
            err.detail.contains(want),
            "{v}: got {:?}, want {want:?}",
            err.detail
        );
    }
    let mut deep = json!({"type": "Point", "coordinates": [1, 2]});
    for _ in 0..9 {
        deep = json!({"type": "GeometryCollection", "geometries": [deep]});
    }
    assert!(geojson_to_geometry(&deep)
        .unwrap_err()
        .detail
        .contains("nested deeper than 8"));
}
