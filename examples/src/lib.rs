//! Runnable examples of SecKill. The binaries live in `src/bin/`:
//!
//! # Layout
//! * `flash-sale` – a whole flash sale in one process on the in-memory
//!   backend: N customers race for M coupons, and it prints who won and how
//!   long it took.
