-- One promotion's summary.
SELECT promotion_id, name, number_of_coupons, remaining, discount,
       publish_time, finish_time, finish_reason, finished_at, last_sequence, draw::text
FROM promotion_summaries
WHERE promotion_id = $1
