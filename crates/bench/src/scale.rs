//! `credits-bench scale`: what a large store costs, beside an empty one in the same run.
//!
//! Goal (issue 7): the cost of a debit, a balance read and a page of a list must not grow with
//! history; start-up must stay short with a large store; memory per active account and per
//! retained idempotency key must be small. Method, in one command:
//!
//! 1. `flat`: on a fresh directory, create and fund account A through the API and charge it one
//!    usage; keep a copy of that store; into the original, seed account B with `--entries`
//!    usages and their ledger entries by SQL (`seed.rs`: copies of A's rows). Start a service on
//!    each (timing start-up on the freshly funded and on the large store), and run every
//!    measurement on A, on B, and on A again, seconds apart: `POST /v2/usage` at each of
//!    `--connections`, then `GET /v2/balance` and the first and a deep page (reached through a
//!    `to` filter in the middle of the history, then its `nextCursor`) of `GET /v2/usage` and
//!    `GET /v2/ledger`; then time a few filtered requests once. Balances are checked at the end.
//! 2. `memory`: a fresh directory with `--accounts` funded accounts (a template through the API,
//!    the rest by SQL); resident memory (VmRSS, VmHWM) of the service at ready, after usages on
//!    1000 of them, after one usage on every account, and after `--keys` more usages (each with
//!    its own idempotency key) on 4 accounts, in batches of 1000 through `POST /v2/usage/batch`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};

use crate::load::{self, Kind, Tally, Target};
use crate::seed;
use crate::server::{self, Memory, Server};
use crate::{grouped, load_average, run_scenario_at, Measured, Shared};

#[derive(clap::Args, Debug)]
pub struct ScaleArgs {
    /// The `credits` binary to start (build it with `cargo build --release -p credits`).
    #[arg(long, default_value = "target/release/credits")]
    bin: PathBuf,
    /// Ledger entries (usages, one entry each) seeded on the big account of the `flat` part.
    #[arg(long, default_value_t = 10_000_000)]
    entries: u64,
    /// Days of history the seeded entries spread over (ending a minute before the seeding).
    #[arg(long, default_value_t = 30)]
    history_days: u64,
    /// Funded accounts of the `memory` part, each charged one usage.
    #[arg(long, default_value_t = 1_000_000)]
    accounts: usize,
    /// Usages (idempotency keys) sent on 4 accounts at the end of the `memory` part.
    #[arg(long, default_value_t = 200_000)]
    keys: usize,
    /// Credits each account is funded with.
    #[arg(long, default_value_t = 1_000_000_000_000)]
    fund: u64,
    /// Connection counts at which every `flat` measurement runs.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    connections: Vec<usize>,
    /// Connections sending batches in the `memory` part.
    #[arg(long, default_value_t = 4)]
    batch_connections: usize,
    /// Measured seconds per `flat` measurement.
    #[arg(long, short = 'd', default_value_t = 5)]
    duration: u64,
    /// Warm-up seconds before each measured window.
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Parts to run: flat, memory.
    #[arg(long, value_delimiter = ',', default_value = "flat,memory")]
    parts: Vec<String>,
    /// Block device whose flushes are counted (/proc/diskstats name).
    #[arg(long, default_value = "vda")]
    disk: String,
    /// Keep the data directories instead of deleting them.
    #[arg(long)]
    keep_data: bool,
    /// Also write the report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// RFC 3339 UTC, whole seconds, for `from`/`to` filters.
fn rfc3339(micros: i64) -> String {
    let seconds = micros.div_euclid(1_000_000);
    let (days, rem) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Times from spawning `credits serve` on a data directory.
struct Startup {
    listening: Duration,
    ready: Duration,
    /// Until a first `POST /v2/usage` answered 201 (when an account was given).
    first_usage: Option<Duration>,
    memory: Option<Memory>,
}

/// What one scale run shares.
struct Run<'a> {
    args: &'a ScaleArgs,
    binary: PathBuf,
    admin_key: String,
    authorization: String,
    tag: String,
    clients: Vec<reqwest::Client>,
    ticks: f64,
}

impl Run<'_> {
    fn target(&self, server: &Server, accounts: Vec<String>) -> Target {
        Target {
            bases: vec![server.base_url()],
            authorization: self.authorization.clone(),
            accounts,
        }
    }

    /// Spawns the service on `dir` and times it until `/readyz` answers 200 and, with an
    /// account, until a first usage of it is acknowledged.
    async fn start(&self, dir: &Path, account: Option<&str>) -> anyhow::Result<(Server, Startup)> {
        let spawned = Instant::now();
        let server = Server::start(&self.binary, dir, &self.admin_key, None, None).await?;
        let listening = spawned.elapsed();
        let client = &self.clients[0];
        let base = server.base_url();
        let ready = loop {
            let answer = client.get(format!("{base}/readyz")).send().await;
            if matches!(&answer, Ok(response) if response.status().as_u16() == 200) {
                break spawned.elapsed();
            }
            if spawned.elapsed() > Duration::from_secs(300) {
                bail!("/readyz did not answer 200 within 300 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let memory = Memory::of(server.pid);
        let first_usage = match account {
            None => None,
            Some(account) => {
                self.usage_once(&base, account).await?;
                Some(spawned.elapsed())
            }
        };
        Ok((server, Startup { listening, ready, first_usage, memory }))
    }

    /// One `POST /v2/usage` of `account` (smartcheck x 1), which must answer 201.
    async fn usage_once(&self, base: &str, account: &str) -> anyhow::Result<()> {
        let response = self.clients[0]
            .post(format!("{base}/v2/usage"))
            .header("authorization", &self.authorization)
            .header("content-type", "application/json")
            .header("idempotency-key", format!("{}-once-{}", self.tag, now_micros()))
            .body(format!(r#"{{"accountId":"{account}","service":"smartcheck","quantity":1}}"#))
            .send()
            .await?;
        let status = response.status().as_u16();
        if status != 201 {
            bail!("a usage of {account} answered {status}: {}", response.text().await?);
        }
        Ok(())
    }

    /// The scenario context; `tag` makes the idempotency keys of one scenario run unique (keys
    /// of the operator share one scope, and the load's keys only number the requests).
    fn shared<'s>(&'s self, server: &Server, target: &Arc<Target>, tag: &'s str) -> Shared<'s> {
        Shared {
            warmup: self.args.warmup,
            duration: self.args.duration,
            disk: &self.args.disk,
            target: Arc::clone(target),
            pids: vec![server.pid],
            postgres: false,
            tag,
            ticks: self.ticks,
        }
    }
}

pub async fn run(args: &ScaleArgs) -> anyhow::Result<()> {
    let binary = std::fs::canonicalize(&args.bin).with_context(|| {
        format!("no binary at {} (cargo build --release -p credits)", args.bin.display())
    })?;
    if args.connections.is_empty() || args.connections.contains(&0) {
        bail!("--connections are at least 1");
    }
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let admin_key = format!("bench_admin_{nanos:028x}");
    let connections =
        args.connections.iter().copied().max().unwrap_or(1).max(args.batch_connections);
    let clients = (0..connections.max(1))
        .map(|_| load::client(Duration::from_secs(600)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let context = Run {
        args,
        binary,
        authorization: format!("Bearer {admin_key}"),
        admin_key,
        tag: format!("s{:x}", nanos % (1 << 48)),
        clients,
        ticks: server::clock_ticks_per_second(),
    };
    let mut report = String::new();
    let _ = writeln!(report, "## credits-bench scale\n");
    let _ = writeln!(
        report,
        "- binary `{}`, SQLite; {} s warm-up + {} s measured per measurement, closed loop; load average at start {}; {} cores shared by the service and the bench\n",
        args.bin.display(),
        args.warmup,
        args.duration,
        load_average(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let mut failed = Vec::new();
    for part in &args.parts {
        let outcome = match part.trim() {
            "flat" => flat(&context, &mut report).await,
            "memory" => memory(&context, &mut report).await,
            other => bail!("unknown part {other:?} (flat, memory)"),
        };
        if let Err(error) = outcome {
            // A failed part returns before its own clean-up: its directories can hold gigabytes.
            if !args.keep_data {
                for name in ["flat", "flat-empty", "memory"] {
                    let _ = std::fs::remove_dir_all(data_dir(&context, name));
                }
            }
            let _ = writeln!(report, "\n**Part {part} failed:** {error:#}\n");
            eprintln!("credits-bench: part {part} failed: {error:#}");
            failed.push(part.clone());
        }
    }
    println!("{report}");
    if let Some(path) = &args.out {
        std::fs::write(path, &report)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if !failed.is_empty() {
        bail!("parts failed: {}", failed.join(", "));
    }
    Ok(())
}

fn data_dir(context: &Run<'_>, part: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "credits-scale-{}-{}-{part}",
        std::process::id(),
        context.tag
    ))
}

/// One store under measurement in the `flat` part: its service, the measured account and what
/// was found on it.
struct Side {
    server: Server,
    account: String,
    /// When the account's history starts (µs since the epoch).
    since: i64,
    target: Arc<Target>,
    /// Each measurement: kind, connections, path; the same list on every side.
    plan: Vec<(Kind, usize, String)>,
    /// Per list: the time of the `to`-filtered request that found the deep cursor, and the
    /// `createdAt` of the deep page's first item.
    deep: Vec<(&'static str, Duration, String)>,
    /// One-off filtered requests (label, time, status), after the measurements.
    probes: Vec<(String, Duration, u16)>,
    /// Usages acknowledged on the account by the measurements and the first usage after start.
    charged: u64,
    unknown: u64,
}

impl Side {
    /// Debits first (so that the empty store's account has a history to page through too).
    fn new(context: &Run<'_>, server: Server, account: &str, since: i64) -> Side {
        let target = Arc::new(context.target(&server, vec![account.to_string()]));
        let plan =
            context.args.connections.iter().map(|&c| (Kind::Hot, c, String::new())).collect();
        Side {
            server,
            account: account.to_string(),
            since,
            target,
            plan,
            deep: Vec::new(),
            probes: Vec::new(),
            charged: 1,
            unknown: 0,
        }
    }

    /// Adds the reads: balance, then page 1 and a deep page of the usage and ledger lists. The
    /// deep page is the `nextCursor` of the page that a `to=` filter in the middle of the
    /// account's history gives.
    async fn add_reads(&mut self, context: &Run<'_>) -> anyhow::Result<()> {
        let account = &self.account;
        let mut reads = vec![(Kind::Balance, format!("/v2/balance?accountId={account}"))];
        for (list, path) in [("usage", "/v2/usage"), ("ledger", "/v2/ledger")] {
            let first = format!("{path}?accountId={account}&limit=100");
            let middle = self.since + (now_micros() - self.since) / 2;
            let started = Instant::now();
            let (status, page) = load::get_json(
                &context.clients[0],
                &self.target,
                0,
                &format!("{first}&to={}", rfc3339(middle)),
            )
            .await?;
            let lookup = started.elapsed();
            let Some(cursor) = page["nextCursor"].as_str() else {
                bail!("GET {first}&to=… answered {status} without a nextCursor: {page}");
            };
            let deep_path = format!("{first}&cursor={cursor}");
            let (status, page) =
                load::get_json(&context.clients[0], &self.target, 0, &deep_path).await?;
            if status != 200 {
                bail!("GET {deep_path} answered {status}: {page}");
            }
            let created = page["data"][0]["createdAt"].as_str().unwrap_or("?").to_string();
            self.deep.push((list, lookup, created));
            let (first_label, deep_label) = if list == "usage" {
                ("usage-page1", "usage-deep")
            } else {
                ("ledger-page1", "ledger-deep")
            };
            reads.push((Kind::Get(first_label), first));
            reads.push((Kind::Get(deep_label), deep_path));
        }
        for (kind, path) in reads {
            for &c in &context.args.connections {
                self.plan.push((kind, c, path.clone()));
            }
        }
        Ok(())
    }

    /// Runs measurement `index` of the plan; `name` makes its idempotency keys unique (the
    /// operator's keys share one scope, and the load numbers keys per connection).
    async fn measure(
        &mut self,
        context: &Run<'_>,
        index: usize,
        name: &str,
    ) -> anyhow::Result<Measured> {
        let (kind, c, path) = self.plan[index].clone();
        eprintln!("credits-bench: {name}: {} x{c} (load {})", kind.name(), load_average());
        let tag = format!("{}-{name}-{index}", context.tag);
        let shared = context.shared(&self.server, &self.target, &tag);
        // `Kind::Balance` reads a random account of the target: its only one.
        let measured = run_scenario_at(kind, c, &shared, path).await?;
        self.charged += measured.tally.charged.iter().map(|&n| u64::from(n)).sum::<u64>();
        self.unknown += measured.tally.unknown.iter().map(|&n| u64::from(n)).sum::<u64>();
        Ok(measured)
    }

    /// Filters that select by time or type rather than by an index prefix, timed once each.
    async fn probe(&mut self, context: &Run<'_>) -> anyhow::Result<()> {
        let (account, since) = (&self.account, rfc3339(self.since));
        for (list, lookup, _) in &self.deep {
            self.probes.push((
                format!("`GET /v2/{list}?to=` (middle of the history)"),
                *lookup,
                200,
            ));
        }
        for (label, path) in [
            (
                "`GET /v2/usage?from=` (the account's creation)",
                format!("/v2/usage?accountId={account}&limit=100&from={since}"),
            ),
            (
                "`GET /v2/ledger?from=` (the account's creation)",
                format!("/v2/ledger?accountId={account}&limit=100&from={since}"),
            ),
            (
                "`GET /v2/ledger?type=purchase`",
                format!("/v2/ledger?accountId={account}&limit=100&type=purchase"),
            ),
            (
                "`GET /v2/usage/summary` (default: last 30 days)",
                format!("/v2/usage/summary?accountId={account}"),
            ),
        ] {
            let started = Instant::now();
            let (status, _) = load::get_json(&context.clients[0], &self.target, 0, &path).await?;
            self.probes.push((label.to_string(), started.elapsed(), status));
        }
        Ok(())
    }
}

/// `GET /v2/balance` of `account` must show `expected` available (give or take `unknown`
/// usages of unknown outcome) and nothing reserved.
async fn check_balance(
    context: &Run<'_>,
    server: &Server,
    account: &str,
    expected: u64,
    unknown: u64,
) -> anyhow::Result<String> {
    let target = context.target(server, Vec::new());
    let (status, balance) = load::get_json(
        &context.clients[0],
        &target,
        0,
        &format!("/v2/balance?accountId={account}"),
    )
    .await?;
    let available = balance["available"].as_u64();
    match (status, available, balance["reserved"].as_u64()) {
        (200, Some(a), Some(0)) if a == expected => Ok(format!("exact ({a})")),
        (200, Some(a), Some(0)) if a < expected && expected - a <= unknown => {
            Ok(format!("within unknown outcomes ({a}, expected {expected})"))
        }
        _ => bail!(
            "balance of {account}: {status} {balance}, expected available {expected} \
             ({unknown} unknown)"
        ),
    }
}

fn tally_errors(tally: &Tally) -> String {
    let errors: u64 = tally.errors.values().sum();
    if errors == 0 {
        return "0".into();
    }
    tally.errors.iter().map(|(kind, n)| format!("{kind}: {n}")).collect::<Vec<_>>().join("; ")
}

fn startup_row(out: &mut String, store: &str, startup: &Startup, data_bytes: u64) {
    let _ = writeln!(
        out,
        "| {store} | {:.1} MiB | {:.0} | {:.0} | {} | {} |",
        mib(data_bytes),
        ms(startup.listening),
        ms(startup.ready),
        startup.first_usage.map_or_else(|| "-".into(), |d| format!("{:.0}", ms(d))),
        startup.memory.map_or_else(|| "?".into(), |m| format!("{:.1}", mib(m.rss))),
    );
}

/// Copies the files of a stopped service's data directory.
fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

fn percentiles(measured: &mut Measured) -> (f64, f64) {
    measured.tally.latencies_us.sort_unstable();
    let sorted = &measured.tally.latencies_us;
    (measured.latency_ms(sorted, 50.0), measured.latency_ms(sorted, 99.0))
}

async fn flat(context: &Run<'_>, report: &mut String) -> anyhow::Result<()> {
    let args = context.args;
    let dir = data_dir(context, "flat");
    let empty_dir = data_dir(context, "flat-empty");
    let database = dir.join("credits.db");
    eprintln!("credits-bench: flat: data in {} and {}", dir.display(), empty_dir.display());

    // A brand-new directory (migrations, admin key), then account A through the API with one
    // usage (the template of the seeded rows).
    let (server, new_start) = context.start(&dir, None).await?;
    let target = context.target(&server, Vec::new());
    let (status, service) =
        load::get_json(&context.clients[0], &target, 0, "/v2/services/smartcheck").await?;
    let cost = match (status, service["unitCost"].as_u64()) {
        (200, Some(cost)) => cost,
        _ => bail!("GET /v2/services/smartcheck answered {status}: {service}"),
    };
    let a = load::setup_accounts(&context.clients[..1], &target, 1, args.fund).await?.remove(0);
    context.usage_once(&server.base_url(), &a).await?;
    server.stop().await?;
    // The freshly funded store, kept aside; the large history goes into the original.
    copy_dir(&dir, &empty_dir)?;
    eprintln!("credits-bench: flat: seeding {} ledger entries", args.entries);
    let span = i64::try_from(args.history_days.max(1) * 86_400 * 1_000_000)?;
    let history = seed::history(&database, &a, args.entries, args.fund, now_micros(), span)?;
    if history.cost != cost {
        bail!("the template usage cost {} credits, the catalog says {cost}", history.cost);
    }
    let (empty_bytes, full_bytes) =
        (crate::directory_bytes(&empty_dir), crate::directory_bytes(&dir));

    // Both services run side by side; each measurement runs on the empty store, the large one,
    // and the empty one again, seconds apart, so that drift of the shared box cancels out.
    let (server, empty_start) = context.start(&empty_dir, Some(&a)).await?;
    // A's measured history starts now: its template usage is from before the seeding, and the
    // middle of a span that holds the seeding would have no page below it.
    let mut empty = Side::new(context, server, &a, now_micros());
    let b = history.account_id.clone();
    let (server, full_start) = context.start(&dir, Some(&b)).await?;
    let mut full = Side::new(context, server, &b, history.created_at);
    eprintln!(
        "credits-bench: flat: empty store (account {a}) beside {} entries ({b})",
        args.entries
    );
    let mut before = Vec::new();
    let mut large = Vec::new();
    let mut after = Vec::new();
    let mut index = 0;
    while index < empty.plan.len() {
        before.push(empty.measure(context, index, "before").await?);
        large.push(full.measure(context, index, "large").await?);
        after.push(empty.measure(context, index, "after").await?);
        index += 1;
        if index == args.connections.len() && empty.plan.len() == index {
            empty.add_reads(context).await?;
            full.add_reads(context).await?;
        }
    }
    empty.probe(context).await?;
    full.probe(context).await?;
    // One usage of A was acknowledged before the copy: the template of the seeded rows.
    let empty_check = check_balance(
        context,
        &empty.server,
        &a,
        args.fund - cost * (empty.charged + 1),
        empty.unknown,
    )
    .await?;
    let full_check = check_balance(
        context,
        &full.server,
        &b,
        history.remaining - cost * full.charged,
        full.unknown,
    )
    .await?;
    let (empty_deep, empty_probes) = (empty.deep, empty.probes);
    let (full_deep, full_probes) = (full.deep, full.probes);
    let mut logs = Vec::new();
    let mut exits = Vec::new();
    for server in [empty.server, full.server] {
        logs.push(server.log());
        exits.push(server.stop().await?);
    }
    if !args.keep_data {
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&empty_dir);
    }

    let entries = grouped(args.entries as f64);
    let out = report;
    let _ = writeln!(out, "### Flat cost: empty store vs {entries} ledger entries\n");
    let _ = writeln!(
        out,
        "- empty store: account A created and funded through the API on a fresh store, with one usage; a copy of that store is kept aside. Large store: into the original, account B created {} days before the seeding, with {entries} usages and their {entries} ledger entries from {} to {}, seeded by SQL ({} rows in {:.1} s, {} rows/s, fsync included). Both services run side by side; each measurement runs on A in the empty store (\"before\"), on B in the large store, then on A again (\"after\"), seconds apart, so that drift of the shared box shows and mostly cancels.",
        args.history_days,
        rfc3339(history.first_usage_at),
        rfc3339(history.last_usage_at),
        grouped(history.rows as f64),
        history.seconds,
        grouped(history.rows as f64 / history.seconds.max(1e-9)),
    );
    let lookups: Vec<String> = empty_deep
        .iter()
        .zip(&full_deep)
        .map(|((list, _, c0), (_, _, c1))| format!("{list}: from {c0} on A, from {c1} on B"))
        .collect();
    let _ = writeln!(
        out,
        "- list pages: `limit=100`; page 1 has no cursor; the deep page is `cursor=` the `nextCursor` of the page with `to=` the middle of the account's history, found after the debits ({}).",
        lookups.join("; ")
    );
    let _ = writeln!(
        out,
        "- balance checks: A {empty_check}, B {full_check}. Service logs: {}; exits: {}\n",
        logs.iter()
            .map(|log| format!("{} ERROR / {} WARN", log.errors, log.warnings))
            .collect::<Vec<_>>()
            .join(", "),
        exits.join(", ")
    );
    let _ = writeln!(
        out,
        "| measurement | conns | before: per s | p50 ms | p99 ms | {entries}: per s | p50 ms | p99 ms | after: per s | p50 ms | p99 ms | p50 ratio | p99 ratio | throughput ratio | errors |"
    );
    let _ =
        writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let ratio = |a: f64, b: f64| if b > 0.0 { format!("{:.2}", a / b) } else { "?".into() };
    for ((e, f), g) in before.iter_mut().zip(large.iter_mut()).zip(after.iter_mut()) {
        let (e50, e99) = percentiles(e);
        let (f50, f99) = percentiles(f);
        let (g50, g99) = percentiles(g);
        let (er, fr, gr) =
            (e.requests_per_second(), f.requests_per_second(), g.requests_per_second());
        let _ = writeln!(
            out,
            "| {} | {} | {} | {e50:.2} | {e99:.2} | {} | {f50:.2} | {f99:.2} | {} | {g50:.2} | {g99:.2} | **{}** / {} | {} / {} | {} / {} | {} / {} / {} |",
            e.kind.name(),
            e.connections,
            grouped(er),
            grouped(fr),
            grouped(gr),
            ratio(f50, e50),
            ratio(f50, g50),
            ratio(f99, e99),
            ratio(f99, g99),
            ratio(er, fr),
            ratio(gr, fr),
            tally_errors(&e.tally),
            tally_errors(&f.tally),
            tally_errors(&g.tally),
        );
    }
    let _ = writeln!(
        out,
        "\nRatios: large ÷ before / large ÷ after for latency, before ÷ large / after ÷ large for throughput; above 1 the large store is slower (target: at most 1.2). Each scenario: `POST /v2/usage` on the account (`hot`), `GET /v2/balance`, and `GET /v2/usage` / `GET /v2/ledger` with `accountId`.\n"
    );
    let _ = writeln!(
        out,
        "Where the debits' time went (`hot` rows; CPU in cores over the measured window, writes of the service process, flushes of the whole device):\n"
    );
    let _ = writeln!(
        out,
        "| store | conns | usages/s | service CPU | writer thread | disk flushes/s | KB written/usage |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    for (store, results) in [("before", &before), ("large", &large), ("after", &after)] {
        for measured in results.iter().filter(|m| m.kind == Kind::Hot) {
            let rate = measured.events_per_second();
            let usage = &measured.usage;
            let _ = writeln!(
                out,
                "| {store} | {} | {} | {} | {} | {} | {} |",
                measured.connections,
                grouped(rate),
                crate::optional(usage.server_cores, 2),
                crate::optional(usage.writer_cores, 2),
                crate::optional(usage.flushes_per_second, 0),
                crate::optional(
                    usage.written_per_second.filter(|_| rate > 0.0).map(|w| w / 1024.0 / rate),
                    1
                ),
            );
        }
    }
    let _ = writeln!(
        out,
        "\nOne-off requests with filters, `limit=100`, timed once each after the measurements (ms, HTTP status):\n"
    );
    let _ = writeln!(out, "| request | A (empty store) | B ({entries}) |");
    let _ = writeln!(out, "|---|---:|---:|");
    for (p0, p1) in empty_probes.iter().zip(&full_probes) {
        let cell = |p: &(String, Duration, u16)| format!("{:.1} ({})", ms(p.1), p.2);
        let _ = writeln!(out, "| {} | {} | {} |", p0.0, cell(p0), cell(p1));
    }
    let _ = writeln!(out, "\n### Start-up\n");
    let _ = writeln!(
        out,
        "Time from spawning `credits serve` on the data directory (OS page cache warm: the files were just written) until it prints its listening line, `/readyz` answers 200, and a first `POST /v2/usage` answers 201; resident memory at ready.\n"
    );
    let _ = writeln!(
        out,
        "| store | data directory | listening ms | /readyz 200 ms | first usage 201 ms | VmRSS at ready MiB |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    startup_row(out, "brand-new directory (migrations, admin key)", &new_start, 0);
    startup_row(out, "freshly funded (1 account, 1 usage)", &empty_start, empty_bytes);
    startup_row(out, &format!("{entries} ledger entries"), &full_start, full_bytes);
    let _ = writeln!(
        out,
        "\nReady with {entries} entries ÷ ready freshly funded: {}.\n",
        ratio(ms(full_start.ready), ms(empty_start.ready)),
    );
    Ok(())
}

/// Resident memory at one step of the `memory` part.
struct Step {
    name: String,
    memory: Option<Memory>,
    events: u64,
    seconds: f64,
    errors: String,
}

async fn memory(context: &Run<'_>, report: &mut String) -> anyhow::Result<()> {
    let args = context.args;
    let count = args.accounts.max(1);
    let dir = data_dir(context, "memory");
    let database = dir.join("credits.db");
    eprintln!("credits-bench: memory: data in {}", dir.display());
    let (server, _) = context.start(&dir, None).await?;
    let target = context.target(&server, Vec::new());
    let template = load::setup_accounts(&context.clients[..1], &target, 1, args.fund).await?;
    server.stop().await?;
    eprintln!("credits-bench: memory: seeding {count} funded accounts");
    let (accounts, seed_seconds) =
        seed::accounts(&database, &template[0], count, args.fund, now_micros())?;
    let (server, startup) = context.start(&dir, None).await?;
    let pid = server.pid;
    let target = Arc::new(context.target(&server, accounts));
    let clients = &context.clients[..args.batch_connections.max(1)];
    let mut steps = vec![Step {
        name: "ready".into(),
        memory: startup.memory,
        events: 0,
        seconds: 0.0,
        errors: "0".into(),
    }];
    let mut totals = Tally::empty(count);
    let first = count.min(1000);
    let plan: [(&str, String, std::ops::Range<usize>, usize); 3] = [
        ("a", format!("one usage on each of {first} accounts"), 0..first, count),
        (
            "a",
            format!("one usage on each of the other {} accounts", count - first),
            first..count,
            count,
        ),
        ("k", format!("{} usages on 4 accounts (one key each)", args.keys), 0..args.keys, 4),
    ];
    for (label, name, range, modulo) in plan {
        eprintln!("credits-bench: memory: {name} (load {})", load_average());
        let events = range.len() as u64;
        let (tally, took) =
            load::sweep(clients, Arc::clone(&target), label, &context.tag, range, modulo, 1000)
                .await?;
        steps.push(Step {
            name,
            memory: Memory::of(pid),
            events,
            seconds: took.as_secs_f64(),
            errors: tally_errors(&tally),
        });
        let mut charged = Tally::empty(count);
        charged.charged = tally.charged;
        charged.unknown = tally.unknown;
        totals.merge(charged);
    }
    let check =
        load::check_balances(&context.clients, Arc::clone(&target), &totals, args.fund, 1, 1000)
            .await?;
    let data_bytes = crate::directory_bytes(&dir);
    let log = server.log();
    let exit = server.stop().await?;
    if !args.keep_data {
        let _ = std::fs::remove_dir_all(&dir);
    }

    let out = report;
    let _ = writeln!(
        out,
        "### Memory: {} accounts, {} idempotency keys\n",
        grouped(count as f64),
        grouped((count + args.keys) as f64)
    );
    let _ = writeln!(
        out,
        "- {} funded accounts (one purchase each) seeded by SQL in {seed_seconds:.1} s from a template account created through the API; usages through `POST /v2/usage/batch`, 1000 events per request, {} connections; each usage stores its idempotency key (kept 24 h).",
        grouped(count as f64),
        clients.len()
    );
    let _ = writeln!(
        out,
        "- balance check of {} accounts: {} exact, {} within unknown outcomes, {} mismatched; service log {} ERROR / {} WARN; exit {exit}; data directory {:.0} MiB at the end\n",
        check.checked,
        check.exact,
        check.within_unknown,
        check.mismatches.len(),
        log.errors,
        log.warnings,
        mib(data_bytes)
    );
    let _ = writeln!(out, "| after | events | events/s | errors | VmRSS MiB | VmHWM MiB |");
    let _ = writeln!(out, "|---|---:|---:|---|---:|---:|");
    for step in &steps {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            step.name,
            grouped(step.events as f64),
            if step.seconds > 0.0 {
                grouped(step.events as f64 / step.seconds)
            } else {
                "-".into()
            },
            step.errors,
            step.memory.map_or_else(|| "?".into(), |m| format!("{:.1}", mib(m.rss))),
            step.memory.map_or_else(|| "?".into(), |m| format!("{:.1}", mib(m.hwm))),
        );
    }
    let rss = |i: usize| steps[i].memory.map(|m| m.rss as f64);
    let per = |delta: Option<f64>, n: usize| -> String {
        match delta {
            Some(d) if n > 0 => format!("{:.0} bytes", d / n as f64),
            _ => "?".into(),
        }
    };
    let accounts_delta = rss(2).zip(rss(1)).map(|(b, a)| b - a);
    let keys_delta = rss(3).zip(rss(2)).map(|(b, a)| b - a);
    let hwm = steps[3].memory.map(|m| m.hwm);
    let _ = writeln!(
        out,
        "\nPer active account (with its usage and key): {} (VmRSS after {} accounts minus after {first}, over the {} accounts between). Per idempotency key: {} (VmRSS after the {} keys on 4 accounts minus before). Peak (VmHWM) at the end: {}.",
        per(accounts_delta, count - first),
        grouped(count as f64),
        grouped((count - first) as f64),
        per(keys_delta, args.keys),
        grouped(args.keys as f64),
        hwm.map_or_else(|| "?".into(), |h| format!("{:.1} MiB", mib(h))),
    );
    if !check.mismatches.is_empty() {
        bail!("{} balance mismatches: {}", check.mismatches.len(), check.mismatches.join("; "));
    }
    Ok(())
}
