-- A customer's coupons, oldest first: found through `coupons_customer_promotion`
-- (a handful of rows per customer), then sorted.
SELECT promotion_id, number, customer_id, discount, grabbed_at
FROM coupons
WHERE customer_id = $1
ORDER BY grabbed_at, promotion_id, number
