#include "cogo/db/pipelined_transaction.h"

#include <stdexcept>

#include <pqxx/except>
#include <pqxx/nontransaction>
#include <pqxx/pipeline>

#include "cogo/db/reconnect.h"

namespace cogo::db {

PipelinedTransaction::PipelinedTransaction(pqxx::connection& conn)
    : conn_(conn), backend_pid_(conn.backendpid()), txn_(std::make_unique<pqxx::nontransaction>(conn, "pipelined")) {}

PipelinedTransaction::~PipelinedTransaction() {
  try {
    Rollback();
  } catch (const std::exception&) {  // the connection broke: the server rolled back
  }
}

std::string PipelinedTransaction::Literal(std::string_view text) {
  return "'" + conn_.esc(text.data(), text.size()) + "'";
}

size_t PipelinedTransaction::Queue(const std::string& name, const std::vector<std::string>& arguments) {
  if (finished_) throw std::logic_error("a pipelined transaction was used after it ended");
  conn_.prepare_now(name);  // once per connection: EXECUTE needs it on the server already
  std::string statement = "EXECUTE " + name;
  for (size_t i = 0; i < arguments.size(); ++i) statement += (i == 0 ? "(" : ", ") + arguments[i];
  if (!arguments.empty()) statement += ')';
  queued_.push_back(std::move(statement));
  return queued_.size() - 1;
}

std::vector<pqxx::result> PipelinedTransaction::Send() { return Run(false); }

std::vector<pqxx::result> PipelinedTransaction::Commit() { return Run(true); }

void PipelinedTransaction::Rollback() {
  queued_.clear();
  const bool open = open_;
  open_ = false;
  finished_ = true;
  if (open) txn_->exec("ROLLBACK");
}

std::vector<pqxx::result> PipelinedTransaction::Run(bool commit) {
  if (finished_) throw std::logic_error("a pipelined transaction was used after it ended");
  std::vector<std::string> statements;
  if (!begun_) statements.emplace_back("BEGIN");
  const size_t first = statements.size();
  const size_t count = queued_.size();
  statements.insert(statements.end(), queued_.begin(), queued_.end());
  if (commit) statements.emplace_back("COMMIT");
  queued_.clear();
  std::vector<pqxx::result> results;
  results.reserve(count);
  pqxx::pipeline pipeline(*txn_);
  try {
    pipeline.retain(static_cast<int>(statements.size()));
    std::vector<pqxx::pipeline::query_id> ids;
    ids.reserve(statements.size());
    for (const std::string& s : statements) ids.push_back(pipeline.insert(s));
    begun_ = true;
    open_ = true;
    pipeline.resume();
    for (size_t i = 0; i < ids.size(); ++i) {
      // Never a COMMIT after a failure (which would answer ROLLBACK without an error): a failed
      // message ends this object (finished_), and within a message the server skips the rest.
      pqxx::result r = pipeline.retrieve(ids[i]);
      if (i >= first && i < first + count) results.push_back(std::move(r));
    }
    pipeline.complete();
  } catch (const std::exception& e) {
    finished_ = true;
    try {
      pipeline.flush();  // reads what is left, so the pipeline's destructor sends no cancel requests
    } catch (const std::exception&) {
    }
    // libpq reports a connection it found closed without an SQLSTATE, and pqxx::pipeline then
    // replays the statements one by one, reconnecting silently (without the session setup). A
    // connection that is closed or replaced is closed here, so that callers drop it, and the
    // failure is reported as what it is.
    if (Classify(e) == FailureKind::connection_lost || !conn_.is_open() || conn_.backendpid() != backend_pid_) {
      open_ = false;  // the server rolls back what it did not commit
      conn_.disconnect();
      if (commit) throw pqxx::in_doubt_error(std::string("the connection broke while COMMIT was in flight: ") + e.what());
      throw pqxx::broken_connection(std::string("the connection broke during a pipelined transaction: ") + e.what());
    }
    throw;  // the destructor rolls the aborted transaction back
  }
  if (commit) {
    open_ = false;
    finished_ = true;
  }
  return results;
}

}  // namespace cogo::db
