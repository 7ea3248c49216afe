//! The rules of a promotion that allocates by draw (docs/draws.md): who may
//! enter and when, when it may be drawn and with which secret, and the
//! coupons the draw awards, a commit's worth at a time.

use chrono::{DateTime, Utc};

use super::{Drawn, Promotion};
use crate::coupon::Coupon;
use crate::draw::{self, DrawSecret, Entry};
use crate::error::PromotionError;
use crate::event::{FinishReason, PromotionEvent};
use crate::value::CustomerId;

impl Promotion {
    /// Most entries one draw takes: each is held in memory until the draw.
    pub const MAX_ENTRIES: u32 = 10_000_000;

    /// Most coupons one commit awards after a draw; a bigger draw is awarded
    /// over several commits (`PromotionCommand::AwardDraw`), so no commit
    /// holds millions of events.
    pub const AWARDS_PER_COMMIT: u32 = 10_000;

    /// How many customers entered the draw.
    pub fn entries(&self) -> u32 {
        // At most `MAX_ENTRIES`, so the count fits in u32.
        u32::try_from(self.entries.len()).unwrap_or(u32::MAX)
    }

    /// The entry of `customer`, if they entered.
    pub fn entry_of(&self, customer: &CustomerId) -> Option<Entry> {
        let id = self.id?;
        self.entries.get(customer.as_str()).map(|e| Entry {
            promotion_id: id,
            number: e.number,
            customer_id: customer.clone(),
            entered_at: e.grabbed_at,
        })
    }

    /// The draw's secret, once it was drawn.
    pub fn drawn_secret(&self) -> Option<DrawSecret> {
        self.drawn.as_ref().map(|drawn| drawn.secret)
    }

    /// The seal of the draw's secret, for a draw.
    pub const fn seal(&self) -> Option<crate::draw::DrawSeal> {
        self.seal
    }

    /// Whether the draw was decided and coupons of it are still to be
    /// awarded, or its finish to be recorded.
    pub fn awaits_awards(&self) -> bool {
        self.drawn.is_some() && self.finished.is_none()
    }

    /// Decides an entry without changing anything: the entry `customer`
    /// would get at `at`, or why not. The one place the entry rules live.
    pub fn decide_entry(
        &self,
        customer: &CustomerId,
        at: DateTime<Utc>,
    ) -> Result<Entry, PromotionError> {
        let (id, terms) = self
            .id
            .zip(self.terms.as_ref())
            .ok_or(PromotionError::UnknownPromotion)?;
        // First, so a retry is answered with the entry even after the close.
        if let Some(entry) = self.entry_of(customer) {
            return Err(PromotionError::AlreadyEntered(Box::new(entry)));
        }
        let closes_at = terms
            .allocation()
            .closes_at()
            .ok_or(PromotionError::NotADraw)?;
        if let Some(finished) = self.finished {
            if finished.reason == FinishReason::Cancelled {
                return Err(PromotionError::Ended {
                    finished_at: finished.at,
                });
            }
        }
        if at >= closes_at || self.finished.is_some() || self.drawn.is_some() {
            return Err(PromotionError::EntriesClosed { closes_at });
        }
        if at < terms.publish_time() {
            return Err(PromotionError::NotStarted {
                publish_time: terms.publish_time(),
            });
        }
        let entered = self.entries();
        if entered >= Self::MAX_ENTRIES {
            return Err(PromotionError::EntriesFull {
                max_entries: Self::MAX_ENTRIES,
            });
        }
        Ok(Entry {
            promotion_id: id,
            number: entered + 1,
            customer_id: customer.clone(),
            entered_at: at,
        })
    }

    /// Decides the draw with `secret` at `at` without changing anything:
    /// the `PromotionDrawn` event, or why not. The coupons follow from
    /// [`award_events`](Self::award_events) once it is applied.
    pub fn draw_event(
        &self,
        secret: DrawSecret,
        at: DateTime<Utc>,
    ) -> Result<PromotionEvent, PromotionError> {
        let terms = self
            .terms
            .as_ref()
            .ok_or(PromotionError::UnknownPromotion)?;
        let closes_at = terms
            .allocation()
            .closes_at()
            .ok_or(PromotionError::NotADraw)?;
        if self.drawn.is_some() {
            return Err(PromotionError::AlreadyDrawn);
        }
        if self.finished.is_some() {
            return Err(PromotionError::AlreadyFinished);
        }
        if at < closes_at {
            return Err(PromotionError::NotYetClosed { closes_at });
        }
        let seal = self.seal.ok_or(PromotionError::Seal)?;
        if secret.commitment() != seal.commitment {
            return Err(PromotionError::WrongSecret);
        }
        let entries = self.entries();
        Ok(PromotionEvent::PromotionDrawn {
            secret,
            // However late it is recorded, the draw is the close's.
            at: closes_at,
            entries,
            winners: entries.min(terms.number_of_coupons().get()),
        })
    }

    /// The next coupons of a decided draw, at most
    /// [`AWARDS_PER_COMMIT`](Self::AWARDS_PER_COMMIT), in the draw's order,
    /// and `PromotionFinished` after the last one.
    pub fn award_events(&self) -> Result<Vec<PromotionEvent>, PromotionError> {
        let (id, terms) = self
            .id
            .zip(self.terms.as_ref())
            .ok_or(PromotionError::UnknownPromotion)?;
        let drawn = self.drawn.as_ref().ok_or(PromotionError::NothingToAward)?;
        if self.finished.is_some() {
            return Err(PromotionError::NothingToAward);
        }
        let closes_at = terms
            .allocation()
            .closes_at()
            .ok_or(PromotionError::NotADraw)?;
        let total = terms.number_of_coupons().get();
        let granted = self.granted();
        let next = drawn
            .winners
            .iter()
            .skip(granted as usize)
            .take(Self::AWARDS_PER_COMMIT as usize);
        let mut events = Vec::new();
        for (&place, number) in next.zip(granted + 1..) {
            // Every winner is an entry, and entries hold parsed ids: neither
            // error can happen; the variants keep the aggregate panic-free.
            let customer = self
                .entries
                .customer(place)
                .ok_or(PromotionError::NothingToAward)?;
            events.push(PromotionEvent::CouponGrabbed {
                coupon: Coupon {
                    promotion_id: id,
                    number,
                    customer_id: CustomerId::parse(customer)
                        .map_err(|_| PromotionError::NothingToAward)?,
                    discount: terms.discount(),
                    grabbed_at: closes_at,
                },
                remaining: total - number,
            });
        }
        let awarded = granted as usize + events.len();
        if awarded == drawn.winners.len() {
            events.push(PromotionEvent::PromotionFinished {
                at: closes_at,
                reason: FinishReason::Drawn,
            });
        }
        Ok(events)
    }

    /// Orders the entries by the revealed secret, once.
    pub(super) fn apply_drawn(&mut self, secret: DrawSecret) {
        let coupons = self
            .terms
            .as_ref()
            .map_or(0, |terms| terms.number_of_coupons().get());
        let winners = draw::winners(&secret, self.entries.iter().map(|e| e.customer), coupons);
        self.drawn = Some(Drawn {
            secret,
            winners: winners.into(),
        });
    }
}
