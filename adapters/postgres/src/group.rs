//! Group commit across promotions (ADR 0012): many promotions' commits in
//! one call of `seckill_append_group` (migrations 0009 and 0010), so one transaction
//! carries them all, and each commit still gets its own answer.

use std::collections::HashSet;

use seckill_app::{Commit, StoreError};
use seckill_domain::PromotionEvent;
use uuid::Uuid;

use crate::error::is_unique_violation_on;
use crate::rows::{to_db, CouponColumns, SummaryColumns};
use crate::store::PgStore;
use crate::upcast::aggregate_type;

const APPEND_GROUP: &str = include_str!("../sql/append_group.sql");

/// Appends `commits` in one transaction; see `EventStore::append_group`.
pub(crate) async fn append_group(
    store: &PgStore,
    commits: &[&Commit],
) -> Vec<Result<(), StoreError>> {
    let distinct: HashSet<_> = commits.iter().map(|c| c.promotion_id).collect();
    if commits.len() <= 1
        || distinct.len() < commits.len()
        || commits.iter().any(|c| c.events.is_empty())
    {
        // One commit needs no group; a stream twice in one group breaks the
        // function's rule, so those go one at a time, in order. So does a
        // commit without events (the engine sends none): the function's
        // heads are backed by the events' primary key, which such a commit
        // never meets.
        return one_by_one(store, commits).await;
    }
    // In the order of their promotion ids: two groups that share promotions
    // (two replicas during a handover) then take those promotions' row locks
    // in the same order, before the events lock, and cannot deadlock on them.
    let mut order: Vec<usize> = (0..commits.len()).collect();
    order.sort_unstable_by_key(|&i| commits[i].promotion_id);
    let sorted: Vec<&Commit> = order.iter().map(|&i| commits[i]).collect();
    let outcome = match GroupColumns::of(&sorted) {
        Ok(columns) => columns.append(store).await,
        Err(error) => Err(error),
    };
    match outcome {
        Ok(heads) => {
            let mut outcomes: Vec<Result<(), StoreError>> =
                commits.iter().map(|_| Ok(())).collect();
            for (&i, head) in order.iter().zip(heads) {
                let commit = commits[i];
                if u64::try_from(head).ok() != Some(commit.expected_sequence) {
                    outcomes[i] = Err(conflict(commit));
                }
            }
            outcomes
        }
        // The group may or may not have landed: each writer reads back its
        // own stream to find out, so each gets the same answer.
        Err(error) if error.outcome_unknown() => {
            commits.iter().map(|_| Err(error.clone())).collect()
        }
        // Rolled back, nothing written: perhaps because of one commit (a row
        // the database refused). Alone, each gets its own answer, so one bad
        // commit never costs the others theirs.
        Err(error) => {
            tracing::debug!(%error, commits = commits.len(), "group append failed; appending one by one");
            one_by_one(store, commits).await
        }
    }
}

async fn one_by_one(store: &PgStore, commits: &[&Commit]) -> Vec<Result<(), StoreError>> {
    let mut outcomes = Vec::with_capacity(commits.len());
    for commit in commits {
        outcomes.push(seckill_app::EventStore::append(store, commit).await);
    }
    outcomes
}

fn conflict(commit: &Commit) -> StoreError {
    StoreError::Conflict {
        promotion_id: commit.promotion_id,
        expected: commit.expected_sequence,
    }
}

/// A group as the function's arrays: per commit, per event, per coupon, and
/// the summaries.
#[derive(Default)]
struct GroupColumns<'c> {
    aggregate_ids: Vec<String>,
    promotion_ids: Vec<Uuid>,
    expected: Vec<i64>,
    event_commits: Vec<i32>,
    event_sequences: Vec<i64>,
    event_types: Vec<&'static str>,
    payloads: Vec<String>,
    coupon_commits: Vec<i32>,
    coupons: CouponColumns<'c>,
    summaries: SummaryColumns<'c>,
}

impl<'c> GroupColumns<'c> {
    fn of(commits: &[&'c Commit]) -> Result<Self, StoreError> {
        let mut columns = Self::default();
        for (index, commit) in (1..).zip(commits) {
            // Read by migration 0009's function only; 0010 keeps the
            // parameter for replicas of the previous release.
            columns.aggregate_ids.push(commit.promotion_id.to_string());
            columns.promotion_ids.push(*commit.promotion_id.as_uuid());
            columns.expected.push(to_db(commit.expected_sequence)?);
            for (sequence, event) in (commit.expected_sequence + 1..).zip(&commit.events) {
                columns.event_commits.push(index);
                columns.event_sequences.push(to_db(sequence)?);
                columns.event_types.push(event.type_name());
                columns
                    .payloads
                    .push(serde_json::to_string(event).map_err(StoreError::backend)?);
            }
            for coupon in commit.coupons() {
                columns.coupon_commits.push(index);
                columns.coupons.push(coupon)?;
            }
            columns.summaries.push(&commit.summary)?;
        }
        Ok(columns)
    }

    /// Calls the function; its answer is every stream's head, in order.
    async fn append(&self, store: &PgStore) -> Result<Vec<i64>, StoreError> {
        let query = sqlx::query_scalar::<_, Vec<i64>>(APPEND_GROUP)
            .bind(aggregate_type())
            .bind(PromotionEvent::VERSION)
            .bind(&self.aggregate_ids)
            .bind(&self.promotion_ids)
            .bind(&self.expected)
            .bind(&self.event_commits)
            .bind(&self.event_sequences)
            .bind(&self.event_types)
            .bind(&self.payloads)
            .bind(&self.coupon_commits);
        let query = self.summaries.bind(self.coupons.bind(query));
        match query.fetch_one(&store.pool).await {
            Ok(heads) if heads.len() == self.expected.len() => Ok(heads),
            Ok(heads) => Err(StoreError::backend(format!(
                "seckill_append_group answered {} heads for {} commits",
                heads.len(),
                self.expected.len()
            ))),
            // Another writer of one of the streams committed between the
            // group's head read and its events insert (migration 0010 reads
            // the heads before the lock): the transaction rolled back, and
            // one by one tells who conflicts.
            Err(e) if is_unique_violation_on(&e, "events") => Err(StoreError::backend(e)),
            Err(e) => Err(store.error(
                format!(
                    "appending the commits of {} promotions together",
                    self.expected.len()
                ),
                e,
            )),
        }
    }
}
