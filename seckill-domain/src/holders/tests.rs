//! The holder set against a `HashMap` model under random grabs, look-ups
//! and copies that then diverge, with snapshot round trips; and the snapshot
//! cases: both older formats load, corrupt lists are typed errors. Chunks
//! hold 4 holders here (`CHUNK_BITS` in tests), so every case crosses seams.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;

use super::arena::CHUNK_LEN;
use super::json::{listed, CorruptHolders};
use super::{AlreadyHeld, HolderSet};
use crate::error::ValueError;

/// What the set must behave like: customer to (number, time), plus the
/// grab order.
#[derive(Debug, Clone, Default)]
struct Model {
    holdings: HashMap<String, (u32, DateTime<Utc>)>,
    order: Vec<String>,
}

impl Model {
    fn insert(&mut self, customer: &str, at: DateTime<Utc>) -> Result<u32, AlreadyHeld> {
        if let Some(&(number, _)) = self.holdings.get(customer) {
            return Err(AlreadyHeld { number });
        }
        let number = u32::try_from(self.order.len() + 1).unwrap();
        self.holdings.insert(customer.to_owned(), (number, at));
        self.order.push(customer.to_owned());
        Ok(number)
    }
}

/// Ids of every kind the set stores: short, up to the 64-byte limit, and
/// multi-byte UTF-8.
fn customer(n: u8) -> String {
    match n % 3 {
        0 => format!("c{n}"),
        1 => format!("{n:0>64}"),
        _ => format!("Zoë {n}"),
    }
}

fn time(seconds: i64, nanos: u32) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, nanos).unwrap()
}

#[derive(Debug, Clone)]
enum Step {
    /// A grab by `customer` on copy `copy` (modulo the copies so far).
    Grab {
        copy: usize,
        customer: u8,
        seconds: i64,
        nanos: u32,
    },
    Look {
        copy: usize,
        customer: u8,
    },
    /// A copy of copy `copy`, which later steps may change on its own.
    Copy {
        copy: usize,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (any::<usize>(), 0u8..60, -1_000_000_000i64..10_000_000_000, 0u32..1_000_000_000)
            .prop_map(|(copy, customer, seconds, nanos)| Step::Grab { copy, customer, seconds, nanos }),
        4 => (any::<usize>(), 0u8..70).prop_map(|(copy, customer)| Step::Look { copy, customer }),
        1 => any::<usize>().prop_map(|copy| Step::Copy { copy }),
    ]
}

/// Everything the set answers agrees with the model.
fn agrees(set: &HolderSet, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(set.len(), model.order.len());
    let listed: Vec<_> = set
        .iter()
        .map(|h| (h.customer.to_owned(), h.number))
        .collect();
    let expected: Vec<_> = model.order.iter().cloned().zip(1u32..).collect();
    prop_assert_eq!(listed, expected);
    for n in 0..70 {
        let customer = customer(n);
        let found = set.get(&customer).map(|h| (h.number, h.grabbed_at));
        prop_assert_eq!(found, model.holdings.get(&customer).copied());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn behaves_like_a_hash_map(steps in prop::collection::vec(step(), 0..150)) {
        let mut copies = vec![(HolderSet::default(), Model::default())];
        for step in steps {
            match step {
                Step::Grab { copy, customer: n, seconds, nanos } => {
                    let which = copy % copies.len();
                    let (set, model) = &mut copies[which];
                    let customer = customer(n);
                    let at = time(seconds, nanos);
                    prop_assert_eq!(set.insert(&customer, at), model.insert(&customer, at));
                }
                Step::Look { copy, customer: n } => {
                    let (set, model) = &copies[copy % copies.len()];
                    let customer = customer(n);
                    let found = set.get(&customer).map(|h| (h.customer.to_owned(), h.number, h.grabbed_at));
                    let expected = model.holdings.get(&customer).map(|&(number, at)| (customer.clone(), number, at));
                    prop_assert_eq!(found, expected);
                }
                Step::Copy { copy } => {
                    let copy = copies[copy % copies.len()].clone();
                    copies.push(copy);
                }
            }
        }
        for (set, model) in &copies {
            agrees(set, model)?;
            // What a snapshot stores reads back the same.
            let back: HolderSet = serde_json::from_str(&serde_json::to_string(set).unwrap()).unwrap();
            prop_assert_eq!(&back, set);
            agrees(&back, model)?;
        }
    }

    #[test]
    fn any_listing_order_loads(count in 0usize..40, seed in any::<u64>()) {
        let at = time(1_900_000_000, 5);
        let mut holders: Vec<_> = (0..count).map(|i| (customer(u8::try_from(i).unwrap()), u32::try_from(i + 1).unwrap())).collect();
        // A shuffle: older builds wrote holders in hash order.
        let mut state = seed;
        for i in (1..holders.len()).rev() {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            holders.swap(i, usize::try_from(state >> 33).unwrap() % (i + 1));
        }
        let json = serde_json::to_string(&holders.iter().map(|(c, n)| (c, n, at.timestamp(), 5)).collect::<Vec<_>>()).unwrap();
        let set: HolderSet = serde_json::from_str(&json).unwrap();
        let numbers: Vec<_> = set.iter().map(|h| (h.customer.to_owned(), h.number)).collect();
        holders.sort_by_key(|&(_, number)| number);
        prop_assert_eq!(numbers, holders);
    }
}

/// How many places of `ours` and `theirs` hold the same allocation (not
/// just equal contents).
pub(super) fn shared<T>(ours: &[Arc<T>], theirs: &[Arc<T>]) -> usize {
    ours.iter()
        .zip(theirs)
        .filter(|(ours, theirs)| Arc::ptr_eq(ours, theirs))
        .count()
}

fn opens() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 11, 11, 0, 0, 0).unwrap()
}

#[test]
fn a_copy_shares_every_full_chunk_and_table_and_diverges_on_its_own() {
    let mut original = HolderSet::default();
    for n in 0..u8::try_from(CHUNK_LEN * 3 + 1).unwrap() {
        original.insert(&customer(n), opens()).unwrap();
    }
    let mut copy = original.clone();
    assert_eq!(copy.arena.sealed_chunks(), 3);
    assert_eq!(copy.arena.shared_chunks(&original.arena), 3);
    let tables = original.index.tables();
    assert!(tables > 1, "the index was not split");
    assert_eq!(copy.index.shared_tables(&original.index), tables);

    let next = u32::try_from(CHUNK_LEN * 3 + 2).unwrap();
    assert_eq!(copy.insert("only-in-the-copy", opens()), Ok(next));
    // The copy copied the one table it changed, and shares the rest.
    assert_eq!(copy.index.shared_tables(&original.index), tables - 1);
    assert_eq!(original.insert("only-in-the-original", opens()), Ok(next));
    assert!(original.get("only-in-the-copy").is_none());
    assert_eq!(copy.get("only-in-the-copy").map(|h| h.number), Some(next));
    assert!(copy.get("only-in-the-original").is_none());
    assert_eq!(copy.arena.shared_chunks(&original.arena), 3);
}

#[test]
fn the_list_in_hash_order_of_older_builds_loads() {
    // As a build with the HashMap wrote it: any order.
    let json =
        r#"[["bob",2,1920585600,0],["Zoë",3,1920585601,7],["alice",1,1920585600,123456789]]"#;
    let set: HolderSet = serde_json::from_str(json).unwrap();
    let holders: Vec<_> = set
        .iter()
        .map(|h| (h.customer, h.number, h.grabbed_at))
        .collect();
    assert_eq!(
        holders,
        [
            (
                "alice",
                1,
                opens() + chrono::Duration::nanoseconds(123_456_789)
            ),
            ("bob", 2, opens()),
            ("Zoë", 3, time(1_920_585_601, 7)),
        ]
    );
    // And this build writes it back in number order.
    assert_eq!(
        serde_json::to_string(&set).unwrap(),
        r#"[["alice",1,1920585600,123456789],["bob",2,1920585600,0],["Zoë",3,1920585601,7]]"#
    );
}

#[test]
fn the_first_format_loads() {
    let json = r#"{"bob":{"number":2,"grabbed_at":"2030-11-11T00:00:00Z"},"alice":{"number":1,"grabbed_at":"2030-11-11T00:00:00.123456789Z"}}"#;
    let set: HolderSet = serde_json::from_str(json).unwrap();
    assert_eq!(set.get("alice").map(|h| h.number), Some(1));
    assert_eq!(
        set.get("bob").map(|h| (h.number, h.grabbed_at)),
        Some((2, opens()))
    );
    assert_eq!(serde_json::from_str::<HolderSet>("{}").unwrap().len(), 0);
    assert_eq!(serde_json::from_str::<HolderSet>("[]").unwrap().len(), 0);
}

#[test]
fn escaped_ids_load_like_plain_ones() {
    // Not borrowable from the input, so read through the owned path.
    let set: HolderSet = serde_json::from_str(r#"[["al\u0069ce",1,0,0]]"#).unwrap();
    assert_eq!(set.get("alice").map(|h| h.number), Some(1));
}

/// A holder as a snapshot lists it: customer, number, time.
type Listed<'a> = (&'a str, u32, DateTime<Utc>);

#[test]
fn corrupt_lists_are_typed_errors() {
    let at = opens();
    let cases: [(&[Listed<'_>], CorruptHolders); 6] = [
        (
            &[("alice", 1, at), ("alice", 2, at)],
            CorruptHolders::CustomerTwice("alice".to_owned()),
        ),
        (
            &[("alice", 1, at), ("bob", 2, at), ("carol", 2, at)],
            CorruptHolders::NumberTwice(2),
        ),
        (
            &[("alice", 1, at), ("bob", 3, at)],
            CorruptHolders::NumberMissing {
                missing: 2,
                listed: 2,
            },
        ),
        (
            &[("bob", 2, at)],
            CorruptHolders::NumberMissing {
                missing: 1,
                listed: 1,
            },
        ),
        (&[("alice", 0, at)], CorruptHolders::NumberZero),
        (
            &[(" alice", 1, at)],
            CorruptHolders::Customer(ValueError::CustomerId(" alice".to_owned())),
        ),
    ];
    for (holders, expected) in cases {
        assert_eq!(listed(holders), Err(expected), "{holders:?}");
    }
}

#[test]
fn corrupt_json_is_an_error_with_the_reason() {
    for (json, reason) in [
        (
            r#"[["alice",1,0,0],["bob",3,0,0]]"#,
            "coupon number 2 is missing",
        ),
        (
            r#"[["alice",1,0,0],["alice",2,0,0]]"#,
            "customer \"alice\" is listed twice",
        ),
        (r#"[["alice",1,9223372036854775807,0]]"#, "is not a time"),
        (
            r#"{"alice":{"number":4,"grabbed_at":"2030-11-11T00:00:00Z"}}"#,
            "coupon number 1 is missing",
        ),
        (r#"[["",1,0,0]]"#, "customer id \"\""),
    ] {
        let error = serde_json::from_str::<HolderSet>(json)
            .unwrap_err()
            .to_string();
        assert!(error.contains(reason), "{json}: {error}");
    }
}
