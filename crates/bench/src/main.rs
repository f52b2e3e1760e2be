//! `credits-bench`: the end-to-end load benchmark of the `credits` service over real HTTP.
//!
//! Goal: what a client sees from the release binary under many concurrent connections (requests
//! and events per second, p50/p99/max latency, every non-success answer), where the time goes
//! (CPU of the service, of its single writer thread and of this load generator; disk flushes),
//! and proof that every acknowledged usage was charged exactly once.
//! Method: start `credits serve` on a free loopback port with a fresh data directory; create and
//! fund the accounts concurrently; run each scenario (`hot`, `spread`, `batchN`, optionally
//! `healthz`/`balance`) as C closed-loop keep-alive connections for a fixed time after a warm-up;
//! then compare `GET /v2/balance` of a sample of accounts with what was acknowledged; print one
//! Markdown report (also to `--out`).
//!
//! With `--database-url` the bench creates a fresh database on that PostgreSQL server, starts
//! `--nodes` `credits serve` processes on it (the first alone until it listens, so that it runs
//! the migrations; then the others), spreads the connections round robin over them, reports the
//! CPU of every node and of PostgreSQL, and drops the database at the end.

mod load;
mod pg;
mod scale;
mod seed;
mod server;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::Parser;

use load::{Kind, Plan, Tally, Target};
use server::{Server, Snapshot, Usage};

#[derive(Parser, Debug)]
#[command(
    name = "credits-bench",
    about = "HTTP load benchmark of the credits service (starts the release binary itself)",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    args: Args,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Cost at scale: debits, balance and list pages with a large history beside an empty store,
    /// start-up time, and resident memory per active account and per idempotency key.
    Scale(scale::ScaleArgs),
}

#[derive(clap::Args, Debug)]
struct Args {
    /// The `credits` binary to start (build it with `cargo build --release -p credits`).
    #[arg(long, default_value = "target/release/credits")]
    bin: PathBuf,
    /// Concurrent connections (one closed-loop task each).
    #[arg(long, short = 'c', default_value_t = 64)]
    connections: usize,
    /// Connections for the batch scenarios (default: --connections).
    #[arg(long)]
    batch_connections: Option<usize>,
    /// Measured seconds per scenario.
    #[arg(long, short = 'd', default_value_t = 15)]
    duration: u64,
    /// Warm-up seconds before each measured window (same load, not counted).
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Accounts to create and fund.
    #[arg(long, default_value_t = 10_000)]
    accounts: usize,
    /// Credits granted to each account (one never-expiring purchase for any service).
    #[arg(long, default_value_t = 1_000_000_000_000)]
    fund: u64,
    /// Scenarios, in order: hot, spread, batch (one per --batch-sizes), batchN, healthz, balance.
    #[arg(long, value_delimiter = ',', default_value = "hot,spread,batch")]
    scenarios: Vec<String>,
    /// Events per request of the `batch` scenario (1 to 1000 each).
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    batch_sizes: Vec<usize>,
    /// Accounts whose balance is checked at the end (evenly spaced; the hot account always).
    #[arg(long, default_value_t = 1000)]
    check_sample: usize,
    /// Block device whose flushes are counted (/proc/diskstats name).
    #[arg(long, default_value = "vda")]
    disk: String,
    /// Keep the service's data directory (and the PostgreSQL database) instead of deleting it.
    #[arg(long)]
    keep_data: bool,
    /// A PostgreSQL server, e.g. postgres://postgres@127.0.0.1:5432/test: the bench creates a
    /// fresh database there for the nodes (the URL's own database only serves to connect) and
    /// drops it at the end. Without it, one node on SQLite.
    #[arg(long)]
    database_url: Option<String>,
    /// `credits serve` processes sharing the database (needs --database-url when above 1);
    /// connection i talks to node i mod N.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// HTTP worker threads of each node (`credits serve --worker-threads`). Default: with one
    /// node, the service's own (one per core); with several, the box's cores shared among them
    /// (at least 1 each), as an operator running several nodes on one machine would size them.
    #[arg(long)]
    node_threads: Option<usize>,
    /// Also write the report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn scenarios(args: &Args) -> anyhow::Result<Vec<Kind>> {
    let mut kinds = Vec::new();
    for name in &args.scenarios {
        match name.trim() {
            "hot" => kinds.push(Kind::Hot),
            "spread" => kinds.push(Kind::Spread),
            "healthz" => kinds.push(Kind::Healthz),
            "balance" => kinds.push(Kind::Balance),
            "batch" => kinds.extend(args.batch_sizes.iter().map(|&n| Kind::Batch(n))),
            other => match other.strip_prefix("batch").map(str::parse::<usize>) {
                Some(Ok(n)) => kinds.push(Kind::Batch(n)),
                _ => bail!("unknown scenario {other:?}"),
            },
        }
    }
    for kind in &kinds {
        if let Kind::Batch(n) = kind {
            if !(1..=1000).contains(n) {
                bail!("batch sizes are 1 to 1000, not {n}");
            }
        }
    }
    Ok(kinds)
}

/// One scenario's result.
struct Measured {
    kind: Kind,
    connections: usize,
    tally: Tally,
    window: Duration,
    usage: Usage,
    load_before: String,
}

impl Measured {
    fn requests_per_second(&self) -> f64 {
        self.tally.requests as f64 / self.window.as_secs_f64().max(1e-9)
    }

    fn events_per_second(&self) -> f64 {
        self.tally.events_ok as f64 / self.window.as_secs_f64().max(1e-9)
    }

    /// The latency at percentile `p` (0 to 100) in ms, nearest rank.
    fn latency_ms(&self, sorted: &[u32], p: f64) -> f64 {
        if sorted.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        let index = rank.saturating_sub(1).min(sorted.len() - 1);
        f64::from(sorted[index]) / 1000.0
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// What every scenario run shares.
struct Shared<'a> {
    warmup: u64,
    duration: u64,
    disk: &'a str,
    target: Arc<Target>,
    pids: Vec<u32>,
    postgres: bool,
    tag: &'a str,
    ticks: f64,
}

async fn run_scenario(
    kind: Kind,
    connections: usize,
    shared: &Shared<'_>,
) -> anyhow::Result<Measured> {
    run_scenario_at(kind, connections, shared, String::new()).await
}

/// [`run_scenario`] with the path that a `Kind::Get` scenario reads.
async fn run_scenario_at(
    kind: Kind,
    connections: usize,
    shared: &Shared<'_>,
    path: String,
) -> anyhow::Result<Measured> {
    let target = &shared.target;
    let load_before = load_average();
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(shared.warmup);
    // Each run of a scenario gets its own key prefix: the workers number their idempotency keys
    // by scenario name, connection and request, so a scenario named twice in one run (or the same
    // kind run twice by `scale`) would send the same keys again, and the operator's replayed
    // answers would count as charges.
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let plan = Arc::new(Plan {
        kind,
        tag: format!("{}r{run}", shared.tag),
        measure_from,
        end: measure_from + Duration::from_secs(shared.duration),
        path,
    });
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..connections {
        tasks.spawn(load::worker(index, Arc::clone(target), Arc::clone(&plan)));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let first = Snapshot::take(&shared.pids, shared.disk, shared.postgres);
    tokio::time::sleep_until(plan.end.into()).await;
    let last = Snapshot::take(&shared.pids, shared.disk, shared.postgres);
    let mut tally = Tally::empty(target.accounts.len());
    while let Some(joined) = tasks.join_next().await {
        tally.merge(joined.context("a load task panicked")?);
    }
    let window = plan.end.duration_since(measure_from);
    Ok(Measured {
        kind,
        connections,
        tally,
        window,
        usage: Usage::between(&first, &last, shared.ticks),
        load_before,
    })
}

fn optional(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "?".into(), |v| format!("{v:.decimals$}"))
}

/// Thousands separators, for readability of rates.
fn grouped(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn directory_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The storage the nodes use, for the report.
struct Backend {
    /// `None`: SQLite in the node's data directory.
    database: Option<pg::Database>,
    nodes: usize,
    /// HTTP worker threads per node, when set (else the service's default).
    node_threads: Option<usize>,
}

impl Backend {
    fn name(&self) -> &'static str {
        if self.database.is_some() {
            "postgresql"
        } else {
            "sqlite"
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Scale(scale_args)) = &cli.command {
        return scale::run(scale_args).await;
    }
    let args = cli.args;
    let kinds = scenarios(&args)?;
    if args.connections == 0 || args.accounts == 0 || args.nodes == 0 {
        bail!("--connections, --accounts and --nodes must be at least 1");
    }
    if args.nodes > 1 && args.database_url.is_none() {
        bail!("--nodes above 1 needs --database-url (nodes share one PostgreSQL database)");
    }
    let binary = std::fs::canonicalize(&args.bin).with_context(|| {
        format!("no binary at {} (cargo build --release -p credits)", args.bin.display())
    })?;
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let tag = format!("b{:x}", nanos % (1 << 48));
    let database = match &args.database_url {
        Some(url) => {
            let database = pg::Database::create(url, &tag).await?;
            eprintln!("credits-bench: created PostgreSQL database {}", database.name);
            Some(database)
        }
        None => None,
    };
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let node_threads = args.node_threads.or((args.nodes > 1).then(|| (cores / args.nodes).max(1)));
    let backend = Backend { database, nodes: args.nodes, node_threads };
    let outcome = run(&args, &kinds, &binary, &tag, nanos, &backend).await;
    if let Some(database) = &backend.database {
        if args.keep_data {
            eprintln!("credits-bench: kept PostgreSQL database {}", database.name);
        } else if let Err(error) = database.drop_database().await {
            eprintln!("credits-bench: {error:#}");
        }
    }
    outcome
}

/// Starts the node(s), sets up, measures, checks, stops, reports.
async fn run(
    args: &Args,
    kinds: &[Kind],
    binary: &std::path::Path,
    tag: &str,
    nanos: u128,
    backend: &Backend,
) -> anyhow::Result<()> {
    // 12 + 28 = 40 characters (the service wants at least 32).
    let admin_key = format!("bench_admin_{nanos:028x}");
    let data_dir = std::env::temp_dir().join(format!("credits-bench-{}-{tag}", std::process::id()));
    let ticks = server::clock_ticks_per_second();
    let load_at_start = load_average();

    // SQLite: the data directory itself. PostgreSQL: one directory per node beside one webhook
    // key file that every node shares (the first node creates it).
    let webhook_key_file = data_dir.join("webhook-key");
    let mut servers: Vec<Server> = Vec::new();
    for node in 0..backend.nodes {
        let (dir, postgres) = match &backend.database {
            None => (data_dir.clone(), None),
            Some(database) => (
                data_dir.join(format!("node{node}")),
                Some((database.url.as_str(), webhook_key_file.as_path())),
            ),
        };
        let server = Server::start(binary, &dir, &admin_key, postgres, backend.node_threads)
            .await
            .with_context(|| format!("node {node} did not start"))?;
        eprintln!(
            "credits-bench: node {node}: service pid {} at {}, data in {}",
            server.pid,
            server.address,
            dir.display()
        );
        servers.push(server);
    }
    let batch_connections = args.batch_connections.unwrap_or(args.connections);
    let timeout = load::REQUEST_TIMEOUT;
    let clients =
        (0..args.connections).map(|_| load::client(timeout)).collect::<anyhow::Result<Vec<_>>>()?;
    let mut target = Target {
        bases: servers.iter().map(Server::base_url).collect(),
        authorization: format!("Bearer {admin_key}"),
        accounts: Vec::new(),
    };

    // The cost of one `smartcheck` usage of quantity 1, as the catalog says.
    let (status, service) =
        load::get_json(&clients[0], &target, 0, "/v2/services/smartcheck").await?;
    let cost = match (status, service["unitCost"].as_u64()) {
        (200, Some(cost)) => cost,
        _ => bail!("GET /v2/services/smartcheck answered {status}: {service}"),
    };

    eprintln!(
        "credits-bench: creating and funding {} accounts ({} connections)",
        args.accounts, args.connections
    );
    let setup_started = Instant::now();
    target.accounts =
        load::setup_accounts(&clients[..args.connections], &target, args.accounts, args.fund)
            .await?;
    let setup_time = setup_started.elapsed();
    let target = Arc::new(target);
    let shared = Shared {
        warmup: args.warmup,
        duration: args.duration,
        disk: &args.disk,
        target: Arc::clone(&target),
        pids: servers.iter().map(|server| server.pid).collect(),
        postgres: backend.database.is_some(),
        tag,
        ticks,
    };

    let mut results = Vec::new();
    for &kind in kinds {
        let connections =
            if matches!(kind, Kind::Batch(_)) { batch_connections } else { args.connections };
        if let Some(database) = &backend.database {
            database.settle().await?;
        }
        eprintln!(
            "credits-bench: {} with {connections} connections, {} s warm-up + {} s measured (load {})",
            kind.name(),
            args.warmup,
            args.duration,
            load_average()
        );
        let measured = run_scenario(kind, connections, &shared).await?;
        eprintln!(
            "credits-bench: {}: {:.0} requests/s, {:.0} events/s, {} errors",
            kind.name(),
            measured.requests_per_second(),
            measured.events_per_second(),
            measured.tally.errors.values().sum::<u64>()
        );
        results.push(measured);
        for (node, server) in servers.iter_mut().enumerate() {
            if let Some(status) = server.exited() {
                bail!("node {node} exited during {}: {status}", kind.name());
            }
        }
    }

    let mut totals = Tally::empty(target.accounts.len());
    for measured in &mut results {
        let mut tally = Tally::empty(target.accounts.len());
        std::mem::swap(&mut tally.charged, &mut measured.tally.charged);
        std::mem::swap(&mut tally.unknown, &mut measured.tally.unknown);
        totals.merge(tally);
    }
    let check_clients = &clients[..args.connections];
    let check = load::check_balances(
        check_clients,
        Arc::clone(&target),
        &totals,
        args.fund,
        cost,
        args.check_sample,
    )
    .await?;
    let data_bytes = directory_bytes(&data_dir)
        + (0..backend.nodes)
            .map(|node| directory_bytes(&data_dir.join(format!("node{node}"))))
            .sum::<u64>();
    let database_bytes = match &backend.database {
        Some(database) => database.size().await,
        None => None,
    };
    let mut nodes = Vec::new();
    for server in servers {
        let log = server.log();
        let exit = server.stop().await?;
        nodes.push((log, exit));
    }
    if !args.keep_data {
        let _ = std::fs::remove_dir_all(&data_dir);
    }

    let report = render(
        args,
        backend,
        kinds,
        &mut results,
        &check,
        &nodes,
        setup_time,
        cost,
        (data_bytes, database_bytes),
        &load_at_start,
    );
    println!("{report}");
    if let Some(path) = &args.out {
        std::fs::write(path, &report)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if !check.mismatches.is_empty() {
        bail!("{} balance mismatches", check.mismatches.len());
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn render(
    args: &Args,
    backend: &Backend,
    kinds: &[Kind],
    results: &mut [Measured],
    check: &load::Check,
    nodes: &[(server::LogTally, String)],
    setup_time: Duration,
    cost: u64,
    (data_bytes, database_bytes): (u64, Option<u64>),
    load_at_start: &str,
) -> String {
    let mut out = String::new();
    let names: Vec<String> = kinds.iter().map(|k| k.name()).collect();
    let postgres = backend.database.is_some();
    let _ = writeln!(out, "## credits-bench\n");
    let _ = writeln!(
        out,
        "- binary `{}`, backend {}, {} node{}, scenarios {}, {} s warm-up + {} s measured each, closed loop",
        args.bin.display(),
        backend.name(),
        backend.nodes,
        if backend.nodes == 1 { "" } else { "s" },
        names.join(", "),
        args.warmup,
        args.duration
    );
    if let Some(database) = &backend.database {
        let _ = writeln!(
            out,
            "- PostgreSQL: fresh database `{}` ({} at the end), shared by {} `credits serve` process(es), each with its own data directory and port, the same admin key and the same webhook key file; connection i talks to node i mod {}; setup through node 0; `VACUUM ANALYZE` and `CHECKPOINT` before each scenario (as the baseline's `pg/reset.sql` before each run); the balance check reads through every node",
            database.name,
            if args.keep_data { "kept" } else { "dropped" },
            backend.nodes,
            backend.nodes
        );
    }
    if let Some(threads) = backend.node_threads {
        let _ = writeln!(
            out,
            "- each node with {threads} HTTP worker thread(s) (`--worker-threads`), on a box of {} core(s)",
            std::thread::available_parallelism().map_or(1, usize::from)
        );
    }
    let _ = writeln!(
        out,
        "- {} accounts funded with {} credits each; one usage = `smartcheck` x 1 = {cost} credit(s); load average at start {load_at_start}",
        args.accounts, args.fund
    );
    let writes = 2 * args.accounts;
    let _ = writeln!(
        out,
        "- setup: {} accounts + {} purchases in {:.1} s ({} writes/s, {} connections)\n",
        args.accounts,
        args.accounts,
        setup_time.as_secs_f64(),
        grouped(writes as f64 / setup_time.as_secs_f64().max(1e-9)),
        args.connections
    );
    if postgres {
        let _ = writeln!(
            out,
            "| scenario | conns | events/req | requests/s | events/s | p50 ms | p99 ms | max ms | errors | service CPU (all nodes) | writer threads | bench CPU | disk flushes/s | events/flush | nodes + PostgreSQL writes MB/s | KB written/event | load before | CPU per node | PostgreSQL CPU |"
        );
        let _ = writeln!(
            out,
            "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|"
        );
    } else {
        let _ = writeln!(
            out,
            "| scenario | conns | events/req | requests/s | events/s | p50 ms | p99 ms | max ms | errors | service CPU | writer thread | bench CPU | disk flushes/s | events/flush | service writes MB/s | KB written/event | load before |"
        );
        let _ = writeln!(
            out,
            "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"
        );
    }
    for measured in results.iter_mut() {
        measured.tally.latencies_us.sort_unstable();
        let sorted = &measured.tally.latencies_us;
        let errors: u64 = measured.tally.errors.values().sum();
        let error_text = if errors == 0 {
            "0".to_string()
        } else {
            measured
                .tally
                .errors
                .iter()
                .map(|(kind, n)| format!("{kind}: {n}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let events_per_flush = match measured.usage.flushes_per_second {
            Some(f) if f > 0.0 && measured.kind.charges() => {
                format!("{:.1}", measured.events_per_second() / f)
            }
            _ => "-".into(),
        };
        let written = measured.usage.written_per_second;
        let kb_per_event = match written {
            Some(w) if measured.kind.charges() && measured.events_per_second() > 0.0 => {
                format!("{:.1}", w / 1024.0 / measured.events_per_second())
            }
            _ => "-".into(),
        };
        let _ = write!(
            out,
            "| {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            measured.kind.name(),
            measured.connections,
            measured.kind.events_per_request(),
            grouped(measured.requests_per_second()),
            grouped(measured.events_per_second()),
            measured.latency_ms(sorted, 50.0),
            measured.latency_ms(sorted, 99.0),
            measured.latency_ms(sorted, 100.0),
            error_text,
            optional(measured.usage.server_cores, 2),
            optional(measured.usage.writer_cores, 2),
            optional(measured.usage.bench_cores, 2),
            optional(measured.usage.flushes_per_second, 0),
            events_per_flush,
            optional(written.map(|w| w / 1e6), 0),
            kb_per_event,
            measured.load_before,
        );
        if postgres {
            let per_node: Vec<String> =
                measured.usage.node_cores.iter().map(|&cores| optional(cores, 2)).collect();
            let _ = write!(
                out,
                " {} | {} |",
                per_node.join(" + "),
                optional(measured.usage.postgres_cores, 2)
            );
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "\nCPU columns are cores (1.00 = one core busy) over the measured window; the box has {} cores shared by service and bench. Disk flushes are device-wide (`{}` in /proc/diskstats); service writes are the `write_bytes` of the service process (/proc/PID/io: WAL, database file and checkpoints). Errors count every answer of the scenario (warm-up included); requests/s, events/s and latencies count answers received in the measured window.",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.disk
    );
    if postgres {
        let _ = writeln!(
            out,
            "\nWith PostgreSQL, service CPU and writer threads are summed over the {} node processes (each node's share in `CPU per node`); `PostgreSQL CPU` and the PostgreSQL part of the writes count every process named `postgres` on the box (the whole cluster: any other client of it counts too), a process started inside the window from zero.",
            backend.nodes
        );
    }
    for measured in results.iter() {
        for (kind, sample) in &measured.tally.error_samples {
            let _ = writeln!(
                out,
                "\n- {} error `{kind}` x{} (over {} requests): first answer `{sample}`",
                measured.kind.name(),
                measured.tally.errors.get(kind).copied().unwrap_or(0),
                measured.tally.sent_total
            );
        }
    }
    let verdict = if check.mismatches.is_empty() { "OK" } else { "MISMATCH" };
    let _ = writeln!(
        out,
        "\nBalance check: {verdict}. {} accounts checked (the hot account among them): {} exact, {} within the range of unknown-outcome requests, {} mismatched. Usages acknowledged 201 over the whole run: {}; with unknown outcome (transport error or 5xx): {}.",
        check.checked,
        check.exact,
        check.within_unknown,
        check.mismatches.len(),
        check.charged_total,
        check.unknown_total
    );
    for mismatch in check.mismatches.iter().take(10) {
        let _ = writeln!(out, "- {mismatch}");
    }
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    let storage = match (postgres, database_bytes) {
        (false, _) => format!("data directory {:.1} MiB at the end", mib(data_bytes)),
        (true, Some(bytes)) => format!(
            "PostgreSQL database {:.1} MiB at the end (data directories {:.1} MiB)",
            mib(bytes),
            mib(data_bytes)
        ),
        (true, None) => format!(
            "PostgreSQL database size unknown (data directories {:.1} MiB)",
            mib(data_bytes)
        ),
    };
    if let [(log, exit)] = nodes {
        let _ = writeln!(
            out,
            "\nService: {} stderr lines after start, {} ERROR, {} WARN; exit after SIGTERM: {exit}; {storage}.",
            log.lines, log.errors, log.warnings,
        );
        for sample in &log.samples {
            let _ = writeln!(out, "    {sample}");
        }
    } else {
        let _ = writeln!(out, "\nService: {storage}.");
        for (node, (log, exit)) in nodes.iter().enumerate() {
            let _ = writeln!(
                out,
                "- node {node}: {} stderr lines after start, {} ERROR, {} WARN; exit after SIGTERM: {exit}",
                log.lines, log.errors, log.warnings,
            );
            for sample in &log.samples {
                let _ = writeln!(out, "    {sample}");
            }
        }
    }
    out
}
