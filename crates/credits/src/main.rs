//! The `credits` binary: configuration, telemetry, the admin key bootstrap and wiring.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use base64::Engine;
use clap::{Parser, Subcommand};
use sha2::{Digest, Sha256};

use credits_api::AppState;
use credits_store::{Command, Database, Outcome, Store, WriteRequest};

/// mimalloc instead of glibc's allocator: on PostgreSQL a node's writer builds and drops a batch's
/// statement text while its accounts' locks are held, and glibc's `malloc`/`free` (with their
/// consolidation of freed chunks) were about a fifth of the writer's CPU (see
/// docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The shortest admin key accepted from `CREDITS_ADMIN_KEY`.
const ADMIN_KEY_LENGTH_MIN: usize = 32;

mod cli;

#[derive(Parser)]
#[command(name = "credits", version, about = "Prepaid credits for an API business")]
struct Cli {
    #[command(subcommand)]
    command: CliCommand,
}

#[derive(Subcommand)]
enum CliCommand {
    /// Run the HTTP service.
    Serve(ServeArgs),
    /// Copy a consistent snapshot of the SQLite database to a new file; safe while serving.
    Backup(BackupArgs),
    /// The operator CLI over the HTTP API (accounts, credits, usage, members, keys, ...).
    #[command(flatten)]
    Client(cli::ClientCommand),
}

#[derive(clap::Args)]
struct BackupArgs {
    /// The file to write; must not exist.
    #[arg(long)]
    to: PathBuf,
    /// The data dir of the service, which holds credits.db.
    #[arg(long, env = "CREDITS_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
}

/// Copies `DIR/credits.db` to a new file with SQLite's online backup, then says what it wrote.
fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let database = args.data_dir.join("credits.db");
    if !database.is_file() {
        bail!("no database at {}", database.display())
    }
    if args.to.symlink_metadata().is_ok() {
        bail!("{} exists; refusing to overwrite it", args.to.display())
    }
    credits_store::backup_sqlite(&database, &args.to)
        .with_context(|| format!("cannot back up {}", database.display()))?;
    let bytes = std::fs::metadata(&args.to).map(|m| m.len()).unwrap_or(0);
    println!("wrote a backup of {} to {} ({bytes} bytes)", database.display(), args.to.display());
    Ok(())
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The address to listen on.
    #[arg(long, env = "CREDITS_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where the embedded SQLite database (credits.db) and the admin key file live.
    #[arg(long, env = "CREDITS_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// A postgres:// URL selects PostgreSQL instead of SQLite.
    #[arg(long, env = "CREDITS_DATABASE_URL")]
    database_url: Option<String>,
    /// The key that seals webhook secrets at rest (created when absent). Nodes sharing one
    /// PostgreSQL database must share this file. Default: DATA_DIR/webhook-key.
    #[arg(long, env = "CREDITS_WEBHOOK_KEY_FILE")]
    webhook_key_file: Option<PathBuf>,
    /// The operator admin key; generated on first start when absent.
    #[arg(long = "admin-key", env = "CREDITS_ADMIN_KEY", hide = true, hide_env_values = true)]
    admin_key: Option<String>,
    /// How often due expiries are applied in the background, in milliseconds. Reads and writes
    /// are exact without it; tests stretch it to show that.
    #[arg(long, env = "CREDITS_SWEEP_INTERVAL_MS", default_value_t = 1000, hide = true)]
    sweep_interval_ms: u64,
    /// Allow webhook URLs over http and to loopback or private addresses (development, tests).
    #[arg(long, env = "CREDITS_WEBHOOK_ALLOW_PRIVATE", default_value_t = false, hide = true)]
    webhook_allow_private: bool,
    /// Scales the webhook retry schedule; tests shrink it (for example 0.01).
    #[arg(long, env = "CREDITS_WEBHOOK_RETRY_SCALE", default_value_t = 1.0, hide = true)]
    webhook_retry_scale: f64,
    /// How long a node's claim on a due webhook delivery lasts on PostgreSQL, in seconds: another
    /// node sends it again only after that. It must exceed an attempt's 15 s; tests shorten it.
    #[arg(long, env = "CREDITS_WEBHOOK_LEASE_SECS", default_value_t = 60, hide = true)]
    webhook_lease_secs: u64,
    /// Requests a second each API key may make (bursts of as many); 0 turns the limit off.
    #[arg(long, env = "CREDITS_RATE_LIMIT_PER_SECOND", default_value_t = 50_000)]
    rate_limit_per_second: u32,
    /// With PostgreSQL, the URL other nodes reach this one at (`http://10.0.0.5:8080`): nodes
    /// send the usages of hot accounts to the node that leads (see DEPLOYMENT.md). Default: the
    /// listen address when it is a loopback one (nodes on one machine); else none, and this node
    /// never leads.
    #[arg(long, env = "CREDITS_ADVERTISE_URL")]
    advertise_url: Option<String>,
    /// Forwarded requests a node keeps in flight to the leader at once (tuning, see forward.rs).
    #[arg(long, env = "CREDITS_FORWARD_SENDERS", default_value_t = credits_api::forward::SENDERS, hide = true)]
    forward_senders: usize,
    /// Threads answering HTTP (default: one per CPU core).
    #[arg(long, env = "CREDITS_WORKER_THREADS", value_parser = clap::value_parser!(usize))]
    worker_threads: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CREDITS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        CliCommand::Serve(args) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if let Some(threads) = args.worker_threads {
                builder.worker_threads(threads);
            }
            let runtime = builder.enable_all().build().context("cannot start the async runtime")?;
            runtime.block_on(serve(args))
        }
        CliCommand::Backup(args) => backup(args),
        CliCommand::Client(command) => std::process::exit(cli::run(command)),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let database = match &args.database_url {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Database::Postgres(url.clone())
        }
        Some(_) => bail!("--database-url must be a postgres:// URL"),
        None => Database::Sqlite(args.data_dir.join("credits.db")),
    };
    let database_name = match &database {
        Database::Sqlite(path) => path.display().to_string(),
        // The URL may hold a password: name only the backend.
        Database::Postgres(_) => "postgresql".to_string(),
    };
    if let Some(key) = &args.admin_key {
        if key.chars().count() < ADMIN_KEY_LENGTH_MIN {
            bail!("CREDITS_ADMIN_KEY must have at least {ADMIN_KEY_LENGTH_MIN} characters")
        }
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create the data dir {}", args.data_dir.display()))?;
    let (store, writer) = Store::open(&database, credits_api::renderer())
        .with_context(|| format!("cannot open {database_name}"))?;
    admin_key_bootstrap(&store, args.admin_key.as_deref(), &args.data_dir).await?;

    let sweep_interval = Duration::from_millis(args.sweep_interval_ms.max(10));
    let sweeper = tokio::spawn(sweep_forever(store.clone(), sweep_interval));
    let secret_key =
        args.webhook_key_file.clone().unwrap_or_else(|| args.data_dir.join("webhook-key"));
    let secrets = credits_webhooks::SecretBox::load_or_create(&secret_key)
        .with_context(|| format!("cannot read or create {}", secret_key.display()))?;
    let secrets = std::sync::Arc::new(secrets);
    let policy = credits_webhooks::UrlPolicy { allow_private: args.webhook_allow_private };
    let dispatcher = credits_webhooks::Dispatcher::new(store.clone(), secrets.clone(), policy, 16)
        .context("cannot build the webhook client")?
        .with_retry_scale(args.webhook_retry_scale)
        .with_lease(Duration::from_secs(args.webhook_lease_secs));
    let dispatcher = tokio::spawn(dispatcher.run());
    let webhooks = credits_api::WebhookConfig { secrets, policy };
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    let render_metrics = std::sync::Arc::new(move || prometheus.render());
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    let node_key = webhooks.secrets.node_key();
    let mut state = AppState::new(store.clone(), std::sync::Arc::new(webhooks), render_metrics)
        .with_rate_limit(args.rate_limit_per_second);
    let advertise = args
        .advertise_url
        .clone()
        .or_else(|| address.ip().is_loopback().then(|| format!("http://{address}")));
    if let Some(leadership) = store.lead(advertise)? {
        let forwarder =
            credits_api::forward::Forwarder::start(leadership, node_key, args.forward_senders)
                .context("cannot build the forwarding client")?;
        state = state.with_forwarder(forwarder);
    }
    let epoch_watch = tokio::spawn(auth_epoch_watch(store.clone(), state.keys.clone()));
    let key_flusher = tokio::spawn(key_use_flush_forever(store, state.keys.clone()));
    let app = credits_api::router(state);
    tracing::info!(%address, database = %database_name, "credits is serving");
    eprintln!("credits listening on http://{address}");
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;
    // In-flight requests have finished; stop the sweeper, then let the writer drain and stop.
    sweeper.abort();
    let _ = sweeper.await;
    key_flusher.abort();
    let _ = key_flusher.await;
    epoch_watch.abort();
    let _ = epoch_watch.await;
    // Stops the dispatcher's polls. Its rounds in flight hold store handles, so the writer's join
    // below waits for them to record their attempts (each ends within its 15 s of timeouts).
    dispatcher.abort();
    let _ = dispatcher.await;
    tokio::task::spawn_blocking(move || writer.join()).await?;
    tracing::info!("stopped cleanly");
    Ok(())
}

fn secret_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Stores the hash of the given admin key, or on first start generates one, prints it once to
/// stderr and writes it to `DIR/admin-key` (mode 0600).
async fn admin_key_bootstrap(store: &Store, given: Option<&str>, dir: &Path) -> anyhow::Result<()> {
    let (key, generated) = match given {
        Some(key) => (key.to_string(), false),
        None => {
            if store.read(|reader| reader.admin_key_exists()).await? {
                return Ok(());
            }
            let bytes: [u8; 32] = rand::random();
            let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
            (format!("ck_admin_{encoded}"), true)
        }
    };
    let prefix: String = key.chars().take(12).collect();
    let command = Command::SetAdminKey { secret_hash: secret_hash(&key), prefix };
    let executed = store.write(WriteRequest { idempotency: None, command }).await?;
    if !matches!(executed.outcome, Some(Outcome::AdminKeySet)) {
        bail!("could not store the admin key")
    }
    if generated {
        let path = dir.join("admin-key");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        writeln!(file, "{key}")?;
        file.sync_all()?;
        eprintln!(
            "Generated the operator admin key (shown once, also in {}):\n{key}",
            path.display()
        );
    }
    Ok(())
}

/// Writes keys' `lastUsedAt` in one batch every few seconds, so that authenticating a request
/// never adds a write to its path.
async fn key_use_flush_forever(store: Store, keys: std::sync::Arc<credits_api::auth::KeyCache>) {
    let mut interval = tokio::time::interval(Duration::from_secs(5));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let used = keys.take_used();
        if used.is_empty() {
            continue;
        }
        let request = WriteRequest { idempotency: None, command: Command::TouchApiKeys { used } };
        if let Err(error) = store.write(request).await {
            tracing::warn!(%error, "could not record when keys were last used");
        }
    }
}

/// On PostgreSQL, other nodes may revoke keys or change members: every 100 ms, when the shared
/// epoch moved, this node forgets the keys it has cached, so a revocation anywhere applies here
/// within that time. (On SQLite this process makes every such change and forgets at once.)
async fn auth_epoch_watch(store: Store, keys: std::sync::Arc<credits_api::auth::KeyCache>) {
    let mut interval = tokio::time::interval(Duration::from_millis(100));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = None;
    loop {
        interval.tick().await;
        match store.read(|reader| reader.auth_epoch()).await {
            Ok(None) => return,
            Ok(Some(epoch)) => {
                if seen.is_some_and(|seen| seen != epoch) {
                    keys.forget_all();
                }
                seen = Some(epoch);
            }
            Err(error) => {
                // The database is away: forget, so that no revocation made meanwhile is missed.
                tracing::warn!(%error, "cannot read the auth epoch");
                keys.forget_all();
                seen = None;
            }
        }
    }
}

async fn sweep_forever(store: Store, every: Duration) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let request = WriteRequest { idempotency: None, command: Command::Sweep };
        match store.write(request).await {
            Ok(executed) => {
                if let Some(Outcome::Swept { expired_holds, expired_credits }) = executed.outcome {
                    if expired_holds + expired_credits > 0 {
                        tracing::info!(expired_holds, expired_credits, "applied due expiries");
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "sweep failed; will retry"),
        }
    }
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
