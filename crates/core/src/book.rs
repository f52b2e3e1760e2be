//! The open part of one account's ledger and the operations on it.
//!
//! A [`Book`] holds the account's open credit records (those with something remaining or
//! reserved) and the reservations an operation needs. Each operation first settles what time has
//! made due (hold expiry, then credit expiry, in the order of their instants), then either rejects
//! without changing anything or applies completely, recording every change to a credit record as a
//! ledger entry in [`Effects`].

use std::collections::BTreeMap;

use crate::model::{
    Actor, Allocation, CreditKind, CreditRecord, EntryType, LedgerEntry, Rejection, Reservation,
    ReservationStatus, Timestamp,
};

/// What an operation changed: the store persists exactly this.
#[derive(Debug, Default, Clone)]
pub struct Effects {
    pub entries: Vec<LedgerEntry>,
    /// Indexes into `Book::records` of the records that changed, without duplicates.
    pub records_changed: Vec<usize>,
    /// Indexes into `Book::holds` of the reservations that changed or were created.
    pub holds_changed: Vec<usize>,
}

impl Effects {
    fn record_changed(&mut self, index: usize) {
        if !self.records_changed.contains(&index) {
            self.records_changed.push(index);
        }
    }
    fn hold_changed(&mut self, index: usize) {
        if !self.holds_changed.contains(&index) {
            self.holds_changed.push(index);
        }
    }
}

/// Available and reserved credits of one service (or of `any`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceBalance {
    pub available: u64,
    pub reserved: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextExpiry {
    pub credit_id: String,
    pub expires_at: Timestamp,
    pub remaining: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    pub available: u64,
    pub reserved: u64,
    pub by_service: BTreeMap<String, ServiceBalance>,
    pub next_expiry: Option<NextExpiry>,
}

/// A usage to charge: its id, service, cost and who caused it.
#[derive(Debug, Clone)]
pub struct UsageCharge {
    pub usage_id: String,
    pub service: String,
    pub credits: u64,
    pub actor: Actor,
}

/// A hold to place.
#[derive(Debug, Clone)]
pub struct HoldRequest {
    pub reservation_id: String,
    pub service: String,
    pub credits: u64,
    pub ttl_seconds: u64,
    pub actor: Actor,
}

#[derive(Debug, Clone, Default)]
pub struct Book {
    pub account_id: String,
    pub records: Vec<CreditRecord>,
    pub holds: Vec<Reservation>,
}

enum Due {
    Hold(usize),
    Record(usize),
}

impl Book {
    pub fn new(account_id: impl Into<String>) -> Book {
        Book { account_id: account_id.into(), records: Vec::new(), holds: Vec::new() }
    }

    fn record_index(&self, credit_id: &str) -> Option<usize> {
        self.records.iter().position(|r| r.id == credit_id)
    }

    fn entry(
        &self,
        index: usize,
        entry_type: EntryType,
        credits: u64,
        at: Timestamp,
    ) -> LedgerEntry {
        let record = &self.records[index];
        LedgerEntry {
            account_id: record.account_id.clone(),
            credit_id: record.id.clone(),
            entry_type,
            credits,
            remaining_after: record.remaining,
            usage_id: None,
            reservation_id: None,
            actor: Actor::default(),
            created_at: at,
        }
    }

    /// Applies every hold expiry and credit expiry due at `now`, in the order of their instants
    /// (a hold before a record at the same instant). Reads call it on a copy, so what they show is
    /// exact whether or not a sweep has run; writes call it first and persist what it changed.
    pub fn settle(&mut self, now: Timestamp, effects: &mut Effects) {
        let mut due: Vec<(Timestamp, u8, Due)> = Vec::new();
        for (index, hold) in self.holds.iter().enumerate() {
            if hold.status == ReservationStatus::Held && hold.expires_at <= now {
                due.push((hold.expires_at, 0, Due::Hold(index)));
            }
        }
        for (index, record) in self.records.iter().enumerate() {
            if let Some(at) = record.expires_at {
                if at <= now && !record.expired && !record.voided {
                    due.push((at, 1, Due::Record(index)));
                }
            }
        }
        if due.is_empty() {
            return;
        }
        due.sort_by_key(|(at, order, _)| (*at, *order));
        for (at, _, item) in due {
            match item {
                Due::Hold(index) => {
                    let reservation_id = self.holds[index].id.clone();
                    let allocations = self.holds[index].allocations.clone();
                    for allocation in &allocations {
                        self.release_allocation(allocation, &reservation_id, at, effects);
                    }
                    let hold = &mut self.holds[index];
                    hold.status = ReservationStatus::Expired;
                    hold.updated_at = at;
                    effects.hold_changed(index);
                }
                Due::Record(index) => {
                    let record = &mut self.records[index];
                    let credits = record.remaining;
                    record.expired_amount += credits;
                    record.remaining = 0;
                    record.expired = true;
                    record.updated_at = at;
                    record.assert_equation();
                    if credits > 0 {
                        let entry = self.entry(index, EntryType::Expiry, credits, at);
                        effects.entries.push(entry);
                    }
                    effects.record_changed(index);
                }
            }
        }
    }

    /// Returns held credits to their record. Credits released to a record that has expired or
    /// been voided meanwhile go straight on to `expired_amount` or `voided_amount`, and the ledger
    /// shows both steps.
    fn release_allocation(
        &mut self,
        allocation: &Allocation,
        reservation_id: &str,
        at: Timestamp,
        effects: &mut Effects,
    ) {
        // A read may settle a subset of the account: a record not loaded is not shown either.
        let Some(index) = self.record_index(&allocation.credit_id) else {
            return;
        };
        let credits = allocation.credits;
        let record = &mut self.records[index];
        assert!(record.reserved >= credits, "release of more than reserved: {record:?}");
        record.reserved -= credits;
        record.remaining += credits;
        record.updated_at = at;
        let mut entry = self.entry(index, EntryType::Release, credits, at);
        entry.reservation_id = Some(reservation_id.to_string());
        effects.entries.push(entry);
        let record = &mut self.records[index];
        let follow_up = if record.voided {
            record.voided_amount += credits;
            Some(EntryType::Void)
        } else if record.expired {
            record.expired_amount += credits;
            Some(EntryType::Expiry)
        } else {
            None
        };
        if let Some(entry_type) = follow_up {
            record.remaining -= credits;
            let mut entry = self.entry(index, entry_type, credits, at);
            entry.reservation_id = Some(reservation_id.to_string());
            effects.entries.push(entry);
        }
        self.records[index].assert_equation();
        effects.record_changed(index);
    }

    /// Credits that usage of `service` can spend now: its own records plus `any`.
    /// Call after [`Book::settle`].
    pub fn available(&self, service: &str) -> u64 {
        self.records
            .iter()
            .filter(|r| r.applies_to(service) && !r.expired && !r.voided)
            .fold(0u64, |sum, r| sum.saturating_add(r.remaining))
    }

    /// Picks the credits to draw in burn-down order, or rejects if they are short.
    fn draw_plan(&self, service: &str, credits: u64) -> Result<Vec<(usize, u64)>, Rejection> {
        let mut candidates: Vec<usize> = (0..self.records.len())
            .filter(|&i| {
                let r = &self.records[i];
                r.applies_to(service) && !r.expired && !r.voided && r.remaining > 0
            })
            .collect();
        candidates.sort_by(|&a, &b| {
            self.records[a].burn_down_key().cmp(&self.records[b].burn_down_key())
        });
        let mut plan = Vec::new();
        let mut left = credits;
        for index in candidates {
            if left == 0 {
                break;
            }
            let take = left.min(self.records[index].remaining);
            plan.push((index, take));
            left -= take;
        }
        if left > 0 {
            return Err(Rejection::InsufficientCredits {
                available: self.available(service),
                required: credits,
            });
        }
        Ok(plan)
    }

    /// Adds a new purchase or grant.
    pub fn create_credit(
        &mut self,
        record: CreditRecord,
        now: Timestamp,
        effects: &mut Effects,
    ) -> Result<usize, Rejection> {
        assert!(record.account_id == self.account_id);
        assert!(record.used == 0 && record.reserved == 0 && record.remaining == record.amount);
        if !crate::model::credits_valid(record.amount) {
            return Err(Rejection::Validation("amount must be 1 to 9007199254740991".into()));
        }
        if record.expires_by(now) {
            return Err(Rejection::Validation("expiresAt must be in the future".into()));
        }
        self.settle(now, effects);
        record.assert_equation();
        let entry_type = match record.kind {
            CreditKind::Purchase => EntryType::Purchase,
            CreditKind::Grant => EntryType::Grant,
        };
        let credits = record.amount;
        self.records.push(record);
        let index = self.records.len() - 1;
        effects.entries.push(self.entry(index, entry_type, credits, now));
        effects.record_changed(index);
        Ok(index)
    }

    /// Charges a usage, all or nothing. Returns the allocations and what remains available to
    /// the service afterwards.
    pub fn record_usage(
        &mut self,
        charge: &UsageCharge,
        now: Timestamp,
        effects: &mut Effects,
    ) -> Result<(Vec<Allocation>, u64), Rejection> {
        assert!(crate::model::credits_valid(charge.credits));
        self.settle(now, effects);
        let plan = self.draw_plan(&charge.service, charge.credits)?;
        let before = self.available(&charge.service);
        let mut allocations = Vec::with_capacity(plan.len());
        for (index, take) in plan {
            let record = &mut self.records[index];
            record.remaining -= take;
            record.used += take;
            record.updated_at = now;
            record.assert_equation();
            let mut entry = self.entry(index, EntryType::Usage, take, now);
            entry.usage_id = Some(charge.usage_id.clone());
            entry.actor = charge.actor.clone();
            effects.entries.push(entry);
            effects.record_changed(index);
            allocations
                .push(Allocation { credit_id: self.records[index].id.clone(), credits: take });
        }
        let after = self.available(&charge.service);
        assert!(after + charge.credits == before);
        Ok((allocations, after))
    }

    /// Moves credits from remaining to reserved, all or nothing.
    pub fn hold(
        &mut self,
        request: &HoldRequest,
        now: Timestamp,
        effects: &mut Effects,
    ) -> Result<usize, Rejection> {
        assert!(crate::model::credits_valid(request.credits));
        self.settle(now, effects);
        let plan = self.draw_plan(&request.service, request.credits)?;
        let mut allocations = Vec::with_capacity(plan.len());
        for (index, take) in plan {
            let record = &mut self.records[index];
            record.remaining -= take;
            record.reserved += take;
            record.updated_at = now;
            record.assert_equation();
            let mut entry = self.entry(index, EntryType::Hold, take, now);
            entry.reservation_id = Some(request.reservation_id.clone());
            entry.actor = request.actor.clone();
            effects.entries.push(entry);
            effects.record_changed(index);
            allocations
                .push(Allocation { credit_id: self.records[index].id.clone(), credits: take });
        }
        self.holds.push(Reservation {
            id: request.reservation_id.clone(),
            account_id: self.account_id.clone(),
            service: request.service.clone(),
            credits: request.credits,
            captured: 0,
            status: ReservationStatus::Held,
            expires_at: now.plus_seconds(request.ttl_seconds),
            allocations,
            actor: request.actor.clone(),
            usage_id: None,
            created_at: now,
            updated_at: now,
        });
        let index = self.holds.len() - 1;
        effects.hold_changed(index);
        Ok(index)
    }

    fn held_index(&self, reservation_id: &str) -> Result<usize, Rejection> {
        let index = self
            .holds
            .iter()
            .position(|h| h.id == reservation_id)
            .ok_or_else(|| Rejection::NotFound(format!("reservation {reservation_id}")))?;
        let status = self.holds[index].status;
        if status != ReservationStatus::Held {
            return Err(Rejection::InvalidState(format!(
                "reservation {reservation_id} is {}",
                status.as_str()
            )));
        }
        Ok(index)
    }

    /// Turns held credits into usage (all of them, or `credits` of them) and returns the rest.
    /// Captures draw on the hold's allocations in their order. Returns the captured allocations.
    pub fn capture(
        &mut self,
        reservation_id: &str,
        credits: Option<u64>,
        usage_id: &str,
        actor: &Actor,
        now: Timestamp,
        effects: &mut Effects,
    ) -> Result<Vec<Allocation>, Rejection> {
        self.settle(now, effects);
        let index = self.held_index(reservation_id)?;
        let held = self.holds[index].credits;
        let credits = credits.unwrap_or(held);
        if credits == 0 || credits > held {
            return Err(Rejection::Validation(format!("credits must be 1 to the {held} held")));
        }
        let allocations = self.holds[index].allocations.clone();
        // Check before the first change, so that a capture applies completely or not at all.
        if let Some(missing) =
            allocations.iter().find(|a| self.record_index(&a.credit_id).is_none())
        {
            return Err(Rejection::NotFound(format!("credit {}", missing.credit_id)));
        }
        let mut left = credits;
        let mut captured = Vec::new();
        for allocation in &allocations {
            let take = left.min(allocation.credits);
            if take > 0 {
                let record_index = self
                    .record_index(&allocation.credit_id)
                    .ok_or_else(|| Rejection::NotFound(allocation.credit_id.clone()))?;
                let record = &mut self.records[record_index];
                assert!(record.reserved >= take);
                record.reserved -= take;
                record.used += take;
                record.updated_at = now;
                record.assert_equation();
                let mut entry = self.entry(record_index, EntryType::Capture, take, now);
                entry.usage_id = Some(usage_id.to_string());
                entry.reservation_id = Some(reservation_id.to_string());
                entry.actor = actor.clone();
                effects.entries.push(entry);
                effects.record_changed(record_index);
                captured
                    .push(Allocation { credit_id: allocation.credit_id.clone(), credits: take });
                left -= take;
            }
            let rest = allocation.credits - take;
            if rest > 0 {
                let rest_allocation =
                    Allocation { credit_id: allocation.credit_id.clone(), credits: rest };
                self.release_allocation(&rest_allocation, reservation_id, now, effects);
            }
        }
        assert!(left == 0);
        let hold = &mut self.holds[index];
        hold.captured = credits;
        hold.status = ReservationStatus::Captured;
        hold.usage_id = Some(usage_id.to_string());
        hold.updated_at = now;
        effects.hold_changed(index);
        Ok(captured)
    }

    /// Returns all held credits.
    pub fn release(
        &mut self,
        reservation_id: &str,
        now: Timestamp,
        effects: &mut Effects,
    ) -> Result<(), Rejection> {
        self.settle(now, effects);
        let index = self.held_index(reservation_id)?;
        let allocations = self.holds[index].allocations.clone();
        for allocation in &allocations {
            self.release_allocation(allocation, reservation_id, now, effects);
        }
        let hold = &mut self.holds[index];
        hold.status = ReservationStatus::Released;
        hold.updated_at = now;
        effects.hold_changed(index);
        Ok(())
    }

    /// Voids what is left of a record. Held credits stay held; when released they are voided too.
    pub fn void(
        &mut self,
        credit_id: &str,
        actor: &Actor,
        now: Timestamp,
        effects: &mut Effects,
    ) -> Result<usize, Rejection> {
        self.settle(now, effects);
        let index = self
            .record_index(credit_id)
            .ok_or_else(|| Rejection::NotFound(format!("credit {credit_id}")))?;
        let record = &mut self.records[index];
        if record.voided || record.expired || record.remaining == 0 {
            return Err(Rejection::InvalidState(format!(
                "credit {credit_id} is {} with nothing remaining to void",
                record.status().as_str()
            )));
        }
        let credits = record.remaining;
        record.voided_amount += credits;
        record.remaining = 0;
        record.voided = true;
        record.updated_at = now;
        record.assert_equation();
        let mut entry = self.entry(index, EntryType::Void, credits, now);
        entry.actor = actor.clone();
        effects.entries.push(entry);
        effects.record_changed(index);
        Ok(index)
    }

    /// The balance over every record in the book. Call after [`Book::settle`].
    pub fn balance(&self) -> Balance {
        let mut balance =
            Balance { available: 0, reserved: 0, by_service: BTreeMap::new(), next_expiry: None };
        for record in &self.records {
            if !record.open() {
                continue;
            }
            let spendable = if record.expired || record.voided { 0 } else { record.remaining };
            balance.available += spendable;
            balance.reserved += record.reserved;
            let entry = balance.by_service.entry(record.service.clone()).or_default();
            entry.available += spendable;
            entry.reserved += record.reserved;
            if let (Some(at), true) = (record.expires_at, spendable > 0) {
                let earlier = match &balance.next_expiry {
                    None => true,
                    Some(next) => {
                        (at, record.id.as_str()) < (next.expires_at, next.credit_id.as_str())
                    }
                };
                if earlier {
                    balance.next_expiry = Some(NextExpiry {
                        credit_id: record.id.clone(),
                        expires_at: at,
                        remaining: spendable,
                    });
                }
            }
        }
        balance
    }
}
