//! The outbox: events are written in the same savepoint as the change that causes them, with one
//! pending delivery per subscribed endpoint, so a crash can lose neither. The dispatcher (crate
//! `credits-webhooks`) sends them after commit.
//!
//! Threshold events fire once per crossing and re-arm when the value rises back: the state lives
//! on the account (`low_balance_fired`, `top_up_fired`) and the budget (`fired_percent`,
//! `exceeded_fired`, per period).

use crate::db::Conn;

use credits_core::{Book, CreditStatus, Effects, ReservationStatus, Timestamp};

use crate::rows;
use crate::types::*;
use crate::writer::Writer;
use crate::StoreError;

/// Records an event and schedules its deliveries. `data` is built only when the event is written. `usage.recorded`, the one event of the hot
/// path, is written only while some endpoint subscribes to it.
pub(crate) fn emit(
    connection: &Conn<'_>,
    writer: &mut Writer,
    event_type: &str,
    account_id: &str,
    data: impl FnOnce() -> EventData,
    now: Timestamp,
) -> Result<(), StoreError> {
    let subscribers: Vec<String> = writer
        .endpoints
        .iter()
        .filter(|endpoint| endpoint.wants(account_id, event_type))
        .map(|endpoint| endpoint.id.clone())
        .collect();
    if event_type == "usage.recorded" && subscribers.is_empty() {
        return Ok(());
    }
    let event = Event {
        id: writer.id("evt"),
        event_type: event_type.to_string(),
        account_id: account_id.to_string(),
        data: writer.render.event_data(&data()),
        created_at: now,
    };
    rows::event_insert(connection, &event)?;
    for endpoint_id in subscribers {
        let delivery = Delivery {
            id: writer.id("dlv"),
            endpoint_id,
            event_id: event.id.clone(),
            attempt: 1,
            status: DeliveryStatus::Pending,
            response_code: None,
            duration_ms: None,
            created_at: now,
            next_attempt_at: Some(now),
        };
        rows::delivery_save(connection, &delivery)?;
    }
    Ok(())
}

/// What a record looked like when loaded, to tell which changes are transitions.
pub(crate) fn statuses(book: &Book) -> Vec<(CreditStatus, bool)> {
    book.records.iter().map(|r| (r.status(), r.expired)).collect()
}

/// Events of the records and holds an operation changed: `credit.depleted`, `credit.expired`,
/// `reservation.expired`; then the account's balance thresholds.
pub(crate) fn book_events(
    connection: &Conn<'_>,
    writer: &mut Writer,
    account: Option<&mut Account>,
    book: &Book,
    before: &[(CreditStatus, bool)],
    effects: &Effects,
    now: Timestamp,
) -> Result<(), StoreError> {
    for &index in &effects.records_changed {
        let record = &book.records[index];
        let (status_before, expired_before) =
            before.get(index).copied().unwrap_or((CreditStatus::Active, false));
        if record.status() == CreditStatus::Depleted && status_before != CreditStatus::Depleted {
            let data = EventData::Credit(record.clone());
            emit(connection, writer, "credit.depleted", &record.account_id, || data, now)?;
        }
        if record.expired && !expired_before {
            let data = EventData::Credit(record.clone());
            emit(connection, writer, "credit.expired", &record.account_id, || data, now)?;
        }
    }
    for &index in &effects.holds_changed {
        let hold = &book.holds[index];
        if hold.status == ReservationStatus::Expired {
            let data = EventData::Reservation(hold.clone());
            emit(connection, writer, "reservation.expired", &hold.account_id, || data, now)?;
        }
    }
    balance_alerts(connection, writer, account, book, now)
}

/// `balance.low` when available falls to or below `lowBalanceThreshold`, `topup.requested` when
/// it falls below `autoTopUp.threshold`; each once per crossing, re-armed above the threshold.
/// `account` is the account as the operation loaded it, if it did (saves reading it again).
pub(crate) fn balance_alerts(
    connection: &Conn<'_>,
    writer: &mut Writer,
    account: Option<&mut Account>,
    book: &Book,
    now: Timestamp,
) -> Result<(), StoreError> {
    let mut loaded;
    let account = match account {
        Some(account) => account,
        None => match crate::read::account_find(connection, &book.account_id)? {
            Some(account) => {
                loaded = account;
                &mut loaded
            }
            None => return Ok(()),
        },
    };
    if account.low_balance_threshold.is_none() && account.auto_top_up.is_none() {
        return Ok(());
    }
    let available = book.balance().available;
    let mut changed = false;
    if let Some(threshold) = account.low_balance_threshold {
        let low = available <= threshold;
        if low && !account.low_balance_fired {
            let data = EventData::Balance {
                account_id: account.id.clone(),
                available,
                threshold,
                top_up: None,
            };
            emit(connection, writer, "balance.low", &account.id, || data, now)?;
        }
        changed |= low != account.low_balance_fired;
        account.low_balance_fired = low;
    }
    if let Some(top_up) = account.auto_top_up.clone() {
        let short = available < top_up.threshold;
        if short && !account.top_up_fired {
            let data = EventData::Balance {
                account_id: account.id.clone(),
                available,
                threshold: top_up.threshold,
                top_up: Some(top_up),
            };
            emit(connection, writer, "topup.requested", &account.id, || data, now)?;
        }
        changed |= short != account.top_up_fired;
        account.top_up_fired = short;
    }
    if changed {
        rows::account_save(connection, account)?;
    }
    Ok(())
}

/// Credits that will expire within their account's `expiringSoonDays`, announced once each.
pub(crate) fn expiring_soon(
    connection: &Conn<'_>,
    writer: &mut Writer,
    now: Timestamp,
) -> Result<usize, StoreError> {
    let sql = format!(
        "SELECT {} FROM credits c WHERE c.open = 1 AND c.expired = 0 AND c.voided = 0 \
         AND c.expiring_soon_sent = 0 AND c.expires_at IS NOT NULL AND c.expires_at > ?1 \
         AND c.expires_at <= ?1 + 86400000000 * (SELECT a.expiring_soon_days FROM accounts a \
         WHERE a.id = c.account_id) LIMIT 256",
        rows::CREDIT_COLUMNS.replace("seq, ", "c.seq, ")
    );
    let mut statement = connection.prepare_cached(&sql)?;
    let records: Vec<credits_core::CreditRecord> = statement
        .query_map([now.0], rows::credit_from_row)?
        .map(|row| row.map(|(_, record)| record))
        .collect::<Result<_, _>>()?;
    for record in &records {
        connection
            .prepare_cached("UPDATE credits SET expiring_soon_sent = 1 WHERE id = ?1")?
            .execute([&record.id])?;
        let data = EventData::Credit(record.clone());
        emit(connection, writer, "credit.expiring_soon", &record.account_id, || data, now)?;
    }
    Ok(records.len())
}
