//! Where the holders live: in grab order, in chunks of [`CHUNK_LEN`]. A full
//! chunk is sealed behind an `Arc` and never changes again, so a copy of the
//! arena shares it; only the open chunk is copied.

use std::sync::Arc;

use chrono::{DateTime, Utc};

/// log2 of the holders per chunk. Small in unit tests, so a few dozen grabs
/// already seal several chunks and every seam gets crossed.
#[cfg(not(test))]
const CHUNK_BITS: u32 = 12;
#[cfg(test)]
const CHUNK_BITS: u32 = 2;

/// Holders per chunk: 4096, so the open chunk (the part a copy copies) stays
/// under ~330 KB even with 64-byte ids, and a million holders make only 245
/// sealed chunks to share.
pub(super) const CHUNK_LEN: usize = 1 << CHUNK_BITS;

/// One holder as a chunk stores it, besides its id text.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Record {
    /// Where this holder's id ends in its chunk's text; it starts where the
    /// previous one ends. A chunk holds at most 4096 ids of at most 64 bytes,
    /// so the offset fits in u32.
    end: u32,
    grabbed_at: DateTime<Utc>,
}

/// Up to [`CHUNK_LEN`] holders in grab order.
#[derive(Debug, Clone, Default)]
struct Chunk {
    /// The customer ids, back to back.
    text: String,
    records: Vec<Record>,
}

impl Chunk {
    fn customer(&self, at: usize) -> Option<&str> {
        let end = self.records.get(at)?.end;
        let start = match at.checked_sub(1) {
            Some(previous) => self.records.get(previous)?.end,
            None => 0,
        };
        self.text.get(start as usize..end as usize)
    }

    /// Every holder's id and time, in order.
    fn entries(&self) -> impl Iterator<Item = (&str, DateTime<Utc>)> + '_ {
        let mut start = 0;
        self.records.iter().map(move |record| {
            let end = record.end as usize;
            let customer = self.text.get(start..end).unwrap_or_default();
            start = end;
            (customer, record.grabbed_at)
        })
    }
}

/// Every holder in grab order: the place of a holder (from 0) is its coupon
/// number minus one.
#[derive(Debug, Clone, Default)]
pub(super) struct Arena {
    /// Full chunks. Never changed again, so copies share them.
    sealed: Vec<Arc<Chunk>>,
    /// The chunk the next holders go to; always has room for one more.
    open: Chunk,
}

impl Arena {
    pub(super) fn len(&self) -> usize {
        self.sealed.len() * CHUNK_LEN + self.open.records.len()
    }

    /// The id of the holder at `place`.
    pub(super) fn customer(&self, place: u32) -> Option<&str> {
        let (chunk, at) = self.locate(place)?;
        chunk.customer(at)
    }

    /// When the holder at `place` grabbed.
    pub(super) fn grabbed_at(&self, place: u32) -> Option<DateTime<Utc>> {
        let (chunk, at) = self.locate(place)?;
        Some(chunk.records.get(at)?.grabbed_at)
    }

    /// Appends a holder at place `len()`.
    pub(super) fn push(&mut self, customer: &str, grabbed_at: DateTime<Utc>) {
        self.open.text.push_str(customer);
        // Cannot saturate: see `Record::end`.
        let end = u32::try_from(self.open.text.len()).unwrap_or(u32::MAX);
        self.open.records.push(Record { end, grabbed_at });
        if self.open.records.len() == CHUNK_LEN {
            // Sealed at its final size: nothing is appended to it again.
            self.open.text.shrink_to_fit();
            self.open.records.shrink_to_fit();
            self.sealed.push(Arc::new(std::mem::take(&mut self.open)));
        }
    }

    /// Every holder's id and time, in grab order.
    pub(super) fn entries(&self) -> impl Iterator<Item = (&str, DateTime<Utc>)> + '_ {
        self.sealed
            .iter()
            .map(Arc::as_ref)
            .chain(std::iter::once(&self.open))
            .flat_map(Chunk::entries)
    }

    /// The chunk the holder at `place` is in, and where in it.
    fn locate(&self, place: u32) -> Option<(&Chunk, usize)> {
        let chunk = (place >> CHUNK_BITS) as usize;
        let at = (place as usize) & (CHUNK_LEN - 1);
        let chunk = if chunk == self.sealed.len() {
            &self.open
        } else {
            self.sealed.get(chunk)?
        };
        Some((chunk, at))
    }

    /// How many full chunks this arena shares with `other`.
    #[cfg(test)]
    pub(super) fn shared_chunks(&self, other: &Self) -> usize {
        super::tests::shared(&self.sealed, &other.sealed)
    }

    #[cfg(test)]
    pub(super) fn sealed_chunks(&self) -> usize {
        self.sealed.len()
    }
}
