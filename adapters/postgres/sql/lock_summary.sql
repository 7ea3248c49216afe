-- Before a projection is replaced: locks promotion $1's summary row, which
-- every append upserts, so no append to the promotion commits until the
-- replacement's transaction ends.
SELECT 1 FROM promotion_summaries WHERE promotion_id = $1 FOR UPDATE
