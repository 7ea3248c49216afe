//! The behaviour suite on the in-memory backend.

seckill_tests::behaviour_suite!(seckill_tests::MemoryFixture::new());
