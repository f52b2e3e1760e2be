//! Budgets: spending limits per account, member, API key or service, over UTC calendar periods.
//!
//! A budget keeps the `spent` of its current period and the period's start. Every charge in its
//! scope adds to it (holds count when placed); a release subtracts, if the hold was counted in the
//! same period. When an instant falls in a later period, `spent` starts again from zero. Period
//! bounds come from the `time` crate's calendar, with time injected as an argument.

use time::{Date, Duration, Month, OffsetDateTime, Time};

use crate::model::{Actor, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Week,
    Month,
    Lifetime,
}

impl Period {
    /// Every value, in the order the API documents them; `parse` reads `as_str` back.
    pub const ALL: [Period; 4] = [Period::Day, Period::Week, Period::Month, Period::Lifetime];

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
            Period::Lifetime => "lifetime",
        }
    }
    pub fn parse(text: &str) -> Option<Period> {
        Period::ALL.into_iter().find(|value| value.as_str() == text)
    }
}

fn timestamp_of(date: Date) -> Timestamp {
    let micros = date.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp() * 1_000_000;
    Timestamp(micros)
}

/// The UTC calendar period that contains `at`: `[start, end)`, weeks from Monday. A lifetime
/// period starts at the epoch and never ends.
pub fn period_bounds(period: Period, at: Timestamp) -> (Timestamp, Option<Timestamp>) {
    let instant = OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.0) * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let date = instant.date();
    let (start, end) = match period {
        Period::Lifetime => return (Timestamp(i64::MIN), None),
        Period::Day => (date, date.next_day()),
        Period::Week => {
            let start = date - Duration::days(i64::from(date.weekday().number_days_from_monday()));
            (start, Some(start + Duration::days(7)))
        }
        Period::Month => {
            let start = date.replace_day(1).unwrap_or(date);
            let (year, month) = match start.month() {
                Month::December => (start.year() + 1, Month::January),
                month => (start.year(), month.next()),
            };
            (start, Date::from_calendar_date(year, month, 1).ok())
        }
    };
    (timestamp_of(start), end.map(timestamp_of))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetScope {
    Account,
    Member(String),
    ApiKey(String),
    Service(String),
}

impl BudgetScope {
    pub fn kind(&self) -> &'static str {
        match self {
            BudgetScope::Account => "account",
            BudgetScope::Member(_) => "member",
            BudgetScope::ApiKey(_) => "apiKey",
            BudgetScope::Service(_) => "service",
        }
    }
    pub fn id(&self) -> Option<&str> {
        match self {
            BudgetScope::Account => None,
            BudgetScope::Member(id) | BudgetScope::ApiKey(id) | BudgetScope::Service(id) => {
                Some(id)
            }
        }
    }
    /// The scope types, as `kind` names them; `account` alone has no id.
    pub const KINDS: [&'static str; 4] = ["account", "member", "apiKey", "service"];

    pub fn parse(kind: &str, id: Option<String>) -> Option<BudgetScope> {
        match (kind, id) {
            ("account", None) => Some(BudgetScope::Account),
            ("member", Some(id)) => Some(BudgetScope::Member(id)),
            ("apiKey", Some(id)) => Some(BudgetScope::ApiKey(id)),
            ("service", Some(id)) => Some(BudgetScope::Service(id)),
            _ => None,
        }
    }
    /// Whether a charge by `actor` to `service` is in this scope.
    pub fn covers(&self, actor: &Actor, service: &str) -> bool {
        match self {
            BudgetScope::Account => true,
            BudgetScope::Member(id) => actor.member_id.as_deref() == Some(id),
            BudgetScope::ApiKey(id) => actor.api_key_id.as_deref() == Some(id),
            BudgetScope::Service(id) => id == service,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforcement {
    Block,
    Notify,
}

impl Enforcement {
    /// Every value, in the order the API documents them; `parse` reads `as_str` back.
    pub const ALL: [Enforcement; 2] = [Enforcement::Block, Enforcement::Notify];

    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::Block => "block",
            Enforcement::Notify => "notify",
        }
    }
    pub fn parse(text: &str) -> Option<Enforcement> {
        Enforcement::ALL.into_iter().find(|value| value.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub scope: BudgetScope,
    pub period: Period,
    pub limit: u64,
    pub enforcement: Enforcement,
    /// Percentages of `limit`, ascending.
    pub thresholds: Vec<u32>,
    /// Spent in the period that starts at `period_start`.
    pub spent: u64,
    pub period_start: Timestamp,
    /// The highest threshold (percent) already announced in this period.
    pub fired_percent: u32,
    /// Whether `budget.exceeded` was already announced in this period.
    pub exceeded_fired: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Budget {
    /// The thresholds newly reached by `spent` in this period, each announced once per period.
    pub fn thresholds_reached(&mut self) -> Vec<u32> {
        let mut reached = Vec::new();
        for &threshold in &self.thresholds {
            let at = u128::from(self.limit) * u128::from(threshold);
            if threshold > self.fired_percent && u128::from(self.spent) * 100 >= at {
                reached.push(threshold);
            }
        }
        if let Some(&highest) = reached.last() {
            self.fired_percent = highest;
        }
        reached
    }

    /// Whether this is the first time in the period that the budget is passed (a notify budget
    /// going over, or a blocking budget refusing); announced once per period.
    pub fn exceeded_first(&mut self, refused: bool, now: Timestamp) -> bool {
        self.roll(now);
        let exceeded = refused || self.spent > self.limit;
        if exceeded && !self.exceeded_fired {
            self.exceeded_fired = true;
            return true;
        }
        false
    }

    /// What is spent in the period that contains `now`.
    pub fn spent_at(&self, now: Timestamp) -> u64 {
        if period_bounds(self.period, now).0 == self.period_start {
            self.spent
        } else {
            0
        }
    }

    /// Moves the budget to the period containing `now`, starting again from zero.
    pub fn roll(&mut self, now: Timestamp) {
        let (start, _) = period_bounds(self.period, now);
        if start != self.period_start {
            self.period_start = start;
            self.spent = 0;
            self.fired_percent = 0;
            self.exceeded_fired = false;
        }
    }

    /// Whether charging `credits` now would take a blocking budget past its limit.
    pub fn blocks(&self, credits: u64, now: Timestamp) -> bool {
        self.enforcement == Enforcement::Block
            && self.spent_at(now).saturating_add(credits) > self.limit
    }

    /// Counts a charge (a usage, or a hold when placed).
    pub fn charge(&mut self, credits: u64, now: Timestamp) {
        self.roll(now);
        self.spent = self.spent.saturating_add(credits);
        self.updated_at = now;
    }

    /// Stops counting released credits of a hold placed at `counted_at`, if that was in the
    /// current period (a hold from an earlier period was counted there).
    pub fn refund(&mut self, credits: u64, counted_at: Timestamp, now: Timestamp) {
        self.roll(now);
        if counted_at >= self.period_start {
            self.spent = self.spent.saturating_sub(credits);
            self.updated_at = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn at(instant: OffsetDateTime) -> Timestamp {
        Timestamp(i64::try_from(instant.unix_timestamp_nanos() / 1000).unwrap_or(0))
    }

    #[test]
    fn every_listed_scope_kind_parses_back_to_itself() {
        for kind in BudgetScope::KINDS {
            let id = (kind != "account").then(|| "x".to_string());
            let scope = BudgetScope::parse(kind, id);
            assert_eq!(scope.map(|s| s.kind()), Some(kind));
        }
        assert_eq!(BudgetScope::parse("account", Some("x".into())), None);
        assert_eq!(BudgetScope::parse("team", Some("x".into())), None);
    }

    fn check(period: Period, instant: OffsetDateTime, start: OffsetDateTime, end: OffsetDateTime) {
        let (got_start, got_end) = period_bounds(period, at(instant));
        assert_eq!(got_start, at(start), "{period:?} start of {instant}");
        assert_eq!(got_end, Some(at(end)), "{period:?} end of {instant}");
    }

    #[test]
    fn period_bounds_follow_the_utc_calendar() {
        use Period::*;
        check(
            Day,
            datetime!(2026-11-25 17:31:00 UTC),
            datetime!(2026-11-25 0:00 UTC),
            datetime!(2026-11-26 0:00 UTC),
        );
        check(
            Day,
            datetime!(2026-11-25 0:00 UTC),
            datetime!(2026-11-25 0:00 UTC),
            datetime!(2026-11-26 0:00 UTC),
        );
        check(
            Day,
            datetime!(2026-11-25 23:59:59.999999 UTC),
            datetime!(2026-11-25 0:00 UTC),
            datetime!(2026-11-26 0:00 UTC),
        );
        // 2026-11-25 is a Wednesday; weeks start on Monday 23rd.
        check(
            Week,
            datetime!(2026-11-25 12:00 UTC),
            datetime!(2026-11-23 0:00 UTC),
            datetime!(2026-11-30 0:00 UTC),
        );
        check(
            Week,
            datetime!(2026-11-23 0:00 UTC),
            datetime!(2026-11-23 0:00 UTC),
            datetime!(2026-11-30 0:00 UTC),
        );
        check(
            Week,
            datetime!(2026-11-29 23:59 UTC),
            datetime!(2026-11-23 0:00 UTC),
            datetime!(2026-11-30 0:00 UTC),
        );
        // A week across a year end.
        check(
            Week,
            datetime!(2027-01-01 8:00 UTC),
            datetime!(2026-12-28 0:00 UTC),
            datetime!(2027-01-04 0:00 UTC),
        );
        check(
            Month,
            datetime!(2026-11-25 12:00 UTC),
            datetime!(2026-11-01 0:00 UTC),
            datetime!(2026-12-01 0:00 UTC),
        );
        check(
            Month,
            datetime!(2026-12-31 23:59 UTC),
            datetime!(2026-12-01 0:00 UTC),
            datetime!(2027-01-01 0:00 UTC),
        );
        check(
            Month,
            datetime!(2028-02-29 12:00 UTC),
            datetime!(2028-02-01 0:00 UTC),
            datetime!(2028-03-01 0:00 UTC),
        );
        assert_eq!(
            period_bounds(Lifetime, at(datetime!(2026-11-25 0:00 UTC))),
            (Timestamp(i64::MIN), None)
        );
    }

    fn budget(period: Period, limit: u64, enforcement: Enforcement) -> Budget {
        Budget {
            id: "bud_1".into(),
            account_id: "acct_1".into(),
            name: "test".into(),
            scope: BudgetScope::Account,
            period,
            limit,
            enforcement,
            thresholds: vec![80, 100],
            spent: 0,
            period_start: Timestamp(0),
            fired_percent: 0,
            exceeded_fired: false,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        }
    }

    #[test]
    fn spent_starts_again_each_period_and_blocks_only_past_the_limit() {
        let monday = at(datetime!(2026-11-23 10:00 UTC));
        let sunday_night = at(datetime!(2026-11-29 23:59:59 UTC));
        let next_monday = at(datetime!(2026-11-30 0:00 UTC));
        let mut weekly = budget(Period::Week, 10, Enforcement::Block);
        weekly.charge(9, monday);
        assert!(!weekly.blocks(1, sunday_night), "9 + 1 = 10 is within the limit");
        weekly.charge(1, sunday_night);
        assert!(weekly.blocks(1, sunday_night), "10 + 1 passes the limit");
        assert_eq!(weekly.spent_at(sunday_night), 10);
        assert_eq!(weekly.spent_at(next_monday), 0, "a new week starts from zero");
        assert!(!weekly.blocks(10, next_monday));
        // A hold placed last week and released this week does not lower this week's spending.
        weekly.charge(3, next_monday);
        weekly.refund(5, sunday_night, next_monday);
        assert_eq!(weekly.spent_at(next_monday), 3);
        weekly.refund(3, next_monday, next_monday);
        assert_eq!(weekly.spent_at(next_monday), 0);
        let mut notify = budget(Period::Day, 1, Enforcement::Notify);
        notify.charge(5, monday);
        assert!(!notify.blocks(100, monday), "notify never blocks");
    }

    #[test]
    fn scopes_cover_their_actor_or_service() {
        let actor = Actor { member_id: Some("mem_1".into()), api_key_id: Some("key_1".into()) };
        assert!(BudgetScope::Account.covers(&actor, "api"));
        assert!(BudgetScope::Member("mem_1".into()).covers(&actor, "api"));
        assert!(!BudgetScope::Member("mem_2".into()).covers(&actor, "api"));
        assert!(BudgetScope::ApiKey("key_1".into()).covers(&actor, "api"));
        assert!(BudgetScope::Service("api".into()).covers(&actor, "api"));
        assert!(!BudgetScope::Service("sms".into()).covers(&actor, "api"));
    }
}
