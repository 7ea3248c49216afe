-- Serialises preparing the schema (creating it, moving an old layout into it)
-- across processes starting at once; held until the transaction ends. A
-- concurrent CREATE SCHEMA of the same name would otherwise fail on
-- pg_namespace's unique index. 'seckill schema' as a 64-bit key.
SELECT pg_advisory_xact_lock(7738145395240383845)
