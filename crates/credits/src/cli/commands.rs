//! Goal: carry out each client command: build its request from the parsed arguments, send it,
//! and print the answer as a table or, with `--json`, as the service's raw JSON.
//!
//! Method: one function per noun maps each verb to a path, a query or a JSON body (built with
//! `serde_json::json!`, optional fields left out rather than sent as null, so the service applies
//! its defaults). Lists print the first page, or with `--all` follow `nextCursor` to the end and
//! print one merged list (`hasMore` false, `nextCursor` null with `--json`). Side notes (a
//! generated idempotency key, a replay, a one-time secret, more pages) go to stderr, so stdout
//! stays exactly the data.

use std::io::Write;

use serde_json::{json, Map, Value};

use super::client::{Answer, Client, Failure};
use super::table::{self, Column};
use super::{
    AccountsCommand, BudgetsCommand, ClientCommand, ClientOptions, CreditCreateArgs,
    CreditsCommand, KeysCommand, LedgerArgs, MembersCommand, PageOptions, ServicesCommand,
    UsageCommand,
};

/// The page size `--all` asks for when `--limit` is not given: the service's maximum.
const PAGE_SIZE_ALL: u32 = 100;

type Query<'a> = Vec<(&'a str, Option<String>)>;

/// Writes to stdout, ignoring a closed pipe (`credits … | head`) instead of panicking.
fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = stdout.write_all(b"\n");
    }
    let _ = stdout.flush();
}

/// A JSON object of the fields that are given: absent options are left out of the body.
fn body(fields: Vec<(&str, Option<Value>)>) -> Value {
    let map: Map<String, Value> = fields
        .into_iter()
        .filter_map(|(name, value)| value.map(|value| (name.to_string(), value)))
        .collect();
    Value::Object(map)
}

fn some<T: Into<Value>>(value: T) -> Option<Value> {
    Some(value.into())
}

fn optional<T: Into<Value>>(value: Option<T>) -> Option<Value> {
    value.map(Into::into)
}

/// A fresh idempotency key for a usage record: 128 random bits in hex.
fn idempotency_key_generate() -> String {
    let bytes: [u8; 16] = rand::random();
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("cli_{hex}")
}

struct Session {
    client: Client,
    json: bool,
}

impl Session {
    fn new(options: &ClientOptions) -> Result<Session, Failure> {
        Ok(Session {
            client: Client::new(&options.url, options.key.as_deref())?,
            json: options.json,
        })
    }

    fn print(&self, answer: &Answer, columns: &[Column]) {
        if self.json {
            out(&answer.text);
        } else {
            out(&table::render(columns, std::slice::from_ref(&answer.json)));
        }
    }

    async fn get(&self, segments: &[&str], columns: &[Column]) -> Result<(), Failure> {
        let answer = self.client.get(self.client.url(segments, &[])).await?;
        self.print(&answer, columns);
        Ok(())
    }

    async fn post(
        &self,
        segments: &[&str],
        body: &Value,
        columns: &[Column],
    ) -> Result<Answer, Failure> {
        let answer = self.client.post(self.client.url(segments, &[]), body, None).await?;
        self.print(&answer, columns);
        Ok(answer)
    }

    async fn delete(&self, segments: &[&str], columns: &[Column]) -> Result<(), Failure> {
        let answer = self.client.delete(self.client.url(segments, &[])).await?;
        self.print(&answer, columns);
        Ok(())
    }

    /// Prints a list: the first page, or every page with `--all`. `page` is None for lists the
    /// service does not page (the service catalog).
    async fn list(
        &self,
        segments: &[&str],
        mut query: Query<'_>,
        page: Option<&PageOptions>,
        columns: &[Column],
    ) -> Result<(), Failure> {
        let all = page.is_some_and(|page| page.all);
        if let Some(page) = page {
            let limit = page.limit.or(all.then_some(PAGE_SIZE_ALL));
            query.push(("limit", limit.map(|limit| limit.to_string())));
        }
        let mut cursor = page.and_then(|page| page.cursor.clone());
        let mut rows: Vec<Value> = Vec::new();
        loop {
            let mut page_query = query.clone();
            page_query.push(("cursor", cursor.clone()));
            let answer = self.client.get(self.client.url(segments, &page_query)).await?;
            let Some(data) = answer.json["data"].as_array() else {
                return Err(Failure::Transport(
                    "the service answered a list without `data`".to_string(),
                ));
            };
            let next = answer.json["nextCursor"].as_str().map(str::to_string);
            if !all {
                if self.json {
                    out(&answer.text);
                } else {
                    out(&table::render(columns, data));
                    if let Some(next) = next {
                        eprintln!("more results: add --all, or --cursor {next}");
                    }
                }
                return Ok(());
            }
            rows.extend(data.iter().cloned());
            match next {
                // A cursor that does not move would loop forever; stop instead.
                Some(next) if Some(&next) != cursor.as_ref() => cursor = Some(next),
                _ => break,
            }
        }
        if self.json {
            let merged = json!({"data": rows, "hasMore": false, "nextCursor": null});
            out(&merged.to_string());
        } else {
            out(&table::render(columns, &rows));
        }
        Ok(())
    }
}

pub async fn execute(command: ClientCommand) -> Result<(), Failure> {
    match command {
        ClientCommand::Accounts { options, command } => {
            accounts(&Session::new(&options)?, command).await
        }
        ClientCommand::Credits { options, command } => {
            credits(&Session::new(&options)?, command).await
        }
        ClientCommand::Balance { options, account } => {
            balance(&Session::new(&options)?, account).await
        }
        ClientCommand::Usage { options, command } => usage(&Session::new(&options)?, command).await,
        ClientCommand::Services { options, command } => {
            services(&Session::new(&options)?, command).await
        }
        ClientCommand::Members { options, command } => {
            members(&Session::new(&options)?, command).await
        }
        ClientCommand::Keys { options, command } => keys(&Session::new(&options)?, command).await,
        ClientCommand::Budgets { options, command } => {
            budgets(&Session::new(&options)?, command).await
        }
        ClientCommand::Ledger { options, args } => ledger(&Session::new(&options)?, args).await,
    }
}

async fn accounts(session: &Session, command: AccountsCommand) -> Result<(), Failure> {
    match command {
        AccountsCommand::Create {
            name,
            external_id,
            low_balance_threshold,
            expiring_soon_days,
        } => {
            let body = body(vec![
                ("name", optional(name)),
                ("externalId", optional(external_id)),
                ("lowBalanceThreshold", optional(low_balance_threshold)),
                ("expiringSoonDays", optional(expiring_soon_days)),
            ]);
            session.post(&["v2", "accounts"], &body, table::ACCOUNT).await?;
            Ok(())
        }
        AccountsCommand::List { external_id, page } => {
            let query = vec![("externalId", external_id)];
            session.list(&["v2", "accounts"], query, Some(&page), table::ACCOUNT).await
        }
        AccountsCommand::Get { id } => session.get(&["v2", "accounts", &id], table::ACCOUNT).await,
    }
}

fn credit_body(args: CreditCreateArgs, kind: &str) -> Value {
    body(vec![
        ("accountId", some(args.account)),
        ("amount", some(args.amount)),
        ("kind", some(kind)),
        ("service", optional(args.service)),
        ("expiresAt", optional(args.expires_at)),
        ("priority", optional(args.priority)),
        ("reference", optional(args.reference)),
        ("description", optional(args.description)),
    ])
}

async fn credits(session: &Session, command: CreditsCommand) -> Result<(), Failure> {
    match command {
        CreditsCommand::Purchase(args) => {
            let body = credit_body(args, "purchase");
            session.post(&["v2", "credits"], &body, table::CREDIT).await?;
            Ok(())
        }
        CreditsCommand::Grant(args) => {
            let body = credit_body(args, "grant");
            session.post(&["v2", "credits"], &body, table::CREDIT).await?;
            Ok(())
        }
        CreditsCommand::List { account, status, service, page } => {
            let query = vec![("accountId", account), ("status", status), ("service", service)];
            session.list(&["v2", "credits"], query, Some(&page), table::CREDIT).await
        }
        CreditsCommand::Get { id } => session.get(&["v2", "credits", &id], table::CREDIT).await,
        CreditsCommand::Void { id, reason } => {
            let body = body(vec![("reason", optional(reason))]);
            session.post(&["v2", "credits", &id, "void"], &body, table::CREDIT).await?;
            Ok(())
        }
    }
}

/// The balance as one row per service (`any` included) and a `total` row, then the next expiry.
fn balance_table(balance: &Value) -> String {
    let mut lines =
        vec![vec!["SERVICE".to_string(), "AVAILABLE".to_string(), "RESERVED".to_string()]];
    if let Some(services) = balance["byService"].as_object() {
        for (service, amounts) in services {
            lines.push(vec![
                service.clone(),
                table::cell(amounts.get("available")),
                table::cell(amounts.get("reserved")),
            ]);
        }
    }
    lines.push(vec![
        "total".to_string(),
        table::cell(balance.get("available")),
        table::cell(balance.get("reserved")),
    ]);
    let mut text = table::render_cells(&lines);
    let next = &balance["nextExpiry"];
    if next.is_object() {
        text.push_str(&format!(
            "next expiry: {} credits of {} at {}\n",
            table::cell(next.get("remaining")),
            table::cell(next.get("creditId")),
            table::cell(next.get("expiresAt")),
        ));
    }
    text
}

async fn balance(session: &Session, account: String) -> Result<(), Failure> {
    let url = session.client.url(&["v2", "balance"], &[("accountId", Some(account))]);
    let answer = session.client.get(url).await?;
    if session.json {
        out(&answer.text);
    } else {
        out(&balance_table(&answer.json));
    }
    Ok(())
}

async fn usage(session: &Session, command: UsageCommand) -> Result<(), Failure> {
    match command {
        UsageCommand::Record {
            account,
            service,
            quantity,
            operation,
            member,
            credits,
            metadata,
            idempotency_key,
        } => {
            let metadata = (!metadata.is_empty()).then(|| {
                let map: Map<String, Value> =
                    metadata.into_iter().map(|(key, value)| (key, Value::String(value))).collect();
                Value::Object(map)
            });
            let body = body(vec![
                ("accountId", some(account)),
                ("service", some(service)),
                ("operation", optional(operation)),
                ("quantity", optional(quantity)),
                ("memberId", optional(member)),
                ("credits", optional(credits)),
                ("metadata", metadata),
            ]);
            let key = match idempotency_key {
                Some(key) => key,
                None => {
                    let key = idempotency_key_generate();
                    eprintln!("idempotency key: {key}");
                    key
                }
            };
            let url = session.client.url(&["v2", "usage"], &[]);
            let answer = session.client.post(url, &body, Some(&key)).await?;
            if answer.replayed {
                eprintln!("replayed: the first answer to idempotency key {key}");
            }
            session.print(&answer, table::USAGE);
            Ok(())
        }
        UsageCommand::List { account, service, member, api_key, from, to, page } => {
            let query = vec![
                ("accountId", account),
                ("service", service),
                ("memberId", member),
                ("apiKeyId", api_key),
                ("from", from),
                ("to", to),
            ];
            session.list(&["v2", "usage"], query, Some(&page), table::USAGE).await
        }
    }
}

async fn services(session: &Session, command: ServicesCommand) -> Result<(), Failure> {
    match command {
        ServicesCommand::List => {
            session.list(&["v2", "services"], Vec::new(), None, table::SERVICE).await
        }
        ServicesCommand::Create { id, name, unit_cost, operations } => {
            let operations = (!operations.is_empty()).then(|| {
                let map: Map<String, Value> =
                    operations.into_iter().map(|(name, cost)| (name, Value::from(cost))).collect();
                Value::Object(map)
            });
            let body = body(vec![
                ("id", some(id)),
                ("name", some(name)),
                ("unitCost", some(unit_cost)),
                ("operations", operations),
            ]);
            session.post(&["v2", "services"], &body, table::SERVICE).await?;
            Ok(())
        }
    }
}

async fn members(session: &Session, command: MembersCommand) -> Result<(), Failure> {
    match command {
        MembersCommand::Create { account, email, role, name } => {
            let body = body(vec![
                ("accountId", some(account)),
                ("email", some(email)),
                ("name", optional(name)),
                ("role", some(role)),
            ]);
            session.post(&["v2", "members"], &body, table::MEMBER).await?;
            Ok(())
        }
        MembersCommand::List { account, page } => {
            let query = vec![("accountId", Some(account))];
            session.list(&["v2", "members"], query, Some(&page), table::MEMBER).await
        }
        MembersCommand::Get { id } => session.get(&["v2", "members", &id], table::MEMBER).await,
        MembersCommand::Delete { id } => {
            session.delete(&["v2", "members", &id], table::DELETED).await
        }
    }
}

async fn keys(session: &Session, command: KeysCommand) -> Result<(), Failure> {
    match command {
        KeysCommand::Create { account, name, scopes, member } => {
            let scopes = (!scopes.is_empty()).then(|| Value::from(scopes));
            let body = body(vec![
                ("accountId", optional(account)),
                ("name", some(name)),
                ("scopes", scopes),
                ("memberId", optional(member)),
            ]);
            let answer = session.post(&["v2", "api-keys"], &body, table::API_KEY).await?;
            if !session.json && answer.json["secret"].is_string() {
                eprintln!("the secret is shown only once: store it now");
            }
            Ok(())
        }
        KeysCommand::List { account, page } => {
            let query = vec![("accountId", account)];
            session.list(&["v2", "api-keys"], query, Some(&page), table::API_KEY).await
        }
        KeysCommand::Revoke { id } => {
            session.delete(&["v2", "api-keys", &id], table::API_KEY).await
        }
    }
}

async fn budgets(session: &Session, command: BudgetsCommand) -> Result<(), Failure> {
    match command {
        BudgetsCommand::Create { account, name, scope, period, limit, enforcement, thresholds } => {
            let scope = body(vec![("type", some(scope.kind)), ("id", optional(scope.id))]);
            let thresholds = (!thresholds.is_empty()).then(|| Value::from(thresholds));
            let body = body(vec![
                ("accountId", some(account)),
                ("name", some(name)),
                ("scope", Some(scope)),
                ("period", some(period)),
                ("limit", some(limit)),
                ("enforcement", optional(enforcement)),
                ("thresholds", thresholds),
            ]);
            session.post(&["v2", "budgets"], &body, table::BUDGET).await?;
            Ok(())
        }
        BudgetsCommand::List { account, page } => {
            let query = vec![("accountId", Some(account))];
            session.list(&["v2", "budgets"], query, Some(&page), table::BUDGET).await
        }
        BudgetsCommand::Get { id } => session.get(&["v2", "budgets", &id], table::BUDGET).await,
        BudgetsCommand::Delete { id } => {
            session.delete(&["v2", "budgets", &id], table::DELETED).await
        }
    }
}

async fn ledger(session: &Session, args: LedgerArgs) -> Result<(), Failure> {
    let query = vec![
        ("accountId", args.account),
        ("creditId", args.credit),
        ("type", args.entry_type),
        ("memberId", args.member),
        ("apiKeyId", args.api_key),
        ("from", args.from),
        ("to", args.to),
    ];
    if args.csv {
        let url = session.client.url(&["v2", "ledger"], &query);
        let text = session.client.get_text(url, "text/csv").await?;
        out(&text);
        return Ok(());
    }
    session.list(&["v2", "ledger"], query, Some(&args.page), table::LEDGER_ENTRY).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_leave_absent_fields_out() {
        let value = body(vec![
            ("name", some("Acme")),
            ("externalId", optional(None::<String>)),
            ("limit", some(5u64)),
        ]);
        assert_eq!(value, json!({"name": "Acme", "limit": 5}));
    }

    #[test]
    fn generated_keys_are_distinct_and_valid() {
        let first = idempotency_key_generate();
        let second = idempotency_key_generate();
        assert_ne!(first, second);
        assert_eq!(first.len(), 4 + 32);
    }

    #[test]
    fn balance_rows_per_service_and_total() {
        let balance = json!({
            "accountId": "acct_1", "available": 850, "reserved": 10,
            "byService": {"any": {"available": 100, "reserved": 0},
                          "smartcheck": {"available": 750, "reserved": 10}},
            "nextExpiry": {"creditId": "credit_1", "expiresAt": "2027-12-31T23:59:59Z",
                           "remaining": 750},
            "asOf": "2026-01-01T00:00:00Z"
        });
        let expected = "SERVICE     AVAILABLE  RESERVED\n\
                        any         100        0\n\
                        smartcheck  750        10\n\
                        total       850        10\n\
                        next expiry: 750 credits of credit_1 at 2027-12-31T23:59:59Z\n";
        assert_eq!(balance_table(&balance), expected);
    }
}
