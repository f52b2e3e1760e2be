//! Goal: `credits backup --to FILE` taken while the service is under write load is a consistent
//! snapshot that holds every write acknowledged before the backup began, and a service restored
//! from it (the file as `credits.db` of a fresh data dir, with the old `webhook-key`) serves those
//! writes with every invariant intact (issue 8). A backup never overwrites an existing file.
//!
//! Method: black box against the real binary. Concurrent workers, each on its own accounts,
//! create accounts, purchases and usages, and log every acknowledged write with the instant its
//! answer arrived. Meanwhile the `backup` subcommand runs against the live data dir; a write whose
//! answer arrived before the backup started was committed before it, so it must be in the copy.
//! Load runs before, during and after the backup. The copy is restored into a fresh data dir and
//! served by a second server, which is compared with the log: each such account, credit record
//! (with its amount) and usage (with its credits) is there, every record keeps the equation of
//! section 5, and per account the sum of usage credits equals the sum of `used`. Finally `backup`
//! to the existing file must fail with a clear message, a non-zero exit and the file untouched.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/race.rs"]
mod race;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use race::{assert_equation, key, list_all, num, Target};

const WORKERS: usize = 6;

#[derive(Clone, Debug)]
enum Write {
    Account { id: String },
    Purchase { account: String, id: String, amount: u64 },
    Usage { account: String, id: String, credits: u64 },
}

/// Every acknowledged write with the instant its answer arrived.
type Log = Arc<Mutex<Vec<(Instant, Write)>>>;

/// Writes until `stop`: an account, a purchase on it, a few usages, again.
async fn worker(target: Target, log: Log, stop: Arc<AtomicBool>, n: usize) {
    let mut round = 0_u64;
    while !stop.load(Ordering::SeqCst) {
        round += 1;
        let body = json!({"name": format!("backup-{n}-{round}")}).to_string();
        let answer = target.post("/v2/accounts", &body, Some(&key("acct"))).await;
        assert_eq!(answer.status, 201, "{answer:?}");
        let account = answer.json["id"].as_str().unwrap().to_string();
        log.lock().unwrap().push((Instant::now(), Write::Account { id: account.clone() }));

        let amount = 20 + round % 7;
        let body = json!({"accountId": account, "amount": amount, "service": "smartcheck"});
        let answer = target.post("/v2/credits", &body.to_string(), Some(&key("buy"))).await;
        assert_eq!(answer.status, 201, "{answer:?}");
        let id = answer.json["id"].as_str().unwrap().to_string();
        log.lock()
            .unwrap()
            .push((Instant::now(), Write::Purchase { account: account.clone(), id, amount }));

        for quantity in [1, 2, 3, 4] {
            let body = common::usage_body(&account, "smartcheck", quantity).to_string();
            let answer = target.post("/v2/usage", &body, Some(&key("use"))).await;
            assert_eq!(answer.status, 201, "{answer:?}");
            let id = answer.json["id"].as_str().unwrap().to_string();
            let credits = num(&answer.json, "credits");
            log.lock()
                .unwrap()
                .push((Instant::now(), Write::Usage { account: account.clone(), id, credits }));
        }
    }
}

/// Runs `credits backup --to FILE` on `data_dir`; returns (success, stdout, stderr).
fn run_backup(data_dir: &Path, to: &Path) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_credits"))
        .arg("backup")
        .arg("--to")
        .arg(to)
        .env("CREDITS_DATA_DIR", data_dir)
        .env("CREDITS_LOG", "warn")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .expect("the credits binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_load_holds_every_write_acknowledged_before_it_and_restores() {
    if common::on_postgres() {
        // `credits backup` copies the SQLite file; PostgreSQL is backed up with its own tools
        // (docs/DEPLOYMENT.md).
        eprintln!("skipped on PostgreSQL: credits backup is for the embedded SQLite database");
        return;
    }
    let app = common::spawn_app().await;
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..WORKERS)
        .map(|n| tokio::spawn(worker(Target::of(&app), log.clone(), stop.clone(), n)))
        .collect();

    // Let load build up, then back up while it continues.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let backups = common::fresh_dir();
    let file = backups.join("credits-backup.db");
    let began = Instant::now();
    let (data_dir, to) = (app.data_dir.clone(), file.clone());
    let (ok, stdout, stderr) =
        tokio::task::spawn_blocking(move || run_backup(&data_dir, &to)).await.unwrap();
    let ended = Instant::now();
    assert!(ok, "backup failed: {stdout} {stderr}");
    assert!(stdout.contains("wrote a backup of"), "{stdout}");
    assert!(stdout.contains(&file.display().to_string()), "{stdout}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for joined in futures::future::join_all(workers).await {
        joined.expect("a worker did not panic");
    }

    let log = log.lock().unwrap().clone();
    let before: Vec<&Write> = log.iter().filter(|(at, _)| *at < began).map(|(_, w)| w).collect();
    let after = log.iter().filter(|(at, _)| *at > ended).count();
    assert!(before.len() >= 30, "load ran before the backup: {} writes", before.len());
    assert!(after >= 30, "load went on after the backup: {after} writes");
    let leftovers: Vec<_> = std::fs::read_dir(&backups)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leftovers, vec!["credits-backup.db".to_string()], "no temporary file is left");

    // Restore: the copy as credits.db of a fresh data dir, with the old webhook key.
    let restored_dir = common::fresh_dir();
    std::fs::copy(&file, restored_dir.join("credits.db")).unwrap();
    std::fs::copy(app.data_dir.join("webhook-key"), restored_dir.join("webhook-key")).unwrap();
    let restored = common::spawn_app_in(&restored_dir).await;

    let mut accounts = HashSet::new();
    for write in &before {
        if let Write::Account { id } | Write::Purchase { account: id, .. } = write {
            accounts.insert(id.clone());
        }
    }
    let mut records_by_account = HashMap::new();
    let mut usages_by_account = HashMap::new();
    for account in &accounts {
        let found = restored.get(&format!("/v2/accounts/{account}")).await;
        assert_eq!(
            found.status, 200,
            "account {account} acknowledged before the backup: {found:?}"
        );
        let records = list_all(&restored, &format!("/v2/credits?accountId={account}")).await;
        let usages = list_all(&restored, &format!("/v2/usage?accountId={account}")).await;
        for record in &records {
            assert_equation(record);
        }
        let used: u64 = records.iter().map(|r| num(r, "used")).sum();
        let charged: u64 = usages.iter().map(|u| num(u, "credits")).sum();
        assert_eq!(used, charged, "sum of usage credits == sum of used for {account}");
        records_by_account.insert(account.clone(), records);
        usages_by_account.insert(account.clone(), usages);
    }
    for write in &before {
        match write {
            Write::Account { .. } => {}
            Write::Purchase { account, id, amount } => {
                let record = records_by_account[account]
                    .iter()
                    .find(|r| r["id"] == id.as_str())
                    .unwrap_or_else(|| panic!("purchase {id} acknowledged before the backup"));
                assert_eq!(num(record, "amount"), *amount, "{record}");
            }
            Write::Usage { account, id, credits } => {
                let usage = usages_by_account[account]
                    .iter()
                    .find(|u| u["id"] == id.as_str())
                    .unwrap_or_else(|| panic!("usage {id} acknowledged before the backup"));
                assert_eq!(num(usage, "credits"), *credits, "{usage}");
            }
        }
    }
    // The restored server keeps the copied webhook key rather than making a new one.
    assert_eq!(
        std::fs::read(restored_dir.join("webhook-key")).unwrap(),
        std::fs::read(app.data_dir.join("webhook-key")).unwrap()
    );
    drop(restored);
    let _ = std::fs::remove_dir_all(&restored_dir);

    // A backup never overwrites a file.
    let bytes = std::fs::read(&file).unwrap();
    let data_dir = app.data_dir.clone();
    let to = file.clone();
    let (ok, stdout, stderr) =
        tokio::task::spawn_blocking(move || run_backup(&data_dir, &to)).await.unwrap();
    assert!(!ok, "a backup onto an existing file fails: {stdout}");
    assert!(
        stderr.contains("exists") && stderr.contains("refusing to overwrite"),
        "the error says why: {stderr}"
    );
    assert!(stderr.contains(&file.display().to_string()), "the error names the file: {stderr}");
    assert_eq!(std::fs::read(&file).unwrap(), bytes, "the existing file is untouched");
    let _ = std::fs::remove_dir_all(&backups);
}
