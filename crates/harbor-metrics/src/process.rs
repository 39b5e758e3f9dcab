//! The process's own figures, read from `/proc/self` at scrape time under the names every
//! Prometheus client uses (`process_*`), so that existing dashboards and alerts apply. On a
//! system without `/proc` the figures are left out.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::{gauge, Collector, DescriptorEncoder, EncodeMetric, MetricType};

/// Kernel clock ticks per second (`sysconf(_SC_CLK_TCK)`), 100 on every Linux platform the
/// broker runs on.
const TICKS_PER_SECOND: f64 = 100.0;

/// What `/proc/self` says about the process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    pub max_fds: Option<u64>,
    pub start_time_seconds: Option<f64>,
    pub threads: u64,
}

/// The fields of `/proc/self/stat` after the command name, which may itself hold spaces and
/// parentheses: everything after the last `)`.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().collect())
}

/// Reads a snapshot; `None` when `/proc/self/stat` cannot be read.
pub fn snapshot() -> Option<Snapshot> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let f = stat_fields(&stat)?;
    // After the name: state is field 3 of the man page, so man field n is f[n - 3].
    let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let ticks = num(14).unwrap_or(0) + num(15).unwrap_or(0);
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<u64>().ok())
    });
    let start_time_seconds = match (boot, num(22)) {
        (Some(b), Some(t)) => Some(b as f64 + t as f64 / TICKS_PER_SECOND),
        _ => None,
    };
    let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    let max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| max_open_files(&l));
    Some(Snapshot {
        cpu_seconds: ticks as f64 / TICKS_PER_SECOND,
        resident_bytes: std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| resident_kib(&s))
            .unwrap_or(0)
            * 1024,
        virtual_bytes: num(23).unwrap_or(0),
        open_fds,
        max_fds,
        start_time_seconds,
        threads: num(20).unwrap_or(0),
    })
}

/// `VmRSS` of `/proc/self/status`, in KiB (the page size varies between platforms, so the
/// page count of `stat` is not used).
fn resident_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line["VmRSS:".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The soft limit of "Max open files" in `/proc/self/limits`.
fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Exposes [`snapshot`] and the broker's build (`infoharbor_build_info{version}`).
#[derive(Debug)]
pub struct ProcessCollector {
    version: &'static str,
}

impl ProcessCollector {
    pub fn new(version: &'static str) -> Self {
        ProcessCollector { version }
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        {
            let mut m = enc.encode_descriptor(
                "infoharbor_build_info",
                "The running build: always 1, with the version as a label.",
                None,
                MetricType::Gauge,
            )?;
            let labels = [("version", self.version)];
            let fam = m.encode_family(&labels)?;
            crate::ConstGauge::new(1i64).encode(fam)?;
        }
        let Some(s) = snapshot() else {
            return Ok(());
        };
        {
            let c = crate::ConstCounter::new(s.cpu_seconds);
            let m = enc.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time spent, in seconds.",
                None,
                MetricType::Counter,
            )?;
            c.encode(m)?;
        }
        gauge(
            &mut enc,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            s.resident_bytes,
        )?;
        gauge(
            &mut enc,
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            s.virtual_bytes,
        )?;
        gauge(
            &mut enc,
            "process_open_fds",
            "Open file descriptors (connections, the store, logs).",
            s.open_fds,
        )?;
        if let Some(max) = s.max_fds {
            gauge(
                &mut enc,
                "process_max_fds",
                "The soft limit of open file descriptors.",
                max,
            )?;
        }
        if let Some(start) = s.start_time_seconds {
            gauge(
                &mut enc,
                "process_start_time_seconds",
                "When the process started, in seconds since the Unix epoch.",
                start,
            )?;
        }
        gauge(&mut enc, "process_threads", "OS threads.", s.threads)?;
        Ok(())
    }
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_a_name_with_spaces_and_parentheses() {
        let stat = "42 (tokio (x) y) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 \
                    1234 1000000 300 18446744073709551615";
        let f = stat_fields(stat).unwrap();
        assert_eq!(f[0], "S");
        assert_eq!(f[14 - 3], "250", "utime");
        assert_eq!(f[20 - 3], "7", "threads");
        assert_eq!(f[24 - 3], "300", "rss in pages");
        assert_eq!(resident_kib("Name:\tx\nVmRSS:\t   1234 kB\n"), Some(1234));
    }

    #[test]
    fn the_soft_open_files_limit_is_read() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max processes             63432                63432                processes\n\
                      Max open files            524288               524288               files\n";
        assert_eq!(max_open_files(limits), Some(524_288));
    }

    #[test]
    fn this_process_is_measured() {
        let s = snapshot().expect("/proc/self/stat on Linux");
        assert!(s.resident_bytes > 0);
        assert!(s.open_fds > 0);
        assert!(s.start_time_seconds.unwrap() <= unix_now() + 1.0);
    }
}
