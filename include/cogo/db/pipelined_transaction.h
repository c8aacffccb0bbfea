// A transaction whose statements reach the server several to a message. On a host whose
// processes sleep between messages a round trip costs 0.15-0.3 ms, more than most of the
// statements a flush runs (docs/benchmarks.md): a transaction that sent BEGIN, four statements
// and COMMIT one at a time spent most of its time waiting for wake-ups. Here the caller queues
// what it can decide now, Send()s it as one message (BEGIN rides on the first), reads the
// results, queues what they decide, and Commit()s the rest with COMMIT in the last message.
//
// Statements are ones the connection has prepared (pqxx::connection::prepare), run by SQL
// EXECUTE with their arguments as literals (Literal): the server's cached plan, as with
// exec_prepared, but inside one simple-protocol message (pqxx::pipeline). A failure aborts the
// transaction; one neither committed nor failed by a lost connection is rolled back when this
// object goes. A connection lost while a message carrying COMMIT was in flight is reported as
// pqxx::in_doubt_error, like pqxx::work's commit: it may have committed. No savepoints: what a
// statement wrote carries the transaction's own xid (the executor's reservation relies on it).
//
// A statement that fails makes PostgreSQL log the message's text, literals included
// (log_min_error_statement), where a prepared statement's failure logs its text without the
// parameters: the flush's lock fails that way when a lease was lost (docs/operations.md).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <pqxx/connection>
#include <pqxx/result>

namespace pqxx {
class nontransaction;
}

namespace cogo::db {

class PipelinedTransaction {
 public:
  explicit PipelinedTransaction(pqxx::connection& conn);
  ~PipelinedTransaction();
  PipelinedTransaction(const PipelinedTransaction&) = delete;
  PipelinedTransaction& operator=(const PipelinedTransaction&) = delete;

  // SQL literals for EXECUTE's arguments.
  [[nodiscard]] std::string Literal(std::string_view text);  // quoted for this connection
  [[nodiscard]] static std::string Literal(int64_t value) { return std::to_string(value); }
  [[nodiscard]] static std::string Literal(bool value) { return value ? "true" : "false"; }
  static std::string Literal(const char*) = delete;  // would quietly be a bool

  // Queues prepared statement `name` with `arguments` (literals). Returns the position of its
  // result among those the next Send or Commit returns.
  size_t Queue(const std::string& name, const std::vector<std::string>& arguments);

  // Sends what is queued, in one message, and returns the results in queue order. Throws the
  // first statement's failure (the transaction is then aborted and rolled back, and this object
  // is done); a connection that broke is closed (pqxx::broken_connection).
  std::vector<pqxx::result> Send();
  // Sends what is queued and COMMIT, in one message.
  std::vector<pqxx::result> Commit();
  // Ends the transaction without writing anything (also what the destructor does).
  void Rollback();

  [[nodiscard]] pqxx::connection& connection() { return conn_; }

 private:
  std::vector<pqxx::result> Run(bool commit);

  pqxx::connection& conn_;
  const int backend_pid_;  // a different one later: pqxx reconnected behind our back
  std::unique_ptr<pqxx::nontransaction> txn_;
  std::vector<std::string> queued_;  // EXECUTE statements
  bool begun_ = false;               // BEGIN was sent
  bool open_ = false;                // the server holds the transaction open (to commit or roll back)
  bool finished_ = false;            // committed, rolled back or failed: nothing more may be queued
};

}  // namespace cogo::db
