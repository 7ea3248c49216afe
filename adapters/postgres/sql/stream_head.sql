-- The last sequence number of promotion $1's stream (0 for none): read after
-- `lock_summary.sql` so no append can land behind it, or after an append
-- whose coupon met a committed key, to tell a conflict from a refused row.
SELECT coalesce(max(sequence), 0)::bigint
FROM events
WHERE aggregate_type = 'Promotion' AND aggregate_id = $1
