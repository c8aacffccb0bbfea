-- 013: retrieval (rag) and knowledge-graph (kg) tables. PostgreSQL is the source of truth: a
-- document, its chunks and their vectors are written by cogo-rag-embed in one transaction with
-- the message's completion; cogo-rag-dispatcher builds its in-memory ANN index from these rows
-- and keeps it current through a cursor (below); cogo-kg-builder writes entities and relations
-- with their provenance (the chunk that said it). Every query filters by tenant.

-- One row per (tenant, doc_id). content_sha256 covers everything the chunks are made from
-- (title, text, source, metadata, embedding model, chunker settings): re-indexing the same
-- content is a no-op, a change replaces every chunk in one transaction.
CREATE TABLE rag_documents (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant         text        NOT NULL CHECK (tenant <> ''),
  doc_id         text        NOT NULL CHECK (doc_id <> ''),
  title          text        NOT NULL,
  source         text,
  metadata       jsonb,
  content_sha256 text        NOT NULL,
  embed_model    text        NOT NULL,
  text_bytes     integer     NOT NULL,
  chunk_count    integer     NOT NULL,
  kg_sha256      text,       -- the content the graph was last built from (NULL: never)
  indexed_at     timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant, doc_id)
);

-- Vectors are little-endian float32, 4 * dim bytes, L2-normalised at write time (cosine is then
-- a dot product). pgvector is not packaged for PostgreSQL 15 in Debian 12, so the index lives in
-- the dispatcher; docs/rag.md says how this maps onto pgvector.
--
-- tx_id: the writing transaction's id. The dispatcher reads new rows by the cursor (tx_id, id)
-- and advances it only below pg_snapshot_xmin(pg_current_snapshot()): every transaction below
-- that horizon has ended, so no row can appear behind the cursor later. A cursor on id alone
-- would skip a row whose transaction took its id first but committed last.
CREATE TABLE rag_chunks (
  id           bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  document_id  bigint  NOT NULL REFERENCES rag_documents (id) ON DELETE CASCADE,
  tenant       text    NOT NULL,
  doc_id       text    NOT NULL,
  ord          integer NOT NULL CHECK (ord >= 0),
  start_offset integer NOT NULL,
  end_offset   integer NOT NULL,
  text         text    NOT NULL CHECK (text <> ''),
  model        text    NOT NULL,
  dim          integer NOT NULL CHECK (dim > 0),
  embedding    bytea   NOT NULL CHECK (octet_length(embedding) = 4 * dim),
  tx_id        xid8    NOT NULL DEFAULT pg_current_xact_id(),
  UNIQUE (document_id, ord)
);
CREATE INDEX rag_chunks_cursor ON rag_chunks (tx_id, id);
CREATE INDEX rag_chunks_document ON rag_chunks (tenant, doc_id);

-- Deleted chunks (a changed document's old ones), read by the dispatchers with the same cursor
-- so they leave every index; rows older than a day are pruned by the dispatchers (a dispatcher
-- that was away longer rebuilds from rag_chunks at start anyway).
CREATE TABLE rag_chunk_deletions (
  id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  chunk_id   bigint      NOT NULL,
  tenant     text        NOT NULL,
  tx_id      xid8        NOT NULL DEFAULT pg_current_xact_id(),
  deleted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rag_chunk_deletions_cursor ON rag_chunk_deletions (tx_id, id);

CREATE FUNCTION rag_chunks_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO rag_chunk_deletions (chunk_id, tenant) SELECT id, tenant FROM gone;
  RETURN NULL;
END $$;
CREATE TRIGGER rag_chunks_deleted AFTER DELETE ON rag_chunks
  REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION rag_chunks_deleted();

-- The graph. An entity is one per (tenant, normalised name, type): mentions in many documents
-- merge into it. A relation is one per (tenant, source, target, type). Which chunk said what is
-- in kg_provenance; a document's graph rows are rebuilt from its chunks (its old provenance
-- goes with its old chunks), so counts are read from provenance, never kept as counters that a
-- retried message would double.
CREATE TABLE kg_entities (
  id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant    text   NOT NULL CHECK (tenant <> ''),
  name      text   NOT NULL,   -- as first seen
  norm_name text   NOT NULL CHECK (norm_name <> ''),
  type      text   NOT NULL,
  UNIQUE (tenant, norm_name, type)
);
CREATE INDEX kg_entities_name ON kg_entities (tenant, norm_name text_pattern_ops);

CREATE TABLE kg_relations (
  id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant    text   NOT NULL,
  source_id bigint NOT NULL REFERENCES kg_entities (id) ON DELETE CASCADE,
  target_id bigint NOT NULL REFERENCES kg_entities (id) ON DELETE CASCADE,
  type      text   NOT NULL,
  UNIQUE (tenant, source_id, target_id, type)
);
CREATE INDEX kg_relations_target ON kg_relations (target_id);

-- One row per mention: an entity or a relation, and the chunk it came from.
CREATE TABLE kg_provenance (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant      text   NOT NULL,
  chunk_id    bigint NOT NULL REFERENCES rag_chunks (id) ON DELETE CASCADE,
  entity_id   bigint REFERENCES kg_entities (id) ON DELETE CASCADE,
  relation_id bigint REFERENCES kg_relations (id) ON DELETE CASCADE,
  CHECK ((entity_id IS NULL) <> (relation_id IS NULL))
);
CREATE INDEX kg_provenance_chunk ON kg_provenance (chunk_id);
CREATE INDEX kg_provenance_entity ON kg_provenance (entity_id) WHERE entity_id IS NOT NULL;
CREATE INDEX kg_provenance_relation ON kg_provenance (relation_id) WHERE relation_id IS NOT NULL;

-- Least privilege (sql/010_roles.sql): workers change rows but delete nothing by default. These
-- deletes are the flow's own: rag-embed replaces a changed document's chunks, kg-builder its
-- mentions, rag-dispatcher prunes old deletion records.
GRANT DELETE ON rag_chunks, rag_chunk_deletions, kg_provenance TO cogo_worker;
