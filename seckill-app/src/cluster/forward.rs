//! The forwarding port: how a replica hands commands to the promotion's
//! owner, and the wire form of the commands and answers that cross.
//!
//! The engine batches what goes to one owner (one call of
//! [`Forward::forward`] carries every command queued for that owner, up to a
//! limit), so a transport only moves batches: the web server's is one HTTP
//! request on a keep-alive pool. The owner runs a batch with
//! [`execute_forwarded`](super::execute_forwarded), which never forwards
//! again, so a command makes at most one hop.

use std::time::Duration;

use async_trait::async_trait;
use seckill_domain::{PromotionCommand, PromotionError, PromotionEvent, PromotionId};
use serde::{Deserialize, Serialize};

use super::ownership::Replica;
use crate::engine::Done;
use crate::error::{SecKillError, StoreError};
use crate::projection::PromotionSummary;

/// One command for a promotion another replica owns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForwardedCommand {
    /// The promotion.
    pub promotion_id: PromotionId,
    /// The command, with the time the first replica read for it.
    pub command: PromotionCommand,
    /// The W3C `traceparent` of the caller's span on the first replica, so
    /// the owner's spans continue its trace. Absent when that replica
    /// traces nothing (and from replicas older than the field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// The owner's answer to one [`ForwardedCommand`], as it crosses the wire.
/// The engine turns it back into what the owner's `SecKill` answered, so the
/// caller gets the owner's answer unchanged.
///
/// From the first release on, fields are only ever added, with defaults,
/// and a replica ignores the ones it does not know, so replicas of
/// neighbouring versions understand each other through a rolling upgrade.
/// A conflict crosses as `unavailable`: nothing was recorded either way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
#[non_exhaustive]
pub enum ForwardedReply {
    /// Done: these events are durable.
    Recorded {
        /// What the command recorded (nothing for a no-op).
        events: Vec<PromotionEvent>,
        /// For a command other than a grab: the promotion after it. Absent
        /// for a grab, whose caller needs only its coupon.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        summary: Option<PromotionSummary>,
    },
    /// The promotion's rules refused it.
    Rejected {
        /// Why.
        error: PromotionError,
    },
    /// The promotion does not exist.
    NotFound,
    /// The owner's queue for the promotion is full.
    Overloaded,
    /// The owner is shutting down.
    ShuttingDown,
    /// The replica asked is not the owner (any more): ask again.
    NotOwner,
    /// The owner's store did not answer within this many milliseconds; the
    /// command may or may not have been recorded.
    Timeout {
        /// The limit that passed.
        millis: u64,
    },
    /// The owner's commit was sent but its answer was lost (not a
    /// timeout): the command may or may not have been recorded.
    OutcomeUnknown {
        /// What went wrong, for the logs.
        reason: String,
    },
    /// The owner's store failed or could not be reached; nothing was
    /// recorded.
    Unavailable {
        /// What went wrong, for the logs.
        reason: String,
    },
}

impl ForwardedReply {
    /// The owner's answer for the wire.
    pub(crate) fn from_result(result: Result<Done, SecKillError>) -> Self {
        match result {
            Ok(Done { events, summary }) => Self::Recorded { events, summary },
            Err(SecKillError::Rejected(error)) => Self::Rejected { error },
            Err(SecKillError::NotFound(_)) => Self::NotFound,
            Err(SecKillError::Overloaded(_)) => Self::Overloaded,
            Err(SecKillError::ShuttingDown) => Self::ShuttingDown,
            Err(SecKillError::NotOwner { .. }) => Self::NotOwner,
            Err(SecKillError::OutcomeUnknown {
                source: StoreError::Timeout(limit),
                ..
            }) => Self::Timeout {
                millis: u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
            },
            Err(SecKillError::OutcomeUnknown { source, .. }) => Self::OutcomeUnknown {
                reason: source.to_string(),
            },
            // Nothing was recorded, as with a store that failed.
            Err(error @ (SecKillError::Storage(_) | SecKillError::Conflict { .. })) => {
                Self::Unavailable {
                    reason: error.to_string(),
                }
            }
        }
    }

    /// What the owner answered, as this replica's `SecKill` answers it.
    /// `NotOwner` is returned as [`SecKillError::NotOwner`] naming `owner`,
    /// the replica that said so.
    pub(crate) fn into_result(
        self,
        promotion_id: PromotionId,
        owner: &Replica,
    ) -> Result<Done, SecKillError> {
        match self {
            Self::Recorded { events, summary } => Ok(Done { events, summary }),
            // Through the one conversion, so an unknown promotion is
            // `NotFound` here as on the owner.
            Self::Rejected { error } => Err(SecKillError::rejected(promotion_id, error)),
            Self::NotFound => Err(SecKillError::NotFound(promotion_id)),
            Self::Overloaded => Err(SecKillError::Overloaded(promotion_id)),
            Self::ShuttingDown => Err(SecKillError::ShuttingDown),
            Self::NotOwner => Err(SecKillError::NotOwner {
                promotion_id,
                owner: owner.clone(),
            }),
            Self::Timeout { millis } => Err(SecKillError::OutcomeUnknown {
                promotion_id,
                source: StoreError::Timeout(Duration::from_millis(millis)),
            }),
            Self::OutcomeUnknown { reason } => Err(SecKillError::OutcomeUnknown {
                promotion_id,
                source: StoreError::interrupted(reason),
            }),
            Self::Unavailable { reason } => {
                Err(SecKillError::Storage(StoreError::unavailable(reason)))
            }
        }
    }
}

/// Carries batches of commands to their owner and brings the answers back.
///
/// Implementations move bytes and nothing else: the engine decides what to
/// send where, batches it, bounds it in time (its `store_timeout`), and
/// treats any error as "the owner did not answer" and forgets the route to
/// that owner. The callers get [`SecKillError::Storage`] when the error says
/// the batch never reached the owner ([`StoreError::Unavailable`]: refused,
/// not connected), and [`SecKillError::OutcomeUnknown`] otherwise (a
/// timeout, a connection broken after sending): the owner may have run it.
#[async_trait]
pub trait Forward: Send + Sync + 'static {
    /// Sends `commands` to `owner` and returns its answers, one per command,
    /// in order.
    async fn forward(
        &self,
        owner: &Replica,
        commands: Vec<ForwardedCommand>,
    ) -> Result<Vec<ForwardedReply>, StoreError>;
}

#[cfg(test)]
mod tests {
    use seckill_domain::testing::terms;

    use super::*;
    use crate::cluster::ReplicaId;

    fn owner() -> Replica {
        Replica {
            id: ReplicaId::random(),
            address: "http://127.0.0.1:1".to_owned(),
        }
    }

    fn summary() -> PromotionSummary {
        let id = PromotionId::from_uuid(uuid::Uuid::from_u128(9));
        let mut promotion = seckill_domain::Promotion::default();
        let created = PromotionEvent::PromotionCreated {
            promotion_id: id,
            terms: terms(5),
            seal: None,
        };
        cqrs_es::Aggregate::apply(&mut promotion, created);
        PromotionSummary::of(&promotion, 1).expect("created")
    }

    #[test]
    fn an_answer_with_its_summary_crosses_the_wire_unchanged() {
        let done = Done {
            events: Vec::new(),
            summary: Some(summary()),
        };
        let reply = ForwardedReply::from_result(Ok(done.clone()));
        let json = serde_json::to_string(&reply).unwrap();
        let back: ForwardedReply = serde_json::from_str(&json).unwrap();
        let id = summary().promotion_id;
        assert_eq!(back.into_result(id, &owner()).unwrap(), done);
    }

    #[test]
    fn an_answer_without_a_summary_reads_as_a_grab_answers() {
        // What an owner sends for a grab: its events, no summary.
        let grab = r#"{"outcome":"recorded","events":[]}"#;
        let reply: ForwardedReply = serde_json::from_str(grab).unwrap();
        let id = summary().promotion_id;
        assert_eq!(
            reply.into_result(id, &owner()).unwrap(),
            Done::nothing(None)
        );
    }

    #[test]
    fn an_answer_keeps_its_outcome_and_events_on_the_wire() {
        let reply = ForwardedReply::from_result(Ok(Done::nothing(Some(summary()))));
        let json: serde_json::Value = serde_json::to_value(&reply).unwrap();
        assert_eq!(json["outcome"], "recorded");
        assert_eq!(json["events"], serde_json::json!([]));
    }

    #[test]
    fn a_forwarded_unknown_promotion_is_not_found() {
        let reply = ForwardedReply::Rejected {
            error: PromotionError::UnknownPromotion,
        };
        let id = summary().promotion_id;
        assert!(matches!(
            reply.into_result(id, &owner()),
            Err(SecKillError::NotFound(found)) if found == id
        ));
    }

    #[test]
    fn a_conflict_crosses_as_unavailable() {
        let id = summary().promotion_id;
        let reply = ForwardedReply::from_result(Err(SecKillError::Conflict { promotion_id: id }));
        assert!(matches!(reply, ForwardedReply::Unavailable { .. }));
        assert!(matches!(
            reply.into_result(id, &owner()),
            Err(SecKillError::Storage(StoreError::Unavailable(_)))
        ));
    }
}
