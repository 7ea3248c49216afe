-- Appends commits of distinct promotions in one transaction (migrations 0011, 0012,
-- 0013;
-- ADR 0012): one commit is a group of one. Answers every stream's head as
-- the function read it, in the order of the commits. The parameters are the
-- function's, in its order.
SELECT seckill_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
                      $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23,
                      $24)
