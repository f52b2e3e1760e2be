//! The service under test and the machine around it.
//!
//! Goal: run the real release `credits` binary exactly as an operator would, and see what it
//! costs. Method: spawn `credits serve` on `127.0.0.1:0` with a fresh data directory and a given
//! admin key (and, for PostgreSQL, a database URL and a webhook key file shared by every node),
//! learn the address from the `credits listening on http://ADDR` line on its stderr, keep
//! draining stderr (counting `ERROR`/`WARN` lines, keeping the first few), and read CPU time
//! (each node process, its `credits-writer` thread, this bench, and with PostgreSQL every
//! `postgres` process), the bytes written to storage and block-device flushes from `/proc`, so
//! that each measured window can say where the time went.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The line the service prints once it accepts connections.
const LISTENING_PREFIX: &str = "credits listening on http://";
/// Log lines kept verbatim for the report.
const LOG_SAMPLES_MAX: usize = 20;

/// What the service wrote to stderr after it started.
#[derive(Default, Debug, Clone)]
pub struct LogTally {
    pub lines: u64,
    pub errors: u64,
    pub warnings: u64,
    pub samples: Vec<String>,
}

pub struct Server {
    child: Child,
    pub pid: u32,
    pub address: String,
    pub log: Arc<Mutex<LogTally>>,
}

/// Removes terminal colour codes so that log samples read well in Markdown.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Server {
    /// Starts `binary serve` on a free loopback port with `data_dir` and `admin_key`; with
    /// `postgres` (database URL, webhook key file) on that database instead of SQLite; with
    /// `worker_threads`, that many HTTP worker threads (`--worker-threads`), else its default.
    pub async fn start(
        binary: &Path,
        data_dir: &Path,
        admin_key: &str,
        postgres: Option<(&str, &Path)>,
        worker_threads: Option<usize>,
    ) -> anyhow::Result<Server> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .env("CREDITS_LISTEN", "127.0.0.1:0")
            .env("CREDITS_DATA_DIR", data_dir)
            .env("CREDITS_ADMIN_KEY", admin_key);
        match worker_threads {
            Some(threads) => command.env("CREDITS_WORKER_THREADS", threads.to_string()),
            None => command.env_remove("CREDITS_WORKER_THREADS"),
        };
        match postgres {
            Some((url, webhook_key_file)) => command
                .env("CREDITS_DATABASE_URL", url)
                .env("CREDITS_WEBHOOK_KEY_FILE", webhook_key_file),
            None => {
                command.env_remove("CREDITS_DATABASE_URL").env_remove("CREDITS_WEBHOOK_KEY_FILE")
            }
        };
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let pid = child.id().context("the service exited at once")?;
        let stderr = child.stderr.take().context("no stderr pipe")?;
        let mut lines = BufReader::new(stderr).lines();
        let mut before = Vec::new();
        let address = loop {
            let next = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await;
            match next {
                Err(_) => bail!("no listening line within 60 s; stderr so far: {before:?}"),
                Ok(Err(error)) => bail!("cannot read the service's stderr: {error}"),
                Ok(Ok(None)) => bail!("the service exited before listening; stderr: {before:?}"),
                Ok(Ok(Some(line))) => {
                    if let Some(address) = line.trim().strip_prefix(LISTENING_PREFIX) {
                        break address.trim().to_string();
                    }
                    before.push(strip_ansi(&line));
                }
            }
        };
        let log = Arc::new(Mutex::new(LogTally::default()));
        let tally = Arc::clone(&log);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut tally = tally.lock().unwrap_or_else(|e| e.into_inner());
                tally.lines += 1;
                let error = line.contains("ERROR");
                let warning = line.contains("WARN");
                tally.errors += u64::from(error);
                tally.warnings += u64::from(warning);
                if (error || warning) && tally.samples.len() < LOG_SAMPLES_MAX {
                    tally.samples.push(strip_ansi(&line));
                }
            }
        });
        Ok(Server { child, pid, address, log })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// `Some(status)` once the service has exited.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(error) => Some(format!("unknown ({error})")),
        }
    }

    pub fn log(&self) -> LogTally {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// SIGTERM (graceful: in-flight requests finish, the writer drains), SIGKILL after 30 s.
    pub async fn stop(mut self) -> anyhow::Result<String> {
        if self.exited().is_none() {
            let _ =
                std::process::Command::new("kill").args(["-TERM", &self.pid.to_string()]).status();
        }
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(status) => Ok(status?.to_string()),
            Err(_) => {
                self.child.start_kill()?;
                let status = self.child.wait().await?;
                Ok(format!("{status} (killed after 30 s without exiting on SIGTERM)"))
            }
        }
    }
}

/// Clock ticks per second for `/proc/*/stat` (`getconf CLK_TCK`, 100 on Linux in practice).
pub fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|ticks| *ticks > 0.0)
        .unwrap_or(100.0)
}

/// utime + stime in ticks from a `/proc/.../stat` file.
fn stat_ticks(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is fields[0]; utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPU ticks of the first thread of `pid` named `name`.
fn thread_ticks(pid: u32, name: &str) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            return stat_ticks(&task.path().join("stat"));
        }
    }
    None
}

/// Flush requests completed by a block device, from /proc/diskstats.
fn disk_flushes(disk: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/diskstats").ok()?;
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(2) == Some(&disk) {
            // After major, minor and name, field 16 is flush requests completed (Linux 5.5+).
            return fields.get(18)?.parse().ok();
        }
    }
    None
}

/// Bytes the process caused to be written to storage (`write_bytes` of /proc/PID/io).
fn written_bytes(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("write_bytes:"))
        .and_then(|value| value.trim().parse().ok())
}

/// CPU ticks and written bytes of every process named `postgres` (the whole local cluster:
/// postmaster, backends, WAL writer, checkpointer...), by pid.
fn postgres_processes() -> BTreeMap<u32, (u64, Option<u64>)> {
    let mut found = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else {
            continue;
        };
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim() != "postgres" {
            continue;
        }
        if let Some(ticks) = stat_ticks(&entry.path().join("stat")) {
            found.insert(pid, (ticks, written_bytes(pid)));
        }
    }
    found
}

/// Counters at one instant.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub at: Instant,
    /// Per node process.
    pub server_ticks: Vec<Option<u64>>,
    pub writer_ticks: Vec<Option<u64>>,
    pub server_written: Vec<Option<u64>>,
    pub bench_ticks: Option<u64>,
    pub disk_flushes: Option<u64>,
    /// Every `postgres` process, when the backend is PostgreSQL.
    pub postgres: Option<BTreeMap<u32, (u64, Option<u64>)>>,
}

impl Snapshot {
    pub fn take(pids: &[u32], disk: &str, postgres: bool) -> Snapshot {
        Snapshot {
            at: Instant::now(),
            server_ticks: pids
                .iter()
                .map(|pid| stat_ticks(Path::new(&format!("/proc/{pid}/stat"))))
                .collect(),
            writer_ticks: pids.iter().map(|&pid| thread_ticks(pid, "credits-writer")).collect(),
            server_written: pids.iter().map(|&pid| written_bytes(pid)).collect(),
            bench_ticks: stat_ticks(Path::new("/proc/self/stat")),
            disk_flushes: disk_flushes(disk),
            postgres: postgres.then(postgres_processes),
        }
    }
}

/// What happened between two snapshots, per second of wall time.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// CPU cores used (1.0 = one core busy all the time), summed over the nodes.
    pub server_cores: Option<f64>,
    /// CPU cores of each node process.
    pub node_cores: Vec<Option<f64>>,
    pub writer_cores: Option<f64>,
    pub bench_cores: Option<f64>,
    /// CPU cores of every `postgres` process (PostgreSQL backend only).
    pub postgres_cores: Option<f64>,
    /// Device-wide flush requests per second (every process on the disk counts).
    pub flushes_per_second: Option<f64>,
    /// Bytes per second the nodes wrote to storage (SQLite: WAL, database, checkpoints); with
    /// PostgreSQL, plus what every `postgres` process wrote.
    pub written_per_second: Option<f64>,
}

/// The sum, when every term is known.
fn sum(values: impl IntoIterator<Item = Option<f64>>) -> Option<f64> {
    values.into_iter().try_fold(0.0, |total, value| Some(total + value?))
}

impl Usage {
    pub fn between(from: &Snapshot, to: &Snapshot, ticks_per_second: f64) -> Usage {
        let seconds = to.at.duration_since(from.at).as_secs_f64().max(1e-9);
        let cores = |a: Option<u64>, b: Option<u64>| -> Option<f64> {
            Some(b?.saturating_sub(a?) as f64 / ticks_per_second / seconds)
        };
        let rate = |a: Option<u64>, b: Option<u64>| -> Option<f64> {
            Some(b?.saturating_sub(a?) as f64 / seconds)
        };
        let pairs = |a: &[Option<u64>], b: &[Option<u64>]| -> Vec<(Option<u64>, Option<u64>)> {
            a.iter().copied().zip(b.iter().copied()).collect()
        };
        let node_cores: Vec<Option<f64>> = pairs(&from.server_ticks, &to.server_ticks)
            .into_iter()
            .map(|(a, b)| cores(a, b))
            .collect();
        let writer_cores =
            sum(pairs(&from.writer_ticks, &to.writer_ticks).into_iter().map(|(a, b)| cores(a, b)));
        let mut written = sum(pairs(&from.server_written, &to.server_written)
            .into_iter()
            .map(|(a, b)| rate(a, b)));
        // A postgres process that started inside the window counts from zero; one that ended
        // inside it is lost (backends of the nodes' pools live as long as the nodes).
        let postgres_cores = match (&from.postgres, &to.postgres) {
            (Some(before), Some(after)) => {
                let mut ticks = 0;
                let mut bytes = Some(0);
                for (pid, &(t, w)) in after {
                    let (t0, w0) = before.get(pid).copied().unwrap_or((0, Some(0)));
                    ticks += t.saturating_sub(t0);
                    bytes = match (bytes, w, w0) {
                        (Some(sum), Some(w), Some(w0)) => Some(sum + w.saturating_sub(w0)),
                        _ => None,
                    };
                }
                written = match (written, bytes) {
                    (Some(nodes), Some(postgres)) => Some(nodes + postgres as f64 / seconds),
                    _ => None,
                };
                Some(ticks as f64 / ticks_per_second / seconds)
            }
            _ => None,
        };
        Usage {
            server_cores: sum(node_cores.iter().copied()),
            node_cores,
            writer_cores,
            bench_cores: cores(from.bench_ticks, to.bench_ticks),
            postgres_cores,
            flushes_per_second: rate(from.disk_flushes, to.disk_flushes),
            written_per_second: written,
        }
    }
}

/// Resident memory of a process, from /proc/PID/status, in bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// VmRSS: resident now.
    pub rss: u64,
    /// VmHWM: the peak resident size so far.
    pub hwm: u64,
}

impl Memory {
    pub fn of(pid: u32) -> Option<Memory> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| -> Option<u64> {
            let line = text.lines().find_map(|line| line.strip_prefix(name))?;
            let kib: u64 = line.trim().trim_end_matches("kB").trim().parse().ok()?;
            Some(kib * 1024)
        };
        Some(Memory { rss: field("VmRSS:")?, hwm: field("VmHWM:")? })
    }
}
