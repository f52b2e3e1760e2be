//! Goal: the human-readable output of the operator CLI: an aligned table, one row per object,
//! with the columns an operator reads first for each kind of object.
//!
//! Method: a [`Column`] names a header and a JSON pointer into the object; a cell renders the value
//! found there on one line (null or absent as `-`, arrays comma-joined, a budget scope as
//! `type:id`, other objects as `key=value` pairs). Columns marked `when_present` (an API key's
//! one-time `secret`) appear only if some row has a value for them. Widths count characters, so
//! names outside ASCII still line up.

use serde_json::Value;

/// One column of a table: its header and where its value lives in each object.
#[derive(Clone, Copy)]
pub struct Column {
    pub header: &'static str,
    /// A JSON pointer (RFC 6901) into the object, such as `/actor/memberId`.
    pub pointer: &'static str,
    /// Whether the column is shown only when at least one row has a non-null value for it.
    pub when_present: bool,
}

const fn column(header: &'static str, pointer: &'static str) -> Column {
    Column { header, pointer, when_present: false }
}

const fn column_when_present(header: &'static str, pointer: &'static str) -> Column {
    Column { header, pointer, when_present: true }
}

pub const ACCOUNT: &[Column] = &[
    column("ID", "/id"),
    column("NAME", "/name"),
    column("EXTERNAL ID", "/externalId"),
    column("LOW BALANCE", "/lowBalanceThreshold"),
    column("EXPIRING SOON DAYS", "/expiringSoonDays"),
    column("CREATED AT", "/createdAt"),
];

pub const CREDIT: &[Column] = &[
    column("ID", "/id"),
    column("ACCOUNT", "/accountId"),
    column("KIND", "/kind"),
    column("SERVICE", "/service"),
    column("AMOUNT", "/amount"),
    column("USED", "/used"),
    column("RESERVED", "/reserved"),
    column("REMAINING", "/remaining"),
    column("STATUS", "/status"),
    column("PRIORITY", "/priority"),
    column("EXPIRES AT", "/expiresAt"),
    column("REFERENCE", "/reference"),
];

pub const USAGE: &[Column] = &[
    column("ID", "/id"),
    column("ACCOUNT", "/accountId"),
    column("SERVICE", "/service"),
    column("OPERATION", "/operation"),
    column("QUANTITY", "/quantity"),
    column("CREDITS", "/credits"),
    column("BALANCE AFTER", "/balanceAfter"),
    column("MEMBER", "/actor/memberId"),
    column("API KEY", "/actor/apiKeyId"),
    column("CREATED AT", "/createdAt"),
];

pub const SERVICE: &[Column] = &[
    column("ID", "/id"),
    column("NAME", "/name"),
    column("UNIT COST", "/unitCost"),
    column("OPERATIONS", "/operations"),
];

pub const MEMBER: &[Column] = &[
    column("ID", "/id"),
    column("ACCOUNT", "/accountId"),
    column("EMAIL", "/email"),
    column("NAME", "/name"),
    column("ROLE", "/role"),
    column("CREATED AT", "/createdAt"),
];

pub const API_KEY: &[Column] = &[
    column("ID", "/id"),
    column("ACCOUNT", "/accountId"),
    column("MEMBER", "/memberId"),
    column("NAME", "/name"),
    column("PREFIX", "/prefix"),
    column("SCOPES", "/scopes"),
    column("LAST USED AT", "/lastUsedAt"),
    column("REVOKED AT", "/revokedAt"),
    column_when_present("SECRET", "/secret"),
];

pub const BUDGET: &[Column] = &[
    column("ID", "/id"),
    column("ACCOUNT", "/accountId"),
    column("NAME", "/name"),
    column("SCOPE", "/scope"),
    column("PERIOD", "/period"),
    column("LIMIT", "/limit"),
    column("SPENT", "/spent"),
    column("ENFORCEMENT", "/enforcement"),
    column("PERIOD END", "/periodEnd"),
];

pub const LEDGER_ENTRY: &[Column] = &[
    column("ID", "/id"),
    column("ACCOUNT", "/accountId"),
    column("CREDIT", "/creditId"),
    column("TYPE", "/type"),
    column("CREDITS", "/credits"),
    column("REMAINING AFTER", "/remainingAfter"),
    column("USAGE", "/usageId"),
    column("RESERVATION", "/reservationId"),
    column("MEMBER", "/actor/memberId"),
    column("API KEY", "/actor/apiKeyId"),
    column("CREATED AT", "/createdAt"),
];

/// The answer of a delete: `{id, deleted: true}`.
pub const DELETED: &[Column] = &[column("ID", "/id"), column("DELETED", "/deleted")];

/// One value on one line.
pub fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(text)) => one_line(text),
        Some(Value::Number(number)) => number.to_string(),
        Some(Value::Bool(flag)) => flag.to_string(),
        Some(Value::Array(items)) if items.is_empty() => "-".to_string(),
        Some(Value::Array(items)) => {
            items.iter().map(|item| cell(Some(item))).collect::<Vec<_>>().join(",")
        }
        Some(Value::Object(map)) => match (map.get("type"), map.get("id")) {
            // A budget scope: `account`, or `member:mem_…`.
            (Some(Value::String(kind)), None | Some(Value::Null)) => kind.clone(),
            (Some(Value::String(kind)), Some(id)) => format!("{kind}:{}", cell(Some(id))),
            _ if map.is_empty() => "-".to_string(),
            _ => map
                .iter()
                .map(|(name, value)| format!("{name}={}", cell(Some(value))))
                .collect::<Vec<_>>()
                .join(","),
        },
    }
}

/// Keeps a table row on one line whatever a name or description holds.
fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// The table of `rows` (JSON objects) under `columns`, each line ending with a newline.
pub fn render(columns: &[Column], rows: &[Value]) -> String {
    let shown: Vec<&Column> = columns
        .iter()
        .filter(|column| {
            !column.when_present
                || rows.iter().any(|row| !row.pointer(column.pointer).is_none_or(Value::is_null))
        })
        .collect();
    let mut lines: Vec<Vec<String>> = Vec::with_capacity(rows.len() + 1);
    lines.push(shown.iter().map(|column| column.header.to_string()).collect());
    for row in rows {
        lines.push(shown.iter().map(|column| cell(row.pointer(column.pointer))).collect());
    }
    render_cells(&lines)
}

/// Aligns text cells (the first line is the header) into columns two spaces apart.
pub fn render_cells(lines: &[Vec<String>]) -> String {
    let columns = lines.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; columns];
    for line in lines {
        for (index, text) in line.iter().enumerate() {
            widths[index] = widths[index].max(text.chars().count());
        }
    }
    let mut out = String::new();
    for line in lines {
        let mut text = String::new();
        for (index, value) in line.iter().enumerate() {
            if index > 0 {
                text.push_str("  ");
            }
            text.push_str(value);
            if index + 1 < line.len() {
                let pad = widths[index] - value.chars().count();
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(value: Value, expected: &str) {
        assert_eq!(cell(Some(&value)), expected, "{value}");
    }

    #[test]
    fn cells() {
        check(json!(null), "-");
        check(json!("acme"), "acme");
        check(json!("two\nlines"), "two lines");
        check(json!(42), "42");
        check(json!(true), "true");
        check(json!([]), "-");
        check(json!(["usage:write", "credits:read"]), "usage:write,credits:read");
        check(json!({"type": "account"}), "account");
        check(json!({"type": "account", "id": null}), "account");
        check(json!({"type": "member", "id": "mem_1"}), "member:mem_1");
        check(json!({"lookup": 2, "verify": 5}), "lookup=2,verify=5");
        check(json!({}), "-");
        assert_eq!(cell(None), "-");
    }

    #[test]
    fn aligned_with_optional_column() {
        let rows = [
            json!({"id": "key_1", "name": "ci", "scopes": ["usage:write"], "secret": null}),
            json!({"id": "key_22", "name": "b", "scopes": []}),
        ];
        let columns = [
            column("ID", "/id"),
            column("NAME", "/name"),
            column("SCOPES", "/scopes"),
            column_when_present("SECRET", "/secret"),
        ];
        let expected = "ID      NAME  SCOPES\n\
                        key_1   ci    usage:write\n\
                        key_22  b     -\n";
        assert_eq!(render(&columns, &rows), expected);
        let with_secret = [json!({"id": "key_1", "name": "ci", "secret": "ck_live_x"})];
        assert_eq!(
            render(&columns, &with_secret),
            "ID     NAME  SCOPES  SECRET\nkey_1  ci    -       ck_live_x\n"
        );
    }

    #[test]
    fn empty_table_is_the_header() {
        assert_eq!(render(DELETED, &[]), "ID  DELETED\n");
    }
}
