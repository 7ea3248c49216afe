//! [`Segments`]: an append-only sequence stored in segments of a fixed
//! length, for the event streams and the global log. A `Vec` that fills
//! doubles and copies everything it holds; for the stream of a hot sale that
//! is hundreds of megabytes (perf showed the copies and the kernel zeroing
//! the doubled buffers' fresh pages among the top samples), copied under the
//! store's lock while every other append and read waits. Here growing adds a
//! segment and never moves what is stored.

/// Elements in every full segment: the first grows like a `Vec` up to this
/// (small streams stay small), each later one is allocated whole.
const SEGMENT: usize = 4_096;

/// An append-only sequence that never moves its elements.
#[derive(Debug, Clone)]
pub(crate) struct Segments<T> {
    /// Every segment but the last holds exactly `SEGMENT` elements, so an
    /// index is a segment and an offset.
    segments: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Segments<T> {
    fn default() -> Self {
        Self {
            segments: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Segments<T> {
    /// How many elements it holds.
    pub(crate) const fn len(&self) -> usize {
        self.len
    }

    /// Appends `value` at the end.
    pub(crate) fn push(&mut self, value: T) {
        match self.segments.last_mut() {
            Some(last) if last.len() < SEGMENT => last.push(value),
            _ => {
                // The first segment starts small and grows; a later one is
                // only started once the sequence is big, so it is made whole.
                let mut segment = if self.segments.is_empty() {
                    Vec::new()
                } else {
                    Vec::with_capacity(SEGMENT)
                };
                segment.push(value);
                self.segments.push(segment);
            }
        }
        self.len += 1;
    }

    /// The element at `index`, from 0.
    pub(crate) fn get(&self, index: usize) -> Option<&T> {
        self.segments.get(index / SEGMENT)?.get(index % SEGMENT)
    }

    /// The elements from `start` on, in order.
    pub(crate) fn iter_from(&self, start: usize) -> impl Iterator<Item = &T> + '_ {
        let first = start / SEGMENT;
        let offset = start % SEGMENT;
        self.segments
            .iter()
            .skip(first)
            .enumerate()
            .flat_map(move |(i, segment)| {
                let skip = if i == 0 { offset } else { 0 };
                segment.get(skip..).unwrap_or_default()
            })
    }
}

impl<T> Extend<T> for Segments<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, values: I) {
        for value in values {
            self.push(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a `Vec` over several segments: the same length, the same
    /// element at every index, the same tail from every start.
    #[test]
    fn segments_hold_what_a_vec_would() {
        let mut segments = Segments::default();
        let mut model = Vec::new();
        for n in 0..(3 * SEGMENT + 17) {
            segments.push(n);
            model.push(n);
        }
        assert_eq!(segments.len(), model.len());
        for (index, expected) in model.iter().enumerate() {
            assert_eq!(segments.get(index), Some(expected));
        }
        assert_eq!(segments.get(model.len()), None);
        for start in [
            0,
            1,
            SEGMENT - 1,
            SEGMENT,
            SEGMENT + 1,
            3 * SEGMENT,
            model.len(),
            model.len() + 5,
        ] {
            let tail: Vec<_> = segments.iter_from(start).copied().collect();
            assert_eq!(tail, model.get(start..).unwrap_or_default(), "from {start}");
        }
    }

    /// A full segment is never grown again, so what it holds never moves.
    #[test]
    fn stored_elements_never_move() {
        let mut segments = Segments::default();
        segments.extend(0..SEGMENT);
        let first = segments.get(0).map(std::ptr::from_ref);
        segments.extend(SEGMENT..10 * SEGMENT);
        assert_eq!(segments.get(0).map(std::ptr::from_ref), first);
        assert_eq!(segments.len(), 10 * SEGMENT);
    }
}
