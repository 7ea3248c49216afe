//! The conformance suite on PostgreSQL: each test gets its own fresh database
//! on the server at `DATABASE_URL`.

seckill_testkit::conformance!(seckill_postgres::testing::PgFixture::new().await);
