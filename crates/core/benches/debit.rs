//! Goal: what one core does per debit in the ledger core alone (issue 7 target: 3M debits/s on
//! one core), and how that cost grows with the open records of the account.
//!
//! Method: criterion, single thread, `Book::record_usage` of 1 credit on an account holding 1,
//! 10 or 100 open records (all for `any`, never expiring, each large enough never to run out),
//! the same book debited again and again (as the writer does within a batch), the `Effects`
//! buffer reused. Throughput is reported in debits.
//! Run: `cargo bench -p credits-core --bench debit`.

#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use credits_core::book::UsageCharge;
use credits_core::{Actor, Book, CreditKind, CreditRecord, Effects, Timestamp};

fn record(account: &str, n: usize) -> CreditRecord {
    let amount = 1_000_000_000_000;
    CreditRecord {
        id: format!("credit_{n:06}"),
        account_id: account.to_string(),
        amount,
        used: 0,
        reserved: 0,
        remaining: amount,
        expired_amount: 0,
        voided_amount: 0,
        expires_at: None,
        service: "any".to_string(),
        description: None,
        kind: CreditKind::Purchase,
        priority: 0,
        reference: None,
        expired: false,
        voided: false,
        created_at: Timestamp(1),
        updated_at: Timestamp(1),
    }
}

fn book_with(records: usize) -> Book {
    let mut book = Book::new("acct_bench");
    let mut effects = Effects::default();
    for n in 0..records {
        book.create_credit(record("acct_bench", n), Timestamp(2), &mut effects).unwrap();
    }
    book
}

fn debits(c: &mut Criterion) {
    let mut group = c.benchmark_group("record_usage");
    group.throughput(Throughput::Elements(1));
    for records in [1, 10, 100] {
        let charge = UsageCharge {
            usage_id: "use_bench".to_string(),
            service: "smartcheck".to_string(),
            credits: 1,
            actor: Actor::default(),
        };
        let mut book = book_with(records);
        let mut effects = Effects::default();
        group.bench_function(format!("{records}_open_records"), |b| {
            b.iter(|| {
                effects.entries.clear();
                effects.records_changed.clear();
                effects.holds_changed.clear();
                book.record_usage(&charge, Timestamp(3), &mut effects).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, debits);
criterion_main!(benches);
