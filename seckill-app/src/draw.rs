//! Draws' secrets (docs/draws.md): the engine picks one for each draw
//! promotion, records only its commitment in the creation event beside the
//! secret sealed with a [`DrawKey`], and opens the seal at the close.
//!
//! Sealing is `secret XOR HMAC-SHA256(key, "seckill-draw-seal/v1" ||
//! promotion id || commitment)`: a pad no one can compute without the key,
//! different for every secret (the commitment is), so the event can carry
//! the sealed secret publicly and durably, in the same append as the
//! promotion. Opening checks the result against the commitment, so a wrong
//! key is found, never used.

use std::fmt;

use hmac::{Hmac, Mac};
use seckill_domain::draw::{DrawSeal, DrawSecret, SealedSecret};
use seckill_domain::PromotionId;
use sha2::Sha256;

/// The key draws' secrets are sealed with. The store keeps one
/// ([`EventStore::draw_key`](crate::EventStore::draw_key)), so every replica
/// and every restart opens what another sealed; an embedder can supply its
/// own instead ([`SecKillBuilder::draw_key`](crate::SecKillBuilder::draw_key)).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DrawKey([u8; 32]);

impl DrawKey {
    /// A key of these bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A key from the operating system's random source.
    ///
    /// # Errors
    /// If the operating system has no random source to give.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut bytes = [0; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// A key derived from a passphrase (HMAC-SHA256 keyed with it), for a
    /// key given as text in a setting.
    pub fn derive(passphrase: &[u8]) -> Self {
        let mut mac = keyed(passphrase);
        mac.update(b"seckill-draw-key/v1");
        Self(mac.finalize().into_bytes().into())
    }

    /// The key's 32 bytes, for a store to keep.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Picks a new secret for `promotion` and seals it: the secret, and the
    /// seal its creation event records.
    ///
    /// # Errors
    /// If the operating system has no random source to give.
    pub(crate) fn new_secret(
        &self,
        promotion: PromotionId,
    ) -> Result<(DrawSecret, DrawSeal), getrandom::Error> {
        let mut bytes = [0; 32];
        getrandom::fill(&mut bytes)?;
        let secret = DrawSecret::from_bytes(bytes);
        let commitment = secret.commitment();
        let pad = self.pad(promotion, commitment.as_bytes());
        let seal = DrawSeal {
            commitment,
            sealed_secret: SealedSecret::from_bytes(xor(&bytes, &pad)),
        };
        Ok((secret, seal))
    }

    /// The secret `seal` holds, if this key sealed it for `promotion`.
    pub(crate) fn open(&self, promotion: PromotionId, seal: &DrawSeal) -> Option<DrawSecret> {
        let pad = self.pad(promotion, seal.commitment.as_bytes());
        let secret = DrawSecret::from_bytes(xor(seal.sealed_secret.as_bytes(), &pad));
        (secret.commitment() == seal.commitment).then_some(secret)
    }

    fn pad(&self, promotion: PromotionId, commitment: &[u8; 32]) -> [u8; 32] {
        let mut mac = keyed(&self.0);
        mac.update(b"seckill-draw-seal/v1");
        mac.update(promotion.as_uuid().as_bytes());
        mac.update(commitment);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for DrawKey {
    /// Redacted: the key opens every pending draw.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DrawKey(..)")
    }
}

fn keyed(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length, so this never fails.
    <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

fn xor(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    std::array::from_fn(|i| a[i] ^ b[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn promotion(n: u128) -> PromotionId {
        PromotionId::from_uuid(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn a_sealed_secret_opens_with_its_key_and_promotion_only() {
        let key = DrawKey::from_bytes([1; 32]);
        let (secret, seal) = key.new_secret(promotion(1)).unwrap();
        assert_eq!(seal.commitment, secret.commitment());
        assert_ne!(seal.sealed_secret.as_bytes(), secret.as_bytes());
        assert_eq!(key.open(promotion(1), &seal), Some(secret));
        assert_eq!(key.open(promotion(2), &seal), None);
        assert_eq!(DrawKey::from_bytes([2; 32]).open(promotion(1), &seal), None);
    }

    #[test]
    fn secrets_differ_and_keys_derive_alike() {
        let key = DrawKey::derive(b"a passphrase");
        assert_eq!(key, DrawKey::derive(b"a passphrase"));
        assert_ne!(key, DrawKey::derive(b"another"));
        let (first, _) = key.new_secret(promotion(1)).unwrap();
        let (second, _) = key.new_secret(promotion(1)).unwrap();
        assert_ne!(first, second);
        assert_eq!(format!("{key:?}"), "DrawKey(..)");
    }
}
