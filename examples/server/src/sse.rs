//! The live feed of one promotion, as Server-Sent Events.
//!
//! A watcher gets the promotion's state at once, then after every commit
//! that changed it, at most [`MIN_INTERVAL`] apart: during a sale thousands
//! of grabs a second commit in batches, and a browser needs ten frames a
//! second, not thousands. Between two frames only the newest state counts.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use seckill_app::{PromotionSummary, PromotionView, SecKill};
use seckill_domain::PromotionId;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::extract::ApiPath;
use super::openapi::answers::{BadRequest, TooManyRequests, Unavailable, UnknownPromotion};
use super::problem::Problem;
use super::routes::parse_promotion_id;
use super::AppState;
use seckill_client::api::PromotionDto;

/// The shortest time between two frames of one feed.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// Follows one promotion live, as Server-Sent Events.
#[utoipa::path(
    get,
    path = "/query/promotions/{promotionId}/events",
    tag = "query",
    params(("promotionId" = String, Path, description = "The promotion's UUID")),
    responses(
        (status = 200, description = "A `text/event-stream` of `promotion` events, each carrying the promotion as JSON; the first is the state now", body = PromotionDto, content_type = "text/event-stream"),
        BadRequest, UnknownPromotion, TooManyRequests, Unavailable,
    )
)]
pub(super) async fn promotion_events(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let promotion_id = parse_promotion_id(&raw)?;
    // Subscribe before reading the state: a commit in between is then seen
    // twice (and skipped by its sequence number) rather than never.
    let changes = state.shared.seckill.watch();
    let current = state
        .shared
        .seckill
        .promotion(promotion_id)
        .await
        .map_err(|error| Problem::from_error(promotion_id, error))?;
    let feed = Feed {
        seckill: state.shared.seckill.clone(),
        promotion_id,
        changes,
        stopping: state.shared.stopping.clone(),
        first: Some(current),
        sent_sequence: 0,
        sent_at: None,
    };
    Ok(Sse::new(futures::stream::unfold(feed, Feed::next)).keep_alive(KeepAlive::default()))
}

/// What the next frame must show.
enum Pending {
    /// This state, from the change feed.
    Summary(PromotionSummary),
    /// The feed lagged and dropped updates: read the state again.
    Reread,
}

/// One watcher's position in the change feed.
struct Feed {
    seckill: SecKill,
    promotion_id: PromotionId,
    changes: broadcast::Receiver<PromotionSummary>,
    /// Ends the feed when the server shuts down; an endless response would
    /// otherwise hold graceful shutdown open forever.
    stopping: CancellationToken,
    first: Option<PromotionView>,
    /// The newest event sequence already sent; older summaries are stale.
    sent_sequence: u64,
    sent_at: Option<Instant>,
}

impl Feed {
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        if let Some(view) = self.first.take() {
            return Some((Ok(self.frame(view)), self));
        }
        loop {
            let pending = self.next_change().await?;
            let pending = self.coalesce(pending).await?;
            let view = match pending {
                Pending::Summary(summary) => PromotionView {
                    status: summary.status(self.seckill.now()),
                    summary,
                },
                Pending::Reread => match self.seckill.promotion(self.promotion_id).await {
                    Ok(view) => view,
                    Err(error) => {
                        // The next commit brings a fresh summary anyway.
                        tracing::debug!(promotion = %self.promotion_id, %error, "cannot re-read promotion for its feed");
                        continue;
                    }
                },
            };
            if view.summary.last_sequence < self.sent_sequence {
                continue;
            }
            return Some((Ok(self.frame(view)), self));
        }
    }

    /// Waits for the next change of this promotion; `None` ends the feed.
    async fn next_change(&mut self) -> Option<Pending> {
        loop {
            let received = tokio::select! {
                () = self.stopping.cancelled() => return None,
                received = self.changes.recv() => received,
            };
            if let Some(pending) = self.relevant(received)? {
                return Some(pending);
            }
        }
    }

    /// Keeps taking changes until the frame is due, so the frame shows the
    /// newest state; `None` ends the feed.
    async fn coalesce(&mut self, mut pending: Pending) -> Option<Pending> {
        let Some(sent_at) = self.sent_at else {
            return Some(pending);
        };
        let due = sent_at + MIN_INTERVAL;
        loop {
            let received = tokio::select! {
                () = self.stopping.cancelled() => return None,
                () = tokio::time::sleep_until(due) => return Some(pending),
                received = self.changes.recv() => received,
            };
            match self.relevant(received) {
                Some(Some(newer)) => pending = newer,
                Some(None) => {}
                None => return Some(pending),
            }
        }
    }

    /// What a received message means for this feed: `None` if the feed has
    /// closed, `Some(None)` if it is about another promotion or stale.
    fn relevant(&self, received: Result<PromotionSummary, RecvError>) -> Option<Option<Pending>> {
        match received {
            Ok(summary)
                if summary.promotion_id == self.promotion_id
                    && summary.last_sequence > self.sent_sequence =>
            {
                Some(Some(Pending::Summary(summary)))
            }
            Ok(_) => Some(None),
            Err(RecvError::Lagged(_)) => Some(Some(Pending::Reread)),
            Err(RecvError::Closed) => None,
        }
    }

    fn frame(&mut self, view: PromotionView) -> Event {
        self.sent_sequence = view.summary.last_sequence;
        self.sent_at = Some(Instant::now());
        let event = Event::default()
            .event("promotion")
            .id(view.summary.last_sequence.to_string());
        match serde_json::to_string(&PromotionDto::from(view)) {
            Ok(json) => event.data(json),
            // Cannot happen for this plain struct; a comment keeps the feed alive.
            Err(error) => event.comment(format!("unserialisable promotion: {error}")),
        }
    }
}
