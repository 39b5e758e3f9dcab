//! The results: one row per scenario, as a table for people and JSON for tools.

use serde::Serialize;

use crate::load::Measured;

#[derive(Debug, Serialize)]
pub struct Row {
    pub scenario: String,
    pub broker: Measured,
    pub ceiling: Measured,
    /// broker requests/s ÷ ceiling requests/s.
    pub ratio: f64,
    /// Entities written per second (batch scenarios), else None.
    pub entities_per_second: Option<f64>,
    pub cpu_ms_per_request: Option<f64>,
    pub rss_mib: Option<f64>,
}

impl Row {
    pub fn new(
        name: &str,
        broker: Measured,
        ceiling: Measured,
        per_request: usize,
        cpu: Option<f64>,
        rss: Option<(f64, f64)>,
    ) -> Row {
        let ratio = if ceiling.per_second > 0.0 {
            broker.per_second / ceiling.per_second
        } else {
            0.0
        };
        Row {
            scenario: name.to_string(),
            entities_per_second: (per_request > 1)
                .then_some(broker.per_second * per_request as f64),
            broker,
            ceiling,
            ratio,
            cpu_ms_per_request: cpu,
            rss_mib: rss.map(|(r, _)| r),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub broker: String,
    pub quick: bool,
    pub concurrency: usize,
    pub idle_rss_mib: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    pub rows: Vec<Row>,
    pub resident: Option<Resident>,
}

/// Many entities resident at once, and a restart with them.
#[derive(Debug, Serialize)]
pub struct Resident {
    pub entities: usize,
    pub seed_seconds: f64,
    pub entities_per_second: f64,
    pub rss_mib: Option<f64>,
    /// From kill -9 to a query counting every entity; None on a broker we did not start.
    pub restart_seconds: Option<f64>,
}

pub fn resident_line(r: &Resident) -> String {
    format!(
        "resident: {} entities seeded in {:.1} s ({:.0}/s), RSS {} MiB, restart to a full count {} s",
        r.entities,
        r.seed_seconds,
        r.entities_per_second,
        opt(r.rss_mib, 1),
        opt(r.restart_seconds, 2)
    )
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |x| format!("{x:.digits$}"))
}

/// One progress line.
pub fn line(r: &Row) -> String {
    format!(
        "{}: {:.0} req/s ({} requests, {} errors), ceiling {:.0} req/s, ratio {:.2}{}",
        r.scenario,
        r.broker.per_second,
        r.broker.requests,
        r.broker.errors,
        r.ceiling.per_second,
        r.ratio,
        r.broker
            .error_samples
            .first()
            .map(|e| format!("; first error: {e}"))
            .unwrap_or_default()
    )
}

/// The results table (markdown, so it pastes into docs/performance.md).
pub fn table(rep: &Report) -> String {
    let mut s = format!(
        "broker {}  concurrency {}  idle RSS {} MiB  peak RSS {} MiB\n\n",
        rep.broker,
        rep.concurrency,
        opt(rep.idle_rss_mib, 1),
        opt(rep.peak_rss_mib, 1)
    );
    s.push_str("| scenario | requests | errors | req/s | entities/s | p50 ms | p99 ms | max ms | ceiling req/s | ratio | CPU ms/req | RSS MiB |\n");
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in &rep.rows {
        s.push_str(&format!(
            "| {} | {} | {} | {:.0} | {} | {:.2} | {:.2} | {:.1} | {:.0} | {:.2} | {} | {} |\n",
            r.scenario,
            r.broker.requests,
            r.broker.errors,
            r.broker.per_second,
            opt(r.entities_per_second, 0),
            r.broker.p50_ms,
            r.broker.p99_ms,
            r.broker.max_ms,
            r.ceiling.per_second,
            r.ratio,
            opt(r.cpu_ms_per_request, 3),
            opt(r.rss_mib, 1)
        ));
    }
    if let Some(r) = &rep.resident {
        s.push('\n');
        s.push_str(&resident_line(r));
        s.push('\n');
    }
    s
}
