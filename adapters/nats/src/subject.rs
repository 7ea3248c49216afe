//! Where each event goes: its subject, its message id, and the headers that
//! carry its place in the store.
//!
//! `<prefix>.promotion.<promotion id>.<event type>`, so a consumer filters
//! by promotion (`seckill.promotion.<id>.>`), by event type
//! (`seckill.promotion.*.CouponGrabbed`) or takes all (`seckill.promotion.>`).

use cqrs_es::DomainEvent;
use seckill_app::PositionedEvent;

use crate::error::NatsError;

/// The header with the event's global position in the store.
pub const POSITION_HEADER: &str = "Seckill-Position";
/// The header with the event's sequence number in its promotion's stream.
pub const SEQUENCE_HEADER: &str = "Seckill-Sequence";
/// The header with the promotion's id.
pub const PROMOTION_HEADER: &str = "Seckill-Promotion";
/// The header with the event's type, as in the subject (`CouponGrabbed`).
pub const EVENT_TYPE_HEADER: &str = "Seckill-Event-Type";
/// The header with the event's schema version (`DomainEvent::event_version`).
pub const EVENT_VERSION_HEADER: &str = "Seckill-Event-Version";
/// The W3C trace context of the command that caused the event, when it was
/// traced ([`PositionedEvent::traceparent`](seckill_app::PositionedEvent::traceparent)):
/// a consumer continues the grab's trace from it.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// The subjects of one deployment: every subject starts with its prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    /// The prefix used unless one is given.
    pub const DEFAULT_PREFIX: &'static str = "seckill";

    /// Subjects under `prefix`: dot-separated tokens of visible ASCII, no
    /// wildcards (`seckill`, `shop.eu`).
    pub fn new(prefix: impl Into<String>) -> Result<Self, NatsError> {
        let prefix = prefix.into();
        let valid = !prefix.is_empty()
            && prefix.len() <= 200
            && prefix.split('.').all(|token| {
                !token.is_empty()
                    && token
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && b != b'*' && b != b'>')
            });
        if !valid {
            return Err(NatsError::InvalidPrefix(prefix));
        }
        Ok(Self { prefix })
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The subject of one event: `<prefix>.promotion.<id>.<event type>`.
    pub fn of(&self, event: &PositionedEvent) -> String {
        format!(
            "{}.promotion.{}.{}",
            self.prefix,
            event.promotion_id,
            event.event.event_type()
        )
    }

    /// Every event's subject matches this: `<prefix>.promotion.>`, the
    /// stream's subject.
    pub fn all(&self) -> String {
        format!("{}.promotion.>", self.prefix)
    }

    /// The events of one type across promotions, e.g.
    /// `<prefix>.promotion.*.CouponGrabbed`.
    pub fn of_type(&self, event_type: &str) -> String {
        format!("{}.promotion.*.{event_type}", self.prefix)
    }
}

impl Default for Subjects {
    fn default() -> Self {
        Self {
            prefix: Self::DEFAULT_PREFIX.to_owned(),
        }
    }
}

/// The `Nats-Msg-Id` of an event: `<promotion id>:<sequence>`. It names the
/// event, not the delivery, so every copy of it carries the same id and
/// JetStream drops the copies within its duplicate window.
pub fn message_id(event: &PositionedEvent) -> String {
    format!("{}:{}", event.promotion_id, event.sequence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_tokens_without_wildcards() {
        for good in ["seckill", "shop.eu", "a-b_c.d1"] {
            assert_eq!(Subjects::new(good).expect(good).prefix(), good);
        }
        for bad in ["", ".", "a.", ".a", "a..b", "a.*", "a.>", "a b", "x\u{e9}"] {
            assert!(Subjects::new(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn filters_follow_the_prefix() {
        let subjects = Subjects::new("shop.eu").expect("prefix");
        assert_eq!(subjects.all(), "shop.eu.promotion.>");
        assert_eq!(
            subjects.of_type("CouponGrabbed"),
            "shop.eu.promotion.*.CouponGrabbed"
        );
        assert_eq!(Subjects::default().all(), "seckill.promotion.>");
    }
}
