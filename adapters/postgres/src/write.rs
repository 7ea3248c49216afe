//! The one write path (ADR 0012): every commit, alone or with other
//! promotions' commits, is written by [`append`], one call of the
//! `seckill_append` function (migration 0011) per group. One commit is a
//! group of one.
//!
//! The path retries nothing: a conflict or a lost answer goes back to the
//! engine's writer, whose one retry policy decides. Only a group the
//! database refused whole, for a reason that names none of its commits (a
//! row it would not take, a deadlock, another writer's event on the primary
//! key), is sent again commit by commit, so each commit gets its own answer
//! and one bad commit never costs the others theirs.

use std::collections::HashSet;

use seckill_app::{Commit, StoreError};
use seckill_domain::PromotionEvent;
use uuid::Uuid;

use crate::error::{is_rolled_back_to_retry, is_unique_violation_on, refuses_a_row};
use crate::rows::{to_db, CouponColumns, SummaryColumns};
use crate::store::PgStore;
use crate::upcast::aggregate_type;

const APPEND: &str = include_str!("../sql/append.sql");
const STREAM_HEAD: &str = include_str!("../sql/stream_head.sql");

/// Appends `commits`, each all or nothing, and answers each on its own, in
/// order; see `EventStore::append_group`.
pub(crate) async fn append(store: &PgStore, commits: &[&Commit]) -> Vec<Result<(), StoreError>> {
    let mut outcomes: Vec<Result<(), StoreError>> = Vec::with_capacity(commits.len());
    outcomes.resize_with(commits.len(), || Ok(()));
    // The function takes a promotion once: a second commit of one goes in a
    // later round, after the first (the port allows it; the engine never
    // sends it).
    let mut rest: Vec<usize> = (0..commits.len()).collect();
    while !rest.is_empty() {
        let mut seen = HashSet::with_capacity(rest.len());
        let (round, later): (Vec<usize>, Vec<usize>) = rest
            .into_iter()
            .partition(|&i| seen.insert(commits[i].promotion_id));
        let group: Vec<&Commit> = round.iter().map(|&i| commits[i]).collect();
        for (i, outcome) in round.into_iter().zip(append_distinct(store, &group).await) {
            outcomes[i] = outcome;
        }
        rest = later;
    }
    outcomes
}

/// Appends commits of distinct promotions in one call, or, if the database
/// refused the call whole for a reason that names no commit, each alone.
async fn append_distinct(store: &PgStore, commits: &[&Commit]) -> Vec<Result<(), StoreError>> {
    if let [commit] = commits {
        return vec![append_alone(store, commit).await];
    }
    match call(store, commits).await {
        Ok(heads) => commits
            .iter()
            .zip(heads)
            .map(|(commit, head)| written(commit, head))
            .collect(),
        Err(failure) if failure.names_no_commit() => {
            tracing::debug!(%failure, commits = commits.len(), "the database refused the group whole; appending its commits one by one");
            let mut outcomes = Vec::with_capacity(commits.len());
            for commit in commits {
                outcomes.push(append_alone(store, commit).await);
            }
            outcomes
        }
        Err(failure) => {
            let error = failure.into_store_error(store, commits);
            commits.iter().map(|_| Err(error.clone())).collect()
        }
    }
}

/// Appends one commit: a group of one, where every refusal is its own.
async fn append_alone(store: &PgStore, commit: &Commit) -> Result<(), StoreError> {
    match call(store, &[commit]).await {
        Ok(heads) => written(commit, heads[0]),
        // Another writer took one of its sequence numbers first, or the
        // transaction was rolled back to be tried again: nothing written,
        // and the writer decides again.
        Err(Failure::Sql(e))
            if is_unique_violation_on(&e, "events") || is_rolled_back_to_retry(&e) =>
        {
            Err(conflict(commit))
        }
        // A coupon key another transaction committed first: a writer of this
        // promotion that moved the stream (the coupons are written before
        // the events), or a row written around the store. The stream tells
        // which; heads only grow, so a moved head is a conflict for sure.
        Err(Failure::Sql(e)) if is_unique_violation_on(&e, "coupons") => {
            match stream_head(store, commit).await {
                Ok(head) if head != commit.expected_sequence => Err(conflict(commit)),
                _ => Err(store.error(doing(&[commit]), e)),
            }
        }
        Err(failure) => Err(failure.into_store_error(store, &[commit])),
    }
}

/// A commit's answer from the head the function read for its stream.
fn written(commit: &Commit, head: i64) -> Result<(), StoreError> {
    if u64::try_from(head).ok() == Some(commit.expected_sequence) {
        Ok(())
    } else {
        Err(conflict(commit))
    }
}

/// The last sequence number of `commit`'s stream.
async fn stream_head(store: &PgStore, commit: &Commit) -> Result<u64, sqlx::Error> {
    let head: i64 = sqlx::query_scalar(STREAM_HEAD)
        .bind(commit.promotion_id.to_string())
        .fetch_one(&store.pool)
        .await?;
    Ok(u64::try_from(head).unwrap_or(0))
}

fn doing(commits: &[&Commit]) -> String {
    match commits {
        [commit] => format!(
            "appending {} events to promotion {}",
            commit.events.len(),
            commit.promotion_id
        ),
        _ => format!(
            "appending the commits of {} promotions together",
            commits.len()
        ),
    }
}

fn conflict(commit: &Commit) -> StoreError {
    StoreError::Conflict {
        promotion_id: commit.promotion_id,
        expected: commit.expected_sequence,
    }
}

/// Why a call wrote nothing.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// A commit could not be put into columns; nothing was sent.
    #[error(transparent)]
    Encode(StoreError),
    /// The database answered an error, or none.
    #[error(transparent)]
    Sql(sqlx::Error),
}

impl Failure {
    fn into_store_error(self, store: &PgStore, commits: &[&Commit]) -> StoreError {
        match self {
            Self::Encode(error) => error,
            Self::Sql(e) => store.error(doing(commits), e),
        }
    }

    /// Whether the failure may be one commit's doing while it names none:
    /// a value or row the database refused, or a rollback to retry.
    fn names_no_commit(&self) -> bool {
        match self {
            Self::Encode(_) => true,
            Self::Sql(e) => refuses_a_row(e) || is_rolled_back_to_retry(e),
        }
    }
}

/// One call of `seckill_append`; its answer is every stream's head, in the
/// order of `commits`.
async fn call(store: &PgStore, commits: &[&Commit]) -> Result<Vec<i64>, Failure> {
    // In the order of their promotion ids: two groups that share promotions
    // (two replicas during a handover) then lock those promotions' summary
    // rows in the same order, and cannot deadlock on them.
    let mut order: Vec<usize> = (0..commits.len()).collect();
    order.sort_unstable_by_key(|&i| commits[i].promotion_id);
    let sorted: Vec<&Commit> = order.iter().map(|&i| commits[i]).collect();
    let columns = Columns::of(&sorted).map_err(Failure::Encode)?;
    let query = sqlx::query_scalar::<_, Vec<i64>>(APPEND)
        .bind(aggregate_type())
        .bind(PromotionEvent::VERSION)
        .bind(&columns.promotion_ids)
        .bind(&columns.expected)
        .bind(&columns.event_commits)
        .bind(&columns.event_sequences)
        .bind(&columns.event_types)
        .bind(&columns.payloads)
        .bind(&columns.coupon_commits);
    let query = columns
        .summaries
        .bind(columns.coupons.bind(query))
        .bind(&columns.traceparents);
    let sorted_heads = query.fetch_one(&store.pool).await.map_err(Failure::Sql)?;
    if sorted_heads.len() != commits.len() {
        return Err(Failure::Encode(StoreError::backend(format!(
            "seckill_append answered {} heads for {} commits",
            sorted_heads.len(),
            commits.len()
        ))));
    }
    let mut heads = vec![0; commits.len()];
    for (i, head) in order.into_iter().zip(sorted_heads) {
        heads[i] = head;
    }
    Ok(heads)
}

/// Commits as the function's arrays: per commit, per event, per coupon, and
/// the summaries.
#[derive(Default)]
struct Columns<'c> {
    promotion_ids: Vec<Uuid>,
    expected: Vec<i64>,
    event_commits: Vec<i32>,
    event_sequences: Vec<i64>,
    event_types: Vec<&'static str>,
    payloads: Vec<String>,
    /// Per event, its command's traceparent: NULL for most.
    traceparents: Vec<Option<&'c str>>,
    coupon_commits: Vec<i32>,
    coupons: CouponColumns<'c>,
    summaries: SummaryColumns<'c>,
}

impl<'c> Columns<'c> {
    fn of(commits: &[&'c Commit]) -> Result<Self, StoreError> {
        let events = commits.iter().map(|c| c.events.len()).sum();
        let mut columns = Self {
            event_commits: Vec::with_capacity(events),
            event_sequences: Vec::with_capacity(events),
            event_types: Vec::with_capacity(events),
            payloads: Vec::with_capacity(events),
            traceparents: Vec::with_capacity(events),
            ..Self::default()
        };
        for (index, commit) in (1..).zip(commits) {
            columns.promotion_ids.push(*commit.promotion_id.as_uuid());
            columns.expected.push(to_db(commit.expected_sequence)?);
            for ((sequence, event), index_in_commit) in (commit.expected_sequence + 1..)
                .zip(&commit.events)
                .zip(0..)
            {
                columns
                    .traceparents
                    .push(commit.traceparent(index_in_commit));
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
}
