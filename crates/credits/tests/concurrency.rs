//! Goal: under any concurrency the service never overspends and charges an idempotent request
//! once (spec sections 6, 9, 10).
//!
//! Method: black box over real HTTP against the real binary. Each test spawns tokio tasks that
//! all wait on one barrier and then send at the same instant, so every request is in flight at
//! once; it then checks the answers, the credit records, the ledger and the paged usage list.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/race.rs"]
mod race;

use std::collections::HashSet;
use std::sync::Arc;

use futures::future::join_all;
use serde_json::{json, Value};
use tokio::sync::Barrier;

use common::Answer;
use race::{assert_equation, assert_exactly_fit, key, list_all, num, Target};

/// Sends every `(path, idempotency key, body)` at once: one task each, released by one barrier.
async fn all_at_once(
    target: &Target,
    requests: Vec<(String, Option<String>, String)>,
) -> Vec<Answer> {
    let barrier = Arc::new(Barrier::new(requests.len()));
    let tasks = requests.into_iter().map(|(path, key, body)| {
        let target = target.clone();
        let barrier = barrier.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            target.post(&path, &body, key.as_deref()).await
        })
    });
    join_all(tasks)
        .await
        .into_iter()
        .map(|joined| joined.expect("the request task did not panic"))
        .collect()
}

fn usage(account: &str, quantity: u64) -> String {
    json!({"accountId": account, "service": "smartcheck", "quantity": quantity}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hundred_racing_usages_spend_exactly_the_hundred_credits_there_are() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let record = app.purchase(&account, 100, json!({"service": "smartcheck"})).await;
    let record_id = record["id"].as_str().unwrap().to_string();

    let requests = (0..300)
        .map(|_| ("/v2/usage".to_string(), Some(key("race")), usage(&account, 1)))
        .collect();
    let answers = all_at_once(&Target::of(&app), requests).await;

    let answered: Vec<&Answer> = answers.iter().collect();
    let ids = assert_exactly_fit(&answered, &record_id, 100);

    let record = app.credit(&record_id).await;
    assert_eq!(record["used"], 100, "{record}");
    assert_eq!(record["remaining"], 0, "{record}");
    assert_eq!(record["reserved"], 0, "{record}");
    assert_eq!(record["status"], "depleted", "{record}");
    assert_equation(&record);
    assert_eq!(app.balance(&account).await["available"], 0);

    let ledger = list_all(&app, &format!("/v2/ledger?accountId={account}&type=usage")).await;
    assert_eq!(ledger.len(), 100, "one usage ledger entry per success");
    let ledger_usages: HashSet<String> = ledger
        .iter()
        .map(|e| {
            assert_eq!(e["credits"], 1, "{e}");
            assert_eq!(e["creditId"], record_id.as_str(), "{e}");
            e["usageId"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ledger_usages, ids);

    let listed = list_all(&app, &format!("/v2/usage?accountId={account}")).await;
    assert_eq!(listed.len(), 100);
    assert_eq!(listed.iter().map(|u| num(u, "credits")).sum::<u64>(), 100);
    let listed_ids: HashSet<String> =
        listed.iter().map(|u| u["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(listed_ids, ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_racing_requests_with_one_idempotency_key_charge_once() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let record = app.purchase(&account, 1000, json!({"service": "smartcheck"})).await;
    let record_id = record["id"].as_str().unwrap();

    let shared_key = key("same");
    let body = usage(&account, 7);
    let requests = (0..20)
        .map(|_| ("/v2/usage".to_string(), Some(shared_key.clone()), body.clone()))
        .collect();
    let answers = all_at_once(&Target::of(&app), requests).await;

    for answer in &answers {
        assert_eq!(answer.status, 201, "{answer:?}");
    }
    let ids: HashSet<&str> = answers.iter().map(|a| a.json["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1, "every answer names the same usage: {ids:?}");
    let replayed =
        answers.iter().filter(|a| a.header("idempotent-replayed") == Some("true")).count();
    assert_eq!(replayed, 19, "all but the first answer are replays");
    let first = answers
        .iter()
        .find(|a| a.header("idempotent-replayed").is_none())
        .expect("one answer is not a replay");
    for answer in &answers {
        assert_eq!(answer.text, first.text, "a replay is byte-identical");
    }
    assert_eq!(first.json["credits"], 7);

    let record = app.credit(record_id).await;
    assert_eq!(record["used"], 7, "charged once: {record}");
    assert_eq!(record["remaining"], 993, "{record}");
    assert_equation(&record);
    let listed = list_all(&app, &format!("/v2/usage?accountId={account}")).await;
    assert_eq!(listed.len(), 1, "one usage recorded: {listed:?}");
    let ledger = list_all(&app, &format!("/v2/ledger?accountId={account}&type=usage")).await;
    assert_eq!(ledger.len(), 1, "one usage ledger entry: {ledger:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_batches_and_single_usages_never_overspend() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    // 300 credits spendable on smartcheck: its own record first, then the `any` record.
    let own = app.purchase(&account, 200, json!({"service": "smartcheck"})).await;
    let any = app.purchase(&account, 100, json!({"service": "any"})).await;
    let own_id = own["id"].as_str().unwrap().to_string();
    let any_id = any["id"].as_str().unwrap().to_string();

    // Demand of 500 credits: 6 batches of 50 one-credit events and 200 one-credit usages.
    let mut requests = Vec::new();
    for _ in 0..6 {
        let events: Vec<Value> = (0..50)
            .map(|_| {
                json!({"idempotencyKey": key("batch"), "accountId": account,
                       "service": "smartcheck", "quantity": 1})
            })
            .collect();
        let body = json!({ "events": events }).to_string();
        requests.push(("/v2/usage/batch".to_string(), None, body));
    }
    for _ in 0..200 {
        requests.push(("/v2/usage".to_string(), Some(key("single")), usage(&account, 1)));
    }
    let answers = all_at_once(&Target::of(&app), requests).await;

    let mut charged_ids = HashSet::new();
    let mut charged = 0;
    let mut refused = 0;
    for answer in &answers[..6] {
        assert_eq!(answer.status, 200, "a batch answers 200: {answer:?}");
        let results = answer.json["data"].as_array().expect("a batch has data");
        assert_eq!(results.len(), 50, "{answer:?}");
        for result in results {
            assert_eq!(result["replayed"], false, "{result}");
            match result["status"].as_u64() {
                Some(201) => {
                    assert_eq!(result["usage"]["credits"], 1, "{result}");
                    assert!(charged_ids.insert(result["usage"]["id"].as_str().unwrap().to_string()));
                    charged += 1;
                }
                Some(402) => {
                    assert_eq!(result["error"]["code"], "insufficient_credits", "{result}");
                    assert!(result["usage"].is_null(), "{result}");
                    refused += 1;
                }
                _ => panic!("an event is charged (201) or refused (402): {result}"),
            }
        }
    }
    for answer in &answers[6..] {
        match answer.status {
            201 => {
                assert_eq!(answer.json["credits"], 1, "{answer:?}");
                assert!(charged_ids.insert(answer.json["id"].as_str().unwrap().to_string()));
                charged += 1;
            }
            402 => {
                assert_eq!(answer.code(), "insufficient_credits", "{answer:?}");
                refused += 1;
            }
            _ => panic!("a usage is charged (201) or refused (402): {answer:?}"),
        }
    }
    assert_eq!(charged, 300, "exactly the 300 credits there are were spent");
    assert_eq!(refused, 200);

    let own = app.credit(&own_id).await;
    let any = app.credit(&any_id).await;
    for (record, amount) in [(&own, 200), (&any, 100)] {
        assert_eq!(record["used"], amount, "{record}");
        assert_eq!(record["remaining"], 0, "{record}");
        assert_eq!(record["status"], "depleted", "{record}");
        assert_equation(record);
    }
    assert_eq!(app.balance(&account).await["available"], 0);

    let listed = list_all(&app, &format!("/v2/usage?accountId={account}")).await;
    let listed_ids: HashSet<String> =
        listed.iter().map(|u| u["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(listed_ids, charged_ids, "the usage list is exactly what was charged");
    assert_eq!(listed.iter().map(|u| num(u, "credits")).sum::<u64>(), 300);
    let ledger = list_all(&app, &format!("/v2/ledger?accountId={account}&type=usage")).await;
    assert_eq!(ledger.iter().map(|e| num(e, "credits")).sum::<u64>(), 300);
}
