-- Announces commits to the other replicas: one NOTIFY on `seckill_commits`
-- per payload ($1, JSON texts of `{"replica": ..., "summary": ...}`). Sent
-- after the commit, outside its transaction: announcements are best effort,
-- and the appends' commit path stays free of the notification queue's lock.
SELECT count(pg_notify('seckill_commits', payload)) FROM unnest($1::text[]) AS payload
