//! The credits ledger state machine.
//!
//! This crate knows credit records, the burn-down order, reservations, expiry and void, and the
//! ledger entries each change produces. It does no I/O: the store loads the part of an account
//! it needs into a [`Book`], calls one operation with the current time and fresh ids as
//! arguments, and persists what changed. Every operation either rejects with a value (and
//! changes nothing) or applies completely; the equation of a credit record is asserted after
//! every change.

pub mod access;
pub mod book;
pub mod budget;
pub mod constants;
pub mod model;

pub use book::{Book, Effects};
pub use constants::*;
pub use model::*;
