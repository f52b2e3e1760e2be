//! `GET /v2/usage/summary` over real HTTP: usage is recorded across services, operations,
//! members and keys, then every groupBy (and pairs of them) is checked against sums computed in
//! the test from the usage list itself. Ranges are chosen so that the same usage is read once
//! from the hourly rollup (whole hours) and once from raw usage (a partial hour); both must agree.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

fn rfc3339(instant: OffsetDateTime) -> String {
    instant.format(&Rfc3339).unwrap()
}

/// Every usage of the account, following the pages.
async fn all_usage(app: &common::TestApp, account: &str) -> Vec<Value> {
    let mut usage = Vec::new();
    let mut path = format!("/v2/usage?accountId={account}&limit=100");
    loop {
        let page = app.get(&path).await;
        assert_eq!(page.status, 200, "{page:?}");
        usage.extend(page.json["data"].as_array().unwrap().iter().cloned());
        match page.json["nextCursor"].as_str() {
            Some(cursor) => {
                path = format!("/v2/usage?accountId={account}&limit=100&cursor={cursor}")
            }
            None => return usage,
        }
    }
}

fn field_of(usage: &Value, dimension: &str) -> Value {
    match dimension {
        "service" => usage["service"].clone(),
        "operation" => usage["operation"].clone(),
        "member" => usage["actor"]["memberId"].clone(),
        "apiKey" => usage["actor"]["apiKeyId"].clone(),
        "day" => json!(usage["createdAt"].as_str().unwrap()[..10]),
        "hour" => json!(format!("{}:00:00Z", &usage["createdAt"].as_str().unwrap()[..13])),
        other => panic!("unknown dimension {other}"),
    }
}

fn answer_field(dimension: &str) -> &str {
    match dimension {
        "member" => "memberId",
        "apiKey" => "apiKeyId",
        other => other,
    }
}

/// The expected rows: group keys to (credits, count).
fn expected(usage: &[Value], dimensions: &[&str]) -> BTreeMap<Vec<String>, (u64, u64)> {
    let mut groups: BTreeMap<Vec<String>, (u64, u64)> = BTreeMap::new();
    for record in usage {
        let key = dimensions.iter().map(|d| field_of(record, d).to_string()).collect();
        let group = groups.entry(key).or_default();
        group.0 += record["credits"].as_u64().unwrap();
        group.1 += 1;
    }
    groups
}

fn answered(summary: &Value, dimensions: &[&str]) -> BTreeMap<Vec<String>, (u64, u64)> {
    let mut groups = BTreeMap::new();
    for row in summary["data"].as_array().unwrap() {
        let key: Vec<String> =
            dimensions.iter().map(|d| row[answer_field(d)].to_string()).collect();
        let value = (row["credits"].as_u64().unwrap(), row["count"].as_u64().unwrap());
        assert!(groups.insert(key, value).is_none(), "a group appears twice: {summary}");
    }
    groups
}

#[tokio::test]
async fn summary_sums_match_the_recorded_usage_for_every_group_by() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    app.purchase(&account, 1_000_000, json!({})).await;
    let created = app
        .post("/v2/services", &json!({"id": "ocr", "name": "OCR", "unitCost": 2, "operations": {"page": 3, "photo": 5}}))
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let mut members = Vec::new();
    for email in ["a@example.com", "b@example.com"] {
        let member = app
            .post("/v2/members", &json!({"accountId": account, "email": email, "role": "member"}))
            .await;
        assert_eq!(member.status, 201, "{member:?}");
        members.push(member.json["id"].as_str().unwrap().to_string());
    }
    let mut n = 0;
    for (service, operation, quantity, member) in [
        ("ocr", Some("page"), 2, Some(0)),
        ("ocr", Some("photo"), 1, Some(1)),
        ("ocr", None, 4, None),
        ("smartcheck", None, 7, Some(0)),
        ("api", None, 1, Some(1)),
        ("api", None, 3, None),
        ("ocr", Some("page"), 1, Some(0)),
    ] {
        let mut body = json!({"accountId": account, "service": service, "quantity": quantity});
        if let Some(operation) = operation {
            body["operation"] = json!(operation);
        }
        if let Some(member) = member {
            body["memberId"] = json!(members[member]);
        }
        n += 1;
        let used = app.post_idempotent("/v2/usage", &format!("u{n}"), &body).await;
        assert_eq!(used.status, 201, "{used:?}");
    }
    let usage = all_usage(&app, &account).await;
    assert_eq!(usage.len(), 7);

    let now = OffsetDateTime::now_utc();
    // Whole hours (rollup) around now, and a range ending a second from now (raw usage).
    let ranges = [
        (rfc3339(now - time::Duration::days(2)), rfc3339(now + time::Duration::hours(2))),
        (rfc3339(now - time::Duration::minutes(1)), rfc3339(now + time::Duration::seconds(1))),
    ];
    let groupings: [&[&str]; 9] = [
        &[],
        &["service"],
        &["operation"],
        &["member"],
        &["apiKey"],
        &["day"],
        &["hour"],
        &["service", "day"],
        &["member", "service", "operation"],
    ];
    for (from, to) in &ranges {
        for dimensions in groupings {
            let group_by = dimensions.join(",");
            let path = format!(
                "/v2/usage/summary?accountId={account}&from={}&to={}&groupBy={group_by}",
                from.replace('+', "%2B"),
                to.replace('+', "%2B")
            );
            let summary = app.get(&path).await;
            assert_eq!(summary.status, 200, "{path}: {summary:?}");
            assert_eq!(
                answered(&summary.json, dimensions),
                expected(&usage, dimensions),
                "groupBy={group_by} from={from} to={to}: {}",
                summary.text
            );
        }
    }

    // Filters narrow the sums.
    let by_member = app
        .get(&format!(
            "/v2/usage/summary?accountId={account}&memberId={}&groupBy=service",
            members[0]
        ))
        .await;
    let mine: Vec<Value> =
        usage.iter().filter(|u| u["actor"]["memberId"] == json!(members[0])).cloned().collect();
    assert_eq!(answered(&by_member.json, &["service"]), expected(&mine, &["service"]));
    let by_service = app.get(&format!("/v2/usage/summary?accountId={account}&service=ocr")).await;
    let ocr: Vec<Value> = usage.iter().filter(|u| u["service"] == "ocr").cloned().collect();
    assert_eq!(answered(&by_service.json, &[]), expected(&ocr, &[]));

    // Real time: a usage just recorded is in the next summary.
    let before = app.get(&format!("/v2/usage/summary?accountId={account}")).await;
    let used = app
        .post_idempotent("/v2/usage", "u-last", &json!({"accountId": account, "service": "api"}))
        .await;
    assert_eq!(used.status, 201);
    let after = app.get(&format!("/v2/usage/summary?accountId={account}")).await;
    assert_eq!(
        after.json["data"][0]["count"].as_u64().unwrap(),
        before.json["data"][0]["count"].as_u64().unwrap() + 1
    );

    // Bad input is a 400, never a 5xx.
    for query in [
        "groupBy=month",
        "from=yesterday",
        "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
        "from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
    ] {
        let bad = app.get(&format!("/v2/usage/summary?accountId={account}&{query}")).await;
        assert_eq!(bad.status, 400, "{query}: {bad:?}");
        assert_eq!(bad.code(), "bad_request");
    }
}
