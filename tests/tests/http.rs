//! The HTTP end-to-end suite on the in-memory backend.

seckill_tests::suite!(http, seckill_tests::memory_fixture());
