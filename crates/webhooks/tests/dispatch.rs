//! The dispatcher end to end: a real store, a receiver on loopback, and what gets recorded.
//!
//! Goal: check that due deliveries are sent signed, and that 2xx, 5xx, 410 and a refused address
//! are recorded as the spec says (success; failure with a retry; failure that disables the
//! endpoint; failure with no response and a retry).
//! Method: open a store in a temporary directory, create endpoints pointing at an axum receiver
//! on 127.0.0.1 whose path says which status to answer, create a credit (which emits
//! `credit.created` to every endpoint), run the dispatcher, and poll the store until each
//! endpoint's first attempt is recorded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use credits_core::{Actor, CreditKind};
use credits_store::{
    Command, Delivery, DeliveryStatus, EventData, NewAccount, NewCredit, Outcome, PageRequest,
    Rendered, Renderer, Store, WriteRequest,
};
use credits_webhooks::{generate_secret, verify, Dispatcher, SecretBox, UrlPolicy};
use tokio::sync::mpsc;

struct TestRenderer;

impl Renderer for TestRenderer {
    fn answer(&self, _: &Command, _: &Outcome) -> Rendered {
        Rendered { status: 200, body: Vec::new() }
    }
    fn event_data(&self, data: &EventData) -> String {
        match data {
            EventData::Credit(record) => {
                format!(r#"{{"id":"{}","amount":{}}}"#, record.id, record.amount)
            }
            _ => "{}".into(),
        }
    }
}

struct Received {
    code: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A receiver answering `POST /{code}` with that status, reporting each request.
async fn receiver() -> (String, mpsc::UnboundedReceiver<Received>) {
    let (sender, received) = mpsc::unbounded_channel();
    let app = Router::new()
        .route(
            "/{code}",
            post(
                |State(sender): State<mpsc::UnboundedSender<Received>>,
                 Path(code): Path<u16>,
                 headers: HeaderMap,
                 body: axum::body::Bytes| async move {
                    let _ = sender.send(Received { code, headers, body: body.to_vec() });
                    StatusCode::from_u16(code).unwrap()
                },
            ),
        )
        .with_state(sender);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), received)
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "credits-webhooks-dispatch-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn write(store: &Store, command: Command) -> Outcome {
    store.write(WriteRequest { idempotency: None, command }).await.unwrap().outcome.unwrap()
}

async fn endpoint(store: &Store, secrets: &SecretBox, secret: &str, url: String) -> String {
    match write(
        store,
        Command::CreateWebhookEndpoint {
            account_id: None,
            url,
            events: vec!["*".into()],
            secret_sealed: secrets.seal(secret),
        },
    )
    .await
    {
        Outcome::WebhookEndpoint(endpoint) => endpoint.id,
        other => panic!("{other:?}"),
    }
}

async fn credit(store: &Store) -> String {
    let account = match write(store, Command::CreateAccount(NewAccount::default())).await {
        Outcome::Account(account) => account.id,
        other => panic!("{other:?}"),
    };
    let outcome = write(
        store,
        Command::CreateCredit(NewCredit {
            account_id: account.clone(),
            amount: 100,
            service: credits_core::SERVICE_ANY.into(),
            description: None,
            expires_at: None,
            kind: CreditKind::Purchase,
            priority: 0,
            reference: None,
            actor: Actor::default(),
        }),
    )
    .await;
    assert!(matches!(outcome, Outcome::Credit(_)), "{outcome:?}");
    account
}

/// The endpoint's deliveries, oldest first, once its first attempt is no longer pending.
async fn settled(store: &Store, endpoint_id: &str) -> Vec<Delivery> {
    for _ in 0..300 {
        let id = endpoint_id.to_string();
        let page = store
            .read(move |reader| reader.deliveries(&id, PageRequest { limit: 10, before: None }))
            .await
            .unwrap();
        let mut deliveries = page.items;
        deliveries.sort_by_key(|d| d.attempt);
        if deliveries.first().is_some_and(|d| d.status != DeliveryStatus::Pending) {
            return deliveries;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the first attempt to {endpoint_id} was not recorded in time");
}

#[tokio::test]
async fn delivers_signed_and_records_success_retry_and_gone() {
    let dir = temp_dir();
    let (store, _writer) =
        Store::open_sqlite(&dir.join("credits.db"), Arc::new(TestRenderer)).unwrap();
    let secrets = Arc::new(SecretBox::from_key([3; 32]));
    let (base, mut received) = receiver().await;
    let secret = generate_secret();
    let ok = endpoint(&store, &secrets, &secret, format!("{base}/204")).await;
    let failing = endpoint(&store, &secrets, &secret, format!("{base}/500")).await;
    let gone = endpoint(&store, &secrets, &secret, format!("{base}/410")).await;
    let account = credit(&store).await;

    let dispatcher =
        Dispatcher::new(store.clone(), secrets.clone(), UrlPolicy { allow_private: true }, 4)
            .unwrap();
    let task = tokio::spawn(dispatcher.run());

    let before = time_now();
    let delivered = settled(&store, &ok).await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].status, DeliveryStatus::Succeeded);
    assert_eq!(delivered[0].response_code, Some(204));
    assert!(delivered[0].duration_ms.is_some());

    let failed = settled(&store, &failing).await;
    assert_eq!(failed[0].status, DeliveryStatus::Failed);
    assert_eq!(failed[0].response_code, Some(500));
    assert_eq!(failed.len(), 2, "a retry is scheduled: {failed:?}");
    assert_eq!(failed[1].attempt, 2);
    assert_eq!(failed[1].status, DeliveryStatus::Pending);
    let retry_in = failed[1].next_attempt_at.unwrap().0 - before;
    assert!(
        (3_000_000..=7_000_000).contains(&retry_in),
        "the first retry comes about 5 s later: {retry_in} us"
    );

    let refused = settled(&store, &gone).await;
    assert_eq!(refused.len(), 1, "410 is not retried: {refused:?}");
    assert_eq!(refused[0].status, DeliveryStatus::Failed);
    assert_eq!(refused[0].response_code, Some(410));
    let gone_id = gone.clone();
    let endpoint =
        store.read(move |reader| reader.webhook_endpoint(&gone_id)).await.unwrap().unwrap();
    assert!(endpoint.disabled_at.is_some(), "410 disables the endpoint");

    // Each receiver got the event once, signed, with the same webhook-id.
    let mut requests = Vec::new();
    while requests.len() < 3 {
        requests.push(
            tokio::time::timeout(Duration::from_secs(5), received.recv()).await.unwrap().unwrap(),
        );
    }
    task.abort();
    let mut codes: Vec<u16> = requests.iter().map(|r| r.code).collect();
    codes.sort_unstable();
    assert_eq!(codes, [204, 410, 500]);
    let first_id = requests[0].headers["webhook-id"].to_str().unwrap().to_string();
    for request in &requests {
        let header = |name: &str| request.headers[name].to_str().unwrap().to_string();
        assert_eq!(header("content-type"), "application/json");
        assert!(header("user-agent").starts_with("credits-webhooks/"));
        let id = header("webhook-id");
        assert_eq!(id, first_id);
        let timestamp: i64 = header("webhook-timestamp").parse().unwrap();
        assert!((timestamp - before / 1_000_000).abs() < 30);
        assert!(verify(&secret, &id, timestamp, &request.body, &header("webhook-signature")));
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["id"], id.as_str());
        assert_eq!(body["type"], "credit.created");
        assert_eq!(body["accountId"], account.as_str());
        assert_eq!(body["data"]["amount"], 100);
        assert!(body["createdAt"].as_str().unwrap().ends_with('Z'));
    }
    drop(store);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn a_private_address_is_refused_without_sending() {
    let dir = temp_dir();
    let (store, _writer) =
        Store::open_sqlite(&dir.join("credits.db"), Arc::new(TestRenderer)).unwrap();
    let secrets = Arc::new(SecretBox::from_key([4; 32]));
    let (base, mut received) = receiver().await;
    // The endpoint was made while private addresses were allowed; they no longer are. (https,
    // so that it is the address and not the scheme that is refused.)
    let https = base.replace("http://", "https://");
    let endpoint = endpoint(&store, &secrets, &generate_secret(), format!("{https}/200")).await;
    credit(&store).await;

    let dispatcher = Dispatcher::new(store.clone(), secrets, UrlPolicy::default(), 2).unwrap();
    let task = tokio::spawn(dispatcher.run());
    let deliveries = settled(&store, &endpoint).await;
    task.abort();
    assert_eq!(deliveries[0].status, DeliveryStatus::Failed);
    assert_eq!(deliveries[0].response_code, None);
    assert_eq!(deliveries.len(), 2, "a refused address is retried: {deliveries:?}");
    assert!(received.try_recv().is_err(), "nothing reached the receiver");
    drop(store);
    std::fs::remove_dir_all(&dir).ok();
}

fn time_now() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    i64::try_from(since.as_micros()).unwrap()
}

#[tokio::test]
async fn a_connection_error_is_a_failure_without_code_and_is_retried() {
    let dir = temp_dir();
    let (store, _writer) =
        Store::open_sqlite(&dir.join("credits.db"), Arc::new(TestRenderer)).unwrap();
    let secrets = Arc::new(SecretBox::from_key([5; 32]));
    // A port nothing listens on: bind one, then free it.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let url = format!("http://{closed}/hook");
    let endpoint = endpoint(&store, &secrets, &generate_secret(), url).await;
    credit(&store).await;

    let policy = UrlPolicy { allow_private: true };
    let dispatcher = Dispatcher::new(store.clone(), secrets, policy, 2).unwrap();
    let task = tokio::spawn(dispatcher.run());
    let deliveries = settled(&store, &endpoint).await;
    task.abort();
    assert_eq!(deliveries[0].status, DeliveryStatus::Failed);
    assert_eq!(deliveries[0].response_code, None);
    assert_eq!(deliveries.len(), 2, "retried: {deliveries:?}");
    assert_eq!(deliveries[1].status, DeliveryStatus::Pending);
    drop(store);
    std::fs::remove_dir_all(&dir).ok();
}
