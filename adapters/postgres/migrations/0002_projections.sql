-- The read side. Both tables are written in the same transaction as the
-- events they follow (docs/adr/0003), and can be rebuilt from the events.

-- Every coupon granted: "which coupons does this customer hold?"
CREATE TABLE coupons
(
    promotion_id uuid             NOT NULL,
    number       integer          NOT NULL CHECK (number >= 1),
    customer_id  text             NOT NULL,
    discount     double precision NOT NULL CHECK (discount > 0 AND discount <= 1),
    grabbed_at   timestamptz      NOT NULL,
    PRIMARY KEY (promotion_id, number),
    -- The domain's "one coupon per customer", enforced once more by the database.
    UNIQUE (promotion_id, customer_id)
);

-- A customer's coupons, oldest first, read from the index alone in that order.
CREATE INDEX coupons_of_customer ON coupons (customer_id, grabbed_at, promotion_id, number);

-- One row per promotion, with everything `PromotionSummary` holds.
CREATE TABLE promotion_summaries
(
    promotion_id      uuid             PRIMARY KEY,
    name              text,
    number_of_coupons integer          NOT NULL CHECK (number_of_coupons >= 1),
    remaining         integer          NOT NULL CHECK (remaining >= 0 AND remaining <= number_of_coupons),
    discount          double precision NOT NULL CHECK (discount > 0 AND discount <= 1),
    publish_time      timestamptz      NOT NULL,
    finish_time       timestamptz      NOT NULL,
    finish_reason     text CHECK (finish_reason IN ('sold_out', 'expired', 'cancelled')),
    finished_at       timestamptz,
    -- The last event this row includes: the projection's position in the stream.
    last_sequence     bigint           NOT NULL CHECK (last_sequence >= 1)
);

-- "Unfinished promotions" scans only the rows still open, which stay few while
-- finished ones pile up forever.
CREATE INDEX unfinished_promotions ON promotion_summaries (publish_time, promotion_id)
    WHERE finish_reason IS NULL;
