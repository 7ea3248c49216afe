-- A timestamped migration, as sqlx-cli makes them: SecKill's migrator once
-- failed on it ("migration 20250101000000 was previously applied but is
-- missing"). Its table has the name of one of SecKill's, on purpose.
CREATE TABLE coupons (code text PRIMARY KEY, percent integer NOT NULL);
