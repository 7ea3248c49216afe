-- An application table whose name is not SecKill's, beside one that is
-- (`coupons`, next migration): each side must read only its own.
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id text NOT NULL REFERENCES customers (id));
