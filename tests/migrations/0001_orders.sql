-- The README's stand-in for an embedding application's own sqlx migrations
-- ("Embedding on PostgreSQL"): version 1, like SecKill's first, and run into
-- `public`, to show the two never share a migrations table.
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id text NOT NULL, coupon_number integer);
