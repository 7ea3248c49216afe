//! The `Promotion` aggregate: it decides every command against the rules of a
//! flash sale and changes only by applying its own events.
//!
//! `draw` holds the rules of promotions that allocate by draw: entries, the
//! draw, and the awards that follow it.

mod draw;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use crate::command::PromotionCommand;
use crate::coupon::Coupon;
use crate::draw::{Allocation, DrawSeal, DrawSecret};
use crate::error::{PromotionError, ScheduleError};
use crate::event::{FinishReason, PromotionEvent};
use crate::holders::HolderSet;
use crate::value::{CustomerId, PromotionId, PromotionTerms};

/// Where a promotion stands at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromotionStatus {
    /// Created; grabbing opens at the publish time.
    Upcoming,
    /// Open for grabs.
    Active,
    /// Every coupon was granted.
    SoldOut,
    /// The finish time passed, whether or not an expiry was recorded.
    Expired,
    /// Closed early by an admin.
    Cancelled,
    /// Drawn: every winner of the draw holds a coupon.
    Drawn,
}

impl PromotionStatus {
    /// The status at `now` of a promotion with these times and, if it was
    /// recorded as finished, that reason. One function, so the aggregate and
    /// every projection agree.
    pub fn at(
        now: DateTime<Utc>,
        publish_time: DateTime<Utc>,
        finish_time: DateTime<Utc>,
        finished: Option<FinishReason>,
    ) -> Self {
        match finished {
            Some(FinishReason::SoldOut) => Self::SoldOut,
            Some(FinishReason::Cancelled) => Self::Cancelled,
            Some(FinishReason::Expired) => Self::Expired,
            Some(FinishReason::Drawn) => Self::Drawn,
            None if now < publish_time => Self::Upcoming,
            None if now >= finish_time => Self::Expired,
            None => Self::Active,
        }
    }

    /// Whether grabs can still succeed, or will once it opens.
    pub const fn is_open_or_upcoming(self) -> bool {
        matches!(self, Self::Upcoming | Self::Active)
    }
}

/// The events one winning grab records, in order: the coupon, then the end
/// of the sale if it took the last one.
#[derive(Debug, Clone, PartialEq)]
pub struct GrabEvents {
    grabbed: PromotionEvent,
    sold_out: Option<PromotionEvent>,
}

impl IntoIterator for GrabEvents {
    type Item = PromotionEvent;
    type IntoIter =
        std::iter::Chain<std::iter::Once<PromotionEvent>, std::option::IntoIter<PromotionEvent>>;

    fn into_iter(self) -> Self::IntoIter {
        std::iter::once(self.grabbed).chain(self.sold_out)
    }
}

/// When and why a promotion finished.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Finished {
    at: DateTime<Utc>,
    reason: FinishReason,
}

/// The promotion aggregate.
///
/// `Default` is the state before `PromotionCreated`: every command but
/// `CreatePromotion` is refused with [`PromotionError::UnknownPromotion`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Promotion {
    id: Option<PromotionId>,
    terms: Option<PromotionTerms>,
    // Compact, and cheap to copy for a background snapshot: see `holders`.
    holders: HolderSet,
    finished: Option<Finished>,
    // Draws only; left out of a first-come snapshot, and empty when an older
    // snapshot is read. The entries are a holder set too: numbered by
    // arrival, found by customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seal: Option<DrawSeal>,
    #[serde(default, skip_serializing_if = "HolderSet::is_empty")]
    entries: HolderSet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    drawn: Option<Drawn>,
}

/// A draw once decided: its secret, and the winning entries' places (from
/// 0) in draw order, computed once when `PromotionDrawn` is applied. Shared,
/// so a snapshot's copy of the aggregate does not copy it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "RawDrawn", into = "RawDrawn")]
struct Drawn {
    secret: DrawSecret,
    winners: Arc<[u32]>,
}

#[derive(Serialize, Deserialize)]
struct RawDrawn {
    secret: DrawSecret,
    winners: Vec<u32>,
}

impl From<RawDrawn> for Drawn {
    fn from(raw: RawDrawn) -> Self {
        Self {
            secret: raw.secret,
            winners: raw.winners.into(),
        }
    }
}

impl From<Drawn> for RawDrawn {
    fn from(drawn: Drawn) -> Self {
        Self {
            secret: drawn.secret,
            winners: drawn.winners.to_vec(),
        }
    }
}

impl Promotion {
    /// The id, once created.
    pub const fn id(&self) -> Option<PromotionId> {
        self.id
    }

    /// The current terms, once created.
    pub const fn terms(&self) -> Option<&PromotionTerms> {
        self.terms.as_ref()
    }

    /// Whether `PromotionCreated` has been applied.
    pub const fn exists(&self) -> bool {
        self.terms.is_some()
    }

    /// How many coupons have been granted.
    pub fn granted(&self) -> u32 {
        // At most `CouponCount::MAX` holders, so the count fits in u32.
        u32::try_from(self.holders.len()).unwrap_or(u32::MAX)
    }

    /// How many coupons are left (0 before creation).
    pub fn remaining(&self) -> u32 {
        self.terms.as_ref().map_or(0, |t| {
            t.number_of_coupons().get().saturating_sub(self.granted())
        })
    }

    /// Why and when the promotion finished, if it was recorded as finished.
    pub fn finished(&self) -> Option<(DateTime<Utc>, FinishReason)> {
        self.finished.map(|f| (f.at, f.reason))
    }

    /// Whether the promotion was recorded as finished: after that no command
    /// changes it again, so its state can be shared read-only.
    pub const fn is_finished(&self) -> bool {
        self.finished.is_some()
    }

    /// The status at `now`, or `None` before creation.
    pub fn status_at(&self, now: DateTime<Utc>) -> Option<PromotionStatus> {
        let terms = self.terms.as_ref()?;
        Some(PromotionStatus::at(
            now,
            terms.publish_time(),
            terms.finish_time(),
            self.finished.map(|f| f.reason),
        ))
    }

    /// The coupon `customer` holds, if any.
    pub fn coupon_of(&self, customer: &CustomerId) -> Option<Coupon> {
        let (id, terms) = self.id.zip(self.terms.as_ref())?;
        self.holders.get(customer.as_str()).map(|h| Coupon {
            promotion_id: id,
            number: h.number,
            customer_id: customer.clone(),
            discount: terms.discount(),
            grabbed_at: h.grabbed_at,
        })
    }

    /// Decides a grab without changing anything: the coupon `customer` would
    /// get at `at`, or why not.
    ///
    /// This is the one place the grab rules live. [`Aggregate::handle`] uses
    /// it, and so can a reader of a finished promotion's frozen state, which
    /// never changes again.
    pub fn decide_grab(
        &self,
        customer: &CustomerId,
        at: DateTime<Utc>,
    ) -> Result<Coupon, PromotionError> {
        let (id, terms) = self
            .id
            .zip(self.terms.as_ref())
            .ok_or(PromotionError::UnknownPromotion)?;
        // Checked first, so a winner's retry is answered with its coupon even
        // after the sale closed.
        if let Some(coupon) = self.coupon_of(customer) {
            return Err(PromotionError::AlreadyGrabbed(Box::new(coupon)));
        }
        if let Allocation::Draw { closes_at } = terms.allocation() {
            return Err(PromotionError::IsADraw { closes_at });
        }
        let total = terms.number_of_coupons().get();
        if let Some(finished) = self.finished {
            return Err(match finished.reason {
                FinishReason::SoldOut => PromotionError::SoldOut {
                    number_of_coupons: total,
                },
                FinishReason::Expired | FinishReason::Cancelled | FinishReason::Drawn => {
                    PromotionError::Ended {
                        finished_at: finished.at,
                    }
                }
            });
        }
        if at < terms.publish_time() {
            return Err(PromotionError::NotStarted {
                publish_time: terms.publish_time(),
            });
        }
        if at >= terms.finish_time() {
            return Err(PromotionError::Ended {
                finished_at: terms.finish_time(),
            });
        }
        let granted = self.granted();
        if granted >= total {
            return Err(PromotionError::SoldOut {
                number_of_coupons: total,
            });
        }
        Ok(Coupon {
            promotion_id: id,
            number: granted + 1,
            customer_id: customer.clone(),
            discount: terms.discount(),
            grabbed_at: at,
        })
    }

    /// Decides a grab and returns the events it records — `CouponGrabbed`,
    /// then `PromotionFinished` if that was the last coupon — without
    /// applying them. [`Aggregate::handle`] writes exactly these; the grab
    /// engine calls this directly, so its hot path needs no `EventSink` (an
    /// async mutex and an allocation per command) and no command clone.
    pub fn grab_events(
        &self,
        customer: &CustomerId,
        at: DateTime<Utc>,
    ) -> Result<GrabEvents, PromotionError> {
        let coupon = self.decide_grab(customer, at)?;
        let remaining = self.remaining() - 1;
        let sold_out = (remaining == 0).then_some(PromotionEvent::PromotionFinished {
            at,
            reason: FinishReason::SoldOut,
        });
        Ok(GrabEvents {
            grabbed: PromotionEvent::CouponGrabbed { coupon, remaining },
            sold_out,
        })
    }

    fn open_terms(&self) -> Result<&PromotionTerms, PromotionError> {
        let terms = self
            .terms
            .as_ref()
            .ok_or(PromotionError::UnknownPromotion)?;
        if self.finished.is_some() {
            return Err(PromotionError::AlreadyFinished);
        }
        Ok(terms)
    }
}

/// A draw's terms come with the seal of its secret, and only a draw's.
fn check_seal(terms: &PromotionTerms, seal: Option<&DrawSeal>) -> Result<(), PromotionError> {
    if terms.allocation().is_first_come() == seal.is_none() {
        Ok(())
    } else {
        Err(PromotionError::Seal)
    }
}

/// Checks that `terms` describe a sale that can still run, judged at `at`:
/// it has not finished yet, opens at most [`ScheduleError::MAX_LEAD`] ahead
/// and runs at most [`ScheduleError::MAX_RUN`]. Durations are compared with
/// `signed_duration_since`, which cannot overflow for any two `DateTime`s.
fn check_schedule(terms: &PromotionTerms, at: DateTime<Utc>) -> Result<(), ScheduleError> {
    let (publish_time, finish_time) = (terms.publish_time(), terms.finish_time());
    if finish_time <= at {
        return Err(ScheduleError::FinishInPast { finish_time, at });
    }
    if publish_time.signed_duration_since(at) > ScheduleError::MAX_LEAD {
        return Err(ScheduleError::PublishTooFarAhead {
            publish_time,
            latest: at
                .checked_add_signed(ScheduleError::MAX_LEAD)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        });
    }
    if finish_time.signed_duration_since(publish_time) > ScheduleError::MAX_RUN {
        return Err(ScheduleError::RunTooLong {
            publish_time,
            finish_time,
        });
    }
    Ok(())
}

impl Aggregate for Promotion {
    const TYPE: &'static str = "Promotion";
    type Command = PromotionCommand;
    type Event = PromotionEvent;
    type Error = PromotionError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            PromotionCommand::CreatePromotion {
                promotion_id,
                terms,
                at,
                seal,
            } => {
                if self.exists() {
                    return Err(PromotionError::AlreadyExists);
                }
                check_schedule(&terms, at)?;
                check_seal(&terms, seal.as_ref())?;
                sink.write(
                    PromotionEvent::PromotionCreated {
                        promotion_id,
                        terms,
                        seal,
                    },
                    self,
                )
                .await;
            }
            PromotionCommand::UpdatePromotion { terms, at, seal } => {
                let current = self.open_terms()?;
                // A granted coupon or an entry proves the sale started, even
                // if this command's clock says otherwise.
                if at >= current.publish_time() || self.granted() > 0 || !self.entries.is_empty() {
                    return Err(PromotionError::AlreadyStarted {
                        publish_time: current.publish_time(),
                    });
                }
                check_schedule(&terms, at)?;
                check_seal(&terms, seal.as_ref())?;
                sink.write(PromotionEvent::PromotionUpdated { terms, at, seal }, self)
                    .await;
            }
            PromotionCommand::EnterDraw { customer_id, at } => {
                let entry = self.decide_entry(&customer_id, at)?;
                sink.write(PromotionEvent::DrawEntered { entry }, self)
                    .await;
            }
            PromotionCommand::Draw { secret, at } => {
                // Applying the draw orders the entries; the awards read it.
                let drawn = self.draw_event(secret, at)?;
                sink.write(drawn, self).await;
                for event in self.award_events()? {
                    sink.write(event, self).await;
                }
            }
            PromotionCommand::AwardDraw => {
                for event in self.award_events()? {
                    sink.write(event, self).await;
                }
            }
            PromotionCommand::GrabCoupon { customer_id, at } => {
                for event in self.grab_events(&customer_id, at)? {
                    sink.write(event, self).await;
                }
            }
            PromotionCommand::ExpirePromotion { at } => {
                let terms = self.open_terms()?;
                // A draw finishes by being drawn, never by expiring.
                if self.drawn.is_some() {
                    return Err(PromotionError::AlreadyDrawn);
                }
                if let Allocation::Draw { closes_at } = terms.allocation() {
                    return Err(PromotionError::NotYetDrawn { closes_at });
                }
                if at < terms.finish_time() {
                    return Err(PromotionError::NotYetExpired {
                        finish_time: terms.finish_time(),
                    });
                }
                // It ended at its finish time, not when a timer noticed (a
                // tick later, or hours later after downtime): grabs refused
                // before and after this event name the same end.
                sink.write(
                    PromotionEvent::PromotionFinished {
                        at: terms.finish_time(),
                        reason: FinishReason::Expired,
                    },
                    self,
                )
                .await;
            }
            PromotionCommand::CancelPromotion { at } => {
                self.open_terms()?;
                if self.drawn.is_some() {
                    return Err(PromotionError::AlreadyDrawn);
                }
                sink.write(
                    PromotionEvent::PromotionFinished {
                        at,
                        reason: FinishReason::Cancelled,
                    },
                    self,
                )
                .await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            PromotionEvent::PromotionCreated {
                promotion_id,
                terms,
                seal,
            } => {
                self.id = Some(promotion_id);
                self.terms = Some(terms);
                self.seal = seal;
            }
            PromotionEvent::PromotionUpdated { terms, seal, .. } => {
                self.terms = Some(terms);
                self.seal = seal;
            }
            PromotionEvent::DrawEntered { entry } => {
                // Numbered by arrival as `decide_entry` numbers them; a
                // repeated entry cannot be recorded, and were one replayed
                // the first stands.
                let _ = self
                    .entries
                    .insert(entry.customer_id.as_str(), entry.entered_at);
            }
            PromotionEvent::PromotionDrawn { secret, .. } => self.apply_drawn(secret),
            PromotionEvent::CouponGrabbed { coupon, .. } => {
                // The set numbers holders by their place, as `decide_grab`
                // does: `coupon.number` is `granted() + 1` in every stream
                // this aggregate recorded. A second grab by one customer
                // cannot be recorded either; were one replayed, the first
                // holding stands.
                let _ = self
                    .holders
                    .insert(coupon.customer_id.as_str(), coupon.grabbed_at);
            }
            PromotionEvent::PromotionFinished { at, reason } => {
                self.finished = Some(Finished { at, reason });
            }
        }
    }
}
