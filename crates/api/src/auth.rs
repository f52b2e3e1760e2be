//! Bearer-key authentication and the caller's powers.
//!
//! A key is looked up by the SHA-256 of its secret (keys are 256-bit random, so a plain hash is
//! enough and the secret is never stored). Found keys are cached briefly so that the hot path of
//! a debit does not read the database to authenticate. Operator keys (`accountId` null) act on
//! any account; account keys (next issue) act on their own account only. Lookups go by the hash,
//! never by the secret, so their timing reveals nothing about a secret.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use credits_core::access::Role;
use credits_core::{Actor, Timestamp};
use credits_store::{AccountScope, ApiKey};

use crate::error::{ApiError, ErrorCode};
use crate::AppState;

/// How long a found key is trusted without asking the database again.
const KEY_CACHE_TTL: Duration = Duration::from_secs(10);
const KEY_CACHE_ENTRIES_MAX: usize = 10_000;

pub fn secret_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A found key and when it was found.
type CachedKey = (Arc<Principal>, Instant);

/// Found keys by secret hash, and the keys used since the last flush of `lastUsedAt`.
#[derive(Default)]
pub struct KeyCache {
    entries: RwLock<HashMap<[u8; 32], CachedKey>>,
    used: Mutex<HashMap<String, Timestamp>>,
    /// Bumped by every forget: a lookup that started before a revocation does not cache its
    /// (now stale) answer.
    generation: AtomicU64,
}

impl KeyCache {
    /// Forgets a revoked key at once, so that its next request is looked up (and refused).
    pub fn forget(&self, key_id: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut entries) = self.entries.write() {
            entries.retain(|_, (principal, _)| principal.key_id != key_id);
        }
    }

    /// Forgets every cached key (after a member's keys were revoked, say).
    pub fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut entries) = self.entries.write() {
            entries.clear();
        }
    }

    fn remember(&self, hash: [u8; 32], principal: Arc<Principal>, generation: u64) {
        if let Ok(mut entries) = self.entries.write() {
            if self.generation.load(Ordering::SeqCst) != generation {
                return;
            }
            if entries.len() >= KEY_CACHE_ENTRIES_MAX {
                entries.clear();
            }
            entries.insert(hash, (principal, Instant::now()));
        }
    }

    fn touch(&self, key_id: &str) {
        if let Ok(mut used) = self.used.lock() {
            if used.len() < KEY_CACHE_ENTRIES_MAX || used.contains_key(key_id) {
                used.insert(key_id.to_string(), crate::extract::now());
            }
        }
    }

    /// The keys used since the last call, with when: written in one batch off the hot path.
    pub fn take_used(&self) -> Vec<(String, Timestamp)> {
        match self.used.lock() {
            Ok(mut used) => used.drain().collect(),
            Err(_) => Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Principal {
    pub key_id: String,
    pub account_id: Option<String>,
    pub member_id: Option<String>,
    /// The current role of the member a key is bound to.
    pub role: Option<Role>,
    pub scopes: Vec<String>,
}

impl Principal {
    /// A member-bound key carries at most its member's current role: a demoted member's keys
    /// lose the scopes the new role lacks.
    fn from_key(key: ApiKey, role: Option<Role>) -> Principal {
        let scopes = match role {
            None => key.scopes,
            Some(role) => {
                key.scopes.into_iter().filter(|s| role.scopes().contains(&s.as_str())).collect()
            }
        };
        Principal {
            key_id: key.id,
            account_id: key.account_id,
            member_id: key.member_id,
            role,
            scopes,
        }
    }

    /// Whether the key carries `scope` (the admin key carries `*`).
    pub fn has(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == "*" || s == scope)
    }

    pub fn is_operator(&self) -> bool {
        self.account_id.is_none()
    }

    /// 403 unless the key carries `scope` (operator keys carry `*`).
    pub fn require(&self, scope: &str) -> Result<(), ApiError> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(ApiError::new(ErrorCode::Forbidden, format!("this key lacks the scope {scope}")))
        }
    }

    pub fn require_operator(&self) -> Result<(), ApiError> {
        if self.is_operator() {
            Ok(())
        } else {
            Err(ApiError::new(ErrorCode::Forbidden, "only operator keys may do this"))
        }
    }

    /// The account a write acts on: an operator names it in the body, an account key acts on
    /// its own (naming another answers 404, as if it did not exist).
    pub fn account_for_write(&self, requested: Option<&str>) -> Result<String, ApiError> {
        match (&self.account_id, requested) {
            (None, Some(id)) => Ok(id.to_string()),
            (None, None) => Err(ApiError::validation("accountId is required for operator keys")),
            (Some(own), None) => Ok(own.clone()),
            (Some(own), Some(id)) if own == id => Ok(own.clone()),
            (Some(_), Some(id)) => Err(ApiError::not_found(format!("no such account {id}"))),
        }
    }

    /// The account a read is about; `required` makes it mandatory for operators.
    pub fn account_for_read(
        &self,
        requested: Option<&str>,
        required: bool,
    ) -> Result<Option<String>, ApiError> {
        match (&self.account_id, requested) {
            (None, Some(id)) => Ok(Some(id.to_string())),
            (None, None) if required => {
                Err(ApiError::bad_request("accountId is required for operator keys"))
            }
            (None, None) => Ok(None),
            (Some(own), None) => Ok(Some(own.clone())),
            (Some(own), Some(id)) if own == id => Ok(Some(own.clone())),
            (Some(_), Some(id)) => Err(ApiError::not_found(format!("no such account {id}"))),
        }
    }

    /// Whether the caller may see objects of `account_id` (others answer 404, as if absent).
    pub fn sees(&self, account_id: &str) -> bool {
        self.account_id.as_deref().is_none_or(|own| own == account_id)
    }

    pub fn scope(&self) -> AccountScope {
        self.account_id.clone()
    }

    /// Idempotency keys are scoped to the caller's account; operator keys share one scope.
    pub fn idempotency_scope(&self) -> String {
        match &self.account_id {
            None => "operator".to_string(),
            Some(account_id) => account_id.clone(),
        }
    }

    pub fn actor(&self) -> Actor {
        Actor { member_id: self.member_id.clone(), api_key_id: Some(self.key_id.clone()) }
    }
}

fn unauthorized(detail: &str) -> ApiError {
    ApiError::new(ErrorCode::Unauthorized, detail)
}

/// The principal of the key with this hash: from the cache, else from the database.
pub async fn principal_for_hash(
    state: &AppState,
    hash: [u8; 32],
) -> Result<Arc<Principal>, ApiError> {
    if let Ok(entries) = state.keys.entries.read() {
        if let Some((principal, at)) = entries.get(&hash) {
            if at.elapsed() < KEY_CACHE_TTL {
                state.keys.touch(&principal.key_id);
                return Ok(principal.clone());
            }
        }
    }
    let generation = state.keys.generation.load(Ordering::SeqCst);
    let key = state.store.read(move |reader| reader.api_key_by_hash(&hash)).await?;
    let Some((key, role)) = key else {
        return Err(unauthorized("unknown or revoked key"));
    };
    let principal = Arc::new(Principal::from_key(key, role));
    state.keys.touch(&principal.key_id);
    state.keys.remember(hash, principal.clone(), generation);
    Ok(principal)
}

impl FromRequestParts<AppState> for Arc<Principal> {
    type Rejection = ApiError;

    /// A bearer key, or else the dashboard's session cookie (with CSRF checks); then the key's
    /// rate limit.
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Arc<Principal>, ApiError> {
        let principal = authenticate(parts, state).await?;
        if let Some(limit) = &state.rate_limit {
            if let Err(wait) = limit.check(&principal.key_id) {
                let mut error = ApiError::new(
                    ErrorCode::RateLimited,
                    "too many requests for this key; retry after the Retry-After seconds",
                );
                error.retry_after_seconds = Some(wait.as_secs() + 1);
                return Err(error);
            }
        }
        Ok(principal)
    }
}

async fn authenticate(parts: &Parts, state: &AppState) -> Result<Arc<Principal>, ApiError> {
    let Some(header) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
        if let Some(principal) = crate::session::principal_from_session(parts, state).await? {
            return Ok(principal);
        }
        return Err(unauthorized("the Authorization: Bearer <key> header is missing"));
    };
    let secret = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= 512)
        .ok_or_else(|| unauthorized("the Authorization header must be Bearer <key>"))?;
    principal_for_hash(state, secret_hash(secret)).await
}
