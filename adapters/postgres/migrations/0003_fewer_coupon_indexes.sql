-- One index fewer on the grab path: each grab inserts a coupon row, and every
-- index on `coupons` is one more B-tree insertion inside the append.
-- `coupons_of_customer` and `UNIQUE (promotion_id, customer_id)` become one
-- unique index led by the customer: it still enforces "one coupon per customer
-- per promotion", and it serves "a customer's coupons" (a handful of rows,
-- sorted after the lookup).
ALTER TABLE coupons DROP CONSTRAINT coupons_promotion_id_customer_id_key;
DROP INDEX coupons_of_customer;
CREATE UNIQUE INDEX coupons_customer_promotion ON coupons (customer_id, promotion_id);
