-- One promotion's coupons, deleted before `replace_projection.sql` inserts
-- the rebuilt ones in the same transaction.
DELETE FROM coupons WHERE promotion_id = $1
