//! Goal: the operator CLI, `credits <noun> <verb>`, over the service's HTTP API: accounts,
//! credits, balance, usage, services, members, API keys, budgets and the ledger, for a person at
//! a terminal (aligned tables) and for scripts (`--json`, exit codes).
//!
//! Method: this module holds the clap definitions only; [`commands`] turns each into one request
//! (or, for `--all`, a walk over `nextCursor`) through [`client::Client`], and [`table`] renders
//! the answers. The connection options (`--url`, `--key`, `--json`) are global to each noun, so
//! they may follow the noun or the verb. Exit codes: 0 on success, 1 when the service answers
//! 4xx/5xx or cannot be reached (the problem's `code` and `detail` go to stderr), 2 for usage
//! errors, as clap itself uses.

mod client;
mod commands;
mod table;

use clap::{Args, Subcommand};

/// The help heading of the connection options, apart from each command's own.
const CONNECTION: &str = "Connection options";

/// Where the service is and how to talk to it.
#[derive(Args, Clone, Debug)]
pub struct ClientOptions {
    /// The service's base URL.
    #[arg(
        long,
        env = "CREDITS_URL",
        default_value = "http://127.0.0.1:8080",
        global = true,
        help_heading = CONNECTION
    )]
    pub url: String,
    /// The API key: the operator admin key, or an account's key.
    #[arg(
        long,
        env = "CREDITS_KEY",
        hide_env_values = true,
        global = true,
        help_heading = CONNECTION
    )]
    pub key: Option<String>,
    /// Print the service's raw JSON answer instead of a table.
    #[arg(long, global = true, help_heading = CONNECTION)]
    pub json: bool,
}

/// Paging of a list: the first page unless `--all` is given.
#[derive(Args, Clone, Debug)]
pub struct PageOptions {
    /// Fetch every page, following `nextCursor`.
    #[arg(long)]
    pub all: bool,
    /// Objects per page, 1 to 100 (the service's default is 20; 100 with --all).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Start from this cursor (a previous page's `nextCursor`).
    #[arg(long)]
    pub cursor: Option<String>,
}

/// The client commands, flattened into the binary's own command list next to `serve`.
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Customer accounts.
    Accounts {
        #[command(flatten)]
        options: ClientOptions,
        #[command(subcommand)]
        command: AccountsCommand,
    },
    /// Credit records: purchases and grants.
    Credits {
        #[command(flatten)]
        options: ClientOptions,
        #[command(subcommand)]
        command: CreditsCommand,
    },
    /// An account's balance, in total and by service.
    Balance {
        #[command(flatten)]
        options: ClientOptions,
        /// The account.
        #[arg(long)]
        account: String,
    },
    /// Usage: record a charge, list charges.
    Usage {
        #[command(flatten)]
        options: ClientOptions,
        #[command(subcommand)]
        command: UsageCommand,
    },
    /// The service catalog.
    Services {
        #[command(flatten)]
        options: ClientOptions,
        #[command(subcommand)]
        command: ServicesCommand,
    },
    /// An account's members (staff).
    Members {
        #[command(flatten)]
        options: ClientOptions,
        #[command(subcommand)]
        command: MembersCommand,
    },
    /// API keys: operator keys and account keys, optionally bound to a member.
    Keys {
        #[command(flatten)]
        options: ClientOptions,
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Spending limits.
    Budgets {
        #[command(flatten)]
        options: ClientOptions,
        #[command(subcommand)]
        command: BudgetsCommand,
    },
    /// The immutable ledger of every change to every credit record.
    Ledger {
        #[command(flatten)]
        options: ClientOptions,
        #[command(flatten)]
        args: LedgerArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum AccountsCommand {
    /// Create an account.
    Create {
        /// The name.
        #[arg(long)]
        name: Option<String>,
        /// The customer's id in the operator's own systems.
        #[arg(long)]
        external_id: Option<String>,
        /// `balance.low` fires when available falls to or below this.
        #[arg(long)]
        low_balance_threshold: Option<u64>,
        /// How many days ahead `credit.expiring_soon` warns (default 7).
        #[arg(long)]
        expiring_soon_days: Option<u32>,
    },
    /// List accounts, newest first.
    List {
        /// Only the account with this external id.
        #[arg(long)]
        external_id: Option<String>,
        #[command(flatten)]
        page: PageOptions,
    },
    /// Show one account.
    Get { id: String },
}

/// The fields of a purchase or a grant.
#[derive(Args, Debug)]
pub struct CreditCreateArgs {
    /// The account the credits go to.
    #[arg(long)]
    pub account: String,
    /// Credits, 1 to 9007199254740991.
    #[arg(long)]
    pub amount: u64,
    /// A service id, or `any` (the default): spendable on every service.
    #[arg(long)]
    pub service: Option<String>,
    /// RFC 3339, such as 2027-12-31T23:59:59Z; omit for credits that never expire.
    #[arg(long)]
    pub expires_at: Option<String>,
    /// Higher is spent first among records of the same service scope (default 0).
    #[arg(long, allow_negative_numbers = true)]
    pub priority: Option<i64>,
    /// The billing system's payment id, unique per account: a retried payment never pays twice.
    #[arg(long)]
    pub reference: Option<String>,
    /// A note shown with the record.
    #[arg(long)]
    pub description: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum CreditsCommand {
    /// Record a purchase of credits (the billing system was paid).
    Purchase(CreditCreateArgs),
    /// Give credits (no payment).
    Grant(CreditCreateArgs),
    /// List credit records, newest first.
    List {
        /// The account (acct_…).
        #[arg(long)]
        account: Option<String>,
        /// Only records in this status.
        #[arg(long, value_parser = ["active", "depleted", "expired", "voided"])]
        status: Option<String>,
        /// A service id, or `any`.
        #[arg(long)]
        service: Option<String>,
        #[command(flatten)]
        page: PageOptions,
    },
    /// Show one credit record.
    Get { id: String },
    /// Void what is left of a credit record (refund, mistake).
    Void {
        id: String,
        /// Why (kept in the service's logs).
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum UsageCommand {
    /// Record usage, charged at once; all or nothing.
    Record {
        /// The account (acct_…).
        #[arg(long)]
        account: String,
        /// The service used.
        #[arg(long)]
        service: String,
        /// Units used (default 1).
        #[arg(long)]
        quantity: Option<u64>,
        /// The operation, priced by the catalog.
        #[arg(long)]
        operation: Option<String>,
        /// Attribute the usage to this member (operator keys).
        #[arg(long)]
        member: Option<String>,
        /// Charge exactly this many credits instead of the catalog price (operator keys).
        #[arg(long)]
        credits: Option<u64>,
        /// Metadata as KEY=VALUE; repeat for more.
        #[arg(long = "metadata", value_name = "KEY=VALUE", value_parser = key_value)]
        metadata: Vec<(String, String)>,
        /// Makes a retry safe; a random key is generated (and printed to stderr) when absent.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// List usage, newest first.
    List {
        /// The account (acct_…).
        #[arg(long)]
        account: Option<String>,
        /// A service id.
        #[arg(long)]
        service: Option<String>,
        /// Only the usage of this member.
        #[arg(long)]
        member: Option<String>,
        /// Only the usage made with this API key.
        #[arg(long)]
        api_key: Option<String>,
        /// RFC 3339, inclusive.
        #[arg(long)]
        from: Option<String>,
        /// RFC 3339, exclusive.
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        page: PageOptions,
    },
}

#[derive(Subcommand, Debug)]
pub enum ServicesCommand {
    /// List the service catalog.
    List,
    /// Add a service to the catalog.
    Create {
        /// Lowercase letters, digits, `-` and `_`.
        #[arg(long)]
        id: String,
        /// The name.
        #[arg(long)]
        name: String,
        /// Credits per request when no operation is named.
        #[arg(long)]
        unit_cost: u64,
        /// An operation's cost as NAME=CREDITS; repeat for more.
        #[arg(long = "operation", value_name = "NAME=CREDITS", value_parser = operation_cost)]
        operations: Vec<(String, u64)>,
    },
}

#[derive(Subcommand, Debug)]
pub enum MembersCommand {
    /// Add a member to an account.
    Create {
        /// The account (acct_…).
        #[arg(long)]
        account: String,
        /// The member's email address.
        #[arg(long)]
        email: String,
        /// What the member may do.
        #[arg(long, value_parser = ["owner", "admin", "member", "viewer"])]
        role: String,
        /// The name.
        #[arg(long)]
        name: Option<String>,
    },
    /// List an account's members.
    List {
        /// The account (acct_…).
        #[arg(long)]
        account: String,
        #[command(flatten)]
        page: PageOptions,
    },
    /// Show one member.
    Get { id: String },
    /// Remove a member.
    Delete { id: String },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create an API key; its secret is shown once.
    Create {
        /// The account the key acts for; omit for an operator key.
        #[arg(long)]
        account: Option<String>,
        /// The name.
        #[arg(long)]
        name: String,
        /// A scope such as usage:write; repeat for more (default: the service's).
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// Bind the key to a member: its usage is attributed to them.
        #[arg(long)]
        member: Option<String>,
    },
    /// List API keys.
    List {
        /// The account (acct_…).
        #[arg(long)]
        account: Option<String>,
        #[command(flatten)]
        page: PageOptions,
    },
    /// Revoke an API key at once.
    Revoke { id: String },
}

/// What a budget limits: `account`, or `member:ID`, `apiKey:ID`, `service:ID`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetScope {
    pub kind: &'static str,
    pub id: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum BudgetsCommand {
    /// Create a budget.
    Create {
        /// The account (acct_…).
        #[arg(long)]
        account: String,
        /// The name.
        #[arg(long)]
        name: String,
        /// account, member:ID, apiKey:ID or service:ID.
        #[arg(long, value_parser = budget_scope)]
        scope: BudgetScope,
        /// The period the limit applies to (UTC calendar; weeks from Monday).
        #[arg(long, value_parser = ["day", "week", "month", "lifetime"])]
        period: String,
        /// Credits per period.
        #[arg(long)]
        limit: u64,
        /// block refuses usage past the limit (402 budget_exceeded); notify only tells.
        #[arg(long, value_parser = ["block", "notify"])]
        enforcement: Option<String>,
        /// A percentage of the limit that fires budget.threshold_reached; repeat for more
        /// (default 80 and 100).
        #[arg(long = "threshold", value_name = "PERCENT")]
        thresholds: Vec<u32>,
    },
    /// List an account's budgets.
    List {
        /// The account (acct_…).
        #[arg(long)]
        account: String,
        #[command(flatten)]
        page: PageOptions,
    },
    /// Show one budget, with what is spent in the current period.
    Get { id: String },
    /// Delete a budget.
    Delete { id: String },
}

#[derive(Args, Debug)]
pub struct LedgerArgs {
    /// The account (acct_…).
    #[arg(long)]
    pub account: Option<String>,
    /// Only the entries of this credit record.
    #[arg(long)]
    pub credit: Option<String>,
    /// purchase, grant, usage, hold, capture, release, expiry or void.
    #[arg(long = "type", value_name = "TYPE")]
    pub entry_type: Option<String>,
    /// Only the entries of this member's actions.
    #[arg(long)]
    pub member: Option<String>,
    /// Only the entries of this API key's actions.
    #[arg(long)]
    pub api_key: Option<String>,
    /// RFC 3339, inclusive.
    #[arg(long)]
    pub from: Option<String>,
    /// RFC 3339, exclusive.
    #[arg(long)]
    pub to: Option<String>,
    /// Export the whole filtered ledger as CSV (every page, whatever --all says).
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
    #[command(flatten)]
    pub page: PageOptions,
}

fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

fn operation_cost(text: &str) -> Result<(String, u64), String> {
    let (name, cost) =
        key_value(text).map_err(|_| format!("expected NAME=CREDITS, got {text:?}"))?;
    let cost = cost
        .parse()
        .map_err(|_| format!("the cost of {name:?} must be a whole number of credits"))?;
    Ok((name, cost))
}

fn budget_scope(text: &str) -> Result<BudgetScope, String> {
    let (kind, id) = match text.split_once(':') {
        Some((kind, id)) => (kind, Some(id)),
        None => (text, None),
    };
    let kind = match kind.to_ascii_lowercase().as_str() {
        "account" => "account",
        "member" => "member",
        "apikey" | "api-key" | "api_key" | "key" => "apiKey",
        "service" => "service",
        _ => {
            return Err(format!(
                "unknown scope {kind:?}: expected account, member:ID, apiKey:ID or service:ID"
            ))
        }
    };
    match (kind, id) {
        ("account", None) => Ok(BudgetScope { kind, id: None }),
        ("account", Some(_)) => Err("the account scope takes no id: use --scope account".into()),
        (_, Some(id)) if !id.is_empty() => Ok(BudgetScope { kind, id: Some(id.to_string()) }),
        _ => Err(format!("the {kind} scope needs an id: {kind}:ID")),
    }
}

/// Runs a client command to completion and returns the process exit code.
pub fn run(command: ClientCommand) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return 1;
        }
    };
    match runtime.block_on(commands::execute(command)) {
        Ok(()) => 0,
        Err(failure) => {
            eprintln!("{}", failure.message());
            failure.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Result<(&'static str, Option<&str>), ()>) {
        let parsed = budget_scope(text).map(|scope| (scope.kind, scope.id)).map_err(|_| ());
        let expected = expected.map(|(kind, id)| (kind, id.map(str::to_string)));
        assert_eq!(parsed, expected, "{text}");
    }

    #[test]
    fn budget_scopes() {
        check("account", Ok(("account", None)));
        check("member:mem_1", Ok(("member", Some("mem_1"))));
        check("apiKey:key_1", Ok(("apiKey", Some("key_1"))));
        check("apikey:key_1", Ok(("apiKey", Some("key_1"))));
        check("service:smartcheck", Ok(("service", Some("smartcheck"))));
        check("account:acct_1", Err(()));
        check("member", Err(()));
        check("member:", Err(()));
        check("team:x", Err(()));
    }

    #[test]
    fn metadata_and_operations() {
        assert_eq!(key_value("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(key_value("=b").is_err());
        assert!(key_value("ab").is_err());
        assert_eq!(operation_cost("verify=5"), Ok(("verify".into(), 5)));
        assert!(operation_cost("verify=-1").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::{CommandFactory, Parser};

        #[derive(Parser)]
        struct Probe {
            #[command(subcommand)]
            command: ClientCommand,
        }
        Probe::command().debug_assert();
    }
}
