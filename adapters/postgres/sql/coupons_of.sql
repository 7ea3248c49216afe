-- A customer's coupons, oldest first, straight from `coupons_of_customer`.
SELECT promotion_id, number, customer_id, discount, grabbed_at
FROM coupons
WHERE customer_id = $1
ORDER BY grabbed_at, promotion_id, number
