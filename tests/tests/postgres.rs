//! The behaviour suite on PostgreSQL: each test gets its own fresh database
//! on the server at `DATABASE_URL`.

seckill_tests::suite!(behaviour, seckill_tests::postgres::PgFixture::new().await);
