//! The web dashboard at `/`: static assets embedded in the binary (no CDN), served with a strict
//! Content-Security-Policy. The pages call the `/v2` API with the session cookie set by
//! `POST /session` and send the CSRF token on every unsafe request.

use axum::Router;

use crate::AppState;

/// Routes of the dashboard (pages and assets).
pub fn routes() -> Router<AppState> {
    Router::new()
}
