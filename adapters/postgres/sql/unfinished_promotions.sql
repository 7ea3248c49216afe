-- Every promotion not recorded as finished, from the partial index
-- `unfinished_promotions`.
SELECT promotion_id, name, number_of_coupons, remaining, discount,
       publish_time, finish_time, finish_reason, finished_at, last_sequence, draw::text
FROM promotion_summaries
WHERE finish_reason IS NULL
ORDER BY publish_time, promotion_id
