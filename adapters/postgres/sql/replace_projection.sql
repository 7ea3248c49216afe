-- Replaces one promotion's projection rows with the ones rebuilt from its
-- events. Run in a transaction after deleting its coupons (a statement cannot
-- delete and re-insert the same unique keys).
-- $1 promotion id  $2..$5 the coupons, one array per column  $6..$14 the summary
WITH granted AS (
    INSERT INTO coupons (promotion_id, number, customer_id, discount, grabbed_at)
    SELECT $1, c.number, c.customer_id, c.discount, c.grabbed_at
    FROM unnest($2::integer[], $3::text[], $4::float8[], $5::timestamptz[])
        AS c (number, customer_id, discount, grabbed_at)
)
INSERT INTO promotion_summaries (promotion_id, name, number_of_coupons, remaining, discount,
                                 publish_time, finish_time, finish_reason, finished_at, last_sequence)
VALUES ($1, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (promotion_id) DO UPDATE SET
    name              = excluded.name,
    number_of_coupons = excluded.number_of_coupons,
    remaining         = excluded.remaining,
    discount          = excluded.discount,
    publish_time      = excluded.publish_time,
    finish_time       = excluded.finish_time,
    finish_reason     = excluded.finish_reason,
    finished_at       = excluded.finished_at,
    last_sequence     = excluded.last_sequence
