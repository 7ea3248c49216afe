//! `GET /events`: the global event feed, every event of every promotion as
//! it is stored, as Server-Sent Events that a client resumes with
//! `Last-Event-ID`.
//!
//! Each SSE `id` is the event's global position, so a reconnecting
//! `EventSource` sends the last one it saw and the feed goes on right after
//! it. The feed reads with `SecKill::events_after`, which never skips an
//! event (ADR 0011), in pages of [`PAGE`]; when it has sent everything it
//! waits for the engine's change feed (a commit here, or one another replica
//! announced) as a hint to read again, or [`POLL`] for events written where
//! no hint comes from (another process without announcements, a tool).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use seckill_app::{PositionedEvent, PromotionSummary, SecKill};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;

use super::openapi::answers::{BadRequest, TooManyRequests, Unavailable};
use super::problem::{Problem, ProblemType};
use super::routes::query_problem;
use super::AppState;
use seckill_client::api::FeedEventDto;

/// Events read from the store at once.
pub(crate) const PAGE: usize = 256;
/// How long the feed waits without a hint before it reads again.
pub(crate) const POLL: Duration = Duration::from_millis(250);

/// The SSE header a reconnecting client sends: the last `id` it received.
const LAST_EVENT_ID: &str = "last-event-id";

/// Every event of every promotion, live, as Server-Sent Events.
#[utoipa::path(
    get,
    path = "/events",
    tag = "query",
    params(
        ("Last-Event-ID" = Option<u64>, Header, description = "The last event `id` already received: the feed resumes after it. Browsers' `EventSource` sends it when reconnecting. Wins over `after`", minimum = 0),
        ("after" = Option<u64>, Query, description = "For clients that cannot set headers: the position to start after (default 0, the beginning)", minimum = 0),
    ),
    responses(
        (status = 200, description = "A `text/event-stream` of every stored event after the cursor, in global order, then live: `id` is the position, `event` the event type, `data` the event as JSON", body = FeedEventDto, content_type = "text/event-stream"),
        BadRequest, TooManyRequests, Unavailable,
    )
)]
pub(super) async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let after = start(&headers, query.as_deref())?;
    // Subscribed before the first read, so a commit just after it still
    // wakes the feed.
    let changes = state.shared.seckill.watch();
    // The first page before answering: a store that is down is a 503
    // problem now, not a 200 stream that never sends anything.
    let page = state
        .shared
        .seckill
        .events_after(after, PAGE)
        .await
        .map_err(query_problem)?;
    let follower = Follower {
        seckill: state.shared.seckill.clone(),
        after,
        page: page.into(),
        changes,
        stopping: state.shared.stopping.clone(),
    };
    Ok(
        Sse::new(futures::stream::unfold(follower, Follower::next))
            .keep_alive(KeepAlive::default()),
    )
}

/// Where the feed starts: after `Last-Event-ID` if sent, else after
/// `?after=`, else from the beginning. A value that is no position is 400,
/// in either place, even when the header makes `after` moot: a request the
/// document calls invalid is never answered 200.
fn start(headers: &HeaderMap, query: Option<&str>) -> Result<u64, Problem> {
    let after = query
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("after="))
        .map(|raw| position(raw, "the after parameter"))
        .transpose()?;
    if let Some(value) = headers.get(LAST_EVENT_ID) {
        let raw = String::from_utf8_lossy(value.as_bytes());
        return position(&raw, "the Last-Event-ID header");
    }
    Ok(after.unwrap_or(0))
}

/// A position: a whole number in PostgreSQL's `bigint` (the document's int64).
fn position(raw: &str, what: &str) -> Result<u64, Problem> {
    raw.trim()
        .parse::<u64>()
        .ok()
        .filter(|position| i64::try_from(*position).is_ok())
        .ok_or_else(|| {
            Problem::new(
                ProblemType::MalformedRequest,
                format!(
                    "{what} {raw:?} is not an event id, a whole number from 0 to {}",
                    i64::MAX
                ),
            )
        })
}

/// One client's place in the global order.
struct Follower {
    seckill: SecKill,
    /// The position of the last event sent (or the client's cursor).
    after: u64,
    /// Read but not sent yet.
    page: VecDeque<PositionedEvent>,
    /// Wake-up hints only: what they carry is summaries, not events.
    changes: broadcast::Receiver<PromotionSummary>,
    /// Ends the feed when the server shuts down; an endless response would
    /// otherwise hold graceful shutdown open forever.
    stopping: CancellationToken,
}

impl Follower {
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if self.stopping.is_cancelled() {
                return None;
            }
            if let Some(positioned) = self.page.pop_front() {
                self.after = positioned.position;
                return Some((Ok(frame(&positioned)), self));
            }
            match self.seckill.events_after(self.after, PAGE).await {
                Ok(page) if !page.is_empty() => {
                    self.page = page.into();
                    continue;
                }
                Ok(_) => {}
                // The client keeps its place; the next read may succeed.
                Err(error) => {
                    tracing::debug!(%error, after = self.after, "cannot read the global feed")
                }
            }
            self.wait().await?;
        }
    }

    /// Waits for a hint that something was committed, or for [`POLL`];
    /// `None` once the server is stopping.
    async fn wait(&mut self) -> Option<()> {
        tokio::select! {
            () = self.stopping.cancelled() => None,
            () = tokio::time::sleep(POLL) => Some(()),
            hint = self.changes.recv() => {
                if matches!(hint, Err(RecvError::Closed)) {
                    // No more hints (the engine is gone): poll only, rather
                    // than wake at once forever.
                    tokio::select! {
                        () = self.stopping.cancelled() => return None,
                        () = tokio::time::sleep(POLL) => {}
                    }
                }
                // A hint, or missed hints (`Lagged`): read again either way.
                Some(())
            }
        }
    }
}

/// One event as an SSE frame.
fn frame(positioned: &PositionedEvent) -> Event {
    let event = Event::default().id(positioned.position.to_string());
    match FeedEventDto::try_from_event(positioned).and_then(|dto| {
        let json = serde_json::to_string(&dto)?;
        Ok((dto.event_type, json))
    }) {
        Ok((event_type, json)) => event.event(event_type).data(json),
        // Cannot happen for a stored event; a comment keeps the id, so the
        // client still resumes after it.
        Err(error) => event.comment(format!("unserialisable event: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn the_header_wins_over_the_query_and_bad_values_are_refused() {
        let mut headers = HeaderMap::new();
        assert_eq!(start(&headers, None).unwrap(), 0);
        assert_eq!(start(&headers, Some("after=7")).unwrap(), 7);
        assert_eq!(start(&headers, Some("x=1&after=9")).unwrap(), 9);
        headers.insert(LAST_EVENT_ID, HeaderValue::from_static("42"));
        assert_eq!(start(&headers, Some("after=7")).unwrap(), 42);
        for bad in ["abc", "-1", "9223372036854775808", ""] {
            headers.insert(LAST_EVENT_ID, HeaderValue::from_static(bad));
            assert!(start(&headers, None).is_err(), "Last-Event-ID {bad:?}");
        }
        let none = HeaderMap::new();
        for bad in ["after=x", "after=", "after=-3", "after=9223372036854775808"] {
            assert!(start(&none, Some(bad)).is_err(), "{bad}");
        }
        // A bad `after` is refused even beside a good header (schemathesis
        // found it answered 200).
        headers.insert(LAST_EVENT_ID, HeaderValue::from_static("0"));
        assert!(start(&headers, Some("after=9223372036854775808")).is_err());
    }
}
