-- Retention's bus_events batch as it was before sql/018 (src/ops/statements.h kPruneEvents up to
-- migration 017): ids picked by age, deleted by id. bus_events.id has no index, so the DELETE
-- scans the table for every batch. pgbench variables: age_ms, batch.
WITH deleted AS (
  DELETE FROM bus_events WHERE id IN (
    SELECT id FROM bus_events WHERE at < now() - :age_ms * interval '1 millisecond' ORDER BY at LIMIT :batch)
  RETURNING 1)
SELECT count(*) FROM deleted;
