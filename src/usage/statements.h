// The usage log's statement (cogo/usage/usage_log.h).
#pragma once

namespace cogo::usage::sql {

// $1: jsonb array of {message_id, attempt, tenant, service, role, agent_id, version, model,
// input_tokens, output_tokens, cost_usd, outcome}, one row each.
inline constexpr const char* kRecordUsageName = "cogo_record_usage";
inline constexpr const char* kRecordUsage = R"SQL(
INSERT INTO message_usage (message_id, attempt, tenant, service, role, agent_id, version, model,
                           input_tokens, output_tokens, cost_usd, outcome)
SELECT message_id, attempt, tenant, service, role, agent_id, version, model, input_tokens,
       output_tokens, cost_usd, outcome
FROM jsonb_to_recordset($1::jsonb) AS x(message_id bigint, attempt int, tenant text,
     service text, role text, agent_id text, version text, model text, input_tokens bigint,
     output_tokens bigint, cost_usd numeric, outcome text))SQL";

}  // namespace cogo::usage::sql
