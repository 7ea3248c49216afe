//! Recomputing a draw from a promotion's events, as anyone holding them can
//! (the `/sync` feed, a subscription, the JetStream stream, or the store):
//! the secret must match the commitment recorded before the first entry,
//! and the coupons must have gone to exactly the winners the draw gives, in
//! its order. docs/draws.md states the same algorithm for other languages.

use std::collections::HashSet;

use thiserror::Error;

use super::{winners, Commitment, DrawSecret};
use crate::event::PromotionEvent;
use crate::value::{CustomerId, PromotionId, PromotionTerms};

/// A draw that checked out.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedDraw {
    /// The promotion drawn.
    pub promotion_id: PromotionId,
    /// The commitment recorded before the first entry.
    pub commitment: Commitment,
    /// The secret revealed by the draw.
    pub secret: DrawSecret,
    /// Every entry, in entry order.
    pub entries: Vec<CustomerId>,
    /// The winners, in draw order: the holder of coupon 1 first.
    pub winners: Vec<CustomerId>,
}

/// Why a promotion's events do not show a sound draw.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum DrawCheckError {
    /// The first event is not `PromotionCreated`.
    #[error("the events do not begin with PromotionCreated")]
    NotCreated,
    /// The promotion allocates first come.
    #[error("the promotion allocates first come, not by draw")]
    NotADraw,
    /// A draw's terms were recorded without a commitment.
    #[error("the draw's terms were recorded without a commitment")]
    NoCommitment,
    /// The terms changed after the first entry.
    #[error("the terms changed after entry #{entries}")]
    TermsChangedAfterEntries {
        /// Entries recorded before the change.
        entries: u32,
    },
    /// An entry is numbered out of order, repeated, or after the close.
    #[error("entry #{number} of {customer} is out of order, repeated, or after the close")]
    BadEntry {
        /// The entry's number as recorded.
        number: u32,
        /// Who entered.
        customer: CustomerId,
    },
    /// The promotion has not been drawn (yet).
    #[error("the promotion has not been drawn")]
    NotDrawn,
    /// The revealed secret is not the one committed to.
    #[error("the revealed secret's SHA-256 is {revealed}, but {committed} was committed")]
    CommitmentMismatch {
        /// The commitment recorded at creation.
        committed: Commitment,
        /// SHA-256 of the revealed secret.
        revealed: Commitment,
    },
    /// A coupon went to someone the draw does not give it to.
    #[error("coupon #{number} went to {recorded}, but the draw gives it to {expected:?}")]
    WrongWinner {
        /// The coupon's number.
        number: u32,
        /// Who the draw gives it to, if anyone.
        expected: Option<CustomerId>,
        /// Who got it.
        recorded: CustomerId,
    },
    /// Fewer coupons were recorded than the draw has winners.
    #[error("{recorded} of the draw's {expected} coupons are recorded")]
    Incomplete {
        /// Coupons recorded after the draw.
        recorded: u32,
        /// Winners the draw gives.
        expected: u32,
    },
}

/// Checks the draw that `events` (one promotion's, in stream order) record,
/// and returns it.
///
/// # Errors
/// The first thing that does not check out; see [`DrawCheckError`].
pub fn verify<'a>(
    events: impl IntoIterator<Item = &'a PromotionEvent>,
) -> Result<VerifiedDraw, DrawCheckError> {
    let mut events = events.into_iter();
    let Some(PromotionEvent::PromotionCreated {
        promotion_id,
        terms,
        seal,
    }) = events.next()
    else {
        return Err(DrawCheckError::NotCreated);
    };
    let mut terms: &PromotionTerms = terms;
    let mut commitment = seal.map(|seal| seal.commitment);
    let mut entries: Vec<CustomerId> = Vec::new();
    let mut entered: HashSet<&str> = HashSet::new();
    let mut drawn: Option<(DrawSecret, Vec<CustomerId>)> = None;
    let mut awarded: u32 = 0;
    for event in events {
        match event {
            PromotionEvent::PromotionUpdated {
                terms: new, seal, ..
            } => {
                if !entries.is_empty() {
                    return Err(DrawCheckError::TermsChangedAfterEntries {
                        entries: entries.len() as u32,
                    });
                }
                terms = new;
                commitment = seal.map(|seal| seal.commitment);
            }
            PromotionEvent::DrawEntered { entry } => {
                let closes_at = terms.allocation().closes_at();
                let in_order = entry.number as usize == entries.len() + 1
                    && drawn.is_none()
                    && closes_at.is_some_and(|close| entry.entered_at < close)
                    && entered.insert(entry.customer_id.as_str());
                if !in_order {
                    return Err(DrawCheckError::BadEntry {
                        number: entry.number,
                        customer: entry.customer_id.clone(),
                    });
                }
                entries.push(entry.customer_id.clone());
            }
            PromotionEvent::PromotionDrawn { secret, .. } => {
                if terms.allocation().closes_at().is_none() {
                    return Err(DrawCheckError::NotADraw);
                }
                let committed = commitment.ok_or(DrawCheckError::NoCommitment)?;
                let revealed = secret.commitment();
                if revealed != committed {
                    return Err(DrawCheckError::CommitmentMismatch {
                        committed,
                        revealed,
                    });
                }
                let coupons = terms.number_of_coupons().get();
                let order = winners(secret, entries.iter().map(CustomerId::as_str), coupons);
                let order = order
                    .into_iter()
                    .map(|place| entries[place as usize].clone())
                    .collect();
                drawn = Some((*secret, order));
            }
            PromotionEvent::CouponGrabbed { coupon, .. } => {
                let expected = drawn
                    .as_ref()
                    .and_then(|(_, order)| order.get(awarded as usize));
                if coupon.number != awarded + 1 || expected != Some(&coupon.customer_id) {
                    return Err(DrawCheckError::WrongWinner {
                        number: coupon.number,
                        expected: expected.cloned(),
                        recorded: coupon.customer_id.clone(),
                    });
                }
                awarded += 1;
            }
            PromotionEvent::PromotionCreated { .. } | PromotionEvent::PromotionFinished { .. } => {}
        }
    }
    if terms.allocation().closes_at().is_none() {
        return Err(DrawCheckError::NotADraw);
    }
    let (secret, winners) = drawn.ok_or(DrawCheckError::NotDrawn)?;
    let expected = winners.len() as u32;
    if awarded != expected {
        return Err(DrawCheckError::Incomplete {
            recorded: awarded,
            expected,
        });
    }
    Ok(VerifiedDraw {
        promotion_id: *promotion_id,
        commitment: commitment.ok_or(DrawCheckError::NoCommitment)?,
        secret,
        entries,
        winners,
    })
}
