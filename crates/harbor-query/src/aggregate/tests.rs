//! Tests of the aggregation: parsing of `aggrMethods` and `aggrPeriodDuration`, periods, and
//! every method checked against values computed independently of the aggregator.

use super::*;
use serde_json::json;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test time")
        .with_timezone(&Utc)
}

fn after(s: &str) -> TimeRange {
    TimeRange {
        start: Some(t(s)),
        end: None,
    }
}

fn aggregate(methods: &str, period: &str, range: TimeRange, instances: &[(Value, &str)]) -> Value {
    let methods = parse_aggr_methods(methods).unwrap();
    let period = parse_aggr_period_duration(period).unwrap();
    let mut aggr = Aggregator::new(&methods, period, range);
    // The same instances as a store streams them: scalars borrowed, the rest whole.
    let mut streamed = Aggregator::new(&methods, period, range);
    for (value, at) in instances {
        aggr.push(value, t(at)).unwrap();
        streamed.push_sample(as_streamed(value), t(at)).unwrap();
    }
    let got = Value::Object(aggr.finish().to_members());
    let streamed = Value::Object(streamed.finish().to_members());
    assert_eq!(
        streamed.to_string(),
        got.to_string(),
        "pushing samples must give what pushing values gives"
    );
    got
}

/// A value as a store hands it over without building JSON: numbers as `f64`, strings
/// borrowed, anything else whole.
fn as_streamed(value: &Value) -> Sample<'_> {
    match value {
        Value::Number(n) => Sample::Number(n.as_f64().unwrap()),
        Value::Bool(b) => Sample::Bool(*b),
        Value::String(s) => Sample::Str(s),
        other => Sample::Json(other),
    }
}

#[test]
fn samples_given_whole_count_like_samples() {
    let all = AggrMethod::ALL;
    let values = [
        json!(3),
        json!(-0.0),
        json!(true),
        json!("s"),
        json!([1, 2]),
    ];
    let mut whole = Aggregator::new(&all, Period::WholeRange, TimeRange::default());
    let mut scalar = Aggregator::new(&all, Period::WholeRange, TimeRange::default());
    let at = t("2024-01-01T00:00:00Z");
    for v in &values {
        whole.push_sample(Sample::Json(v), at).unwrap();
        scalar.push_sample(as_streamed(v), at).unwrap();
    }
    let (whole, scalar) = (whole.finish(), scalar.finish());
    assert_eq!(whole.to_members(), scalar.to_members());
    assert_eq!(
        whole.periods[0].values,
        [
            Some(json!(5)),
            Some(json!(5)),
            Some(json!(6.0)),
            Some(json!(1.5)),
            Some(json!(0.0)),
            Some(json!(3.0)),
            Some(json!(1.2909944487358056)),
            Some(json!(14.0)),
        ],
        "3, 0, 1 (true), 2 (array length) are numbers; the string is only counted"
    );
}

const HOUR: i128 = 3600 * NANOS_PER_SEC;

#[test]
fn parses_methods() {
    use AggrMethod::*;
    let cases: &[(&str, &[AggrMethod])] = &[
        ("avg", &[Avg]),
        ("avg,max", &[Avg, Max]),
        (" min , max ", &[Min, Max]),
        ("avg,avg,sum", &[Avg, Sum]),
        (
            "totalCount,distinctCount,sum,avg,min,max,stddev,sumsq",
            &AggrMethod::ALL,
        ),
    ];
    for (text, want) in cases {
        assert_eq!(parse_aggr_methods(text).unwrap(), *want, "{text}");
    }
}

#[test]
fn refuses_bad_methods_naming_them() {
    let cases = [
        ("bogus", "unknown aggregation method \"bogus\""),
        ("avg,median", "unknown aggregation method \"median\""),
        ("AVG", "unknown aggregation method \"AVG\""),
        ("", "no aggregation method given"),
        ("avg,,max", "item 2 of \"avg,,max\" is empty"),
        ("avg,", "item 2"),
    ];
    for (text, want) in cases {
        let err = parse_aggr_methods(text).unwrap_err().detail;
        assert!(err.starts_with("aggrMethods: "), "{text}: {err}");
        assert!(err.contains(want), "{text}: {err}");
    }
    let long = "x".repeat(crate::MAX_INPUT_LEN + 1);
    assert!(parse_aggr_methods(&long).is_err());
}

#[test]
fn reads_methods_from_json() {
    use AggrMethod::*;
    let cases: &[(Value, Result<&[AggrMethod], &str>)] = &[
        (json!("avg,max"), Ok(&[Avg, Max])),
        (json!(["avg"]), Ok(&[Avg])),
        (json!(["sum", "min", "sum"]), Ok(&[Sum, Min])),
        (
            json!(["bogus"]),
            Err("unknown aggregation method \"bogus\""),
        ),
        (json!([]), Err("no aggregation method given")),
        (json!(["avg", 3]), Err("3 is not a method name")),
        (json!({"avg": true}), Err("expected a string or an array")),
        (json!("avg,,max"), Err("item 2")),
    ];
    for (value, want) in cases {
        match (aggr_methods_from_json(value), want) {
            (Ok(got), Ok(want)) => assert_eq!(got, *want, "{value}"),
            (Err(got), Err(want)) => {
                assert!(got.detail.starts_with("aggrMethods: "), "{value}: {got}");
                assert!(got.detail.contains(want), "{value}: {got}");
            }
            (got, _) => panic!("{value}: {got:?}"),
        }
    }
}

#[test]
fn parses_durations() {
    let every = |months, nanos| Period::Every { months, nanos };
    let cases = [
        ("PT1H", every(0, HOUR)),
        ("PT90M", every(0, 90 * 60 * NANOS_PER_SEC)),
        ("PT0.5S", every(0, NANOS_PER_SEC / 2)),
        ("PT1,25S", every(0, NANOS_PER_SEC * 5 / 4)),
        ("PT0.000000001S", every(0, 1)),
        ("P1D", every(0, NANOS_PER_DAY)),
        ("P1W", every(0, 7 * NANOS_PER_DAY)),
        ("P1M", every(1, 0)),
        ("P1Y2M", every(14, 0)),
        ("P1MT1H", every(1, HOUR)),
        (
            "P3Y6M4DT12H30M5S",
            every(
                42,
                4 * NANOS_PER_DAY + (12 * 3600 + 30 * 60 + 5) * NANOS_PER_SEC,
            ),
        ),
        ("P1000Y", every(12_000, 0)),
        ("PT0S", Period::WholeRange),
        ("P0D", Period::WholeRange),
        ("P0Y0M0DT0H0M0.0S", Period::WholeRange),
    ];
    for (text, want) in cases {
        assert_eq!(parse_aggr_period_duration(text), Ok(want), "{text}");
    }
}

#[test]
fn refuses_bad_durations() {
    let cases = [
        ("bogus", "must start with P"),
        ("", "must start with P"),
        ("P", "no component"),
        ("PT", "T must be followed"),
        ("P1DT", "T must be followed"),
        ("-P1D", "must start with P"),
        (" PT1H", "must start with P"),
        ("pt1h", "must start with P"),
        ("P1H", "unexpected 'H'"),
        ("PT1D", "unexpected 'D'"),
        ("PT1S1M", "unexpected 'M'"),
        ("PT1H1H", "unexpected 'H'"),
        ("P1D1Y", "unexpected 'Y'"),
        ("P1", "no unit letter"),
        ("PT1.S", "bad fraction"),
        ("PT1.0000000001S", "bad fraction"),
        ("P1.5D", "only the seconds"),
        ("PT1.5H", "only the seconds"),
        ("P1.0Y", "only the seconds"),
        ("P1W1D", "weeks"),
        ("P1WT1H", "weeks"),
        ("P0001-02-03", "unexpected '-'"),
        ("PT.5S", "not a number"),
        ("P1..5D", "bad fraction"),
        ("P9999999999999999999D", "up to 18 digits"),
        ("P1001Y", "longer than 1000 years"),
        ("P1000Y1M", "longer than 1000 years"),
        ("PT8784001H", "longer than 1000 years"),
        ("P99999Y", "longer than 1000 years"),
        ("P999999999999999999Y", "longer than 1000 years"),
        ("PT999999999999999999H", "longer than 1000 years"),
        ("P1Dé", "unexpected 'é'"),
    ];
    for (text, want) in cases {
        let err = parse_aggr_period_duration(text).unwrap_err().detail;
        assert!(err.starts_with("aggrPeriodDuration: "), "{text}: {err}");
        assert!(err.contains(want), "{text}: {err}");
    }
}

type Series = Vec<(Value, &'static str)>;

/// The instances of data/temporalEntities/2020-08-vehicle-temporal-representation.jsonld.
fn vehicle() -> (Series, Series) {
    let speed = vec![
        (json!(120), "2020-08-01T12:03:00Z"),
        (json!(80), "2020-08-01T12:05:00Z"),
        (json!(100), "2020-08-01T12:07:00Z"),
    ];
    let fuel = vec![
        (json!(67), "2020-08-01T12:03:00Z"),
        (json!(53), "2020-08-01T13:05:00Z"),
        (json!(40), "2020-08-01T14:07:00Z"),
    ];
    (speed, fuel)
}

/// 020_11 (no range) and 021_17 (`timerel=after&timeAt=2020-01-01T12:03:00Z`) compare
/// the whole JSON, so the numbers must be `67.0`, not `67`, and the bounds `...:00Z`.
#[test]
fn matches_the_suite_expectations() {
    let (speed, fuel) = vehicle();
    let fuel_hours = json!([
        [67.0, "2020-08-01T12:03:00Z", "2020-08-01T13:03:00Z"],
        [53.0, "2020-08-01T13:03:00Z", "2020-08-01T14:03:00Z"],
        [40.0, "2020-08-01T14:03:00Z", "2020-08-01T15:03:00Z"]
    ]);
    let first_hour = |v: f64| json!([[v, "2020-08-01T12:03:00Z", "2020-08-01T13:03:00Z"]]);
    let day = |v: f64| json!([[v, "2020-08-01T12:03:00Z", "2020-08-02T12:03:00Z"]]);
    for range in [TimeRange::default(), after("2020-01-01T12:03:00Z")] {
        let cases = [
            ("avg", "PT1H", &fuel, json!({"avg": fuel_hours})),
            ("avg", "PT1H", &speed, json!({"avg": first_hour(100.0)})),
            (
                "avg,max",
                "PT1H",
                &speed,
                json!({"avg": first_hour(100.0), "max": first_hour(120.0)}),
            ),
            (
                "avg,max",
                "PT1H",
                &fuel,
                json!({"avg": fuel_hours, "max": fuel_hours}),
            ),
            (
                "min,max",
                "P1D",
                &speed,
                json!({"min": day(80.0), "max": day(120.0)}),
            ),
            (
                "min,max",
                "P1D",
                &fuel,
                json!({"min": day(40.0), "max": day(67.0)}),
            ),
        ];
        for (methods, period, instances, want) in cases {
            let got = aggregate(methods, period, range, instances);
            // Compared as text: `json!` equality would take 67 for 67.0.
            assert_eq!(
                got.to_string(),
                want.to_string(),
                "{methods} {period} {range:?}"
            );
        }
    }
}

#[test]
fn whole_range_spans_the_requested_range() {
    let (speed, _) = vehicle();
    let cases = [
        (
            TimeRange::default(),
            json!([[3, "2020-08-01T12:03:00Z", "2020-08-01T12:07:00Z"]]),
        ),
        (
            after("2020-08-01T12:00:00Z"),
            json!([[3, "2020-08-01T12:00:00Z", "2020-08-01T12:07:00Z"]]),
        ),
        (
            TimeRange {
                start: Some(t("2020-08-01T12:04:00Z")),
                end: Some(t("2020-08-01T12:07:00Z")),
            },
            json!([[1, "2020-08-01T12:04:00Z", "2020-08-01T12:07:00Z"]]),
        ),
        (
            TimeRange {
                start: None,
                end: Some(t("2020-08-01T13:00:00Z")),
            },
            json!([[3, "2020-08-01T12:03:00Z", "2020-08-01T13:00:00Z"]]),
        ),
    ];
    for (range, want) in cases {
        let got = aggregate("totalCount", "PT0S", range, &speed);
        assert_eq!(got, json!({ "totalCount": want }), "{range:?}");
    }
}

/// Periods are `[start, end)`, aligned at the start of the range, and empty ones are
/// left out.
#[test]
fn splits_hours() {
    let instances = [
        (json!(1), "2024-05-01T10:00:00Z"),
        (json!(2), "2024-05-01T10:59:59.999Z"),
        (json!(4), "2024-05-01T11:00:00Z"),
        (json!(8), "2024-05-01T12:30:00Z"),
        (json!(16), "2024-05-01T12:59:59Z"),
    ];
    let got = aggregate(
        "sum,totalCount",
        "PT1H",
        after("2024-05-01T10:00:00Z"),
        &instances,
    );
    assert_eq!(
        got,
        json!({
            "sum": [
                [3.0, "2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z"],
                [4.0, "2024-05-01T11:00:00Z", "2024-05-01T12:00:00Z"],
                [24.0, "2024-05-01T12:00:00Z", "2024-05-01T13:00:00Z"]
            ],
            "totalCount": [
                [2, "2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z"],
                [1, "2024-05-01T11:00:00Z", "2024-05-01T12:00:00Z"],
                [2, "2024-05-01T12:00:00Z", "2024-05-01T13:00:00Z"]
            ]
        })
    );
    // Aligned at 09:30 instead: the bounds move, a gap leaves no empty period behind.
    let got = aggregate(
        "totalCount",
        "PT1H",
        after("2024-05-01T09:30:00Z"),
        &instances,
    );
    assert_eq!(
        got,
        json!({"totalCount": [
            [1, "2024-05-01T09:30:00Z", "2024-05-01T10:30:00Z"],
            [2, "2024-05-01T10:30:00Z", "2024-05-01T11:30:00Z"],
            [2, "2024-05-01T12:30:00Z", "2024-05-01T13:30:00Z"]
        ]})
    );
}

/// Calendar months from 31 January: each bound is origin + k months, clamped to the
/// end of a shorter month, never carried from one bound to the next.
#[test]
fn splits_months_across_month_ends() {
    let instances = [
        (json!(1), "2024-01-31T00:00:00Z"),
        (json!(2), "2024-02-28T23:59:59Z"),
        (json!(3), "2024-02-29T00:00:00Z"),
        (json!(4), "2024-03-30T00:00:00Z"),
        (json!(5), "2024-03-31T00:00:00Z"),
        (json!(6), "2025-02-28T12:00:00Z"),
    ];
    let got = aggregate("sum", "P1M", TimeRange::default(), &instances);
    assert_eq!(
        got,
        json!({"sum": [
            [3.0, "2024-01-31T00:00:00Z", "2024-02-29T00:00:00Z"],
            [7.0, "2024-02-29T00:00:00Z", "2024-03-31T00:00:00Z"],
            [5.0, "2024-03-31T00:00:00Z", "2024-04-30T00:00:00Z"],
            [6.0, "2025-02-28T00:00:00Z", "2025-03-31T00:00:00Z"]
        ]})
    );
    let got = aggregate(
        "totalCount",
        "P1Y",
        after("2023-06-15T00:00:00Z"),
        &instances,
    );
    assert_eq!(
        got,
        json!({"totalCount": [
            [5, "2023-06-15T00:00:00Z", "2024-06-15T00:00:00Z"],
            [1, "2024-06-15T00:00:00Z", "2025-06-15T00:00:00Z"]
        ]})
    );
}

#[test]
fn period_index_agrees_with_period_start() {
    let origin = t("2023-01-31T05:00:00Z");
    let periods = [
        (1, 0),
        (0, HOUR),
        (1, HOUR),
        (14, 3 * NANOS_PER_DAY),
        (0, 7),
    ];
    for (months, nanos) in periods {
        for k in [-40i128, -1, 0, 1, 2, 11, 12, 13, 500] {
            let start = period_start(origin, months, nanos, k).unwrap();
            let next = period_start(origin, months, nanos, k + 1).unwrap();
            assert!(start < next, "{months} {nanos} {k}");
            for at in [
                start,
                start + (next - start) / 2,
                next - TimeDelta::nanoseconds(1),
            ] {
                assert_eq!(
                    period_index(origin, months, nanos, at),
                    k,
                    "{months} {nanos} {k} {at}"
                );
            }
        }
    }
}

#[test]
fn empty_input_gives_empty_series() {
    let aggr = Aggregator::new(
        &[AggrMethod::Avg, AggrMethod::TotalCount],
        Period::WholeRange,
        TimeRange::default(),
    )
    .finish();
    assert!(aggr.is_empty());
    assert_eq!(
        Value::Object(aggr.to_members()),
        json!({"avg": [], "totalCount": []})
    );
}

/// What each method makes of each kind of value, over the whole range.
#[test]
fn methods_by_value_type() {
    let all = "totalCount,distinctCount,sum,avg,min,max,stddev,sumsq";
    let cases = [
        (
            "booleans count as 1 and 0",
            vec![json!(true), json!(false), json!(true), json!(true)],
            json!([4, 2, 3.0, 0.75, 0.0, 1.0, 0.5, 3.0]),
        ),
        (
            "strings: counts and code point order",
            vec![json!("b"), json!("a"), json!("B"), json!("a")],
            json!([4, 3, null, null, "B", "b", null, null]),
        ),
        (
            "date-times as strings order in time",
            vec![json!("2020-01-02T00:00:00Z"), json!("2019-12-31T00:00:00Z")],
            json!([
                2,
                2,
                null,
                null,
                "2019-12-31T00:00:00Z",
                "2020-01-02T00:00:00Z",
                null,
                null
            ]),
        ),
        (
            "objects and null are only counted; key order does not matter",
            vec![
                json!({"a": 1, "b": 2}),
                json!({"b": 2, "a": 1}),
                json!({"a": {"c": [1]}, "b": 2}),
                json!(null),
            ],
            json!([4, 3, null, null, null, null, null, null]),
        ),
        (
            "arrays count as their length; order of elements matters",
            vec![
                json!([1, 2]),
                json!([2, 1]),
                json!([]),
                json!(["x", "y", "z"]),
            ],
            json!([4, 4, 7.0, 1.75, 0.0, 3.0, 1.2583057392117916, 17.0]),
        ),
        (
            "equal numbers are one distinct value",
            vec![json!(1), json!(1.0), json!(-0.0), json!(0)],
            json!([4, 2, 2.0, 0.5, 0.0, 1.0, 0.5773502691896257, 2.0]),
        ),
        (
            "mixed: numbers win min and max over strings",
            vec![json!(5), json!("zzz"), json!(3), json!({"x": 1})],
            json!([4, 4, 8.0, 4.0, 3.0, 5.0, std::f64::consts::SQRT_2, 34.0]),
        ),
        (
            "one number: no sample deviation",
            vec![json!(7)],
            json!([1, 1, 7.0, 7.0, 7.0, 7.0, null, 49.0]),
        ),
    ];
    for (name, values, want) in cases {
        let instances: Vec<(Value, &str)> = values
            .into_iter()
            .map(|v| (v, "2024-01-01T00:00:00Z"))
            .collect();
        let got = aggregate(all, "PT0S", TimeRange::default(), &instances);
        let got: Vec<Value> = AggrMethod::ALL
            .iter()
            .map(|m| match got[m.name()].as_array().unwrap().as_slice() {
                [] => Value::Null,
                [triple] => triple[0].clone(),
                more => panic!("{name}: {} periods", more.len()),
            })
            .collect();
        assert_eq!(Value::Array(got).to_string(), want.to_string(), "{name}");
    }
}

/// A deterministic pseudo-random series over three hours; each method is checked
/// against a plain two-pass computation over the values of each hour.
#[test]
fn methods_agree_with_two_pass_formulas() {
    let start = t("2024-03-10T00:00:00Z");
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut instances = Vec::new();
    let mut at = start;
    while at < start + TimeDelta::hours(3) {
        // Values around 1e9 with small spread: the case where sum-of-squares variance
        // formulas lose every digit and Welford must not.
        let x = 1.0e9 + (next() % 10_000) as f64 / 100.0;
        instances.push((x, at));
        at += TimeDelta::milliseconds((next() % 20_000) as i64 + 1);
    }
    let mut aggr = Aggregator::new(
        &AggrMethod::ALL,
        parse_aggr_period_duration("PT1H").unwrap(),
        TimeRange {
            start: Some(start),
            end: None,
        },
    );
    for (x, at) in &instances {
        aggr.push(&json!(x), *at).unwrap();
    }
    let result = aggr.finish();
    assert_eq!(result.periods.len(), 3);
    for (h, period) in result.periods.iter().enumerate() {
        let from = start + TimeDelta::hours(h as i64);
        assert_eq!(
            (period.start, period.end),
            (from, from + TimeDelta::hours(1))
        );
        let xs: Vec<f64> = instances
            .iter()
            .filter(|(_, at)| from <= *at && *at < from + TimeDelta::hours(1))
            .map(|(x, _)| *x)
            .collect();
        let n = xs.len() as f64;
        let sum: f64 = xs.iter().sum();
        let mean = sum / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let mut sorted = xs.clone();
        sorted.sort_by(f64::total_cmp);
        sorted.dedup();
        let want = [
            n,
            sorted.len() as f64,
            sum,
            mean,
            sorted[0],
            sorted[sorted.len() - 1],
            var.sqrt(),
            xs.iter().map(|x| x * x).sum(),
        ];
        for (i, method) in AggrMethod::ALL.iter().enumerate() {
            let got = period.values[i].as_ref().and_then(Value::as_f64).unwrap();
            let tolerance = 1e-9 * want[i].abs().max(1.0);
            assert!(
                (got - want[i]).abs() <= tolerance,
                "hour {h} {method}: got {got}, want {}",
                want[i]
            );
        }
    }
}

#[test]
fn hostile_values_and_order() {
    // Sums past f64::MAX have no finite value: the entry is left out, nothing panics.
    let huge = [
        (json!(1.0e308), "2024-01-01T00:00:00Z"),
        (json!(1.0e308), "2024-01-01T00:00:01Z"),
        (json!(-1.0e308), "2024-01-01T00:00:02Z"),
    ];
    let got = aggregate("sum,sumsq,max,stddev", "PT0S", TimeRange::default(), &huge);
    assert_eq!(got["sumsq"], json!([]));
    assert_eq!(got["sum"], json!([]), "the running sum overflowed");
    assert_eq!(got["max"][0][0], json!(1.0e308));

    let mut aggr = Aggregator::new(&[AggrMethod::Sum], Period::WholeRange, TimeRange::default());
    aggr.push(&json!(1), t("2024-01-01T00:00:01Z")).unwrap();
    let err = aggr.push(&json!(1), t("2024-01-01T00:00:00Z")).unwrap_err();
    assert!(err.detail.contains("time order"), "{}", err.detail);

    // A one-nanosecond period over centuries: the index is computed, not walked to.
    let far = [
        (json!(1), "1900-01-01T00:00:00Z"),
        (json!(2), "2200-01-01T00:00:00Z"),
    ];
    let got = aggregate("sum", "PT0.000000001S", TimeRange::default(), &far);
    assert_eq!(got["sum"][1][1], json!("2200-01-01T00:00:00Z"));
    assert_eq!(got["sum"][1][2], json!("2200-01-01T00:00:00.000000001Z"));
}

#[test]
fn skips_instances_outside_the_range() {
    let range = TimeRange {
        start: Some(t("2024-01-01T01:00:00Z")),
        end: Some(t("2024-01-01T02:00:00Z")),
    };
    let instances = [
        (json!(1), "2024-01-01T00:59:59Z"),
        (json!(2), "2024-01-01T01:00:00Z"),
        (json!(4), "2024-01-01T02:00:00Z"),
    ];
    let got = aggregate("sum", "PT30M", range, &instances);
    assert_eq!(
        got,
        json!({"sum": [[2.0, "2024-01-01T01:00:00Z", "2024-01-01T01:30:00Z"]]})
    );
}

#[test]
fn bounds_distinct_values_per_period() {
    let mut aggr = Aggregator::new(
        &[AggrMethod::DistinctCount],
        parse_aggr_period_duration("PT1H").unwrap(),
        TimeRange::default(),
    );
    let at = t("2024-01-01T00:00:00Z");
    for i in 0..MAX_DISTINCT {
        aggr.push(&json!(i), at).unwrap();
    }
    aggr.push(&json!(0), at).unwrap();
    let err = aggr.push(&json!(-1), at).unwrap_err();
    assert!(
        err.detail.starts_with("distinctCount: more than"),
        "{}",
        err.detail
    );
    // Without distinctCount nothing is tracked, so nothing is refused.
    let mut aggr = Aggregator::new(
        &[AggrMethod::TotalCount],
        Period::WholeRange,
        TimeRange::default(),
    );
    for i in 0..=MAX_DISTINCT {
        aggr.push(&json!(i), at).unwrap();
    }
    assert_eq!(
        aggr.finish().periods[0].values[0],
        Some(json!(MAX_DISTINCT + 1))
    );
}

#[test]
fn aligns_at_a_given_origin() {
    let (speed, _) = vehicle();
    let methods = [AggrMethod::TotalCount];
    let mut aggr = Aggregator::new(
        &methods,
        parse_aggr_period_duration("PT1H").unwrap(),
        TimeRange::default(),
    )
    .aligned_at(t("2020-08-01T12:00:00Z"));
    for (v, at) in &speed {
        aggr.push(v, t(at)).unwrap();
    }
    assert_eq!(
        Value::Object(aggr.finish().to_members()),
        json!({"totalCount": [[3, "2020-08-01T12:00:00Z", "2020-08-01T13:00:00Z"]]})
    );
}
