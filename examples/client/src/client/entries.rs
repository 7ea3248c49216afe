//! Entering a draw: `POST /command/entries/` and [`Enter`], every way the
//! API says an entry ended (docs/draws.md).

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use super::{problem_type, Answer, Client, ClientError};
use crate::api::{EntryDto, ProblemType};

/// How an entry ended, as the server answered it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Enter {
    /// 201: the entry, durable.
    Entered(EntryDto),
    /// 409 `already-entered`: the entry the customer already has (so a
    /// retry of an entry that was recorded after all learns it).
    AlreadyEntered(EntryDto),
    /// 403 `entries-closed`: the draw closed at `closes_at`.
    Closed {
        /// When entries closed.
        closes_at: DateTime<Utc>,
    },
    /// 425 `not-started`: entries open at `publish_time`.
    NotStarted {
        /// When entries open.
        publish_time: DateTime<Utc>,
    },
    /// 503 or 429: nothing was decided, or it is not known whether it was;
    /// entering again later is safe.
    Unavailable {
        /// The problem type the server answered.
        problem: ProblemType,
        /// How long the server asks the client to wait.
        retry_after: Option<Duration>,
    },
}

impl Client {
    /// `POST /command/entries/`: how the entry ended. Other answers (an
    /// unknown promotion, a first-come promotion, an invalid customer id)
    /// are errors.
    pub async fn enter(&self, promotion: Uuid, customer: &str) -> Result<Enter, ClientError> {
        let what = format!("entry of {customer} into promotion {promotion}");
        let request = self
            .http
            .post(self.url("/command/entries/"))
            .json(&json!({ "promotionId": promotion, "customerId": customer }));
        let answer = Answer::read(request, &what).await?;
        if answer.status == StatusCode::CREATED {
            return answer.json(&what).map(Enter::Entered);
        }
        let retry_after = answer.retry_after;
        let Some(problem) = answer.problem() else {
            return Err(answer.refused(&what));
        };
        let missing = |member: &str| ClientError::Decode {
            what: format!("{what}: the problem lacks `{member}`"),
            status: answer.status,
            source: None,
        };
        Ok(match problem_type(&problem) {
            Some(ProblemType::AlreadyEntered) => {
                Enter::AlreadyEntered(problem.entry.ok_or_else(|| missing("entry"))?)
            }
            Some(ProblemType::EntriesClosed) => Enter::Closed {
                closes_at: problem.closes_at.ok_or_else(|| missing("closesAt"))?,
            },
            Some(ProblemType::NotStarted) => Enter::NotStarted {
                publish_time: problem.publish_time.ok_or_else(|| missing("publishTime"))?,
            },
            Some(
                kind @ (ProblemType::Overloaded
                | ProblemType::ShuttingDown
                | ProblemType::StorageUnavailable
                | ProblemType::OutcomeUnknown
                | ProblemType::RateLimited),
            ) => Enter::Unavailable {
                problem: kind,
                retry_after,
            },
            _ => return Err(answer.refused(&what)),
        })
    }
}
