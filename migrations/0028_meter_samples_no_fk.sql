-- Meter samples stop checking their session with a foreign key.
--
-- Every sample row ran the foreign key's trigger: a lookup of its session and a
-- FOR KEY SHARE row lock on it (bench.pg_cost: 7.3 per answered call at the
-- benchmark's mix), the largest per-row cost of the charger path after the row
-- itself. The CSMS writes a sample's session_id only in the statement that also
-- reads or writes that session (group commit, csms/storage/batched_writes.py),
-- and nothing deletes sessions, so the key could never fail; the index
-- meter_samples_session still serves every read by session.
ALTER TABLE meter_samples DROP CONSTRAINT IF EXISTS meter_samples_session_id_fkey;
