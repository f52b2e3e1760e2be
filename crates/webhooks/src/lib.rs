//! Webhook delivery for the credits service.
//!
//! Goal: deliver every stored event to the endpoints that want it, at least once, signed the
//! Standard Webhooks way, without letting an endpoint URL reach the service's own network.
//! Method: the store keeps the outbox (events and pending deliveries, written in the same
//! transaction as the change that caused them); the [`Dispatcher`] polls it for due deliveries,
//! sends them concurrently, and records every attempt (and the next retry, from [`backoff`]) in
//! one write per round. Secrets are kept sealed at rest ([`secret`]), signed per attempt
//! ([`sign`]), and endpoint URLs are checked both when given and when resolved ([`policy`]).

pub mod backoff;
pub mod dispatcher;
pub mod policy;
pub mod secret;
pub mod sign;

pub use backoff::{retry_delay, ATTEMPTS_MAX};
pub use dispatcher::{build_envelope, signed_headers, Dispatcher};
pub use policy::UrlPolicy;
pub use secret::{generate_secret, SecretBox};
pub use sign::{sign, verify};
