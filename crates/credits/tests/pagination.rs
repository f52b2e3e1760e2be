//! Goal: lists page as SPEC section 4 says: `{data, hasMore, nextCursor}`, newest first, `limit`
//! 1 to 100 (default 20), `cursor` from `nextCursor`, null on the last page, and paging stable
//! while new records arrive; limits out of range and cursors the service never gave are 400.
//!
//! Method: black box over HTTP against the real binary. 45 credit records are created one by one
//! (their ids in creation order are the truth); the list is walked with `limit=20` and compared
//! with the reversed creation order: 20, 20, 5, no duplicate, no gap. The walk is repeated with
//! new records created between page reads, and the same is checked on the usage list and the
//! ledger.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/extra.rs"]
mod extra;

use std::collections::BTreeSet;

use serde_json::json;

use extra::{assert_problem, s};

/// Reads one page and returns (ids, hasMore, nextCursor).
async fn page(app: &common::TestApp, path: &str) -> (Vec<String>, bool, Option<String>) {
    let answer = app.get(path).await;
    assert_eq!(answer.status, 200, "{path}: {answer:?}");
    let ids = answer.json["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data array: {answer:?}"))
        .iter()
        .map(|item| s(item, "id"))
        .collect();
    let has_more = answer.json["hasMore"]
        .as_bool()
        .unwrap_or_else(|| panic!("hasMore is not a boolean: {answer:?}"));
    let next = &answer.json["nextCursor"];
    assert!(next.is_null() || next.is_string(), "{answer:?}");
    (ids, has_more, next.as_str().map(str::to_string))
}

fn with_cursor(base: &str, cursor: Option<&String>) -> String {
    match cursor {
        Some(cursor) => format!("{base}&cursor={cursor}"),
        None => base.to_string(),
    }
}

async fn create_records(app: &common::TestApp, account: &str, count: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let record = app.purchase(account, 1 + i as u64, json!({"service": "smartcheck"})).await;
        ids.push(s(&record, "id"));
    }
    ids
}

#[tokio::test]
async fn three_pages_of_45_credit_records() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let created = create_records(&app, &account, 45).await;
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();
    let base = format!("/v2/credits?accountId={account}&limit=20");

    let (first, more1, cursor1) = page(&app, &base).await;
    assert_eq!(first.len(), 20);
    assert!(more1, "hasMore on page 1");
    assert!(cursor1.is_some(), "nextCursor on page 1");
    let (second, more2, cursor2) = page(&app, &with_cursor(&base, cursor1.as_ref())).await;
    assert_eq!(second.len(), 20);
    assert!(more2, "hasMore on page 2");
    assert!(cursor2.is_some(), "nextCursor on page 2");
    let (third, more3, cursor3) = page(&app, &with_cursor(&base, cursor2.as_ref())).await;
    assert_eq!(third.len(), 5);
    assert!(!more3, "no more after page 3");
    assert!(cursor3.is_none(), "nextCursor is null on the last page");

    let walked: Vec<String> = first.iter().chain(&second).chain(&third).cloned().collect();
    assert_eq!(walked, newest_first, "newest first, no duplicate, no gap");
    let unique: BTreeSet<&String> = walked.iter().collect();
    assert_eq!(unique.len(), 45);

    // The default limit is 20; 100 is allowed and takes everything here.
    let (default_page, more, _) = page(&app, &format!("/v2/credits?accountId={account}")).await;
    assert_eq!(default_page, first, "limit defaults to 20");
    assert!(more);
    let (all, more, next) = page(&app, &format!("/v2/credits?accountId={account}&limit=100")).await;
    assert_eq!(all, newest_first);
    assert!(!more);
    assert!(next.is_none());

    // A page size that divides the total exactly: the last full page says so.
    let (exact, more, next) =
        page(&app, &format!("/v2/credits?accountId={account}&limit=45")).await;
    assert_eq!(exact.len(), 45);
    assert!(!more, "no more when the page ends exactly at the last record");
    assert!(next.is_none());
}

#[tokio::test]
async fn paging_is_stable_while_records_arrive() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let created = create_records(&app, &account, 45).await;
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();
    let base = format!("/v2/credits?accountId={account}&limit=20");

    let (first, _, cursor1) = page(&app, &base).await;
    let arrived_a = create_records(&app, &account, 5).await;
    let (second, _, cursor2) = page(&app, &with_cursor(&base, cursor1.as_ref())).await;
    let arrived_b = create_records(&app, &account, 7).await;
    // Activity on old records (spending draws on the oldest first here) must not move them.
    let used = app.use_credits(&account, "smartcheck", 3).await;
    assert_eq!(used.status, 201, "{used:?}");
    let (third, more3, cursor3) = page(&app, &with_cursor(&base, cursor2.as_ref())).await;

    let walked: Vec<String> = first.iter().chain(&second).chain(&third).cloned().collect();
    assert_eq!(
        walked, newest_first,
        "the walk started before the new records sees exactly the old ones, in order"
    );
    assert!(!more3);
    assert!(cursor3.is_none());

    // A fresh walk starts with the newcomers.
    let (fresh, _, _) = page(&app, &format!("/v2/credits?accountId={account}&limit=12")).await;
    let mut expected: Vec<String> = arrived_b.iter().rev().cloned().collect();
    expected.extend(arrived_a.iter().rev().cloned());
    assert_eq!(fresh, expected);
}

#[tokio::test]
async fn filters_hold_across_pages() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let mut smartcheck = Vec::new();
    for i in 0..25 {
        let service = if i % 2 == 0 { "smartcheck" } else { "api" };
        let record = app.purchase(&account, 5, json!({"service": service})).await;
        if service == "smartcheck" {
            smartcheck.push(s(&record, "id"));
        }
    }
    let other = app.create_account().await;
    create_records(&app, &other, 3).await;
    let base = format!("/v2/credits?accountId={account}&service=smartcheck&limit=5");
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let (ids, more, next) = page(&app, &with_cursor(&base, cursor.as_ref())).await;
        pages += 1;
        assert!(pages <= 10, "the walk never ends");
        assert_eq!(more, next.is_some(), "hasMore agrees with nextCursor");
        walked.extend(ids);
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let expected: Vec<String> = smartcheck.iter().rev().cloned().collect();
    assert_eq!(walked, expected);
    assert_eq!(pages, 3, "13 records in pages of 5");
}

#[tokio::test]
async fn usage_and_ledger_page_the_same_way() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    app.purchase(&account, 1000, json!({"service": "api"})).await;
    let mut usages = Vec::new();
    for _ in 0..23 {
        let used = app.use_credits(&account, "api", 1).await;
        assert_eq!(used.status, 201, "{used:?}");
        usages.push(s(&used.json, "id"));
    }
    let base = format!("/v2/usage?accountId={account}&limit=10");
    let (p1, m1, c1) = page(&app, &base).await;
    let late = app.use_credits(&account, "api", 1).await;
    assert_eq!(late.status, 201);
    let (p2, m2, c2) = page(&app, &with_cursor(&base, c1.as_ref())).await;
    let (p3, m3, c3) = page(&app, &with_cursor(&base, c2.as_ref())).await;
    assert_eq!((p1.len(), p2.len(), p3.len()), (10, 10, 3));
    assert!(m1 && m2 && !m3);
    assert!(c3.is_none());
    let walked: Vec<String> = p1.into_iter().chain(p2).chain(p3).collect();
    let expected: Vec<String> = usages.iter().rev().cloned().collect();
    assert_eq!(walked, expected);

    // The ledger: 1 purchase + 24 usage entries.
    let base = format!("/v2/ledger?accountId={account}&limit=10");
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    let mut sizes = Vec::new();
    loop {
        let (ids, more, next) = page(&app, &with_cursor(&base, cursor.as_ref())).await;
        assert_eq!(more, next.is_some());
        sizes.push(ids.len());
        walked.extend(ids);
        if next.is_none() {
            break;
        }
        // New entries between page reads must not appear later in this walk.
        let used = app.use_credits(&account, "api", 1).await;
        assert_eq!(used.status, 201);
        cursor = next;
    }
    assert_eq!(sizes, vec![10, 10, 5]);
    let unique: BTreeSet<&String> = walked.iter().collect();
    assert_eq!(unique.len(), 25, "no duplicate");
    let (all, _, _) = page(&app, &format!("/v2/ledger?accountId={account}&limit=100")).await;
    assert_eq!(all.len(), 27, "25 plus the 2 usages recorded during the walk");
    assert_eq!(&all[2..], &walked[..], "the walk is the ledger as it was, in order");
}

#[tokio::test]
async fn limits_out_of_range_and_bad_cursors_are_400() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    create_records(&app, &account, 3).await;
    for list in ["/v2/credits", "/v2/usage", "/v2/ledger", "/v2/accounts"] {
        let sep =
            if list == "/v2/accounts" { "?".to_string() } else { format!("?accountId={account}&") };
        for limit in ["0", "101", "-1", "abc", "1000000"] {
            let answer = app.get(&format!("{list}{sep}limit={limit}")).await;
            assert_problem(&answer, 400, "bad_request");
        }
        for cursor in [
            "garbage",
            "!!!",
            "djE6",         // "v1:" with no position
            "djI6MTA",      // "v2:10"
            "eyJzZXEiOjF9", // {"seq":1}
            "%00",
        ] {
            let answer = app.get(&format!("{list}{sep}cursor={cursor}")).await;
            assert_problem(&answer, 400, "bad_request");
        }
        let one = app.get(&format!("{list}{sep}limit=1")).await;
        assert_eq!(one.status, 200, "{one:?}");
        let hundred = app.get(&format!("{list}{sep}limit=100")).await;
        assert_eq!(hundred.status, 200, "{hundred:?}");
    }
}

/// Walks a list to its end and returns every page's items.
async fn walk(app: &common::TestApp, base: &str) -> Vec<serde_json::Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..50 {
        let answer = app.get(&with_cursor(base, cursor.as_ref())).await;
        assert_eq!(answer.status, 200, "{base}: {answer:?}");
        items.extend(answer.json["data"].as_array().unwrap().iter().cloned());
        match answer.json["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return items,
        }
    }
    panic!("the walk of {base} never ends");
}

/// Usage and the ledger list in time order, so a page filtered by time or by ledger type is read
/// through an index (SPEC section 10); walking such a filter page by page gives exactly the
/// matching items, newest first, and each list takes only its own shape of cursor.
#[tokio::test]
async fn time_and_type_filters_page_in_time_order() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let mut purchases =
        vec![s(&app.purchase(&account, 1000, json!({"service": "api"})).await, "id")];
    let mut usage = Vec::new();
    for i in 0..12 {
        let used = app.use_credits(&account, "api", 1).await;
        assert_eq!(used.status, 201, "{used:?}");
        usage.push((s(&used.json, "id"), s(&used.json, "createdAt")));
        if i % 4 == 3 {
            purchases.push(s(&app.purchase(&account, 5, json!({"service": "api"})).await, "id"));
        }
    }
    let (from, to) = (&usage[3].1, &usage[10].1);
    let expected: Vec<&String> = usage[3..10].iter().rev().map(|(id, _)| id).collect();
    let walked =
        walk(&app, &format!("/v2/usage?accountId={account}&from={from}&to={to}&limit=2")).await;
    let ids: Vec<String> = walked.iter().map(|u| s(u, "id")).collect();
    assert_eq!(
        ids.iter().collect::<Vec<_>>(),
        expected,
        "from inclusive, to exclusive, newest first"
    );

    let ledger = walk(&app, &format!("/v2/ledger?accountId={account}&type=purchase&limit=2")).await;
    let records: Vec<String> = ledger.iter().map(|e| s(e, "creditId")).collect();
    let newest_first: Vec<String> = purchases.iter().rev().cloned().collect();
    assert_eq!(records, newest_first, "every purchase entry, newest first");
    let usage_entries =
        walk(&app, &format!("/v2/ledger?accountId={account}&type=usage&from={from}&limit=5")).await;
    let usage_ids: Vec<String> = usage_entries.iter().map(|e| s(e, "usageId")).collect();
    let since: Vec<String> = usage[3..].iter().rev().map(|(id, _)| id.clone()).collect();
    assert_eq!(usage_ids, since);

    let first = app.get(&format!("/v2/usage?accountId={account}&limit=1")).await;
    let cursor = first.json["nextCursor"].as_str().unwrap().to_string();
    let (at, seq) = cursor.split_once('.').expect("a usage cursor holds time and seq");
    assert!(at.parse::<u64>().is_ok() && seq.parse::<u64>().is_ok(), "{cursor}");
    for (list, bad) in [("/v2/usage", seq), ("/v2/ledger", "7"), ("/v2/credits", cursor.as_str())] {
        let answer = app.get(&format!("{list}?accountId={account}&cursor={bad}")).await;
        assert_problem(&answer, 400, "bad_request");
    }
}

/// The ledger keeps the order its entries were made in, whichever table holds them: a usage
/// drawn from one record keeps its entry in its usage row, a usage spanning two records and
/// every other change are `ledger` rows. Concurrent usages (so batches hold many), one of them
/// spanning the two records, then a void: walked in small pages, every record's entries replay
/// to each `remainingAfter`, ids are unique, and the walks filtered by record or by type are the
/// whole walk's entries of that record or type, in the same order.
#[tokio::test]
async fn the_ledger_replays_record_by_record_in_its_order() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let first = s(&app.purchase(&account, 10, json!({"service": "api"})).await, "id");
    let second = s(&app.purchase(&account, 100, json!({"service": "api"})).await, "id");
    let answers =
        futures::future::join_all((0..30).map(|_| app.use_credits(&account, "api", 3))).await;
    let mut charged = 0;
    for answer in &answers {
        assert_eq!(answer.status, 201, "{answer:?}");
        charged += answer.json["credits"].as_u64().unwrap();
    }
    let spanning = answers.iter().filter(|a| a.json["allocations"].as_array().unwrap().len() == 2);
    assert_eq!(spanning.count(), 1, "one usage takes the first record's last credits");
    let void =
        app.post_idempotent(&format!("/v2/credits/{second}/void"), "void-1", &json!({})).await;
    assert_eq!(void.status, 200, "{void:?}");

    let mut ledger = walk(&app, &format!("/v2/ledger?accountId={account}&limit=7")).await;
    ledger.reverse();
    let ids: BTreeSet<String> = ledger.iter().map(|e| s(e, "id")).collect();
    assert_eq!(ids.len(), ledger.len(), "unique ids");
    // 2 purchases, 31 usage entries (30 usages, one spanning the two records), 1 void.
    assert_eq!(ledger.len(), 34, "{ledger:?}");
    let mut remaining = std::collections::BTreeMap::<String, u64>::new();
    let mut used = 0;
    for entry in &ledger {
        let credits = entry["credits"].as_u64().unwrap();
        let left = remaining.entry(s(entry, "creditId")).or_default();
        match s(entry, "type").as_str() {
            "purchase" => *left += credits,
            "usage" => {
                used += credits;
                *left = left.checked_sub(credits).expect("a usage never takes what is not there");
            }
            "void" => *left = left.checked_sub(credits).expect("a void takes what is left"),
            other => panic!("unexpected entry type {other}: {entry}"),
        }
        assert_eq!(entry["remainingAfter"].as_u64(), Some(*left), "replayed in order: {entry}");
    }
    assert_eq!(used, charged, "the usage entries move what the usages charged");
    assert_eq!(remaining[&first], 0);
    assert_eq!(remaining[&second], 0, "voided");

    for (filter, keep) in [
        (
            format!("creditId={first}"),
            Box::new(|e: &serde_json::Value| s(e, "creditId") == first)
                as Box<dyn Fn(&serde_json::Value) -> bool>,
        ),
        (
            format!("creditId={second}"),
            Box::new(|e: &serde_json::Value| s(e, "creditId") == second),
        ),
        (
            format!("accountId={account}&type=usage"),
            Box::new(|e: &serde_json::Value| s(e, "type") == "usage"),
        ),
    ] {
        let mut filtered = walk(&app, &format!("/v2/ledger?{filter}&limit=4")).await;
        filtered.reverse();
        let expected: Vec<&serde_json::Value> = ledger.iter().filter(|e| keep(e)).collect();
        assert_eq!(filtered.iter().collect::<Vec<_>>(), expected, "{filter}");
    }
}
