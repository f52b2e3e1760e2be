//! Keeping budgets in step with the ledger inside the writer: a blocking budget is checked before
//! a charge (in the same serialized step, so it holds under any concurrency exactly as balances
//! do), charges and holds are counted, and released or expired holds stop counting.

use crate::db::Conn;

use credits_core::budget::Budget;
use credits_core::{Actor, Book, Rejection, ReservationStatus, Timestamp};

use crate::outbox::emit;
use crate::rows;
use crate::types::EventData;
use crate::writer::Writer;
use crate::StoreError;

pub(crate) struct Spending {
    budgets: Vec<Budget>,
    changed: Vec<bool>,
}

impl Spending {
    pub(crate) fn load(connection: &Conn<'_>, account_id: &str) -> Result<Spending, StoreError> {
        Ok(Spending::of(rows::budgets_of_account(connection, account_id)?))
    }

    /// The account's budgets, as read.
    pub(crate) fn of(budgets: Vec<Budget>) -> Spending {
        let changed = vec![false; budgets.len()];
        Spending { budgets, changed }
    }

    /// Stops counting what changed holds gave back: all of a released or expired hold, the
    /// uncaptured rest of a captured one.
    pub(crate) fn holds_settled(&mut self, book: &Book, holds: &[usize], now: Timestamp) {
        for &index in holds {
            let hold = &book.holds[index];
            let returned = match hold.status {
                ReservationStatus::Held => continue,
                ReservationStatus::Captured => hold.credits - hold.captured,
                ReservationStatus::Released | ReservationStatus::Expired => hold.credits,
            };
            if returned == 0 {
                continue;
            }
            for (budget, changed) in self.budgets.iter_mut().zip(&mut self.changed) {
                if budget.scope.covers(&hold.actor, &hold.service) {
                    budget.refund(returned, hold.created_at, now);
                    *changed = true;
                }
            }
        }
    }

    /// Refuses a charge that would take a blocking budget in scope past its limit.
    pub(crate) fn check(
        &self,
        actor: &Actor,
        service: &str,
        credits: u64,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        let blocking = self
            .budgets
            .iter()
            .find(|budget| budget.scope.covers(actor, service) && budget.blocks(credits, now));
        match blocking {
            None => Ok(()),
            Some(budget) => Err(Rejection::BudgetExceeded {
                budget_id: budget.id.clone(),
                limit: budget.limit,
                spent: budget.spent_at(now),
                required: credits,
            }),
        }
    }

    pub(crate) fn charge(&mut self, actor: &Actor, service: &str, credits: u64, now: Timestamp) {
        if credits == 0 {
            return;
        }
        for (budget, changed) in self.budgets.iter_mut().zip(&mut self.changed) {
            if budget.scope.covers(actor, service) {
                budget.charge(credits, now);
                *changed = true;
            }
        }
    }

    /// Announces thresholds newly reached and a first pass of the limit, once per period each.
    pub(crate) fn announce(
        &mut self,
        connection: &Conn<'_>,
        writer: &mut Writer,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        for (budget, changed) in self.budgets.iter_mut().zip(&self.changed) {
            if !*changed {
                continue;
            }
            for threshold in budget.thresholds_reached() {
                let data =
                    EventData::Budget { budget: budget.clone(), threshold, spent: budget.spent };
                let account_id = budget.account_id.clone();
                emit(connection, writer, "budget.threshold_reached", &account_id, || data, now)?;
            }
            if budget.exceeded_first(false, now) {
                let data = EventData::Budget {
                    budget: budget.clone(),
                    threshold: 100,
                    spent: budget.spent,
                };
                let account_id = budget.account_id.clone();
                emit(connection, writer, "budget.exceeded", &account_id, || data, now)?;
            }
        }
        Ok(())
    }

    /// A blocking budget refused a charge: announce it, the first time in the period.
    pub(crate) fn refused(
        &mut self,
        budget_id: &str,
        connection: &Conn<'_>,
        writer: &mut Writer,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let Some(budget) = self.budgets.iter_mut().find(|b| b.id == budget_id) else {
            return Ok(());
        };
        if budget.exceeded_first(true, now) {
            let data =
                EventData::Budget { budget: budget.clone(), threshold: 100, spent: budget.spent };
            let account_id = budget.account_id.clone();
            emit(connection, writer, "budget.exceeded", &account_id, || data, now)?;
            rows::budget_save(connection, budget)?;
        }
        Ok(())
    }

    pub(crate) fn save(&self, connection: &Conn<'_>) -> Result<(), StoreError> {
        for (budget, changed) in self.budgets.iter().zip(&self.changed) {
            if *changed {
                rows::budget_save(connection, budget)?;
            }
        }
        Ok(())
    }
}
