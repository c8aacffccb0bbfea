#include "cogo/bus/inspect.h"

#include <pqxx/result>

namespace cogo::bus {

std::optional<std::string> MessageJson(pqxx::transaction_base& txn, int64_t id) {
  const auto rows = txn.exec_params("SELECT to_jsonb(m)::text FROM agent_messages m WHERE id = $1", id);
  if (rows.empty()) return std::nullopt;
  return rows[0][0].as<std::string>();
}

std::string EventsJson(pqxx::transaction_base& txn, int64_t id) {
  return txn
      .exec_params(R"SQL(
SELECT coalesce(jsonb_agg(jsonb_build_object('id', CASE WHEN ord = 1 THEN id END, 'event', event,
                                             'at', at, 'detail', detail) ORDER BY at, ord, id),
                '[]')::text
FROM bus_trail WHERE message_id = $1)SQL",
                   id)[0][0]
      .as<std::string>();
}

std::string StatusJson(pqxx::transaction_base& txn) {
  return txn
      .exec(R"SQL(
SELECT coalesce(jsonb_agg(s ORDER BY s.service, s.role, s.status), '[]')::text FROM (
  SELECT service, role, status, count(*) AS count,
         CASE WHEN status = 'queued'
              THEN round(extract(epoch FROM now() - min(created_at))::numeric, 3) END
           AS oldest_queued_age_s
  FROM agent_messages GROUP BY service, role, status) s)SQL")[0][0]
      .as<std::string>();
}

std::string WorkersJson(pqxx::transaction_base& txn, int within_s) {
  return txn
      .exec_params(R"SQL(
SELECT coalesce(jsonb_agg(jsonb_build_object(
         'worker_id', worker_id, 'service', service, 'role', role, 'shards', shards,
         'host', host, 'pid', pid, 'idle', idle,
         'last_seen_age_s', round(extract(epoch FROM now() - last_seen)::numeric, 3))
         ORDER BY service, role, worker_id), '[]')::text
FROM bus_workers WHERE last_seen > now() - $1 * interval '1 second')SQL",
                   within_s)[0][0]
      .as<std::string>();
}

}  // namespace cogo::bus
