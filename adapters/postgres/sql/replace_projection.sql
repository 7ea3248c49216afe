-- Replaces one promotion's projection rows with the ones rebuilt from its
-- events. Run in a transaction after deleting its coupons (a statement cannot
-- delete and re-insert the same unique keys).
-- $1 promotion id  $2..$5 the coupons, one array per column  $6..$15 the summary,
-- arrays of one, as `seckill_upsert_summaries` (migration 0012) takes them
WITH granted AS (
    INSERT INTO coupons (promotion_id, number, customer_id, discount, grabbed_at)
    SELECT $1, c.number, c.customer_id, c.discount, c.grabbed_at
    FROM unnest($2::integer[], $3::text[], $4::float8[], $5::timestamptz[])
        AS c (number, customer_id, discount, grabbed_at)
)
SELECT seckill_upsert_summaries(ARRAY[$1::uuid], $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
