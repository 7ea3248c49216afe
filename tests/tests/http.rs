//! The HTTP end-to-end suite on the in-memory backend.

seckill_tests::http_suite!(seckill_tests::MemoryFixture::new());
