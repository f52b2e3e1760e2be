//! Every limit of the service in one place, related to each other by compile-time asserts.

/// The largest credit amount: 2^53 - 1, so JavaScript clients never lose precision.
pub const CREDITS_MAX: u64 = (1 << 53) - 1;

/// The most events one `POST /v2/usage/batch` may carry.
pub const BATCH_SIZE_MAX: usize = 1000;

/// The default and the largest page of a list.
pub const PAGE_SIZE_DEFAULT: usize = 20;
pub const PAGE_SIZE_MAX: usize = 100;

/// The largest request body, in bytes. A full batch of usage events must fit.
pub const REQUEST_BYTES_MAX: usize = 1024 * 1024;

/// Idempotency keys are 1 to 255 characters and are kept for 24 hours.
pub const IDEMPOTENCY_KEY_LENGTH_MAX: usize = 255;
pub const IDEMPOTENCY_TTL_SECONDS: i64 = 24 * 60 * 60;

/// Reservations: default and largest time to live.
pub const RESERVATION_TTL_SECONDS_DEFAULT: u64 = 300;
pub const RESERVATION_TTL_SECONDS_MAX: u64 = 86_400;

/// The most commands the writer commits in one transaction.
pub const COMMIT_BATCH_SIZE_MAX: usize = 2048;

/// Short text fields (names, descriptions, references, metadata values), in characters.
pub const TEXT_LENGTH_MAX: usize = 1024;
pub const METADATA_ENTRIES_MAX: usize = 50;
pub const METADATA_KEY_LENGTH_MAX: usize = 40;

/// Service and operation ids: 1 to 64 of `a-z`, `0-9`, `-`, `_`; a service has at most 100
/// operations.
pub const SLUG_LENGTH_MAX: usize = 64;
pub const OPERATIONS_MAX: usize = 100;

/// Member emails, in characters.
pub const EMAIL_LENGTH_MAX: usize = 254;

/// An account's `expiringSoonDays`: 1 to 365.
pub const EXPIRING_SOON_DAYS_MAX: u32 = 365;

/// A budget has at most 10 thresholds, each 1 to 1000 percent of its limit.
pub const BUDGET_THRESHOLDS_MAX: usize = 10;
pub const BUDGET_THRESHOLD_PERCENT_MAX: u32 = 1000;

const _: () = assert!(PAGE_SIZE_DEFAULT <= PAGE_SIZE_MAX);
const _: () = assert!(RESERVATION_TTL_SECONDS_DEFAULT <= RESERVATION_TTL_SECONDS_MAX);
const _: () = assert!(BATCH_SIZE_MAX <= COMMIT_BATCH_SIZE_MAX);
// A batch of the largest size with modest events must fit in one request body.
const _: () = assert!(BATCH_SIZE_MAX * 512 <= REQUEST_BYTES_MAX);
