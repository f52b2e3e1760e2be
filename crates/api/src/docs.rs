//! `/docs`: an API reference page rendered on the server from the OpenAPI document, with no
//! script and no outside asset, so that it works without internet.

use serde_json::Value;
use utoipa::OpenApi;

use crate::openapi::ApiDoc;

pub struct Docs {
    pub openapi_json: String,
    pub html: String,
}

impl Docs {
    pub fn build() -> Docs {
        let openapi = ApiDoc::openapi();
        let mut value: Value = serde_json::to_value(&openapi).unwrap_or(Value::Null);
        complete(&mut value);
        let openapi_json = serde_json::to_string_pretty(&value).unwrap_or_default();
        Docs { openapi_json, html: html_page(&value) }
    }
}

/// The errors any operation may answer, each as problem+json.
const COMMON_ERRORS: [(&str, &str); 8] = [
    ("400", "Malformed request: not JSON, bad query, bad Idempotency-Key"),
    ("401", "Missing, unknown or revoked key"),
    ("403", "The key lacks the scope"),
    ("404", "No such object, or it belongs to another account"),
    ("409", "Idempotency-Key reused with another request, or invalid state"),
    ("413", "Body over 1 MiB"),
    ("422", "Well-formed but invalid: unknown field, wrong type, out of range"),
    ("503", "The database cannot be reached"),
];

/// Whether a schema's `type` is `name` or a list holding it (`["string", "null"]`).
fn has_type(schema: &serde_json::Map<String, Value>, name: &str) -> bool {
    match schema.get("type") {
        Some(Value::String(t)) => t == name,
        Some(Value::Array(ts)) => ts.iter().any(|t| t == name),
        _ => false,
    }
}

/// Completes what the annotations leave implicit, for every operation at once: a unique
/// `operationId`, the declared path parameters, the common error answers as
/// `application/problem+json`, and the bounds of `Idempotency-Key`.
/// What the API checks of query parameters, stated in the document: text holds no NUL, a page
/// holds 1 to 100 items, a cursor is a position in decimal (two numbers for lists in time order), some values come from a list, and
/// times are RFC 3339.
fn query_bounds(path: &str, parameter: &mut Value) {
    if parameter.get("in") != Some(&Value::from("query")) {
        return;
    }
    let name = parameter.get("name").and_then(Value::as_str).unwrap_or("").to_string();
    let is_limit = name == "limit";
    let is_cursor = name == "cursor";
    // Values the handlers accept from a fixed list, and times they parse as RFC 3339.
    let choices: Option<Vec<&str>> = match (path, name.as_str()) {
        ("/v2/credits", "status") => {
            Some(credits_core::CreditStatus::ALL.iter().map(|s| s.as_str()).collect())
        }
        ("/v2/ledger", "type") => {
            Some(credits_core::EntryType::ALL.iter().map(|t| t.as_str()).collect())
        }
        ("/v2/events", "type") => Some(crate::routes::webhooks::EVENT_TYPES.to_vec()),
        _ => None,
    };
    let is_time = name == "from" || name == "to";
    let is_group_by = path == "/v2/usage/summary" && name == "groupBy";
    let Some(schema) = parameter.get_mut("schema").and_then(Value::as_object_mut) else { return };
    // Text of any length is accepted (an empty filter matches nothing), but never a NUL.
    if has_type(schema, "string") && !is_cursor && !is_time && choices.is_none() {
        schema.insert("pattern".into(), Value::from(crate::extract::NO_NUL_PATTERN));
    }
    if is_group_by {
        schema.insert("pattern".into(), Value::from(group_by_pattern()));
    }
    if let Some(choices) = choices {
        schema.insert("enum".into(), Value::from(choices));
    }
    if is_time && has_type(schema, "string") {
        schema.insert("format".into(), Value::from("date-time"));
    }
    if is_cursor && has_type(schema, "string") {
        use crate::extract::{cursor_pattern, Order, LISTS_IN_TIME_ORDER};
        let order = if LISTS_IN_TIME_ORDER.contains(&path) { Order::Time } else { Order::Seq };
        schema.insert("pattern".into(), Value::from(cursor_pattern(order)));
    }
    if is_limit && has_type(schema, "integer") {
        schema.insert("minimum".into(), Value::from(1));
        schema.insert("maximum".into(), Value::from(credits_core::PAGE_SIZE_MAX));
    }
}

/// The request body schemas (and the objects nested in them) whose fields `body_bounds` states.
const REQUEST_SCHEMAS: [&str; 19] = [
    "AccountCreate",
    "AccountPatchRequest",
    "AutoTopUpDto",
    "ServiceCreate",
    "ServicePatchRequest",
    "CreditCreate",
    "VoidRequest",
    "UsageCreate",
    "UsageBatchRequest",
    "ReservationCreate",
    "CaptureRequest",
    "MemberCreate",
    "MemberPatchRequest",
    "ApiKeyCreate",
    "BudgetScopeDto",
    "BudgetCreate",
    "BudgetPatchRequest",
    "WebhookEndpointCreate",
    "RedeliverRequest",
];

fn integer(minimum: impl Into<Value>, maximum: impl Into<Value>) -> Value {
    serde_json::json!({"minimum": minimum.into(), "maximum": maximum.into()})
}

fn text(max: usize) -> Value {
    serde_json::json!({"minLength": 1, "maxLength": max, "pattern": crate::extract::NO_NUL_PATTERN})
}

/// The characters Rust's `char::is_whitespace` (and so `str::trim`) counts, inside a class.
const WHITESPACE: &str =
    "\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

/// `groupBy` as the summary reads it: a comma list whose items are empty (skipped) or a name
/// with whitespace around it (trimmed).
fn group_by_pattern() -> String {
    let names = crate::routes::summary::GROUP_BY_NAMES.join("|");
    let item = format!("(?:[{WHITESPACE}]*(?:{names})[{WHITESPACE}]*)?");
    format!("^{item}(?:,{item})*$")
}

/// `check_email` in `routes/members.rs`: something before the first `@`, a domain with a dot
/// neither first nor last, no whitespace (Rust's `char::is_whitespace`) and no NUL anywhere.
fn email_pattern() -> String {
    let not = format!("\\u0000{WHITESPACE}");
    format!("^[^@{not}]+@[^.{not}][^{not}]*\\.[^{not}]*[^.{not}]$")
}

/// What the handlers check of each request field, from the constants and lists they check
/// against; the keywords are merged into the field's schema. Fields not named here are free
/// text without NUL (`body_bounds`).
fn field_bounds(schema: &str, field: &str) -> Option<Value> {
    use credits_core::*;
    let credits = || integer(1, CREDITS_MAX);
    let cost = || integer(0, CREDITS_MAX);
    let slug = || serde_json::json!({"pattern": crate::routes::slug_pattern()});
    let choices = |values: &[&str], nullable: bool| {
        let mut values: Vec<Value> = values.iter().map(|v| Value::from(*v)).collect();
        if nullable {
            values.push(Value::Null);
        }
        serde_json::json!({"enum": values})
    };
    let roles: Vec<&str> = access::Role::ALL.iter().map(|r| r.as_str()).collect();
    Some(match (schema, field) {
        ("CreditCreate", "amount") | ("UsageCreate", "credits" | "quantity") => credits(),
        ("ReservationCreate" | "CaptureRequest", "credits") => credits(),
        ("BudgetCreate" | "BudgetPatchRequest", "limit") => credits(),
        ("AutoTopUpDto", "threshold" | "amount") => credits(),
        ("AccountCreate" | "AccountPatchRequest", "lowBalanceThreshold") => cost(),
        ("ServiceCreate" | "ServicePatchRequest", "unitCost") => cost(),
        ("ServiceCreate" | "ServicePatchRequest", "operations") => serde_json::json!({
            "maxProperties": OPERATIONS_MAX,
            "propertyNames": {"pattern": crate::routes::slug_pattern()},
            "additionalProperties": {"type": "integer", "minimum": 0, "maximum": CREDITS_MAX},
        }),
        ("AccountCreate" | "AccountPatchRequest", "expiringSoonDays") => {
            integer(1, EXPIRING_SOON_DAYS_MAX)
        }
        ("ReservationCreate", "ttlSeconds") => integer(1, RESERVATION_TTL_SECONDS_MAX),
        ("CreditCreate", "priority") => integer(i64::MIN, i64::MAX),
        ("BudgetCreate" | "BudgetPatchRequest", "thresholds") => serde_json::json!({
            "maxItems": BUDGET_THRESHOLDS_MAX,
            "items": {"type": "integer", "minimum": 1, "maximum": BUDGET_THRESHOLD_PERCENT_MAX},
        }),
        ("ServiceCreate", "id") => serde_json::json!({
            "pattern": crate::routes::slug_pattern(), "not": {"const": SERVICE_ANY}
        }),
        (_, "service" | "operation") => slug(),
        ("CreditCreate", "expiresAt") => serde_json::json!({"format": "date-time"}),
        ("CreditCreate", "kind") => {
            let kinds: Vec<&str> = CreditKind::ALL.iter().map(|k| k.as_str()).collect();
            choices(&kinds, true)
        }
        ("MemberCreate", "role") => choices(&roles, false),
        ("MemberPatchRequest", "role") => choices(&roles, true),
        ("MemberCreate" | "MemberPatchRequest", "email") => serde_json::json!({
            "maxLength": EMAIL_LENGTH_MAX, "pattern": email_pattern()
        }),
        ("BudgetCreate", "period") => {
            let periods: Vec<&str> = budget::Period::ALL.iter().map(|p| p.as_str()).collect();
            choices(&periods, false)
        }
        ("BudgetCreate" | "BudgetPatchRequest", "enforcement") => {
            let values: Vec<&str> = budget::Enforcement::ALL.iter().map(|e| e.as_str()).collect();
            choices(&values, true)
        }
        ("BudgetScopeDto", "type") => choices(&budget::BudgetScope::KINDS, false),
        ("ApiKeyCreate", "scopes") => serde_json::json!({
            "minItems": 1, "items": {"type": "string", "enum": access::SCOPES}
        }),
        ("UsageCreate", "metadata") => serde_json::json!({
            "maxProperties": METADATA_ENTRIES_MAX,
            "propertyNames": {"minLength": 1, "maxLength": METADATA_KEY_LENGTH_MAX,
                "pattern": crate::extract::NO_NUL_PATTERN},
            "additionalProperties": {"type": "string", "maxLength": TEXT_LENGTH_MAX,
                "pattern": crate::extract::NO_NUL_PATTERN},
        }),
        ("UsageBatchRequest", "events") => serde_json::json!({
            "minItems": 1, "maxItems": BATCH_SIZE_MAX,
            "items": {"description": "A `UsageBatchEvent`; any value is accepted here and \
                validated on its own (see `events`)."},
        }),
        ("WebhookEndpointCreate", "events") => {
            let mut names: Vec<&str> = crate::routes::webhooks::EVENT_TYPES.to_vec();
            names.push("*");
            serde_json::json!({
                "minItems": 1, "maxItems": names.len(),
                "items": {"type": "string", "enum": names},
            })
        }
        // Checked as text of 1 to 1024 characters.
        (_, "name" | "externalId" | "description" | "reference" | "reason") => {
            text(TEXT_LENGTH_MAX)
        }
        ("UsageCreate" | "ReservationCreate", "memberId") => text(TEXT_LENGTH_MAX),
        ("BudgetScopeDto", "id") => text(TEXT_LENGTH_MAX),
        _ => return None,
    })
}

/// States in the document what the handlers check of request bodies: each field's bounds
/// (`field_bounds`), no NUL in any other string, and the shapes of a budget scope.
fn body_bounds(openapi: &mut Value) {
    let Some(schemas) = openapi.pointer_mut("/components/schemas").and_then(Value::as_object_mut)
    else {
        return;
    };
    for name in REQUEST_SCHEMAS {
        let Some(schema) = schemas.get_mut(name) else { continue };
        let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
            continue;
        };
        for (field, property) in properties.iter_mut() {
            let Some(property) = property.as_object_mut() else { continue };
            match field_bounds(name, field) {
                Some(Value::Object(bounds)) => property.extend(bounds),
                _ => {
                    if has_type(property, "string") {
                        property
                            .insert("pattern".into(), Value::from(crate::extract::NO_NUL_PATTERN));
                    }
                }
            }
        }
        // `BudgetScope::parse`: `account` has no id; the other kinds need one.
        if name == "BudgetScopeDto" {
            let kinds: Vec<&str> = credits_core::budget::BudgetScope::KINDS
                .iter()
                .copied()
                .filter(|kind| *kind != "account")
                .collect();
            schema["oneOf"] = serde_json::json!([
                {"properties": {"type": {"const": "account"}, "id": {"type": "null"}}},
                {"properties": {"type": {"enum": kinds}, "id": {"type": "string"}},
                    "required": ["id"]},
            ]);
        }
    }
}

fn complete(openapi: &mut Value) {
    body_bounds(openapi);
    // An absent body is read as `{}`: where `{}` is valid, the body is optional.
    let optional_bodies: Vec<String> = openapi
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .map(|schemas| {
            schemas
                .iter()
                .filter(|(_, schema)| {
                    schema.get("required").and_then(Value::as_array).is_none_or(Vec::is_empty)
                })
                .map(|(name, _)| format!("#/components/schemas/{name}"))
                .collect()
        })
        .unwrap_or_default();
    let Some(paths) = openapi.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for (path, item) in paths.iter_mut() {
        let path_params: Vec<String> = path
            .split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_string()))
            .collect();
        for method in ["get", "post", "patch", "delete"] {
            let Some(operation) = item.get_mut(method).and_then(Value::as_object_mut) else {
                continue;
            };
            let name: String = path
                .trim_start_matches('/')
                .replace(['{', '}'], "")
                .split(['/', '-'])
                .filter(|part| !part.is_empty())
                .collect::<Vec<_>>()
                .join("_");
            operation.insert("operationId".into(), Value::String(format!("{method}_{name}")));
            let parameters = operation.entry("parameters").or_insert_with(|| Value::Array(vec![]));
            if let Some(parameters) = parameters.as_array_mut() {
                for param in &path_params {
                    let declared = parameters.iter().any(|p| {
                        p.get("in") == Some(&Value::from("path"))
                            && p.get("name") == Some(&Value::from(param.as_str()))
                    });
                    if !declared {
                        parameters.push(serde_json::json!({
                            "name": param, "in": "path", "required": true,
                            "schema": {"type": "string"}
                        }));
                    }
                }
                for parameter in parameters.iter_mut() {
                    if parameter.get("name") == Some(&Value::from("Idempotency-Key")) {
                        parameter["schema"] =
                            serde_json::json!({"type": "string", "minLength": 1, "maxLength": 255});
                    }
                    query_bounds(path, parameter);
                }
            }
            if let Some(body) = operation.get_mut("requestBody") {
                let reference = body
                    .pointer("/content/application~1json/schema/$ref")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                if reference.is_some_and(|r| optional_bodies.contains(&r)) {
                    body["required"] = Value::Bool(false);
                }
            }
            if let Some(schema) = operation
                .get_mut("requestBody")
                .and_then(|b| b.pointer_mut("/content/application~1json/schema"))
            {
                // An optional body is "absent or an object", not JSON `null`.
                if let Some(variants) = schema.get("oneOf").and_then(Value::as_array) {
                    if let Some(object) =
                        variants.iter().find(|v| v.get("type") != Some(&Value::from("null")))
                    {
                        *schema = object.clone();
                    }
                }
            }
            let responses = operation.entry("responses").or_insert_with(|| serde_json::json!({}));
            let Some(responses) = responses.as_object_mut() else { continue };
            for (status, response) in responses.iter_mut() {
                if status.starts_with('4') || status.starts_with('5') {
                    if let Some(content) =
                        response.get_mut("content").and_then(Value::as_object_mut)
                    {
                        if let Some(json) = content.remove("application/json") {
                            content.insert("application/problem+json".into(), json);
                        }
                    }
                }
            }
            let common = if path.starts_with("/v2") { &COMMON_ERRORS[..] } else { &[] };
            for &(status, description) in common {
                responses.entry(status).or_insert_with(|| {
                    serde_json::json!({
                        "description": description,
                        "content": {"application/problem+json": {
                            "schema": {"$ref": "#/components/schemas/Problem"}
                        }}
                    })
                });
            }
        }
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn schema_name(schema: &Value) -> String {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        return format!("<a href=\"#schema-{0}\">{0}</a>", escape(name));
    }
    if let Some(items) = schema.get("items") {
        return format!("array of {}", schema_name(items));
    }
    if let Some(variants) = schema.get("oneOf").and_then(Value::as_array) {
        let names: Vec<String> = variants.iter().map(schema_name).collect();
        return names.join(" or ");
    }
    match schema.get("type") {
        Some(Value::String(kind)) => escape(kind),
        Some(Value::Array(kinds)) => {
            let names: Vec<&str> = kinds.iter().filter_map(Value::as_str).collect();
            escape(&names.join(" | "))
        }
        _ => "object".to_string(),
    }
}

fn operation_html(method: &str, path: &str, operation: &Value) -> String {
    let mut html = String::new();
    let summary = operation.get("summary").and_then(Value::as_str).unwrap_or("");
    let description = operation.get("description").and_then(Value::as_str).unwrap_or("");
    html.push_str(&format!(
        "<section class=\"op\"><h3><span class=\"method\">{}</span> <code>{}</code></h3><p>{}</p>",
        method.to_uppercase(),
        escape(path),
        escape(summary)
    ));
    if !description.is_empty() {
        html.push_str(&format!("<p>{}</p>", escape(description)));
    }
    if let Some(parameters) = operation.get("parameters").and_then(Value::as_array) {
        html.push_str("<table><tr><th>parameter</th><th>in</th><th>type</th><th>about</th></tr>");
        for parameter in parameters {
            let text = |key: &str| parameter.get(key).and_then(Value::as_str).unwrap_or("");
            let required = parameter.get("required").and_then(Value::as_bool).unwrap_or(false);
            html.push_str(&format!(
                "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(text("name")),
                if required { " *" } else { "" },
                escape(text("in")),
                parameter.get("schema").map(schema_name).unwrap_or_default(),
                escape(text("description"))
            ));
        }
        html.push_str("</table>");
    }
    let body = operation.pointer("/requestBody/content/application~1json/schema");
    if let Some(schema) = body {
        html.push_str(&format!("<p>Body: {}</p>", schema_name(schema)));
    }
    if let Some(responses) = operation.get("responses").and_then(Value::as_object) {
        html.push_str("<ul>");
        for (status, response) in responses {
            let schema = response
                .pointer("/content/application~1json/schema")
                .map(schema_name)
                .unwrap_or_default();
            let about = response.get("description").and_then(Value::as_str).unwrap_or("");
            html.push_str(&format!(
                "<li><b>{}</b> {} {}</li>",
                escape(status),
                schema,
                escape(about)
            ));
        }
        html.push_str("</ul>");
    }
    html.push_str("</section>");
    html
}

fn schema_html(name: &str, schema: &Value) -> String {
    let mut html =
        format!("<section class=\"schema\" id=\"schema-{0}\"><h3>{0}</h3>", escape(name));
    if let Some(description) = schema.get("description").and_then(Value::as_str) {
        html.push_str(&format!("<p>{}</p>", escape(description)));
    }
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        html.push_str("<table><tr><th>field</th><th>type</th><th>about</th></tr>");
        for (field, property) in properties {
            let about = property.get("description").and_then(Value::as_str).unwrap_or("");
            html.push_str(&format!(
                "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td></tr>",
                escape(field),
                if required.contains(&field.as_str()) { " *" } else { "" },
                schema_name(property),
                escape(about)
            ));
        }
        html.push_str("</table>");
    }
    html.push_str("</section>");
    html
}

fn html_page(openapi: &Value) -> String {
    let mut body = String::new();
    let title = openapi.pointer("/info/title").and_then(Value::as_str).unwrap_or("API");
    let about = openapi.pointer("/info/description").and_then(Value::as_str).unwrap_or("");
    body.push_str(&format!(
        "<h1>{} API reference</h1><p>{}</p><p>Machine-readable: <a href=\"/openapi.json\">/openapi.json</a>. \
         Authenticate with <code>Authorization: Bearer &lt;key&gt;</code>.</p><h2>Endpoints</h2>",
        escape(title),
        escape(about)
    ));
    if let Some(paths) = openapi.get("paths").and_then(Value::as_object) {
        for (path, item) in paths {
            for method in ["get", "post", "patch", "delete"] {
                if let Some(operation) = item.get(method) {
                    body.push_str(&operation_html(method, path, operation));
                }
            }
        }
    }
    body.push_str("<h2>Schemas</h2>");
    if let Some(schemas) = openapi.pointer("/components/schemas").and_then(Value::as_object) {
        for (name, schema) in schemas {
            body.push_str(&schema_html(name, schema));
        }
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} API reference</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#222}}\
         .method{{background:#234;color:#fff;padding:0 .4em;border-radius:3px;font-size:.8em}}\
         section{{border-top:1px solid #ddd;padding:.5em 0}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ddd;padding:.2em .5em;text-align:left;vertical-align:top}}</style></head>\
         <body>{}</body></html>",
        escape(title),
        body
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn document() -> Value {
        let mut value = serde_json::to_value(ApiDoc::openapi()).unwrap();
        complete(&mut value);
        value
    }

    /// Every request body is bounded in the document: a new field gets its limits stated (or
    /// at least its NUL rule) rather than silently accepting what the handler refuses.
    #[test]
    fn request_fields_are_bounded() {
        let doc = document();
        let paths = doc["paths"].as_object().unwrap();
        for (path, item) in paths {
            for (method, operation) in item.as_object().unwrap() {
                let reference = operation
                    .pointer("/requestBody/content/application~1json/schema/$ref")
                    .and_then(Value::as_str);
                if let Some(reference) = reference {
                    let name = reference.rsplit('/').next().unwrap();
                    assert!(REQUEST_SCHEMAS.contains(&name), "{method} {path}: {name}");
                }
            }
        }
        for name in REQUEST_SCHEMAS {
            let schema = &doc["components"]["schemas"][name];
            let properties = schema["properties"].as_object().expect(name);
            for (field, value) in properties {
                let property = value.as_object().expect(field);
                if has_type(property, "integer") {
                    assert!(property.get("maximum").is_some(), "{name}.{field}: {value}");
                    assert!(property.get("minimum").is_some(), "{name}.{field}: {value}");
                }
                if has_type(property, "string") {
                    let bounded =
                        ["pattern", "enum", "format"].iter().any(|k| property.contains_key(*k));
                    assert!(bounded, "{name}.{field}: {value}");
                }
            }
        }
    }

    /// The document's patterns, read by a regex engine, against what the handlers accept.
    #[test]
    fn patterns_agree_with_the_handlers() {
        let email = regex::Regex::new(&email_pattern()).unwrap();
        for (text, valid) in [
            ("a@b.c", true),
            ("a@b@c.d", true),
            ("a@b..c", true),
            ("@b.c", false),
            ("a@.b", false),
            ("a@b.", false),
            ("a@bc", false),
            ("a b@c.d", false),
            ("a@b.c\u{3000}", false),
            ("a@b\0.c", false),
        ] {
            assert_eq!(email.is_match(text), valid, "{text:?}");
            let member = crate::routes::members::check_email(text).is_ok() && !text.contains('\0');
            assert_eq!(member, valid, "{text:?}");
        }
        let group_by = regex::Regex::new(&group_by_pattern()).unwrap();
        for (text, valid) in
            [("", true), ("service", true), (" day ,,hour", true), ("x", false), (" ", false)]
        {
            assert_eq!(group_by.is_match(text), valid, "{text:?}");
        }
        let slug = regex::Regex::new(&crate::routes::slug_pattern()).unwrap();
        for (text, valid) in [("api", true), ("a-b_1", true), ("", false), ("A", false)] {
            assert_eq!(slug.is_match(text), valid, "{text:?}");
            assert_eq!(crate::routes::check_slug("id", text).is_ok(), valid, "{text:?}");
        }
    }
}
