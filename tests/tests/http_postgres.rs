//! The HTTP end-to-end suite on PostgreSQL: the same tests as on memory.

seckill_tests::http_suite!(seckill_tests::postgres::PgFixture::new().await);
