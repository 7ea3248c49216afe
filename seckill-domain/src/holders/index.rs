//! Finds a holder's place by customer id: hash tables of places, hashed
//! over the id text the arena keeps (so the index holds 4-byte places, not
//! ids), each beside 32 bits of its id's hash. foldhash: several times
//! faster than SipHash on short ids, and seeded per process, so customers
//! cannot pick colliding ids.
//!
//! The hash bits are what a table grows by: without them, each rehash read
//! every holder's id back from the arena, a cache miss a holder, which a
//! hot sale's profile showed. They cost 4 bytes a slot, about 8 a holder.
//!
//! Past [`SPLIT_AT`] holders the index is split into [`SHARDS`] tables by
//! hash, each behind an `Arc`. A copy of the set then shares every table,
//! and the writer copies one table (about 80 KB at a million holders) the
//! first time it adds to it while the copy lives: the cost of a snapshot
//! copy is spread over the next grabs instead of stalling one batch. Each
//! table also grows on its own, so no single grab rehashes every holder.
//! Small sales (most of them) keep one table and pay nothing for this.

use std::hash::BuildHasher;
use std::sync::Arc;

use foldhash::fast::RandomState;
use hashbrown::hash_table::{Entry, HashTable};

use super::arena::Arena;

/// How many holders make the index split: a split rehashes them once, so
/// it is done while that is cheap (well under a millisecond).
#[cfg(not(test))]
const SPLIT_AT: usize = 1 << 14;
#[cfg(test)]
const SPLIT_AT: usize = 8;

/// log2 of the tables of a split index.
#[cfg(not(test))]
const SHARD_BITS: u32 = 8;
#[cfg(test)]
const SHARD_BITS: u32 = 2;

/// Tables of a split index: 256, about 12 KB of table headers, and a
/// snapshot copy costs the writer one ~80 KB table copy at a time.
const SHARDS: usize = 1 << SHARD_BITS;

/// Which bits of a hash pick the table: none of the low 32 a slot keeps and
/// its table places it by.
const SHARD_SHIFT: u32 = 40;

/// A holder's place in the arena, and the low 32 bits of its id's hash.
#[derive(Debug, Clone, Copy)]
struct Slot {
    place: u32,
    hash: u32,
}

impl Slot {
    /// The hash a table places this slot by: its 32 bits, in both halves,
    /// because hashbrown picks a bucket with the low bits and filters a
    /// group with the top 7. A table of up to 2^25 buckets (a split index
    /// holds 8 billion holders by then) reads different bits for each.
    const fn table_hash(hash: u32) -> u64 {
        (hash as u64) << 32 | hash as u64
    }
}

#[derive(Debug, Clone, Default)]
pub(super) struct Index {
    /// None while empty, one table while small, `SHARDS` once split.
    tables: Vec<Arc<HashTable<Slot>>>,
    /// Kept with the tables it hashed for; a copy must hash the same way.
    hasher: RandomState,
}

impl Index {
    /// An empty index with room for `holders`, split already if that many
    /// would split it.
    pub(super) fn with_capacity(holders: usize) -> Self {
        let (tables, each) = if holders >= SPLIT_AT {
            (
                SHARDS,
                holders.div_ceil(SHARDS) + holders.div_ceil(SHARDS) / 8,
            )
        } else {
            (1, holders)
        };
        Self {
            tables: (0..tables)
                .map(|_| Arc::new(HashTable::with_capacity(each)))
                .collect(),
            hasher: RandomState::default(),
        }
    }

    /// The place of `customer`'s holding in `arena`.
    pub(super) fn find(&self, arena: &Arena, customer: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(customer);
        let table = self.tables.get(self.table_of(hash))?;
        let low = hash as u32;
        table
            .find(Slot::table_hash(low), |slot| {
                slot.hash == low && arena.customer(slot.place) == Some(customer)
            })
            .map(|slot| slot.place)
    }

    /// Indexes `customer` at `place` (`arena.len()`, before it is pushed
    /// there), or returns the place they already hold.
    pub(super) fn insert(&mut self, arena: &Arena, customer: &str, place: u32) -> Result<(), u32> {
        if arena.len() >= SPLIT_AT && self.tables.len() == 1 {
            self.split(arena);
        }
        if self.tables.is_empty() {
            self.tables.push(Arc::default());
        }
        let hash = self.hasher.hash_one(customer);
        let which = self.table_of(hash);
        let Some(table) = self.tables.get_mut(which) else {
            return Ok(());
        };
        // Copies the table first if a copy of the set still shares it.
        let table = Arc::make_mut(table);
        let low = hash as u32;
        match table.entry(
            Slot::table_hash(low),
            |held| held.hash == low && arena.customer(held.place) == Some(customer),
            |held| Slot::table_hash(held.hash),
        ) {
            Entry::Occupied(held) => Err(held.get().place),
            Entry::Vacant(vacant) => {
                vacant.insert(Slot { place, hash: low });
                Ok(())
            }
        }
    }

    fn table_of(&self, hash: u64) -> usize {
        // The table count is 1 or a power of two.
        (hash >> SHARD_SHIFT) as usize & (self.tables.len().saturating_sub(1))
    }

    /// Rebuilds the one table as `SHARDS`, from the arena.
    fn split(&mut self, arena: &Arena) {
        let mut tables: Vec<HashTable<Slot>> = (0..SHARDS)
            .map(|_| HashTable::with_capacity(2 * SPLIT_AT / SHARDS))
            .collect();
        for ((customer, _), place) in arena.entries().zip(0u32..) {
            // The table bits are not among the 32 a slot keeps: read the id.
            let hash = self.hasher.hash_one(customer);
            if let Some(table) = tables.get_mut((hash >> SHARD_SHIFT) as usize & (SHARDS - 1)) {
                let low = hash as u32;
                let slot = Slot { place, hash: low };
                table.insert_unique(Slot::table_hash(low), slot, |held| {
                    Slot::table_hash(held.hash)
                });
            }
        }
        self.tables = tables.into_iter().map(Arc::new).collect();
    }

    /// How many tables this index shares with `other`.
    #[cfg(test)]
    pub(super) fn shared_tables(&self, other: &Self) -> usize {
        super::tests::shared(&self.tables, &other.tables)
    }

    #[cfg(test)]
    pub(super) fn tables(&self) -> usize {
        self.tables.len()
    }
}
