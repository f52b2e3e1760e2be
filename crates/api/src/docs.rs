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

/// Completes what the annotations leave implicit, for every operation at once: a unique
/// `operationId`, the declared path parameters, the common error answers as
/// `application/problem+json`, and the bounds of `Idempotency-Key`.
/// What the API checks of query parameters, stated in the document: text holds no NUL, a page
/// holds 1 to 100 items, a cursor is a position in decimal, some values come from a list, and
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
    let Some(schema) = parameter.get_mut("schema").and_then(Value::as_object_mut) else { return };
    let has_type = |schema: &serde_json::Map<String, Value>, name: &str| match schema.get("type") {
        Some(Value::String(t)) => t == name,
        Some(Value::Array(ts)) => ts.iter().any(|t| t == name),
        _ => false,
    };
    // Text of any length is accepted (an empty filter matches nothing), but never a NUL.
    if has_type(schema, "string") && !is_cursor && !is_time && choices.is_none() {
        schema.insert("pattern".into(), Value::from("^[^\\u0000]*$"));
    }
    if let Some(choices) = choices {
        schema.insert("enum".into(), Value::from(choices));
    }
    if is_time && has_type(schema, "string") {
        schema.insert("format".into(), Value::from("date-time"));
    }
    if is_cursor && has_type(schema, "string") {
        let pattern = format!("^[0-9]{{1,{}}}$", crate::extract::CURSOR_DIGITS_MAX);
        schema.insert("pattern".into(), Value::from(pattern));
    }
    if is_limit && has_type(schema, "integer") {
        schema.insert("minimum".into(), Value::from(1));
        schema.insert("maximum".into(), Value::from(credits_core::PAGE_SIZE_MAX));
    }
}

fn complete(openapi: &mut Value) {
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
