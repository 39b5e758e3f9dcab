//! The benchmark scenarios: what is seeded (with batch upserts, not measured) and what is
//! measured, with a check of every answer against the seeded data.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{json, Value};

use crate::load::{Check, Req};

/// Every scenario, in the order `all` runs them.
pub const NAMES: &[(&str, &str)] = &[
    (
        "create",
        "POST /entities with unique ids (durable: each answered after fsync)",
    ),
    ("retrieve", "GET /entities/{id} over N seeded entities"),
    (
        "query-type",
        "GET /entities?type=X&limit=20 over 100 entities of 5 types",
    ),
    (
        "query-q-10k",
        "GET /entities?type=X&q=availableSpotNumber==V over 10k entities",
    ),
    (
        "query-q-100k",
        "the same over 100k entities (skipped by --quick)",
    ),
    (
        "query-geo",
        "GET /entities?type=X&georel=near;maxDistance==300 over 100k points (10k with --quick)",
    ),
    (
        "update",
        "PATCH /entities/{id}/attrs/availableSpotNumber over N entities",
    ),
    (
        "batch-upsert",
        "POST /entityOperations/upsert with 1,000 entities per request; entities/s",
    ),
    (
        "notify",
        "PATCH /entities/{id}/attrs with 1, 100, 1,000 matching subscriptions (1, 10, 100 with --quick); updates/s, notifications/s, delivered/due",
    ),
    (
        "temporal-retrieve",
        "GET /temporal/entities/{id} with lastN=10 and a between window of 100 instances, over series of 1k, 10k, 100k instances (1k, 10k with --quick)",
    ),
    (
        "temporal-aggregate",
        "GET /temporal/entities/{id} with avg,max per hour (PT1H) over a whole series of 100k instances (10k with --quick); p50 against a 10 ms target",
    ),
    (
        "auth-cost",
        "retrieve and query-type on a broker without auth and on one with JWT auth and an access policy, as a role holder and as a policy subject: CPU per request side by side",
    ),
    (
        "metrics-cost",
        "retrieve and update on two brokers, metrics = true and metrics = false, alternating: throughput and CPU per request",
    ),
    (
        "overload",
        "a heavy query (q + orderBy over 10k) ramped to its knee, then 4,096 clients at once while /health is probed: goodput / knee, 503s, /health p99",
    ),
    (
        "scale",
        "1M entities (100k with --quick, or --entities N): seed rate, RSS, data on disk, kill -9 and restart until all are counted, then first page, q, orderBy and count one at a time against their targets",
    ),
];

/// Sizes of one run.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub quick: bool,
}

impl Sizes {
    fn pick(&self, quick: usize, full: usize) -> usize {
        if self.quick {
            quick
        } else {
            full
        }
    }
}

/// Deterministic pseudo-random numbers (a run is reproducible).
pub fn mix(i: u64) -> u64 {
    let mut x = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A point in Singapore for entity `i`.
pub fn position(i: usize) -> (f64, f64) {
    let r = mix(i as u64);
    let lon = 103.60 + (r % 40_000) as f64 / 100_000.0;
    let lat = 1.22 + ((r >> 20) % 25_000) as f64 / 100_000.0;
    (lon, lat)
}

/// Distinct values of `availableSpotNumber` across a seed.
pub const SPOT_VALUES: usize = 500;

/// The `availableSpotNumber` of entity `i`: values cycle through 0..500, so over a seed of n
/// an equality on one value matches n / 500 entities (200 of 100k, 2,000 of 1M).
pub fn available_spots(i: usize) -> usize {
    i % SPOT_VALUES
}

/// How many of the entities `0..n` have `availableSpotNumber` `v`.
pub fn holding(n: usize, v: usize) -> usize {
    if v >= SPOT_VALUES {
        return 0;
    }
    n / SPOT_VALUES + usize::from(v < n % SPOT_VALUES)
}

pub fn entity_id(prefix: &str, i: usize) -> String {
    format!("urn:ngsi-ld:OffStreetParking:{prefix}-{i}")
}

/// A realistic car park (Smart Data Models `OffStreetParking`): six properties, a relationship
/// and a location.
pub fn entity(prefix: &str, i: usize, ty: &str) -> Value {
    let (lon, lat) = position(i);
    json!({
        "id": entity_id(prefix, i),
        "type": ty,
        "name": {"type": "Property", "value": format!("Car park {i}")},
        "category": {"type": "Property", "value": ["public", "underground"]},
        "totalSpotNumber": {"type": "Property", "value": 500},
        "availableSpotNumber": {"type": "Property", "value": available_spots(i), "observedAt": "2026-11-28T08:00:00Z"},
        "occupancyRate": {"type": "Property", "value": 0.42, "unitCode": "P1"},
        "status": {"type": "Property", "value": "open"},
        "refOperator": {"type": "Relationship", "object": format!("urn:ngsi-ld:Organization:op-{}", i % 10)},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}
    })
}

/// What a scenario seeds and then sends.
pub struct Plan {
    /// Entities to seed before measuring: (count, type of entity i).
    pub seed: usize,
    pub seed_type: Arc<dyn Fn(usize) -> String + Send + Sync>,
    pub requests: usize,
    /// Statuses that count as success.
    pub expect_status: Arc<[u16]>,
    pub make: Arc<dyn Fn(usize) -> Req + Send + Sync>,
    /// Entities written per request (for entities/s), 0 when not a write of entities.
    pub entities_per_request: usize,
}

fn array_len(want: usize) -> Check {
    Arc::new(move |body: &[u8]| {
        let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
        let n = v.as_array().map(Vec::len).ok_or("not an array")?;
        if n == want {
            Ok(())
        } else {
            Err(format!("expected {want} entities, got {n}"))
        }
    })
}

fn array_len_at_least(min: usize) -> Check {
    Arc::new(move |body: &[u8]| {
        let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
        let n = v.as_array().map(Vec::len).ok_or("not an array")?;
        if n >= min {
            Ok(())
        } else {
            Err(format!("expected at least {min} entities, got {n}"))
        }
    })
}

fn one_type(_: usize) -> String {
    "OffStreetParking".to_string()
}

/// The plan of a scenario; `prefix` keeps ids of different runs apart.
pub fn plan(name: &str, sizes: Sizes, prefix: &str) -> Option<Plan> {
    let p = prefix.to_string();
    let plan = match name {
        "create" => Plan {
            seed: 0,
            seed_type: Arc::new(one_type),
            requests: sizes.pick(2_000, 20_000),
            expect_status: Arc::new([201]),
            make: Arc::new(move |i| {
                let body = serde_json::to_vec(&entity(&format!("{p}-new"), i, "OffStreetParking"))
                    .expect("json");
                Req::with_body(Method::POST, "/entities".into(), body)
            }),
            entities_per_request: 1,
        },
        "retrieve" => {
            let n = 1_000;
            Plan {
                seed: n,
                seed_type: Arc::new(one_type),
                requests: sizes.pick(5_000, 50_000),
                expect_status: Arc::new([200]),
                make: Arc::new(move |i| {
                    let k = (mix(i as u64) % n as u64) as usize;
                    let id = entity_id(&p, k);
                    let want = id.clone();
                    Req::get(format!("/entities/{id}")).checked(Arc::new(move |body: &[u8]| {
                        let v: Value =
                            serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
                        if v["id"] == want.as_str() {
                            Ok(())
                        } else {
                            Err(format!("asked for {want}, got {}", v["id"]))
                        }
                    }))
                }),
                entities_per_request: 0,
            }
        }
        "query-type" => Plan {
            // 100 entities, 20 of each of 5 types: every page of 20 is full.
            seed: 100,
            seed_type: Arc::new(|i| format!("Parking{}", i % 5)),
            requests: sizes.pick(2_000, 20_000),
            expect_status: Arc::new([200]),
            make: Arc::new(|i| {
                Req::get(format!("/entities?type=Parking{}&limit=20", i % 5)).checked(array_len(20))
            }),
            entities_per_request: 0,
        },
        "query-q-10k" | "query-q-100k" => {
            if name == "query-q-100k" && sizes.quick {
                return None;
            }
            let n = if name == "query-q-10k" {
                10_000
            } else {
                100_000
            };
            // Each value of availableSpotNumber is held by n / 500 entities.
            let per_value = holding(n, 0);
            Plan {
                seed: n,
                seed_type: Arc::new(one_type),
                requests: sizes.pick(500, 2_000),
                expect_status: Arc::new([200]),
                make: Arc::new(move |i| {
                    let v = mix(i as u64) % SPOT_VALUES as u64;
                    Req::get(format!(
                        "/entities?type=OffStreetParking&q=availableSpotNumber%3D%3D{v}&limit=1000"
                    ))
                    .checked(array_len(per_value))
                }),
                entities_per_request: 0,
            }
        }
        "query-geo" => {
            let n = sizes.pick(10_000, 100_000);
            Plan {
                seed: n,
                seed_type: Arc::new(one_type),
                requests: sizes.pick(1_000, 5_000),
                expect_status: Arc::new([200]),
                make: Arc::new(move |i| {
                    // Around a seeded point: at least that entity is found.
                    let (lon, lat) = position((mix(i as u64) % n as u64) as usize);
                    Req::get(format!(
                        "/entities?type=OffStreetParking&georel=near%3BmaxDistance%3D%3D300&geometry=Point&coordinates=%5B{lon}%2C{lat}%5D&limit=1000"
                    ))
                    .checked(array_len_at_least(1))
                }),
                entities_per_request: 0,
            }
        }
        "update" => {
            let n = 1_000;
            Plan {
                seed: n,
                seed_type: Arc::new(one_type),
                requests: sizes.pick(5_000, 50_000),
                expect_status: Arc::new([204]),
                make: Arc::new(move |i| {
                    let id = entity_id(&p, (mix(i as u64) % n as u64) as usize);
                    let body = serde_json::to_vec(&json!({"type": "Property", "value": i % 500}))
                        .expect("json");
                    Req::with_body(
                        Method::PATCH,
                        format!("/entities/{id}/attrs/availableSpotNumber"),
                        body,
                    )
                }),
                entities_per_request: 0,
            }
        }
        "batch-upsert" => Plan {
            seed: 0,
            seed_type: Arc::new(one_type),
            requests: sizes.pick(20, 200),
            // All new: 201 with the created ids; some brokers answer 204.
            expect_status: Arc::new([201, 204]),
            make: Arc::new(move |i| {
                let batch: Vec<Value> = (0..1000)
                    .map(|k| entity(&format!("{p}-up"), i * 1000 + k, "OffStreetParking"))
                    .collect();
                Req::with_body(
                    Method::POST,
                    "/entityOperations/upsert".into(),
                    serde_json::to_vec(&batch).expect("json"),
                )
            }),
            entities_per_request: 1000,
        },
        _ => return None,
    };
    Some(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_match_what_is_seeded() {
        // query-type: 20 entities of each of the 5 types in the 100 seeded.
        let p = plan("query-type", Sizes { quick: true }, "t").unwrap();
        let mut per_type = std::collections::HashMap::new();
        for i in 0..p.seed {
            *per_type.entry((p.seed_type)(i)).or_insert(0) += 1;
        }
        assert!(per_type.values().all(|n| *n == 20), "{per_type:?}");
        // query-q: every availableSpotNumber value is held by n / 500 entities.
        for (name, n) in [("query-q-10k", 10_000usize), ("query-q-100k", 100_000)] {
            let p = plan(name, Sizes { quick: false }, "t").unwrap();
            assert_eq!(p.seed, n);
            let mut count = vec![0usize; 500];
            for i in 0..n {
                count[entity("t", i, "T")["availableSpotNumber"]["value"]
                    .as_u64()
                    .unwrap() as usize] += 1;
            }
            assert!(count.iter().all(|c| *c == n / 500), "{name}");
        }
        assert!(
            plan("query-q-100k", Sizes { quick: true }, "t").is_none(),
            "--quick skips 100k"
        );
    }

    #[test]
    fn holding_counts_what_entity_seeds() {
        for n in [0, 1, 499, 500, 1_234, 10_000] {
            let mut count = vec![0usize; SPOT_VALUES];
            for i in 0..n {
                count[entity("t", i, "T")["availableSpotNumber"]["value"]
                    .as_u64()
                    .unwrap() as usize] += 1;
            }
            for (v, c) in count.iter().enumerate() {
                assert_eq!(holding(n, v), *c, "n {n} v {v}");
            }
            assert_eq!(holding(n, SPOT_VALUES), 0);
        }
        assert_eq!(
            [100_000, 1_000_000, 5_000_000].map(|n| holding(n, 7)),
            [200, 2_000, 10_000]
        );
    }

    #[test]
    fn entities_are_valid_and_in_singapore() {
        for i in 0..1000 {
            let (lon, lat) = position(i);
            assert!((103.6..104.0).contains(&lon) && (1.2..1.5).contains(&lat));
        }
        let e = entity("run", 7, "OffStreetParking");
        assert_eq!(e["id"], "urn:ngsi-ld:OffStreetParking:run-7");
        let props = e
            .as_object()
            .unwrap()
            .values()
            .filter(|v| v["type"] == "Property")
            .count();
        assert_eq!(props, 6);
    }
}
