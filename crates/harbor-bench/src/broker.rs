//! The broker under test: one this tool starts (the `infoharbor` binary built beside it, on a
//! free port with a fresh data folder), or one already running at `--target`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// A broker this process started; stopped and its data removed when dropped.
pub struct Spawned {
    pub child: Child,
    pub base: String,
    data: PathBuf,
    binary: PathBuf,
    port: u16,
    flags: Vec<String>,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// The `infoharbor` binary next to this one (same cargo target folder).
pub fn default_binary() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let dir = me.parent().context("no folder for this executable")?;
    // Test binaries live one level deeper, in deps/.
    for candidate in [dir.join("infoharbor"), dir.join("../infoharbor")] {
        if candidate.exists() {
            return Ok(candidate);
        }
    }
    bail!("no infoharbor binary beside {}: build it first (cargo build --release -p infoharbor) or give --broker / --target", me.display())
}

/// Starts the broker binary and waits for `/health`. Its egress wall lets it through to
/// loopback, where `notify` listens for the notifications (the wall refuses loopback unless
/// told otherwise).
pub async fn spawn(binary: &std::path::Path) -> anyhow::Result<Spawned> {
    spawn_with(binary, &["--egress-allow", "127.0.0.1"]).await
}

/// Like [`spawn`], with further `serve` flags.
pub async fn spawn_with(binary: &std::path::Path, flags: &[&str]) -> anyhow::Result<Spawned> {
    let port = free_port()?;
    let data = std::env::temp_dir().join(format!("harbor-bench-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
    let child = start(binary, port, &data, &flags)?;
    let spawned = Spawned {
        child,
        base: format!("http://127.0.0.1:{port}"),
        data,
        binary: binary.to_path_buf(),
        port,
        flags,
    };
    wait_healthy(&spawned.base, Duration::from_secs(120)).await?;
    Ok(spawned)
}

impl Spawned {
    /// Bytes its data folder takes on disk (allocated blocks, as `du` counts), in MiB.
    pub fn data_mib(&self) -> std::io::Result<f64> {
        Ok(disk_bytes(&self.data)? as f64 / (1024.0 * 1024.0))
    }

    /// Kills the broker (SIGKILL) and starts it again on the same data; returns once it
    /// answers `/health`, or fails when it does not `within` that time (loading millions of
    /// entities back takes a while).
    pub async fn restart(&mut self, within: Duration) -> anyhow::Result<()> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = start(&self.binary, self.port, &self.data, &self.flags)?;
        wait_healthy(&self.base, within).await
    }
}

fn start(
    binary: &std::path::Path,
    port: u16,
    data: &std::path::Path,
    flags: &[String],
) -> anyhow::Result<Child> {
    Command::new(binary)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--log",
            "warn",
            "--data-dir",
        ])
        .arg(data)
        .args(flags)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))
}

async fn wait_healthy(base: &str, within: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    while started.elapsed() < within {
        if let Ok(r) = client.get(format!("{base}/health")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!(
        "the broker at {base} did not become healthy within {} s",
        within.as_secs()
    )
}

fn disk_bytes(path: &std::path::Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::symlink_metadata(path)?;
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            total += disk_bytes(&entry?.path())?;
        }
    }
    Ok(total)
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    #[test]
    fn disk_bytes_counts_every_file_below() {
        let dir = std::env::temp_dir().join(format!("harbor-bench-du-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("a"), vec![1u8; 100_000]).unwrap();
        std::fs::write(dir.join("sub/b"), vec![2u8; 50_000]).unwrap();
        let n = super::disk_bytes(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!((150_000..300_000).contains(&n), "{n}");
    }
}
