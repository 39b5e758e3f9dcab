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
    /// What the `notify` scenario measured besides its updates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify: Option<Notified>,
    /// The p50 this row is held against (e.g. 10 ms for an aggregation over 100k instances).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_p50_ms: Option<f64>,
}

/// Delivery figures of one `notify` sub-run. Rates run from the first update to the last
/// notification received.
#[derive(Debug, Serialize)]
pub struct Notified {
    pub subscriptions: usize,
    /// Entities seeded (and updated).
    pub entities: usize,
    /// Acknowledged updates × subscriptions: entity notifications owed.
    pub due: u64,
    /// Entity notifications received for this run's updates (duplicates included).
    pub delivered: u64,
    pub delivered_percent: f64,
    /// Owed per update and not received, summed over the updates sent (an update that was not
    /// acknowledged counts as owed here).
    pub missing: u64,
    /// Received per update beyond what was owed, summed over the updates.
    pub duplicates: u64,
    /// Notified entities without a value of this run's updates (e.g. a seeded state).
    pub foreign: u64,
    /// Bodies the sink refused as not a notification.
    pub rejected: u64,
    /// Notifications received (one may carry several entities).
    pub notifications: u64,
    pub notifications_per_second: Option<f64>,
    pub delivered_per_second: Option<f64>,
    /// From the last acknowledged update to the last notification received.
    pub drain_seconds: Option<f64>,
    /// False when delivery stopped making progress before everything due arrived.
    pub drained: bool,
    /// Broker CPU from the first update until the broker settled (or the waits ended), per
    /// acknowledged update.
    pub cpu_ms_per_update: Option<f64>,
    /// From the last acknowledged update until the broker owed nothing more: no change left
    /// to match, no delivery left in its outbox (Infoharbor's admin API); None when it still
    /// owed some, or does not tell.
    pub settled_seconds: Option<f64>,
    /// Changes not yet matched plus deliveries not yet settled when the waits ended.
    pub pending_after: Option<u64>,
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
            notify: None,
            target_p50_ms: None,
        }
    }

    /// "met" / "not met" against the row's p50 target; an answer that failed its check does
    /// not count as meeting it.
    pub fn target_verdict(&self) -> Option<String> {
        let target = self.target_p50_ms?;
        let p50 = self.broker.p50_ms;
        let verdict = if self.broker.errors > 0 {
            format!(
                "not comparable: {} of {} answers failed their check",
                self.broker.errors, self.broker.requests
            )
        } else if p50 <= target {
            "met".to_string()
        } else {
            "not met".to_string()
        };
        Some(format!(
            "p50 {p50:.2} ms against a target of ≤ {target} ms: {verdict}"
        ))
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overload: Option<crate::overload::Overload>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<Scale>,
}

/// `scale`: many entities at once, a restart with them, then the queries a client pages with
/// (those are rows of the table, held against their p50 targets).
#[derive(Debug, Serialize)]
pub struct Scale {
    pub entities: usize,
    pub seed_seconds: f64,
    pub entities_per_second: f64,
    /// Before seeding, and with every entity resident.
    pub rss_before_mib: Option<f64>,
    pub rss_mib: Option<f64>,
    /// RSS grown while seeding, per entity seeded.
    pub rss_kib_per_entity: Option<f64>,
    /// The broker's data folder on disk with every entity written; None on a broker we did not
    /// start.
    pub data_mib: Option<f64>,
    /// None on a broker we did not start: it is not killed.
    pub restart: Option<Restart>,
    pub targets: ScaleTargets,
}

/// kill -9 of a broker this tool started, and its start again on the same data.
#[derive(Debug, Serialize)]
pub struct Restart {
    /// From the kill to the first `/health` answered 200.
    pub health_seconds: f64,
    /// From the kill to a count query answering every entity.
    pub ready_seconds: f64,
    pub rss_mib: Option<f64>,
}

/// What `scale` is held against; stated for 1M entities.
#[derive(Debug, Serialize)]
pub struct ScaleTargets {
    pub at_entities: usize,
    pub rss_mib: f64,
    pub restart_seconds: f64,
    pub first_page_p50_ms: f64,
    pub q_p50_ms: f64,
    pub order_by_p50_ms: f64,
}

impl ScaleTargets {
    /// The RSS target spread over its entities.
    pub fn rss_kib_per_entity(&self) -> f64 {
        self.rss_mib * 1024.0 / self.at_entities as f64
    }
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "not met"
    }
}

/// What seeding gave: rate, RSS (against its target, per entity) and the data on disk.
pub fn scale_seeded_line(s: &Scale) -> String {
    let t = &s.targets;
    let per_entity = match s.rss_kib_per_entity {
        Some(k) => format!(
            " = {k:.2} KiB per entity seeded (target ≤ {:.0} MiB at {}, {:.2} KiB per entity: {})",
            t.rss_mib,
            count_label(t.at_entities),
            t.rss_kib_per_entity(),
            verdict(k <= t.rss_kib_per_entity())
        ),
        None => String::new(),
    };
    let data = match s.data_mib {
        Some(mib) => format!("data folder {mib:.1} MiB on disk"),
        None => "data folder not measured (not a broker this tool started)".into(),
    };
    format!(
        "scale: {} entities seeded in {:.1} s ({:.0}/s); RSS {} MiB with them{per_entity}; {data}",
        s.entities,
        s.seed_seconds,
        s.entities_per_second,
        opt(s.rss_mib, 1),
    )
}

/// The restart, against its target, or why there was none.
pub fn scale_restart_line(s: &Scale) -> String {
    let Some(r) = &s.restart else {
        return "scale restart: skipped, the broker at --target was not started by this tool (no kill -9)".into();
    };
    let target = s.targets.restart_seconds;
    format!(
        "scale restart: kill -9, then /health 200 after {:.2} s and a count of all {} after {:.2} s (target ≤ {target} s: {}); RSS after the restart {} MiB",
        r.health_seconds,
        s.entities,
        r.ready_seconds,
        verdict(r.ready_seconds <= target),
        opt(r.rss_mib, 1),
    )
}

/// Every line of `scale` but its rows, with a word on sizes other than the targets'.
pub fn scale_lines(s: &Scale) -> Vec<String> {
    let mut lines = vec![scale_seeded_line(s), scale_restart_line(s)];
    if s.entities != s.targets.at_entities {
        lines.push(format!(
            "scale: the targets are stated for {} entities; this run has {}",
            count_label(s.targets.at_entities),
            count_label(s.entities)
        ));
    }
    lines
}

/// 100k, 1M, 5M, 2.5M, 1234.
pub fn count_label(n: usize) -> String {
    if n >= 1_000_000 && n.is_multiple_of(100_000) {
        format!("{}M", n as f64 / 1e6)
    } else if n >= 1_000 && n.is_multiple_of(1_000) {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |x| format!("{x:.digits$}"))
}

/// One progress line.
pub fn line(r: &Row) -> String {
    format!(
        "{}: {:.0} req/s ({} requests, {} errors), ceiling {:.0} req/s, ratio {:.2}{}{}{}",
        r.scenario,
        r.broker.per_second,
        r.broker.requests,
        r.broker.errors,
        r.ceiling.per_second,
        r.ratio,
        r.notify.as_ref().map(notified_line).unwrap_or_default(),
        r.target_verdict()
            .map(|v| format!("; {v}"))
            .unwrap_or_default(),
        r.broker
            .error_samples
            .first()
            .map(|e| format!("; first error: {e}"))
            .unwrap_or_default()
    )
}

fn notified_line(n: &Notified) -> String {
    let mut s = format!(
        "; delivered {}/{} ({:.1} %, {} missing, {} duplicates) in {} notifications, {} entities/s, drained {} s after the last update",
        n.delivered,
        n.due,
        n.delivered_percent,
        n.missing,
        n.duplicates,
        n.notifications,
        opt(n.delivered_per_second, 0),
        opt(n.drain_seconds, 2),
    );
    if !n.drained {
        s.push_str(" (gave up: no progress for 10 s)");
    }
    match (n.settled_seconds, n.pending_after) {
        (Some(t), _) => s.push_str(&format!(", outbox empty after {t:.2} s")),
        (None, Some(p)) => s.push_str(&format!(", {p} changes or deliveries still pending")),
        (None, None) => {}
    }
    if n.foreign + n.rejected > 0 {
        s.push_str(&format!(
            "; {} entities notified without a value of this run, {} bodies refused",
            n.foreign, n.rejected
        ));
    }
    s
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
    if let Some(o) = &rep.overload {
        s.push('\n');
        s.push_str(&crate::overload::line(o));
        s.push('\n');
    }
    let notified: Vec<(&str, &Notified)> = rep
        .rows
        .iter()
        .filter_map(|r| Some((r.scenario.as_str(), r.notify.as_ref()?)))
        .collect();
    if !notified.is_empty() {
        s.push_str("\n| scenario | due | delivered | delivered % | missing | duplicates | notifications | notifications/s | entities/s | drain s | settled s | CPU ms/update | pending after |\n");
        s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (name, n) in notified {
            s.push_str(&format!(
                "| {} | {} | {} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                name,
                n.due,
                n.delivered,
                n.delivered_percent,
                n.missing,
                n.duplicates,
                n.notifications,
                opt(n.notifications_per_second, 0),
                opt(n.delivered_per_second, 0),
                opt(n.drain_seconds, 2),
                opt(n.settled_seconds, 2),
                opt(n.cpu_ms_per_update, 3),
                n.pending_after.map_or("-".into(), |p| p.to_string()),
            ));
        }
    }
    for r in &rep.rows {
        if let Some(v) = r.target_verdict() {
            s.push_str(&format!("\n{}: {v}\n", r.scenario));
        }
    }
    if let Some(sc) = &rep.scale {
        s.push('\n');
        for l in scale_lines(sc) {
            s.push_str(&l);
            s.push('\n');
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(per_second: f64) -> Measured {
        Measured {
            requests: 1000,
            errors: 0,
            error_samples: Vec::new(),
            seconds: 1000.0 / per_second,
            per_second,
            p50_ms: 1.0,
            p99_ms: 2.0,
            max_ms: 3.0,
            mean_body: 0,
        }
    }

    fn report(notify: Option<Notified>) -> Report {
        let mut row = Row::new("x", measured(500.0), measured(2000.0), 0, None, None);
        row.notify = notify;
        Report {
            broker: "b".into(),
            quick: true,
            concurrency: 8,
            idle_rss_mib: None,
            peak_rss_mib: None,
            rows: vec![row],
            overload: None,
            scale: None,
        }
    }

    #[test]
    fn delivery_figures_only_for_notify_rows() {
        let plain = report(None);
        assert!(!table(&plain).contains("delivered %"));
        assert!(serde_json::to_value(&plain).unwrap()["rows"][0]
            .get("notify")
            .is_none());

        let n = Notified {
            subscriptions: 10,
            entities: 1000,
            due: 10_000,
            delivered: 9_990,
            delivered_percent: 99.9,
            missing: 12,
            duplicates: 2,
            foreign: 0,
            rejected: 0,
            notifications: 400,
            notifications_per_second: Some(200.0),
            delivered_per_second: Some(4995.0),
            drain_seconds: Some(0.5),
            drained: false,
            cpu_ms_per_update: None,
            settled_seconds: None,
            pending_after: Some(12),
        };
        let rep = report(Some(n));
        let t = table(&rep);
        assert!(
            t.contains(
                "| x | 10000 | 9990 | 99.9 | 12 | 2 | 400 | 200 | 4995 | 0.50 | - | - | 12 |"
            ),
            "{t}"
        );
        let l = line(&rep.rows[0]);
        assert!(l.contains("delivered 9990/10000 (99.9 %"), "{l}");
        assert!(l.contains("gave up"), "{l}");
        let j = serde_json::to_value(&rep).unwrap();
        assert_eq!(j["rows"][0]["notify"]["due"], 10_000);
    }

    fn scale(entities: usize, restart: Option<Restart>) -> Scale {
        Scale {
            entities,
            seed_seconds: 8.0,
            entities_per_second: entities as f64 / 8.0,
            rss_before_mib: Some(10.0),
            rss_mib: Some(1410.0),
            rss_kib_per_entity: Some(1400.0 * 1024.0 / entities as f64),
            data_mib: Some(300.0),
            restart,
            targets: crate::scale::TARGETS,
        }
    }

    #[test]
    fn scale_lines_hold_figures_against_targets() {
        let r = Restart {
            health_seconds: 3.1,
            ready_seconds: 3.2,
            rss_mib: Some(1300.0),
        };
        let lines = scale_lines(&scale(100_000, Some(r)));
        assert!(
            lines[0].contains("RSS 1410.0 MiB with them = 14.34 KiB per entity seeded (target ≤ 2048 MiB at 1M, 2.10 KiB per entity: not met); data folder 300.0 MiB"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].contains("count of all 100000 after 3.20 s (target ≤ 15 s: met)"),
            "{}",
            lines[1]
        );
        assert!(lines[2].contains("stated for 1M entities; this run has 100k"));

        let lines = scale_lines(&scale(1_000_000, None));
        assert_eq!(lines.len(), 2, "no word on sizes at 1M");
        assert!(
            lines[0].contains("1.43 KiB per entity seeded"),
            "{}",
            lines[0]
        );
        assert!(lines[0].ends_with("2.10 KiB per entity: met); data folder 300.0 MiB on disk"));
        assert!(lines[1].contains("skipped"), "{}", lines[1]);
        let mut peer = scale(1_000_000, None);
        peer.data_mib = None;
        assert!(scale_lines(&peer)[0]
            .ends_with("data folder not measured (not a broker this tool started)"));

        let mut rep = report(None);
        rep.scale = Some(scale(5_000_000, None));
        let j = serde_json::to_value(&rep).unwrap();
        assert_eq!(j["scale"]["entities"], 5_000_000);
        assert_eq!(j["scale"]["targets"]["order_by_p50_ms"], 5.0);
        assert!(j["scale"]["restart"].is_null());
        assert!(table(&rep).contains("this run has 5M"));
    }

    #[test]
    fn count_labels() {
        for (n, want) in [
            (100_000, "100k"),
            (1_000_000, "1M"),
            (2_500_000, "2.5M"),
            (5_000_000, "5M"),
            (1_234, "1234"),
            (20_000, "20k"),
        ] {
            assert_eq!(count_label(n), want);
        }
    }
}
