//! Geo-query behaviour tables: the relationships (including the conformance-suite edge
//! cases of 019_10, 019_11 and 019_30), geoproperty lookup and the pre-filter boxes.

use geo::{Geometry, Point};
use serde_json::{json, Value};

use super::geo_parse::geom;
use super::{entity, ex};
use crate::{parse_geo_query, GeoRel};

fn query(georel: &str, geometry: &str, coords: Value) -> crate::GeoQuery {
    parse_geo_query(georel, geometry, &coords, None, &ex)
        .unwrap_or_else(|e| panic!("{georel} {geometry} {coords}: {e}"))
}

#[test]
fn georels_parse() {
    let cases = [
        ("near;maxDistance==15000", GeoRel::NearMax(15000.0)),
        ("near;minDistance==1.5", GeoRel::NearMin(1.5)),
        ("within", GeoRel::Within),
        ("contains", GeoRel::Contains),
        ("intersects", GeoRel::Intersects),
        ("equals", GeoRel::Equals),
        ("disjoint", GeoRel::Disjoint),
        ("overlaps", GeoRel::Overlaps),
    ];
    for (georel, want) in cases {
        assert_eq!(query(georel, "Point", json!([8, 40])).rel, want, "{georel}");
    }
}

#[test]
fn relationships_between_geometries() {
    let holed = json!([
        [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]],
        [[4, 4], [6, 4], [6, 6], [4, 6], [4, 4]]
    ]);
    let berlin = json!([[
        [13.1616211, 52.5438124],
        [13.597641, 52.4840224],
        [13.5948944, 52.3402782],
        [13.142395, 52.386428],
        [13.1616211, 52.5438124]
    ]]);
    let square =
        json!({"type": "Polygon", "coordinates": [[[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]]]});
    let pt = |x: f64, y: f64| json!({"type": "Point", "coordinates": [x, y]});
    let cases = [
        // 019_30: the hole of a polygon is outside it
        ("within", "Polygon", holed.clone(), pt(5.0, 5.0), false),
        ("within", "Polygon", holed.clone(), pt(2.0, 2.0), true),
        // 019_30: distance is to the whole reference geometry, on the sphere
        (
            "near;maxDistance==2000",
            "LineString",
            json!([[0, 60], [10, 60]]),
            pt(10.0, 60.009),
            true,
        ),
        (
            "near;maxDistance==2000",
            "LineString",
            json!([[0, 61], [10, 61]]),
            pt(10.0, 60.009),
            false,
        ),
        (
            "near;maxDistance==20000",
            "Point",
            json!([0, 85]),
            json!({"type": "LineString", "coordinates": [[0.0, 85.6], [1.0, 85.0]]}),
            true,
        ),
        (
            "near;maxDistance==5000",
            "Point",
            json!([0, 85]),
            json!({"type": "LineString", "coordinates": [[0.0, 85.6], [1.0, 85.0]]}),
            false,
        ),
        (
            "near;maxDistance==2000",
            "Point",
            json!([8, 40]),
            pt(8.01, 40.01),
            true,
        ),
        (
            "near;maxDistance==1000",
            "Point",
            json!([8, 40]),
            pt(8.01, 40.01),
            false,
        ),
        (
            "near;minDistance==1000",
            "Point",
            json!([8, 40]),
            pt(8.01, 40.01),
            true,
        ),
        (
            "near;minDistance==2000",
            "Point",
            json!([8, 40]),
            pt(8.01, 40.01),
            false,
        ),
        (
            "near;maxDistance==1",
            "Point",
            json!([2, 2]),
            square.clone(),
            true,
        ),
        (
            "near;minDistance==1",
            "Point",
            json!([2, 2]),
            square.clone(),
            false,
        ),
        (
            "near;maxDistance==15000",
            "Point",
            json!([13.388930, 52.534473]),
            pt(13.3986, 52.5547),
            true,
        ),
        (
            "near;minDistance==15000",
            "Point",
            json!([13.388930, 52.534473]),
            pt(13.3986, 52.5547),
            false,
        ),
        (
            "near;minDistance==15000",
            "Point",
            json!([13.388930, 52.534473]),
            pt(13.0, 52.0),
            true,
        ),
        // 019_10 / 019_11
        (
            "equals",
            "Point",
            json!([13.3986, 52.5547]),
            pt(13.3986, 52.5547),
            true,
        ),
        (
            "equals",
            "Point",
            json!([13.3986, 52.5547]),
            pt(13.3987, 52.5547),
            false,
        ),
        (
            "contains",
            "Point",
            json!([13.3986, 52.5547]),
            pt(13.3986, 52.5547),
            true,
        ),
        (
            "intersects",
            "Point",
            json!([13.3986, 52.5547]),
            pt(13.3986, 52.5547),
            true,
        ),
        (
            "disjoint",
            "Point",
            json!([13.3986, 52.5547]),
            pt(13.3986, 52.5547),
            false,
        ),
        (
            "disjoint",
            "Point",
            json!([13.3986, 52.5547]),
            pt(13.0, 52.0),
            true,
        ),
        (
            "within",
            "Polygon",
            berlin.clone(),
            pt(13.3986, 52.5547),
            false,
        ),
        ("within", "Polygon", berlin.clone(), pt(13.35, 52.45), true),
        (
            "disjoint",
            "Polygon",
            berlin.clone(),
            pt(13.35, 52.45),
            false,
        ),
        ("contains", "Point", json!([2, 2]), square.clone(), true),
        ("contains", "Point", json!([5, 5]), square.clone(), false),
        (
            "contains",
            "Polygon",
            json!([[[1, 1], [1, 1], [2, 1], [2, 2], [1, 1]]]),
            square.clone(),
            true,
        ),
        (
            "within",
            "Polygon",
            json!([[[-1, -1], [5, -1], [5, 5], [-1, 5], [-1, -1]]]),
            square.clone(),
            true,
        ),
        (
            "overlaps",
            "Polygon",
            json!([[[2, 2], [6, 2], [6, 6], [2, 6], [2, 2]]]),
            square.clone(),
            true,
        ),
        (
            "overlaps",
            "Polygon",
            json!([[[1, 1], [2, 1], [2, 2], [1, 1]]]),
            square.clone(),
            false,
        ),
        (
            "intersects",
            "Polygon",
            json!([[[2, 2], [6, 2], [6, 6], [2, 6], [2, 2]]]),
            square.clone(),
            true,
        ),
        (
            "intersects",
            "LineString",
            json!([[5, 5], [6, 6]]),
            square.clone(),
            false,
        ),
        (
            "equals",
            "Polygon",
            json!([[[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]]]),
            square.clone(),
            true,
        ),
        (
            "within",
            "MultiPolygon",
            json!([
                [[[0, 0], [1, 0], [1, 1], [0, 0]]],
                [[[1.5, 1.5], [3, 1.5], [3, 3], [1.5, 1.5]]]
            ]),
            pt(2.5, 2.0),
            true,
        ),
        (
            "intersects",
            "MultiPoint",
            json!([[9, 9], [2, 2]]),
            square.clone(),
            true,
        ),
        (
            "intersects",
            "MultiLineString",
            json!([[[9, 9], [8, 8]], [[-1, 2], [1, 2]]]),
            square.clone(),
            true,
        ),
    ];
    for (georel, geometry, coords, entity_geom, want) in cases {
        let q = query(georel, geometry, coords.clone());
        let g = geom(entity_geom.clone());
        assert_eq!(
            q.matches_geometry(&g),
            want,
            "{georel} {geometry} {coords} vs {entity_geom}"
        );
    }
}

#[test]
fn entities_match_through_their_geoproperty() {
    let e = entity(json!({
        "id": "urn:b:1", "type": "Building",
        "https://uri.etsi.org/ngsi-ld/location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [5, 5]}},
        "observationSpace": [
            {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [50, 50]}},
            {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [8, 40]}, "datasetId": "urn:ds:2"}
        ],
        "broken": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [1]}}
    }));
    let near = json!([8, 40]);
    let cases = [
        (None, "near;maxDistance==2000", false),
        (Some("observationSpace"), "near;maxDistance==2000", true),
        (Some("operationSpace"), "near;maxDistance==2000", false),
        (Some("broken"), "near;minDistance==1", false),
        (None, "near;minDistance==2000", true),
    ];
    for (prop, georel, want) in cases {
        let q = parse_geo_query(georel, "Point", &near, prop, &ex).unwrap();
        assert_eq!(q.matches(&e), want, "{prop:?} {georel}");
    }
}

#[test]
fn bounding_rects_cover_every_match() {
    let poly = json!([[[1, 2], [3, 2], [3, 5], [1, 2]]]);
    let r = query("within", "Polygon", poly.clone())
        .bounding_rect()
        .unwrap();
    assert_eq!(
        (r.min().x, r.min().y, r.max().x, r.max().y),
        (1.0, 2.0, 3.0, 5.0)
    );
    assert!(query("disjoint", "Polygon", poly).bounding_rect().is_none());
    assert!(query("near;minDistance==10", "Point", json!([0, 0]))
        .bounding_rect()
        .is_none());

    let r = query("near;maxDistance==1000", "Point", json!([0, 60]))
        .bounding_rect()
        .unwrap();
    // 1 km is ~0.009 degrees of latitude and ~0.018 of longitude at 60 degrees north.
    assert!(
        r.max().y - 60.0 > 0.009 && r.max().y - 60.0 < 0.0095,
        "{r:?}"
    );
    assert!(r.max().x > 0.018 && r.max().x < 0.0185, "{r:?}");
    let hit = Point::new(0.0179, 60.0);
    let q = query("near;maxDistance==1000", "Point", json!([0, 60]));
    assert!(q.matches_geometry(&Geometry::Point(hit)));
    assert!(r.min().x <= hit.x() && hit.x() <= r.max().x);

    let polar = query("near;maxDistance==100000", "Point", json!([0, 89.5]))
        .bounding_rect()
        .unwrap();
    assert_eq!(
        (polar.min().x, polar.max().x, polar.max().y),
        (-180.0, 180.0, 90.0)
    );
    let dateline = query("near;maxDistance==10000", "Point", json!([179.99, 0]))
        .bounding_rect()
        .unwrap();
    assert_eq!((dateline.min().x, dateline.max().x), (-180.0, 180.0));
}

#[test]
fn great_circle_distances() {
    use crate::spherical::point_distance;
    let c = |x: f64, y: f64| geo::Coord { x, y };
    let one_degree = 6_371_008.8 * std::f64::consts::PI / 180.0;
    assert!((point_distance(c(0.0, 0.0), c(0.0, 1.0)) - one_degree).abs() < 1e-6);
    assert!((point_distance(c(0.0, 0.0), c(1.0, 0.0)) - one_degree).abs() < 1e-6);
    assert!((point_distance(c(0.0, 60.0), c(1.0, 60.0)) - 55_597.0).abs() < 50.0);
    assert!(point_distance(c(8.0, 40.0), c(8.0, 40.0)).abs() < 1e-9);
    assert!((point_distance(c(0.0, 0.0), c(180.0, 0.0)) - one_degree * 180.0).abs() < 1e-3);
}

#[test]
fn an_invalid_polygon_equals_itself() {
    // A bow tie (self-intersecting ring) as in suite 019_11_01: relate() is undefined.
    let bow_tie = json!([[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]);
    let other = json!([[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]]);
    let q = query("equals", "Polygon", bow_tie.clone());
    let g = geom(json!({"type": "Polygon", "coordinates": bow_tie}));
    assert!(q.matches_geometry(&g));
    assert!(!q.matches_geometry(&geom(json!({"type": "Polygon", "coordinates": other}))));
}
