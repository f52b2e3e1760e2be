//! The seed's example over real HTTP: purchase 1000, use 250, and the record reads used 250,
//! remaining 750.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use serde_json::json;

#[tokio::test]
async fn purchase_1000_use_250_leaves_750() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let record = app.purchase(&account, 1000, json!({"service": "smartcheck"})).await;
    let used = app.use_credits(&account, "smartcheck", 250).await;
    assert_eq!(used.status, 201, "{used:?}");
    assert_eq!(used.json["credits"], 250);
    assert_eq!(used.json["balanceAfter"], 750);
    let record = app.credit(record["id"].as_str().unwrap()).await;
    assert_eq!(record["used"], 250);
    assert_eq!(record["remaining"], 750);
    assert_eq!(record["status"], "active");
}
