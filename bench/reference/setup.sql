-- The least a PostgreSQL queue needs: an id, a payload, a status and a partial index over the
-- queued rows only. Recreated before every measurement; the runner pre-fills it for the claims.
SET client_min_messages = warning;
DROP TABLE IF EXISTS ref_queue;
CREATE TABLE ref_queue (
  id      bigserial PRIMARY KEY,
  payload jsonb NOT NULL,
  status  text  NOT NULL DEFAULT 'queued'
);
CREATE INDEX ref_queue_queued ON ref_queue (id) WHERE status = 'queued';
