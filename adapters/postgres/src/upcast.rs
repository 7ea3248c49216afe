//! Reading stored events back. Stored events outlive the code that wrote
//! them, so each row goes through the upcasters (old `event_version` → the
//! current one) and is then checked and deserialised. Every way a row can be
//! wrong ends in `StoreError::CorruptEvent` naming the row, never a panic.
//!
//! # Adding an upcaster
//! When a `PromotionEvent`'s JSON changes, bump `PromotionEvent::VERSION`,
//! pin the new JSON in `seckill-domain/tests/event_json.rs`, and add an
//! [`EventUpcaster`] below that rewrites the previous version's payload.
//! Upcasters run in order, so a chain 0.9 → 1.0 → 1.1 needs one per step.

use std::str::FromStr;
use std::sync::LazyLock;

use cqrs_es::persist::{EventUpcaster, SemanticVersion, SerializedEvent};
use seckill_app::StoreError;
use seckill_domain::{Promotion, PromotionEvent};
use serde_json::Value;

/// Every upcaster SecKill knows, oldest version first: hand these to cqrs-es's
/// `PersistedEventStore::with_upcasters` to read our events through postgres-es.
pub fn upcasters() -> Vec<Box<dyn EventUpcaster>> {
    vec![
        Box::new(DiscountPercentUpcaster::new("PromotionCreated")),
        Box::new(DiscountPercentUpcaster::new("PromotionUpdated")),
    ]
}

/// The upcasters, built once; `EventUpcaster` is `Send + Sync`, so every
/// store shares them.
static UPCASTERS: LazyLock<Vec<Box<dyn EventUpcaster>>> = LazyLock::new(upcasters);

/// The event types `PromotionEvent` has; anything else is corrupt.
const KNOWN_TYPES: [&str; 6] = PromotionEvent::TYPES;

/// Version 0.9 → 1.0 of the promotion terms inside `PromotionCreated` and
/// `PromotionUpdated`.
///
/// The worked example of evolving an event, and the template for real ones:
/// terms at version 0.9 carried the discount as a percentage the customer pays
/// (`"discount_percent": 80`) and had no `name`; 1.0 carries the fraction
/// (`"discount": 0.8`) and an optional `name`, which stays absent.
#[derive(Debug, Clone)]
pub struct DiscountPercentUpcaster {
    event_type: &'static str,
    pointer: &'static str,
}

impl DiscountPercentUpcaster {
    /// The version this upcaster reads.
    pub const FROM: &'static str = "0.9";
    /// The version it writes.
    pub const TO: &'static str = "1.0";

    fn new(event_type: &'static str) -> Self {
        let pointer = match event_type {
            "PromotionUpdated" => "/PromotionUpdated/terms",
            _ => "/PromotionCreated/terms",
        };
        Self {
            event_type,
            pointer,
        }
    }
}

impl EventUpcaster for DiscountPercentUpcaster {
    fn can_upcast(&self, event_type: &str, event_version: &str) -> bool {
        event_type == self.event_type && event_version == Self::FROM
    }

    fn upcast(&self, mut event: SerializedEvent) -> SerializedEvent {
        let terms = event
            .payload
            .pointer_mut(self.pointer)
            .and_then(Value::as_object_mut);
        if let Some(terms) = terms {
            let fraction = terms
                .get("discount_percent")
                .and_then(Value::as_f64)
                .map(|percent| percent / 100.0);
            // A payload not of the 0.9 shape is left as it is: deserialising
            // it then fails and names the row, which is what we want.
            if let Some(fraction) = fraction {
                terms.remove("discount_percent");
                terms.insert("discount".to_owned(), Value::from(fraction));
            }
        }
        event.event_version = Self::TO.to_owned();
        event
    }
}

/// One row of the `events` table, as loaded.
#[derive(Debug)]
pub(crate) struct StoredEvent {
    pub(crate) sequence: u64,
    pub(crate) event_type: String,
    pub(crate) event_version: String,
    pub(crate) payload: String,
}

/// Turns a stored row of `aggregate_id`'s stream into the current event.
pub(crate) fn decode(aggregate_id: &str, row: StoredEvent) -> Result<PromotionEvent, StoreError> {
    let corrupt = |reason: String| StoreError::CorruptEvent {
        aggregate_type: aggregate_type().to_owned(),
        aggregate_id: aggregate_id.to_owned(),
        sequence: row.sequence,
        reason,
    };
    if !KNOWN_TYPES.contains(&row.event_type.as_str()) {
        return Err(corrupt(format!("unknown event type {:?}", row.event_type)));
    }
    let event = if is_current(&row.event_version) {
        // The common case: no detour through `serde_json::Value`.
        serde_json::from_str::<PromotionEvent>(&row.payload)
            .map_err(|e| corrupt(format!("version {} payload: {e}", row.event_version)))?
    } else {
        let payload: Value = serde_json::from_str(&row.payload)
            .map_err(|e| corrupt(format!("payload is not JSON: {e}")))?;
        let mut stored = SerializedEvent::new(
            aggregate_id.to_owned(),
            usize::try_from(row.sequence).unwrap_or(usize::MAX),
            aggregate_type().to_owned(),
            row.event_type.clone(),
            row.event_version.clone(),
            payload,
            Value::Object(serde_json::Map::new()),
        );
        for upcaster in UPCASTERS.iter() {
            if upcaster.can_upcast(&stored.event_type, &stored.event_version) {
                stored = upcaster.upcast(stored);
            }
        }
        if !is_current(&stored.event_version) {
            return Err(corrupt(unsupported_version(&row.event_version)));
        }
        serde_json::from_value::<PromotionEvent>(stored.payload).map_err(|e| {
            corrupt(format!(
                "payload upcast from version {}: {e}",
                row.event_version
            ))
        })?
    };
    if event.type_name() != row.event_type {
        return Err(corrupt(format!(
            "event_type says {:?} but the payload holds {}",
            row.event_type,
            event.type_name()
        )));
    }
    Ok(event)
}

/// The `aggregate_type` of every promotion row.
pub(crate) fn aggregate_type() -> &'static str {
    <Promotion as cqrs_es::Aggregate>::TYPE
}

fn is_current(version: &str) -> bool {
    // Semantic comparison, so "1.0" and "1.0.0" are the same version.
    match (
        SemanticVersion::from_str(version),
        SemanticVersion::from_str(PromotionEvent::VERSION),
    ) {
        (Ok(stored), Ok(current)) => stored == current,
        _ => false,
    }
}

fn unsupported_version(version: &str) -> String {
    let current = SemanticVersion::from_str(PromotionEvent::VERSION);
    match (SemanticVersion::from_str(version), current) {
        (Ok(stored), Ok(current)) if stored.supersedes(&current) => format!(
            "version {version} is newer than this program knows ({}); upgrade it",
            PromotionEvent::VERSION
        ),
        (Ok(_), _) => format!(
            "no upcaster from version {version} to {}",
            PromotionEvent::VERSION
        ),
        (Err(_), _) => format!("event_version {version:?} is not a version"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(event_type: &str, version: &str, payload: &str) -> StoredEvent {
        StoredEvent {
            sequence: 7,
            event_type: event_type.to_owned(),
            event_version: version.to_owned(),
            payload: payload.to_owned(),
        }
    }

    fn reason(result: Result<PromotionEvent, StoreError>) -> String {
        match result {
            Err(StoreError::CorruptEvent {
                aggregate_id,
                sequence,
                reason,
                ..
            }) => {
                assert_eq!((aggregate_id.as_str(), sequence), ("p", 7));
                reason
            }
            other => panic!("expected CorruptEvent, got {other:?}"),
        }
    }

    const V09_CREATED: &str = r#"{"PromotionCreated":{"promotion_id":"67e55044-10b1-426f-9247-bb680e5fe0c8","terms":{"number_of_coupons":100,"discount_percent":80,"publish_time":"2030-11-11T00:00:00Z","finish_time":"2030-11-11T01:00:00Z"}}}"#;

    #[test]
    fn version_0_9_terms_are_upcast_to_a_discount_fraction() {
        let event = decode("p", row("PromotionCreated", "0.9", V09_CREATED)).expect("upcast");
        let PromotionEvent::PromotionCreated { terms, .. } = event else {
            panic!("wrong event: {event:?}");
        };
        assert_eq!(terms.discount().get(), 0.8);
        assert_eq!(terms.name(), None);
        assert_eq!(terms.number_of_coupons().get(), 100);
    }

    #[test]
    fn unknown_types_and_versions_are_corrupt_not_panics() {
        assert!(
            reason(decode("p", row("CouponStolen", "1.0", "{}"))).contains("unknown event type")
        );
        assert!(reason(decode("p", row("PromotionCreated", "2.0", V09_CREATED))).contains("newer"));
        assert!(
            reason(decode("p", row("PromotionCreated", "0.5", V09_CREATED)))
                .contains("no upcaster")
        );
        assert!(
            reason(decode("p", row("PromotionCreated", "", V09_CREATED))).contains("not a version")
        );
        assert!(reason(decode("p", row("PromotionCreated", "1.0", "[1, 2"))).contains("payload"));
        assert!(
            reason(decode("p", row("PromotionCreated", "1.0", V09_CREATED))).contains("discount")
        );
    }

    #[test]
    fn a_payload_of_another_type_than_its_row_says_is_corrupt() {
        let finished =
            r#"{"PromotionFinished":{"at":"2030-11-11T00:00:00Z","reason":"Cancelled"}}"#;
        assert!(
            reason(decode("p", row("CouponGrabbed", "1.0", finished))).contains("event_type says")
        );
        assert!(decode("p", row("PromotionFinished", "1.0.0", finished)).is_ok());
    }

    mod corrupt_rows {
        //! Property test: whatever a row holds, decoding gives the event or
        //! a `CorruptEvent` naming the aggregate and sequence. Never a panic.

        use proptest::prelude::*;

        use super::*;

        const FINISHED: &str =
            r#"{"PromotionFinished":{"at":"2030-11-11T00:00:00Z","reason":"SoldOut"}}"#;
        const GRABBED: &str = r#"{"CouponGrabbed":{"coupon":{"promotion_id":"67e55044-10b1-426f-9247-bb680e5fe0c8","number":1,"customer_id":"alice","discount":0.75,"grabbed_at":"2030-11-10T00:00:00.123Z"},"remaining":99}}"#;

        /// A damaged copy of a valid payload: cut short, a byte replaced or
        /// text spliced in.
        fn damaged() -> impl Strategy<Value = String> {
            let valid = prop_oneof![Just(V09_CREATED), Just(FINISHED), Just(GRABBED)];
            (valid, any::<prop::sample::Index>(), "\\PC{0,3}", 0u8..3).prop_map(
                |(valid, at, splice, how)| {
                    let mut text = valid.to_owned();
                    let mut cut = at.index(text.len());
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    match how {
                        0 => text.truncate(cut),
                        1 => {
                            let end = text[cut..]
                                .chars()
                                .next()
                                .map_or(cut, |c| cut + c.len_utf8());
                            text.replace_range(cut..end, &splice);
                        }
                        _ => text.insert_str(cut, &splice),
                    }
                    text
                },
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() })]

            #[test]
            fn decoding_any_row_gives_the_event_or_a_corrupt_event_naming_the_row(
                sequence in 1u64..u64::from(u32::MAX),
                event_type in prop_oneof![
                    Just("PromotionCreated".to_owned()),
                    Just("CouponGrabbed".to_owned()),
                    Just("PromotionFinished".to_owned()),
                    "\\PC{0,12}",
                ],
                event_version in prop_oneof![
                    Just("1.0".to_owned()),
                    Just("0.9".to_owned()),
                    "[0-9.]{0,6}",
                ],
                payload in prop_oneof![damaged(), "\\PC{0,40}"],
            ) {
                let row = StoredEvent { sequence, event_type: event_type.clone(), event_version, payload };
                match decode("promotion-7", row) {
                    Ok(event) => prop_assert_eq!(event.type_name(), event_type.as_str()),
                    Err(StoreError::CorruptEvent { aggregate_type, aggregate_id, sequence: at, reason }) => {
                        prop_assert_eq!(aggregate_type.as_str(), "Promotion");
                        prop_assert_eq!(aggregate_id.as_str(), "promotion-7");
                        prop_assert_eq!(at, sequence);
                        prop_assert!(!reason.is_empty());
                    }
                    Err(other) => prop_assert!(false, "not a CorruptEvent: {other:?}"),
                }
            }
        }
    }
}
