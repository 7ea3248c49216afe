//! Draws: the second way a promotion can allocate its coupons, beside first
//! come, first get (docs/draws.md).
//!
//! Customers enter between the publish time and the close. At the close the
//! promotion is drawn: the winners are the entries with the smallest
//! HMAC-SHA256(secret, customer id), ties broken by entry order, as many as
//! there are coupons. The secret's SHA-256 is recorded when the promotion is
//! created and the secret itself when it is drawn, so anyone can check that
//! the secret was fixed before the first entry and recompute the winners
//! from the events ([`verify`]).
//!
//! # Layout
//! * `mod.rs`   – the values ([`Allocation`], [`DrawSecret`], [`Commitment`],
//!   [`DrawSeal`], [`Entry`]) and the one function that orders entries,
//!   [`winners`].
//! * `verify`   – recomputing a draw from a promotion's events.

use std::fmt;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::value::{CustomerId, PromotionId};

mod verify;

pub use verify::{verify, DrawCheckError, VerifiedDraw};

/// How a promotion allocates its coupons; part of its terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Allocation {
    /// First come, first get: each grab decides at once.
    #[default]
    FirstCome,
    /// Entries until `closes_at`, then a draw among them.
    Draw {
        /// When entries close and the promotion is drawn; between the
        /// publish and the finish time.
        closes_at: DateTime<Utc>,
    },
}

impl Allocation {
    /// Whether this is [`Allocation::FirstCome`] (terms leave it out of
    /// their JSON, so events stored before draws existed read unchanged).
    pub const fn is_first_come(&self) -> bool {
        matches!(self, Self::FirstCome)
    }

    /// The close of a draw, or `None` for first come.
    pub const fn closes_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::Draw { closes_at } => Some(*closes_at),
            Self::FirstCome => None,
        }
    }
}

/// 32 bytes, written as 64 lower-case hex digits.
macro_rules! bytes32 {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name([u8; 32]);

        impl $name {
            /// Wraps 32 bytes.
            pub const fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            /// The 32 bytes.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl std::str::FromStr for $name {
            type Err = hex::FromHexError;

            /// 64 hex digits.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let mut bytes = [0; 32];
                hex::decode_to_slice(s, &mut bytes)?;
                Ok(Self(bytes))
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

bytes32!(
    /// The secret a draw is decided with: 32 random bytes the engine picks
    /// when the promotion is created, kept sealed until the close, and
    /// recorded in the draw's event.
    DrawSecret
);

bytes32!(
    /// SHA-256 of a [`DrawSecret`], recorded when the promotion is created:
    /// it binds the operator to the secret before anyone enters.
    Commitment
);

bytes32!(
    /// A [`DrawSecret`] sealed by the engine (docs/draws.md), so that the
    /// creation event can carry it durably without revealing it. Opaque to
    /// the domain.
    SealedSecret
);

impl fmt::Debug for DrawSecret {
    /// Redacted: before the close the secret must not reach a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DrawSecret(..)")
    }
}

impl fmt::Debug for Commitment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Commitment({self})")
    }
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedSecret({self})")
    }
}

impl DrawSecret {
    /// Its commitment: SHA-256 of the 32 bytes.
    pub fn commitment(&self) -> Commitment {
        Commitment(Sha256::digest(self.0).into())
    }
}

/// What a draw promotion records about its secret when it is created (or
/// its terms replaced): the public commitment, and the secret sealed for
/// the engine that will reveal it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrawSeal {
    /// SHA-256 of the secret.
    pub commitment: Commitment,
    /// The secret, sealed.
    pub sealed_secret: SealedSecret,
}

/// One customer's entry into a draw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The promotion entered.
    pub promotion_id: PromotionId,
    /// Its place in entry order, from 1: it breaks ties in the draw.
    pub number: u32,
    /// Who entered.
    pub customer_id: CustomerId,
    /// When the entry was requested.
    pub entered_at: DateTime<Utc>,
}

/// The draw's key for one customer: HMAC-SHA256(secret, customer id as
/// UTF-8). The smaller, the earlier in the draw.
pub fn draw_key(secret: &DrawSecret, customer: &str) -> [u8; 32] {
    let mut mac = keyed(secret);
    mac.update(customer.as_bytes());
    mac.finalize().into_bytes().into()
}

fn keyed(secret: &DrawSecret) -> Hmac<Sha256> {
    // Any key length is valid for HMAC, so this never fails.
    <Hmac<Sha256> as Mac>::new_from_slice(&secret.0).unwrap_or_else(|_| unreachable!())
}

/// The draw: of `entries` (customer ids in entry order), the places (from 0)
/// of the `coupons` winners, in draw order. A winner is an entry with one of
/// the smallest [`draw_key`]s, compared as unsigned big-endian numbers, ties
/// broken by entry order; everyone wins if fewer entered than `coupons`.
pub fn winners<'a>(
    secret: &DrawSecret,
    entries: impl IntoIterator<Item = &'a str>,
    coupons: u32,
) -> Vec<u32> {
    let keyed = keyed(secret);
    // The key once, then a copy of its inner and outer hash state per entry.
    let mut drawn: Vec<([u8; 32], u32)> = entries
        .into_iter()
        .zip(0u32..)
        .map(|(customer, place)| {
            let mut mac = keyed.clone();
            mac.update(customer.as_bytes());
            (mac.finalize().into_bytes().into(), place)
        })
        .collect();
    let count = drawn.len().min(coupons as usize);
    if count < drawn.len() && count > 0 {
        // Only the winners need ordering: partition, then sort them.
        drawn.select_nth_unstable(count - 1);
    }
    drawn.truncate(count);
    drawn.sort_unstable();
    drawn.into_iter().map(|(_, place)| place).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(byte: u8) -> DrawSecret {
        DrawSecret::from_bytes([byte; 32])
    }

    #[test]
    fn the_commitment_is_the_secrets_sha256() {
        // SHA-256 of 32 zero bytes.
        assert_eq!(
            secret(0).commitment().to_string(),
            "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
        );
    }

    #[test]
    fn the_draw_key_is_hmac_sha256_of_the_customer_id() {
        // As Python computes it: hmac.new(bytes(32), b"alice", "sha256").
        assert_eq!(
            hex::encode(draw_key(&secret(0), "alice")),
            "ce3837f76a54a635191b1704ac7672264fc17c3397ff52e7dacfc1ef3603a493"
        );
    }

    #[test]
    fn everyone_wins_when_fewer_entered_than_there_are_coupons() {
        let entries = ["a", "b", "c"];
        let mut won = winners(&secret(1), entries, 10);
        assert_eq!(won.len(), 3);
        won.sort_unstable();
        assert_eq!(won, [0, 1, 2]);
        assert!(winners(&secret(1), entries, 0).is_empty());
        assert!(winners(&secret(1), [], 5).is_empty());
    }

    #[test]
    fn winners_are_ordered_by_their_draw_key() {
        let entries: Vec<String> = (0..100).map(|i| format!("customer-{i}")).collect();
        let won = winners(&secret(7), entries.iter().map(String::as_str), 10);
        let keys: Vec<[u8; 32]> = won
            .iter()
            .map(|&place| draw_key(&secret(7), &entries[place as usize]))
            .collect();
        assert!(keys.windows(2).all(|pair| pair[0] < pair[1]));
        let worst = keys[9];
        let beaten = entries
            .iter()
            .filter(|customer| draw_key(&secret(7), customer) < worst)
            .count();
        assert_eq!(
            beaten, 9,
            "exactly the nine winners before it have smaller keys"
        );
    }

    #[test]
    fn secrets_read_back_from_their_hex() {
        let text = "00".repeat(31) + "ff";
        let parsed: DrawSecret = text.parse().unwrap();
        assert_eq!(parsed.as_bytes()[31], 0xff);
        assert_eq!(parsed.to_string(), text);
        assert!("abc".parse::<DrawSecret>().is_err());
        assert_eq!(format!("{parsed:?}"), "DrawSecret(..)");
        let json = serde_json::to_string(&parsed).unwrap();
        assert_eq!(serde_json::from_str::<DrawSecret>(&json).unwrap(), parsed);
    }
}
