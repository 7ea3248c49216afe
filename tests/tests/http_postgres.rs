//! The HTTP end-to-end suite on PostgreSQL: the same tests as on memory.

seckill_tests::suite!(http, seckill_tests::postgres::PgFixture::new().await);
