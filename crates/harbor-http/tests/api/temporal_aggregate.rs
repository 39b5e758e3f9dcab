//! The aggregated temporal representation (4.5.19) end to end, against values worked out by
//! hand from the instances: every method, datasetIds, deletions, strings, booleans and
//! arrays, periods aligned at the range or at the entity's oldest instance, `lastN`,
//! `timeproperty` other than observedAt (whose order is not the store's), and the query
//! endpoint agreeing with retrieval.

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::{app, call, JSON};

const T: &str = "/ngsi-ld/v1/temporal/entities";
const ID: &str = "urn:ngsi-ld:Vehicle:A1";
const DS: &str = "urn:ngsi-ld:Dataset:b";
const ALL: &str = "totalCount,distinctCount,sum,avg,min,max,stddev,sumsq";

fn p(value: Value, at: &str) -> Value {
    json!({"type": "Property", "value": value, "observedAt": format!("2020-08-01T{at}:00Z")})
}

fn p_ds(value: Value, at: &str) -> Value {
    let mut v = p(value, at);
    v["datasetId"] = json!(DS);
    v
}

/// Sent later observations first, so that by `modifiedAt` the store's order is not time
/// order; every instance of one request shares its `modifiedAt`.
async fn seed(app: &axum::Router) {
    let first = json!({
        "id": ID, "type": "Vehicle",
        "speed": [
            p(json!("fast"), "13:05"),
            p(json!(true), "13:06"),
            p(json!([1, 2, 3]), "13:10"),
            p(json!("urn:ngsi-ld:null"), "13:20"),
            p_ds(json!(7), "14:00"),
        ],
    });
    let second = json!({
        "speed": [
            p(json!(120), "12:03"),
            p(json!(80), "12:05"),
            p(json!(100), "12:07"),
            p_ds(json!(5), "12:10"),
        ],
        "brand": [p(json!("b"), "11:58"), p(json!("a"), "12:30")],
        "gone": p(json!("urn:ngsi-ld:null"), "12:40"),
    });
    let other = json!({
        "id": "urn:ngsi-ld:Vehicle:A2", "type": "Vehicle",
        "speed": [p(json!(1), "10:00")],
    });
    for (uri, body) in [
        (T.to_string(), first),
        (format!("{T}/{ID}/attrs"), second),
        (T.to_string(), other),
    ] {
        let (s, v, _) = call(app, "POST", &uri, JSON, body.to_string().into_bytes(), &[]).await;
        assert!(s.is_success(), "{uri}: {v}");
    }
}

/// One entry of the aggregated representation: for each period, the values of the methods
/// of `ALL` in order (null where a method has none).
fn entry(ds: Option<&str>, periods: &[(&str, &str, [Value; 8])]) -> Value {
    let mut o = json!({"type": "Property"});
    if let Some(ds) = ds {
        o["datasetId"] = json!(ds);
    }
    for (i, method) in ALL.split(',').enumerate() {
        let triples: Vec<Value> = periods
            .iter()
            .filter(|(_, _, values)| !values[i].is_null())
            .map(|(from, to, values)| {
                json!([
                    values[i],
                    format!("2020-08-01T{from}:00Z"),
                    format!("2020-08-01T{to}:00Z")
                ])
            })
            .collect();
        o[method] = Value::Array(triples);
    }
    o
}

const N: Value = Value::Null;

/// 120, 80, 100: mean 100, squared deviations 400 + 400 + 0 over n - 1 = 2.
fn hour_of_numbers() -> [Value; 8] {
    [
        json!(3),
        json!(3),
        json!(300.0),
        json!(100.0),
        json!(80.0),
        json!(120.0),
        json!(20.0),
        json!(30800.0),
    ]
}

/// "fast", true (1), [1, 2, 3] (length 3): the string is only counted.
fn hour_of_mixed() -> [Value; 8] {
    [
        json!(3),
        json!(3),
        json!(4.0),
        json!(2.0),
        json!(1.0),
        json!(3.0),
        json!(2f64.sqrt()),
        json!(10.0),
    ]
}

fn one(x: f64) -> [Value; 8] {
    [
        json!(1),
        json!(1),
        json!(x),
        json!(x),
        json!(x),
        json!(x),
        N,
        json!(x * x),
    ]
}

fn strings(n: u64, min: &str, max: &str) -> [Value; 8] {
    [json!(n), json!(n), N, N, json!(min), json!(max), N, N]
}

async fn get(app: &axum::Router, query: &str) -> Value {
    let uri = format!("{T}/{ID}?options=aggregatedValues&{query}");
    let (s, v, _) = call(app, "GET", &uri, None, Vec::new(), &[]).await;
    assert_eq!(s, StatusCode::OK, "{query}: {v}");
    v
}

#[tokio::test]
async fn every_method_over_periods_datasets_and_deletions() {
    let app = app("temporal-aggregate-methods");
    seed(&app).await;

    // Aligned at the start of the range; brand's 11:58 instance is outside it; the deletion
    // at 13:20 is not a value, and `gone` (only a deletion) has nothing to show.
    let after = format!(
        "aggrMethods={ALL}&aggrPeriodDuration=PT1H&timerel=after&timeAt=2020-08-01T12:00:00Z"
    );
    let v = get(&app, &after).await;
    let speed = json!([
        entry(
            None,
            &[
                ("12:00", "13:00", hour_of_numbers()),
                ("13:00", "14:00", hour_of_mixed())
            ]
        ),
        entry(
            Some(DS),
            &[("12:00", "13:00", one(5.0)), ("14:00", "15:00", one(7.0))]
        ),
    ]);
    assert_eq!(v["speed"], speed, "{v}");
    assert_eq!(
        v["brand"],
        entry(None, &[("12:00", "13:00", strings(1, "a", "a"))])
    );
    assert!(v.get("gone").is_none(), "{v}");

    // Without a start, every attribute's periods start at the entity's oldest instance.
    let v = get(&app, &format!("aggrMethods={ALL}&aggrPeriodDuration=PT1H")).await;
    let speed = json!([
        entry(
            None,
            &[
                ("11:58", "12:58", hour_of_numbers()),
                ("12:58", "13:58", hour_of_mixed())
            ]
        ),
        entry(
            Some(DS),
            &[("11:58", "12:58", one(5.0)), ("13:58", "14:58", one(7.0))]
        ),
    ]);
    assert_eq!(v["speed"], speed, "{v}");
    assert_eq!(
        v["brand"],
        entry(None, &[("11:58", "12:58", strings(2, "a", "b"))])
    );

    // One datasetId: one entry, not an array; brand has none of it.
    let v = get(&app, &format!("{after}&datasetId={DS}")).await;
    assert_eq!(
        v["speed"],
        entry(
            Some(DS),
            &[("12:00", "13:00", one(5.0)), ("14:00", "15:00", one(7.0))]
        )
    );
    assert!(v.get("brand").is_none(), "{v}");

    // The whole range ends where the range ends, or at the last instance.
    let v = get(
        &app,
        "aggrMethods=totalCount,max&timerel=before&timeAt=2020-08-01T13:00:00Z",
    )
    .await;
    assert_eq!(
        v["speed"][0]["max"],
        json!([[120.0, "2020-08-01T12:03:00Z", "2020-08-01T13:00:00Z"]])
    );
    let v = get(&app, "aggrMethods=totalCount,max").await;
    assert_eq!(
        v["speed"][1]["totalCount"],
        json!([[2, "2020-08-01T12:10:00Z", "2020-08-01T14:00:00Z"]]),
        "{v}"
    );

    // lastN keeps the newest instances of each attribute: for speed a deletion and 7.
    let v = get(
        &app,
        "aggrMethods=totalCount&timerel=after&timeAt=2020-08-01T12:00:00Z&lastN=2",
    )
    .await;
    assert_eq!(
        v["speed"],
        json!({"type": "Property", "datasetId": DS,
               "totalCount": [[1, "2020-08-01T12:00:00Z", "2020-08-01T14:00:00Z"]]})
    );
    assert_eq!(v["brand"]["totalCount"][0][0], json!(1));

    // An attribute with only a deletion is there, with nothing to show.
    let v = get(
        &app,
        "aggrMethods=totalCount&attrs=gone&timerel=after&timeAt=2020-08-01T12:00:00Z",
    )
    .await;
    assert_eq!(v, json!({"id": ID, "type": "Vehicle"}));
}

#[tokio::test]
async fn by_modified_at_the_values_are_sorted_first() {
    let app = app("temporal-aggregate-modified");
    seed(&app).await;
    let v = get(
        &app,
        "aggrMethods=totalCount,sum,min,max&timeproperty=modifiedAt",
    )
    .await;
    // By modifiedAt the first request's instances come first: the default dataset (13:05)
    // is met before dataset b (14:00), and the periods span both requests.
    let values = |e: &Value| -> Vec<Value> {
        ["totalCount", "sum", "min", "max"]
            .iter()
            .map(|m| e[m][0][0].clone())
            .collect()
    };
    assert_eq!(v["speed"][0].get("datasetId"), None, "{v}");
    assert_eq!(
        values(&v["speed"][0]),
        [json!(6), json!(304.0), json!(1.0), json!(120.0)]
    );
    assert_eq!(v["speed"][1]["datasetId"], json!(DS));
    assert_eq!(
        values(&v["speed"][1]),
        [json!(2), json!(12.0), json!(5.0), json!(7.0)]
    );
    let time = |t: &Value| chrono::DateTime::parse_from_rfc3339(t.as_str().unwrap()).unwrap();
    let sum = &v["speed"][0]["sum"][0];
    assert!(time(&sum[1]) < time(&sum[2]), "{v}");
}

#[tokio::test]
async fn the_query_endpoint_aggregates_like_retrieval() {
    let app = app("temporal-aggregate-query");
    seed(&app).await;
    let params = format!(
        "aggrMethods={ALL}&aggrPeriodDuration=PT1H&timerel=after&timeAt=2020-08-01T12:00:00Z"
    );
    let one = get(&app, &params).await;
    let uri = format!("{T}?type=Vehicle&options=aggregatedValues&{params}");
    let (s, all, _) = call(&app, "GET", &uri, None, Vec::new(), &[]).await;
    assert_eq!(s, StatusCode::OK, "{all}");
    // Vehicle A2 has no instance after the start of the range.
    assert_eq!(all, json!([one]));
}

#[tokio::test]
async fn the_scope_is_not_aggregated() {
    let app = app("temporal-aggr-scope");
    let id = "urn:ngsi-ld:Vehicle:S1";
    let body = json!({
        "id": id, "type": "Vehicle", "scope": "/Singapore/Central",
        "speed": [p(json!(10), "13:00"), p(json!(20), "13:30")],
    });
    let (s, v, _) = call(
        &app,
        "POST",
        T,
        JSON,
        serde_json::to_vec(&body).unwrap(),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let uri = format!("{T}/{id}?options=aggregatedValues&aggrMethods=sum&aggrPeriodDuration=PT1H");
    let (s, v, _) = call(&app, "GET", &uri, None, vec![], &[]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["speed"]["sum"][0][0], 30.0, "{v}");
    assert!(
        v.get("scope").is_none_or(|s| s.get("sum").is_none()),
        "the scope is the entity's setting, not a series to aggregate: {v}"
    );
}
