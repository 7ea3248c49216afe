//! The behaviour suite on the in-memory backend.

seckill_tests::suite!(behaviour, seckill_tests::MemoryFixture::new());
