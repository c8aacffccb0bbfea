// Every SQL statement of retrieval and the knowledge graph, named once (sql/013_rag.sql). Every
// path starts from a tenant: statements take it, or ids a tenant-filtered statement returned.
#pragma once

namespace cogo::rag::sql {

// $1 tenant, $2 doc_id. The stored content address, for the no-op check before embedding.
inline constexpr const char* kDocumentHash = R"SQL(
SELECT content_sha256 FROM rag_documents WHERE tenant = $1 AND doc_id = $2)SQL";

// $1 tenant, $2 doc_id. Serialises writers of one document (a first insert has no row to lock).
inline constexpr const char* kLockDocument = R"SQL(
SELECT pg_advisory_xact_lock(hashtextextended('rag:' || $1 || ':' || $2, 0)))SQL";

// $1 tenant, $2 doc_id.
inline constexpr const char* kDocumentForUpdate = R"SQL(
SELECT id, content_sha256 FROM rag_documents WHERE tenant = $1 AND doc_id = $2 FOR UPDATE)SQL";

// $1 tenant, $2 doc_id, $3 title, $4 source, $5 metadata (json text or NULL), $6 content_sha256,
// $7 embed_model, $8 text_bytes, $9 chunk_count.
inline constexpr const char* kInsertDocument = R"SQL(
INSERT INTO rag_documents (tenant, doc_id, title, source, metadata, content_sha256, embed_model,
                           text_bytes, chunk_count)
VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9) RETURNING id)SQL";

// $1 document id, $2 title, $3 source, $4 metadata, $5 content_sha256, $6 embed_model,
// $7 text_bytes, $8 chunk_count. The graph is stale until kg/build runs again.
inline constexpr const char* kUpdateDocument = R"SQL(
UPDATE rag_documents SET title = $2, source = $3, metadata = $4::jsonb, content_sha256 = $5,
       embed_model = $6, text_bytes = $7, chunk_count = $8, kg_sha256 = NULL, indexed_at = now()
WHERE id = $1)SQL";

// $1 document id. The deletion trigger records each chunk for the dispatchers.
inline constexpr const char* kDeleteChunks = R"SQL(DELETE FROM rag_chunks WHERE document_id = $1)SQL";

// $1 document id, $2 tenant, $3 doc_id, $4 ord, $5 start, $6 end, $7 text, $8 model, $9 dim,
// $10 embedding (bytea, little-endian float32).
inline constexpr const char* kInsertChunk = R"SQL(
INSERT INTO rag_chunks (document_id, tenant, doc_id, ord, start_offset, end_offset, text, model,
                        dim, embedding)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10))SQL";

// The dispatcher's catch-up. $1, $2: the cursor (tx_id as text, id). Rows after the cursor in
// (tx_id, id) order, with the horizon: rows whose tx_id is below it are settled (their
// transaction and every earlier one has ended), so the cursor may move past them; rows at or
// above it are read again next time. $3 row limit.
inline constexpr const char* kChunksAfter = R"SQL(
SELECT c.id, c.tenant, c.model, c.dim, c.embedding, c.tx_id::text,
       c.tx_id < pg_snapshot_xmin(pg_current_snapshot()) AS settled
FROM rag_chunks c
WHERE (c.tx_id, c.id) > ($1::xid8, $2::bigint)
ORDER BY c.tx_id, c.id
LIMIT $3)SQL";

// $1, $2: the deletions cursor; $3 row limit. As kChunksAfter.
inline constexpr const char* kDeletionsAfter = R"SQL(
SELECT d.id, d.chunk_id, d.tenant, d.tx_id::text, d.tx_id < pg_snapshot_xmin(pg_current_snapshot()) AS settled
FROM rag_chunk_deletions d
WHERE (d.tx_id, d.id) > ($1::xid8, $2::bigint)
ORDER BY d.tx_id, d.id
LIMIT $3)SQL";

// Deletions every dispatcher has long read. $1 age in seconds.
inline constexpr const char* kPruneDeletions = R"SQL(
DELETE FROM rag_chunk_deletions WHERE deleted_at < now() - make_interval(secs => $1))SQL";

// $1 tenant, $2 chunk ids (bigint[] literal). The candidates of a search that still exist.
inline constexpr const char* kChunkRows = R"SQL(
SELECT c.id, c.doc_id, c.text, d.title
FROM rag_chunks c JOIN rag_documents d ON d.id = c.document_id
WHERE c.tenant = $1 AND c.id = ANY($2::bigint[]))SQL";

// $1 message id. Where a query the API published stands, and its answer.
inline constexpr const char* kMessageOutcome = R"SQL(
SELECT status, coalesce(result::text, ''), coalesce(last_error, '') FROM agent_messages WHERE id = $1)SQL";

// --- knowledge graph ---

// $1 tenant, $2 doc_id. The document and whether its graph is current (the content it was
// built from).
inline constexpr const char* kDocumentGraphState = R"SQL(
SELECT id, content_sha256, coalesce(kg_sha256, '') FROM rag_documents WHERE tenant = $1 AND doc_id = $2)SQL";

// $1 tenant, $2 doc_id. As kDocumentGraphState, locked until the graph is written.
inline constexpr const char* kDocumentForGraph = R"SQL(
SELECT id, content_sha256, coalesce(kg_sha256, '') FROM rag_documents
WHERE tenant = $1 AND doc_id = $2 FOR UPDATE)SQL";

// $1 document id.
inline constexpr const char* kDocumentChunks = R"SQL(
SELECT id, text FROM rag_chunks WHERE document_id = $1 ORDER BY ord)SQL";

// $1 document id. The document's old mentions (a retried build writes them once).
inline constexpr const char* kDeleteProvenance = R"SQL(
DELETE FROM kg_provenance p USING rag_chunks c WHERE p.chunk_id = c.id AND c.document_id = $1)SQL";

// $1 tenant, $2 name, $3 norm_name, $4 type. The entity's id, made on first sight.
inline constexpr const char* kUpsertEntity = R"SQL(
WITH inserted AS (
  INSERT INTO kg_entities (tenant, name, norm_name, type) VALUES ($1, $2, $3, $4)
  ON CONFLICT (tenant, norm_name, type) DO NOTHING RETURNING id)
SELECT id FROM inserted
UNION ALL SELECT id FROM kg_entities WHERE tenant = $1 AND norm_name = $3 AND type = $4)SQL";

// $1 tenant, $2 source id, $3 target id, $4 type.
inline constexpr const char* kUpsertRelation = R"SQL(
WITH inserted AS (
  INSERT INTO kg_relations (tenant, source_id, target_id, type) VALUES ($1, $2, $3, $4)
  ON CONFLICT (tenant, source_id, target_id, type) DO NOTHING RETURNING id)
SELECT id FROM inserted
UNION ALL SELECT id FROM kg_relations WHERE tenant = $1 AND source_id = $2 AND target_id = $3 AND type = $4)SQL";

// $1 tenant, $2 chunk id, $3 entity id or NULL, $4 relation id or NULL.
inline constexpr const char* kInsertProvenance = R"SQL(
INSERT INTO kg_provenance (tenant, chunk_id, entity_id, relation_id) VALUES ($1, $2, $3, $4))SQL";

// $1 document id, $2 the content the graph now reflects.
inline constexpr const char* kGraphBuilt = R"SQL(UPDATE rag_documents SET kg_sha256 = $2 WHERE id = $1)SQL";

// $1 tenant, $2 normalised name, $3 the same with LIKE's wildcards escaped, $4 limit. Exact
// matches first, then names containing it; only entities some chunk still mentions.
inline constexpr const char* kFindEntities = R"SQL(
SELECT e.id, e.name, e.type, (SELECT count(*) FROM kg_provenance p WHERE p.entity_id = e.id) AS mentions
FROM kg_entities e
WHERE e.tenant = $1 AND e.norm_name LIKE '%' || $3 || '%'
  AND EXISTS (SELECT 1 FROM kg_provenance p WHERE p.entity_id = e.id)
ORDER BY (e.norm_name = $2) DESC, mentions DESC, e.id
LIMIT $4)SQL";

// $1 tenant, $2 entity id. Relations either way, with the other end and how often they were said.
inline constexpr const char* kEntityRelations = R"SQL(
SELECT r.id, r.type, CASE WHEN r.source_id = $2 THEN 'out' ELSE 'in' END AS direction,
       o.name, o.type, (SELECT count(*) FROM kg_provenance p WHERE p.relation_id = r.id) AS weight
FROM kg_relations r
JOIN kg_entities o ON o.id = CASE WHEN r.source_id = $2 THEN r.target_id ELSE r.source_id END
WHERE r.tenant = $1 AND (r.source_id = $2 OR r.target_id = $2)
  AND EXISTS (SELECT 1 FROM kg_provenance p WHERE p.relation_id = r.id)
ORDER BY weight DESC, r.id
LIMIT 100)SQL";

// $1 tenant, $2 entity id. The chunks that mention it.
inline constexpr const char* kEntityProvenance = R"SQL(
SELECT c.id, c.doc_id, left(c.text, 200)
FROM kg_provenance p JOIN rag_chunks c ON c.id = p.chunk_id
WHERE p.tenant = $1 AND p.entity_id = $2
ORDER BY c.id
LIMIT 50)SQL";

}  // namespace cogo::rag::sql
