-- migrate: no-transaction
-- The operator's session lists (GET /api/v1/sessions, csms/storage/views.py list_sessions)
-- come newest first (ORDER BY id DESC) and page by id. A page filtered by a token or by a
-- start time read the table newest first until it found the page: with a year of history,
-- the sessions of a fleet card or those before an old date meant walking most of it
-- (docs/database.md, "Filters"). These indexes give each such page in id order directly.
-- Concurrently, statement by statement: sessions is large on a live network and takes a
-- write per charger message; a plain build would block those writes while it ran.

-- A token's sessions in id order: the page is an index range read backwards, in the
-- generic plan too (on lower(id_token) alone it was all of the token's sessions and a sort,
-- or, as the generic plan chose, the table walked newest first). It serves every lookup the
-- old sessions_id_token (lower(id_token)) did, so that one goes: one index entry per
-- session, as before. Neither column changes on a meter update (HOT updates stay).
CREATE INDEX CONCURRENTLY IF NOT EXISTS sessions_token_id ON sessions (lower(id_token), id);
DROP INDEX CONCURRENTLY IF EXISTS sessions_id_token;

-- Sessions that started in a time range, in id order: a page bounded by since/until is
-- the nearest ids below the cursor among the rows in the range (ORDER BY id <-> cursor,
-- a GiST nearest-neighbour search; btree_gist gives GiST the B-tree types). A B-tree
-- cannot: on started_at it reads every session of the range, on id every one after it.
-- btree_gist is a trusted extension (PostgreSQL 13+): the database's owner may create it.
-- started_at is set at the start (a 2.0.1 session seen first by its end moves it earlier,
-- once); id never changes, so meter updates stay HOT.
CREATE EXTENSION IF NOT EXISTS btree_gist;
CREATE INDEX CONCURRENTLY IF NOT EXISTS sessions_started_id ON sessions USING gist (started_at, id);
