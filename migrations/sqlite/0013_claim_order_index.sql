-- Nothing to do on SQLite: jobs_due (state, run_at) ends with the rowid, the
-- arrival order claims sort by. PostgreSQL's version of this migration adds
-- its `seq` to the index; the versions of both engines stay the same.
SELECT 1;
