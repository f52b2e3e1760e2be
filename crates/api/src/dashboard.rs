//! The web dashboard at `/`: static assets embedded in the binary (no CDN), served with a strict
//! Content-Security-Policy. The pages call the `/v2` API with the session cookie set by
//! `POST /session` and send the CSRF token on every unsafe request.
//!
//! The files live in `dashboard/` at the repository root and are compiled in with
//! `include_str!`, so the binary is the whole deployment and the page works with no internet.
//! The page is one HTML document with hash routes (`#/overview`, `#/credits`, ...), so `/` is
//! the only HTML path. There is no inline script or style anywhere, which lets the policy forbid
//! both: an injected `<script>` or `style` attribute would not run.

use axum::extract::Path;
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::error::ApiError;
use crate::AppState;

/// Only this origin's scripts, styles and connections; no framing, no `<base>`, forms post here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'";

const INDEX_HTML: &str = include_str!("../../../dashboard/index.html");

/// The embedded assets by file name, with their content types.
const ASSETS: [(&str, &str, &str); 3] = [
    ("app.js", "text/javascript; charset=utf-8", include_str!("../../../dashboard/app.js")),
    ("app.css", "text/css; charset=utf-8", include_str!("../../../dashboard/app.css")),
    ("icon.svg", "image/svg+xml", include_str!("../../../dashboard/icon.svg")),
];

/// Routes of the dashboard (pages and assets).
pub fn routes() -> Router<AppState> {
    Router::new().route("/", get(index)).route("/assets/{file}", get(asset))
}

/// The headers every dashboard answer carries: the policy, no MIME sniffing, no referrer.
fn secured(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers
        .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Assets are not fingerprinted: revalidate so that a new binary's files are used at once.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

async fn index() -> Response {
    secured("text/html; charset=utf-8", INDEX_HTML)
}

async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .map(|(_, content_type, body)| secured(content_type, body))
        .ok_or_else(|| ApiError::not_found(format!("no such asset {file}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page loads only files that are embedded, so no link in it answers 404.
    #[test]
    fn index_references_only_embedded_assets() {
        for reference in INDEX_HTML.split("/assets/").skip(1) {
            let name: String =
                reference.chars().take_while(|c| *c != '"' && *c != '?' && *c != '\'').collect();
            assert!(ASSETS.iter().any(|(file, _, _)| *file == name), "{name} is not embedded");
        }
    }

    /// The policy forbids inline code, so the page must have none.
    #[test]
    fn index_has_no_inline_script_or_style() {
        assert!(!INDEX_HTML.contains("<style"));
        assert!(!INDEX_HTML.contains(" style="));
        assert!(!INDEX_HTML.contains("<script>"));
        assert!(!INDEX_HTML.contains(" onclick="));
    }
}
