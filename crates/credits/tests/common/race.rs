//! Helpers shared by the concurrency, idempotency and crash tests: a cloneable request target for
//! spawned tasks (requests that may fail when the server dies), list paging, and the record
//! invariants of the spec (section 5 and 10). Included with `#[path = "common/race.rs"] mod race;`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::Value;

use crate::common::{Answer, TestApp, ADMIN_KEY};

/// What a spawned task needs to talk to the server: cheap to clone, independent of `TestApp`.
#[derive(Clone)]
pub struct Target {
    pub client: reqwest::Client,
    pub address: String,
}

impl Target {
    /// A target with its own client, whose requests give up after 20 s (a test never hangs).
    pub fn of(app: &TestApp) -> Target {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .timeout(std::time::Duration::from_secs(20))
            .build()
            .unwrap();
        Target { client, address: app.address.clone() }
    }

    /// A POST with the admin key; `Err` when the server did not answer (died, closed).
    pub async fn try_post(
        &self,
        path: &str,
        body: &str,
        idempotency_key: Option<&str>,
    ) -> Result<Answer, reqwest::Error> {
        let mut request = self
            .client
            .post(format!("{}{}", self.address, path))
            .bearer_auth(ADMIN_KEY)
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await?;
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Answer { status, headers, text, json })
    }

    /// A POST that must be answered.
    pub async fn post(&self, path: &str, body: &str, idempotency_key: Option<&str>) -> Answer {
        self.try_post(path, body, idempotency_key).await.expect("the server answers")
    }
}

/// Every item of a list endpoint, following `nextCursor` until it is null.
pub async fn list_all(app: &TestApp, path: &str) -> Vec<Value> {
    let separator = if path.contains('?') { '&' } else { '?' };
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            None => format!("{path}{separator}limit=100"),
            Some(c) => format!("{path}{separator}limit=100&cursor={c}"),
        };
        let page = app.get(&url).await;
        assert_eq!(page.status, 200, "GET {url}: {page:?}");
        let data = page.json["data"].as_array().expect("a list has data");
        items.extend(data.iter().cloned());
        match page.json["nextCursor"].as_str() {
            Some(next) => {
                assert_eq!(page.json["hasMore"], true, "GET {url}: {page:?}");
                cursor = Some(next.to_string());
            }
            None => {
                assert_eq!(page.json["hasMore"], false, "GET {url}: {page:?}");
                return items;
            }
        }
    }
}

/// A non-negative integer field.
pub fn num(value: &Value, field: &str) -> u64 {
    value[field].as_u64().unwrap_or_else(|| panic!("{field} is a non-negative integer in {value}"))
}

/// Section 5: amount = used + reserved + remaining + expiredAmount + voidedAmount.
pub fn assert_equation(record: &Value) {
    let parts = ["used", "reserved", "remaining", "expiredAmount", "voidedAmount"]
        .iter()
        .map(|f| num(record, f))
        .sum::<u64>();
    assert_eq!(
        num(record, "amount"),
        parts,
        "amount = used + reserved + remaining + expiredAmount + voidedAmount fails on {record}"
    );
}

/// Sums `credits` of the allocations of a usage or reservation, by credit record id.
pub fn allocations_into(target: &mut HashMap<String, u64>, allocations: &Value) {
    for allocation in allocations.as_array().expect("allocations is an array") {
        let credit = allocation["creditId"].as_str().expect("creditId").to_string();
        *target.entry(credit).or_default() += num(allocation, "credits");
    }
}

/// A unique idempotency key with a readable prefix.
pub fn key(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst))
}

/// Racing one-credit usages on one record of `fit` credits: exactly `fit` succeed, each drawing
/// one credit from the record with its own id and a distinct balance after (so they were
/// charged one after the other, `fit - 1` down to 0); every other answer is 402
/// `insufficient_credits`. Returns the ids of the successes.
pub fn assert_exactly_fit(answers: &[&Answer], record_id: &str, fit: u64) -> HashSet<String> {
    let others: Vec<&&Answer> =
        answers.iter().filter(|a| a.status != 201 && a.status != 402).collect();
    assert!(others.is_empty(), "only 201 or 402 expected: {others:?}");
    let successes: Vec<&&Answer> = answers.iter().filter(|a| a.status == 201).collect();
    let refusals: Vec<&&Answer> = answers.iter().filter(|a| a.status == 402).collect();
    assert_eq!(successes.len() as u64, fit, "exactly {fit} usages fit in {fit} credits");
    assert_eq!(refusals.len() + successes.len(), answers.len());
    for refusal in &refusals {
        assert_eq!(refusal.code(), "insufficient_credits", "{refusal:?}");
    }
    let mut ids = HashSet::new();
    let mut balances_after = BTreeSet::new();
    for success in &successes {
        assert_eq!(success.json["credits"], 1, "{success:?}");
        assert_eq!(
            success.json["allocations"],
            serde_json::json!([{"creditId": record_id, "credits": 1}]),
            "{success:?}"
        );
        assert!(ids.insert(success.json["id"].as_str().unwrap().to_string()), "{success:?}");
        balances_after.insert(num(&success.json, "balanceAfter"));
    }
    assert_eq!(balances_after, (0..fit).collect::<BTreeSet<u64>>());
    ids
}
