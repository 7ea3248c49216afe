//! Running as one replica of several on a shared store: the two ports a
//! replicated service is built with, and the protocol replicas speak. A
//! service that runs in one process needs none of it.
//!
//! [`SecKillBuilder::replicated`](crate::SecKillBuilder::replicated) takes
//! an [`Ownership`], which records which live [`Replica`] runs each
//! promotion's writer (`seckill-postgres`'s `PgOwnership` keeps it in the
//! store), and optionally a [`Forward`], which carries a command for a
//! promotion owned elsewhere to its owner. The owner runs what it is sent
//! with [`execute_forwarded`]; [`ForwardedCommand`] and [`ForwardedReply`]
//! are what crosses the wire.
//!
//! # Layout
//! * `ownership` – the [`Ownership`] port and what it answers: [`Claim`],
//!   [`Replica`], [`ReplicaId`].
//! * `forward`   – the [`Forward`] port and the wire form of forwarded
//!   commands and answers.
//! * `mod.rs`    – [`execute_forwarded`], the owner's side of a hop.

mod forward;
mod ownership;

pub use forward::{Forward, ForwardedCommand, ForwardedReply};
pub use ownership::{Claim, Ownership, Replica, ReplicaId};

use tracing::Instrument;

use crate::trace::TARGET;
use crate::SecKill;

/// Runs commands that another replica forwarded to `seckill` because this
/// replica owns their promotions, and answers each in order. They are
/// decided here or answered `NotOwner`, never forwarded again (one hop at
/// most). The commands of a batch run concurrently, so grabs of one
/// promotion share its writer's group commit.
pub async fn execute_forwarded(
    seckill: &SecKill,
    commands: Vec<ForwardedCommand>,
) -> Vec<ForwardedReply> {
    let engine = seckill.engine();
    let runs = commands.into_iter().map(|forwarded| {
        // Each traced command in a span of its own, continuing the caller's
        // trace on the first replica (the batch's request has many
        // callers). One without a traceparent starts no trace here.
        let span = match (engine.trace_context(), &forwarded.traceparent) {
            (Some(trace), Some(traceparent)) => {
                let span = tracing::debug_span!(target: TARGET, "forwarded", promotion = %forwarded.promotion_id);
                if !span.is_disabled() {
                    trace.set_parent(&span, traceparent);
                }
                span
            }
            _ => tracing::Span::none(),
        };
        async move {
            let result = engine
                .execute_forwarded(forwarded.promotion_id, forwarded.command)
                .await;
            ForwardedReply::from_result(result)
        }
        .instrument(span)
    });
    futures::future::join_all(runs).await
}
