// The codeBuildTest flow through the real daemons (brain, cogo-codegen-service,
// cogo-build-test-worker) on the sample repository, the sandbox's containment checked on the
// host, codegen against a local OpenAI-wire server, and a build-test worker SIGKILLed mid-build.
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "cogo/auth/jwt.h"
#include "cogo/buildtest/sandbox.h"
#include "fake_openai.h"
#include "front_support.h"
#include "pg_fixture.h"

namespace cogo::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

std::string Slurp(const fs::path& path) {
  std::stringstream text;
  text << std::ifstream(path).rdbuf();
  return text.str();
}

int Shell(const std::string& command) { return std::system(command.c_str()); }

std::map<std::string, std::string> As(const std::string& role, const std::string& tenant = "") {
  return {{"Authorization", "Bearer " + auth::MintDevToken(kTestJwtSecret, role, tenant)}};
}

std::string MessageStatus(int64_t id) {
  return ScalarText("SELECT status FROM agent_messages WHERE id = " + std::to_string(id));
}
std::string LastError(int64_t id) {
  return ScalarText("SELECT coalesce(last_error, '') FROM agent_messages WHERE id = " + std::to_string(id));
}
json Result(int64_t id) {
  return json::parse(ScalarText("SELECT coalesce(result::text, 'null') FROM agent_messages WHERE id = " + std::to_string(id)));
}
bool Final(int64_t id) {
  const auto s = MessageStatus(id);
  return s == "done" || s == "failed" || s == "dead";
}

// A scratch directory with a git copy of examples/tinylib, an artifacts root, a workspace root
// and a file outside the repository the sandbox must never reach.
class CodegenTest : public BusTest {
 protected:
  void SetUp() override {
    BusTest::SetUp();
    std::string templ = (fs::temp_directory_path() / "cogo-codegen-test.XXXXXX").string();
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    base_ = templ;
    ASSERT_EQ(chmod(base_.c_str(), 0755), 0);
    repos_ = base_ + "/repos";
    repo_ = repos_ + "/tinylib";
    artifacts_ = base_ + "/artifacts";
    workspaces_ = base_ + "/ws";
    fs::create_directories(repos_);
    fs::copy(SourcePath("examples/tinylib"), repo_, fs::copy_options::recursive);
    ASSERT_EQ(Shell("cd " + repo_ + " && git init -q && git add -A && git -c user.name=t -c user.email=t@t commit -qm base"), 0);
    std::ofstream(base_ + "/outside.txt") << "host file\n";
    ExportEdgeSecrets();
  }
  void TearDown() override { fs::remove_all(base_); }

  std::vector<std::string> WorkerArgs() const {
    return {"--repo-root", repos_, "--artifacts-dir", artifacts_, "--poll-ms", "100"};
  }
  std::unique_ptr<WorkerDaemon> StartCodegen(const std::string& log, std::vector<std::string> extra = {}) const {
    auto args = WorkerArgs();
    args.insert(args.end(), {"--policy", SourcePath("config/policy.example.json")});
    args.insert(args.end(), extra.begin(), extra.end());
    return std::make_unique<WorkerDaemon>("cogo-codegen-service", args, log);
  }
  std::vector<std::string> BuildTestArgs() const {
    auto args = WorkerArgs();
    args.insert(args.end(), {"--workspace-root", workspaces_, "--concurrency", "3"});
    return args;
  }
  std::string Head(const std::string& ref) const {
    const auto r = RunShell("git -C " + repo_ + " rev-parse --verify -q " + ref);
    return r.substr(0, r.find('\n'));
  }
  static std::string RunShell(const std::string& command) {
    std::string out;
    if (FILE* p = popen(command.c_str(), "r")) {
      char buffer[4096];
      size_t n;
      while ((n = fread(buffer, 1, sizeof buffer, p)) > 0) out.append(buffer, n);
      pclose(p);
    }
    return out;
  }
  bool WorkspacesEmpty() const { return !fs::exists(workspaces_) || fs::is_empty(workspaces_); }

  std::string base_, repos_, repo_, artifacts_, workspaces_;
};

json Task(const std::string& name, const std::string& repo) {
  json body = json::parse(Slurp(SourcePath("examples/codegen-tasks/" + name + ".json")));
  body["parameters"]["repo"] = repo;
  return body;
}

// The three sample tasks through the brain's REST API: a correct patch passes the gate and is
// promoted, a wrong one fails the gate, one whose test hangs is stopped at the time limit.
TEST_F(CodegenTest, TheThreeSampleTasksEndToEnd) {
  const auto log = ScratchFile("codegen-e2e.log");
  Daemon brain("cogo-orchestrator-brain",
               {"--routing", SourcePath("config/routing.example.json"), "--policy", SourcePath("config/policy.example.json"),
                "--workflows", SourcePath("config/workflows"), "--artifacts-dir", artifacts_, "--poll-ms", "100"},
               log);
  const auto codegen = StartCodegen(log);
  WorkerDaemon buildtest("cogo-build-test-worker", BuildTestArgs(), log);
  const auto acme = As("authenticated", "acme");
  std::map<std::string, int64_t> runs;
  for (const char* name : {"fix-clamp", "wrong-clamp", "hang-sum"}) {
    const auto r = HttpPost(brain.port(), "/api/workflows/execute", Task(name, repo_).dump(), acme);
    ASSERT_EQ(r.status, 202) << r.body;
    runs[name] = json::parse(r.body)["runId"];
  }
  auto view = [&](const std::string& name) {
    return json::parse(HttpGet(brain.port(), "/api/workflows/runs/" + std::to_string(runs[name]), acme).body);
  };
  ASSERT_TRUE(WaitFor([&] {
    for (const auto& [name, id] : runs) {
      const std::string s = view(name)["status"];
      if (s == "running" || s == "waiting") return false;
    }
    return true;
  }, 120s)) << "see " << log;

  const json fixed = view("fix-clamp");
  EXPECT_EQ(fixed["status"], "succeeded") << fixed.dump(1);
  const json wrong = view("wrong-clamp");
  EXPECT_EQ(wrong["status"], "failed");
  EXPECT_EQ(wrong["reason"], "gate_failed");
  const json hang = view("hang-sum");
  EXPECT_EQ(hang["status"], "failed");
  EXPECT_EQ(hang["reason"], "gate_failed");

  // The gate's verdict with what it saw is on the trail.
  ASSERT_FALSE(fixed["gates"].empty()) << fixed.dump(1);
  EXPECT_EQ(fixed["gates"].back()["verdict"], "pass") << fixed["gates"].dump(1);

  // Artifacts, and the REST API serving them per tenant.
  const auto report = json::parse(Slurp(artifacts_ + "/tinylib-fix-clamp/build-test/report.json"));
  EXPECT_EQ(report["tests"]["passed"], 2);
  EXPECT_EQ(report["tests"]["failed"], 0);
  EXPECT_NE(report["sandbox"].get<std::string>().find("bwrap"), std::string::npos);
  EXPECT_TRUE(fs::exists(artifacts_ + "/tinylib-fix-clamp/edits.json"));
  EXPECT_TRUE(fs::exists(artifacts_ + "/tinylib-fix-clamp/build-test/build.log"));
  EXPECT_TRUE(fs::exists(artifacts_ + "/tinylib-fix-clamp/build-test/test.log"));
  const auto served = HttpGet(brain.port(), "/api/artifacts/tinylib-fix-clamp/build-test/report.json", acme);
  ASSERT_EQ(served.status, 200) << served.body;
  EXPECT_EQ(json::parse(served.body), report);
  const auto listing = HttpGet(brain.port(), "/api/artifacts/tinylib-fix-clamp", acme);
  ASSERT_EQ(listing.status, 200);
  EXPECT_NE(listing.body.find("build-test/test.log"), std::string::npos);
  EXPECT_EQ(listing.body.find(".tenant"), std::string::npos);
  const auto text = HttpGet(brain.port(), "/api/artifacts/tinylib-fix-clamp/build-test/test.log", acme);
  ASSERT_EQ(text.status, 200);
  EXPECT_NE(json::parse(text.body)["text"].get<std::string>().find("100% tests passed"), std::string::npos);
  ExpectJsonError(HttpGet(brain.port(), "/api/artifacts/tinylib-fix-clamp/edits.json", As("authenticated", "globex")),
                  404, "not_found", "another tenant");
  EXPECT_EQ(HttpGet(brain.port(), "/api/artifacts/tinylib-fix-clamp/.tenant", acme).status, 404);
  EXPECT_EQ(HttpGet(brain.port(), "/api/artifacts/tinylib-fix-clamp/edits.json", As("service_role")).status, 200);
  EXPECT_EQ(HttpGet(brain.port(), "/api/artifacts/tinylib-fix-clamp/edits.json").status, 401);

  const auto wrong_report = json::parse(Slurp(artifacts_ + "/tinylib-wrong-clamp/build-test/report.json"));
  EXPECT_EQ(wrong_report["build"]["ok"], true);
  EXPECT_EQ(wrong_report["tests"]["failures"][0]["name"], "clamp");
  const auto hang_report = json::parse(Slurp(artifacts_ + "/tinylib-hang-sum/build-test/report.json"));
  EXPECT_EQ(hang_report["limits"]["timed_out"], true) << hang_report.dump(1);

  // Promoted: branch cogo/<taskId> holds the fix; the working tree is untouched; nothing else
  // was promoted.
  const std::string commit = Head("refs/heads/cogo/tinylib-fix-clamp");
  ASSERT_EQ(commit.size(), 40u);
  const auto promoted = json::parse(Slurp(artifacts_ + "/tinylib-fix-clamp/promote.json"));
  EXPECT_EQ(promoted["commit"], commit);
  EXPECT_NE(RunShell("git -C " + repo_ + " show " + commit + ":src/tiny.c").find("if (x > hi) return hi;"), std::string::npos);
  EXPECT_NE(Slurp(repo_ + "/src/tiny.c").find("if (x > hi) return lo;"), std::string::npos);
  EXPECT_EQ(Head("refs/heads/cogo/tinylib-wrong-clamp"), "");
  EXPECT_EQ(Head("refs/heads/cogo/tinylib-hang-sum"), "");
  EXPECT_TRUE(WorkspacesEmpty());
}

// Edits that try to leave the repository never reach the host.
TEST_F(CodegenTest, BuildTestRefusesEscapingEdits) {
  const auto log = ScratchFile("codegen-escape.log");
  fs::create_symlink(base_ + "/outside.txt", repo_ + "/link.txt");
  auto publish = [&](const json& edits) {
    return bus_->Publish(Message(json{{"taskId", "escape"}, {"repo", repo_}, {"build", ""}, {"test", "true"},
                                      {"edits", edits}}.dump(), "code", "build-test")).id;
  };
  const auto parent = publish(json::array({{{"path", "../outside.txt"}, {"search", "host"}, {"replace", "pwned"}}}));
  const auto absolute = publish(json::array({{{"path", base_ + "/outside.txt"}, {"search", "host"}, {"replace", "pwned"}}}));
  const auto symlink = publish(json::array({{{"path", "link.txt"}, {"search", "host"}, {"replace", "pwned"}}}));
  // A JUnit file counts only when the test command wrote it, not when the edits planted it.
  const std::string xml = "<testsuite><testcase name=\"a\"/><testcase name=\"b\"><failure message=\"no\"/></testcase></testsuite>";
  auto junit_task = [&](const json& edits, const std::string& test) {
    // Each its own task: of two messages writing one task's report, the newer wins.
    return bus_->Publish(Message(json{{"taskId", "junit-" + std::to_string(edits.size())}, {"repo", repo_}, {"build", ""}, {"test", test},
                                      {"junit", "out/junit.xml"}, {"edits", edits}}.dump(), "code", "build-test")).id;
  };
  const auto planted = junit_task(json::array({{{"path", "out/junit.xml"}, {"replace", "<testcase name=\"fake\"/>"}}}), "true");
  const auto written = junit_task(json::array(), "mkdir -p out && printf '%s' '" + xml + "' > out/junit.xml");
  WorkerDaemon buildtest("cogo-build-test-worker", BuildTestArgs(), log);
  ASSERT_TRUE(WaitFor([&] { return Final(parent) && Final(absolute) && Final(symlink) && Final(planted) && Final(written); }, 30s)) << log;
  ASSERT_EQ(MessageStatus(planted), "done") << LastError(planted);
  EXPECT_EQ(Result(planted)["tests"]["passed"], 0);
  EXPECT_EQ(Result(planted)["tests"]["runner"], "");
  ASSERT_EQ(MessageStatus(written), "done") << LastError(written);
  EXPECT_EQ(Result(written)["tests"]["runner"], "junit");
  EXPECT_EQ(Result(written)["tests"]["passed"], 1);
  EXPECT_EQ(Result(written)["tests"]["failures"], json::parse(R"([{"name":"b","message":"no"}])"));
  EXPECT_EQ(MessageStatus(parent), "failed");
  EXPECT_EQ(LastError(parent).rfind("edits_invalid: path_parent", 0), 0u) << LastError(parent);
  EXPECT_EQ(MessageStatus(absolute), "failed");
  EXPECT_EQ(LastError(absolute).rfind("edits_invalid: path_absolute", 0), 0u) << LastError(absolute);
  ASSERT_EQ(MessageStatus(symlink), "done") << LastError(symlink);
  const json report = Result(symlink);
  EXPECT_EQ(report["apply"]["ok"], false);
  EXPECT_EQ(report["apply"]["error"]["reason"], "symlink_in_path");
  EXPECT_EQ(report["build"]["ran"], false);
  EXPECT_EQ(Slurp(base_ + "/outside.txt"), "host file\n");
  EXPECT_TRUE(WorkspacesEmpty());
}

// What a test command tries inside the sandbox: the network, writes outside the workspace, a
// fork bomb and a sleep past the timeout are contained, and the host shows no trace.
TEST_F(CodegenTest, SandboxContainsNetworkWritesForkBombsAndSleeps) {
  buildtest::SandboxOptions options;
  (void)buildtest::ProbeSandbox(options);  // throws when there is no sandbox: never run without one
  const std::string ws = base_ + "/sandbox-ws";
  fs::create_directories(ws);
  if (geteuid() == 0) {
    ASSERT_EQ(chown(ws.c_str(), options.uid, options.gid), 0);
  }
  buildtest::SandboxLimits limits;
  limits.timeout = 5s;
  limits.processes = 64;

  // Network: a server on the host's loopback is not reachable from the sandbox.
  httplib::Server server;
  std::atomic<int> hits{0};
  server.Get("/", [&](const httplib::Request&, httplib::Response& res) { ++hits; res.set_content("hi", "text/plain"); });
  const int port = server.bind_to_any_port("127.0.0.1");
  std::thread serving([&] { server.listen_after_bind(); });
  const auto net = buildtest::RunSandboxed("curl -sS --max-time 2 http://127.0.0.1:" + std::to_string(port) +
                                           "/ && echo REACHED; getent hosts example.com || echo NO-DNS",
                                           ws, options, limits);
  server.stop();
  serving.join();
  EXPECT_EQ(hits.load(), 0);
  EXPECT_EQ(net.output.find("REACHED"), std::string::npos) << net.output;
  EXPECT_NE(net.output.find("NO-DNS"), std::string::npos) << net.output;

  // Writes: outside the workspace nothing is writable, and the host's files are not even there.
  const std::string marker = base_ + "/written-from-sandbox";
  const auto writes = buildtest::RunSandboxed(
      "echo x > " + marker + "; echo x > " + base_ + "/outside.txt; echo x > /usr/cogo-escape; "
      "cat " + base_ + "/outside.txt; echo inside > ok.txt; echo done",
      ws, options, limits);
  EXPECT_NE(writes.output.find("done"), std::string::npos) << writes.output;
  EXPECT_FALSE(fs::exists(marker));
  EXPECT_FALSE(fs::exists("/usr/cogo-escape"));
  EXPECT_EQ(Slurp(base_ + "/outside.txt"), "host file\n");
  EXPECT_EQ(writes.output.find("host file"), std::string::npos);
  EXPECT_EQ(Slurp(ws + "/ok.txt"), "inside\n");

  // File size and CPU time: the rlimits end the command with SIGXFSZ / SIGXCPU.
  buildtest::SandboxLimits small = limits;
  small.file_bytes = 1 << 20;
  const auto big = buildtest::RunSandboxed("head -c 3000000 /dev/zero > big", ws, options, small);
  EXPECT_EQ(big.signal, SIGXFSZ) << big.exit_code << " " << big.output;
  EXPECT_EQ(fs::file_size(ws + "/big"), 1u << 20);
  small.cpu_seconds = 1;
  small.timeout = 20s;
  const auto spin = buildtest::RunSandboxed("while :; do :; done", ws, options, small);
  EXPECT_EQ(spin.signal, SIGXCPU) << spin.exit_code << " " << spin.output;
  EXPECT_FALSE(spin.timed_out);

  // A fork bomb: bounded by RLIMIT_NPROC, then the timeout (or its own exit) ends the group.
  // Its processes and the sleeper's are told apart from other sandboxes on this machine (other
  // test runs use the same sandbox user) by sleep lengths unique to this process.
  const std::string tag = std::to_string(100 + getpid() % 900);
  const std::string bomb_sleep = "sleep 59." + tag, sleeper_sleep = "sleep 41." + tag;
  limits.timeout = 2s;
  const auto t0 = std::chrono::steady_clock::now();
  const auto bomb = buildtest::RunSandboxed("b() { b | b & }; b; " + bomb_sleep, ws, options, limits);
  EXPECT_TRUE(bomb.timed_out || bomb.exit_code != 0) << bomb.exit_code;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 15s);
  EXPECT_NE(bomb.output.find("fork"), std::string::npos) << "forks were refused: " << bomb.output.substr(0, 300);
  // A sleep past the timeout: killed, with everything it started.
  const auto sleeper = buildtest::RunSandboxed(sleeper_sleep + " & " + sleeper_sleep + "; echo woke", ws, options, limits);
  EXPECT_TRUE(sleeper.timed_out);
  EXPECT_EQ(sleeper.output.find("woke"), std::string::npos);
  EXPECT_LT(sleeper.duration_ms, 5000);
  // The PID namespace's init was killed: the kernel takes the rest down, promptly. A zombie
  // runs nothing (it waits for a parent to reap it, and a container's PID 1 may never do so).
  // The bracket keeps the pattern from matching this shell's own command line.
  const std::string alive = "ps -eo stat=,args= | grep -v '^Z' | grep -c '[s]leep \\(59\\|41\\)\\." + tag + "'";
  EXPECT_TRUE(WaitFor([&] { return RunShell(alive) == "0\n"; }, 3s))
      << "nothing of the sandbox is left: " << RunShell("ps -u " + std::to_string(options.uid) + " -o pid,stat,args");
}

// The prompt of a chat request (its user message) and how many messages it carries.
std::string Prompt(const json& request) { return request["messages"][1]["content"]; }
size_t Turns(const json& request) { return request["messages"].size(); }

// codegen against a local OpenAI-wire server: a good reply, a malformed one corrected after the
// error is fed back, and hostile replies that end in a named failure with nothing written.
TEST_F(CodegenTest, CodegenTurnsModelRepliesIntoCheckedEdits) {
  const std::string fix = "src/tiny.c\n<<<<<<< SEARCH\n  if (x > hi) return lo;\n=======\n  if (x > hi) return hi;\n>>>>>>> REPLACE\n";
  FakeOpenAI model;
  model.Play(ChatReplies([&](const json& request) -> std::string {
    const std::string prompt = Prompt(request);
    if (prompt.find("CASE-good") != std::string::npos) return "Sure.\n```\n" + fix + "```\n";
    if (prompt.find("CASE-malformed") != std::string::npos) return Turns(request) == 2 ? "I would change tiny.c somehow." : fix;
    if (prompt.find("CASE-ambiguous") != std::string::npos) {
      return "src/tiny.c\n<<<<<<< SEARCH\n}\n=======\n}  // twice in the file\n>>>>>>> REPLACE\n";
    }
    return "../outside.txt\n<<<<<<< SEARCH\n=======\npwned\n>>>>>>> REPLACE\n/etc/passwd\n<<<<<<< SEARCH\nroot\n=======\n"
           "toor\n>>>>>>> REPLACE\n";
  }));
  auto payload = [&](const std::string& task, const std::string& instruction) {
    return json{{"__assignment", {{"agent_id", "codegen"}, {"version", "v1"}, {"model", "gpt-4o-mini"},
                                  {"budget", {{"maxCostUsd", 0.5}, {"maxTokens", 100000}}}, {"ttl_ms", 60000}}},
                {"taskId", task}, {"repo", repo_}, {"instruction", instruction}}
        .dump();
  };
  const auto good = bus_->Publish(Message(payload("good", "CASE-good: fix tiny_clamp in src/tiny.c"), "codegen", "generate")).id;
  const auto fixed = bus_->Publish(Message(payload("malformed", "CASE-malformed: fix tiny_clamp"), "codegen", "generate")).id;
  const auto hostile = bus_->Publish(Message(payload("hostile", "CASE-hostile"), "codegen", "generate")).id;
  const auto ambiguous = bus_->Publish(Message(payload("ambiguous", "CASE-ambiguous"), "codegen", "generate")).id;
  const auto log = ScratchFile("codegen-model.log");
  {
    const auto codegen = StartCodegen(log, {"--provider-base-url", model.base_url(),
                                            "--provider-max-retries", "0"});
    ASSERT_TRUE(WaitFor([&] { return Final(good) && Final(fixed) && Final(hostile) && Final(ambiguous); }, 30s)) << log;
  }
  ASSERT_EQ(MessageStatus(good), "done") << LastError(good);
  const json result = Result(good);
  EXPECT_EQ(result["source"], "model");
  EXPECT_EQ(result["attempts"], 1);
  EXPECT_EQ(result["edits"][0]["replace"], "  if (x > hi) return hi;\n");
  EXPECT_EQ(json::parse(Slurp(artifacts_ + "/good/edits.json"))["edits"], result["edits"]);
  EXPECT_NE(Slurp(artifacts_ + "/good/prompt.txt").find("tiny_clamp(int x, int lo, int hi)"), std::string::npos)
      << "the named file is in the prompt";
  EXPECT_EQ(Slurp(artifacts_ + "/good/reply-1.txt").rfind("Sure.", 0), 0u);

  ASSERT_EQ(MessageStatus(fixed), "done") << LastError(fixed);
  EXPECT_EQ(Result(fixed)["attempts"], 2);
  bool fed_back = false;
  for (const auto& r : model.bodies()) {
    if (r["messages"].size() == 4 && r["messages"][1]["content"].get<std::string>().find("CASE-malformed") != std::string::npos) {
      fed_back = r["messages"][3]["content"].get<std::string>().find("malformed") != std::string::npos;
    }
  }
  EXPECT_TRUE(fed_back) << "the second call carries the reason the first reply was refused";

  EXPECT_EQ(MessageStatus(hostile), "failed");
  EXPECT_EQ(LastError(hostile).rfind("codegen_reply_invalid: path_parent", 0), 0u) << LastError(hostile);
  EXPECT_FALSE(fs::exists(artifacts_ + "/hostile/edits.json"));
  EXPECT_TRUE(fs::exists(artifacts_ + "/hostile/reply-2.txt"));
  EXPECT_EQ(MessageStatus(ambiguous), "failed");
  EXPECT_EQ(LastError(ambiguous).rfind("codegen_reply_invalid: search_ambiguous", 0), 0u) << LastError(ambiguous);
  EXPECT_EQ(Slurp(base_ + "/outside.txt"), "host file\n");
  EXPECT_NE(Slurp(repo_ + "/src/tiny.c").find("return lo;"), std::string::npos);
  // Metered like chat: every call's usage recorded against the message.
  EXPECT_GE(Scalar<int64_t>("SELECT count(*) FROM message_usage WHERE service = 'codegen'"), 4);

  // Edits given directly skip the model and are checked the same way.
  const auto direct = bus_->Publish(Message(json{{"taskId", "direct"}, {"repo", repo_},
                                                 {"edits", json::array({{{"path", "src/tiny.c"}, {"search", "return"}, {"replace", "x"}}})}}
                                                .dump(), "codegen", "generate")).id;
  const auto requests_before = model.bodies().size();
  {
    const auto codegen = StartCodegen(log);
    ASSERT_TRUE(WaitFor([&] { return Final(direct); }, 30s)) << log;
  }
  EXPECT_EQ(MessageStatus(direct), "failed");
  EXPECT_EQ(LastError(direct).rfind("edits_invalid: search_ambiguous", 0), 0u) << LastError(direct);
  EXPECT_EQ(model.bodies().size(), requests_before);
}

// The whole loop with a model: its first patch fails the tests, the gate sends the run back to
// generate with the report, and the second patch, written with that feedback, passes.
TEST_F(CodegenTest, AModelPatchThatFailsIsRetriedWithTheReportFedBack) {
  FakeOpenAI model;
  model.Play(ChatReplies([](const json& request) -> std::string {
    const bool told = Prompt(request).find("- clamp: Failed") != std::string::npos;
    return std::string("src/tiny.c\n<<<<<<< SEARCH\n  if (x > hi) return lo;\n=======\n  if (x > hi) return ") +
           (told ? "hi" : "x") + ";\n>>>>>>> REPLACE\n";
  }));
  const auto log = ScratchFile("codegen-loop.log");
  Daemon brain("cogo-orchestrator-brain",
               {"--routing", SourcePath("config/routing.example.json"), "--policy", SourcePath("config/policy.example.json"),
                "--workflows", SourcePath("config/workflows"), "--artifacts-dir", artifacts_, "--poll-ms", "100"},
               log);
  const auto codegen = StartCodegen(log, {"--provider-base-url", model.base_url(),
                                          "--provider-max-retries", "0"});
  WorkerDaemon buildtest("cogo-build-test-worker", BuildTestArgs(), log);
  json task = Task("fix-clamp", repo_);
  task["parameters"].erase("edits");
  task["parameters"]["taskId"] = "model-loop";
  const auto acme = As("authenticated", "acme");
  const auto started = HttpPost(brain.port(), "/api/workflows/execute", task.dump(), acme);
  ASSERT_EQ(started.status, 202) << started.body;
  const std::string path = "/api/workflows/runs/" + std::to_string(json::parse(started.body)["runId"].get<int64_t>());
  json view;
  ASSERT_TRUE(WaitFor([&] {
    view = json::parse(HttpGet(brain.port(), path, acme).body);
    return view["status"] != "running" && view["status"] != "waiting";
  }, 90s)) << "see " << log;
  ASSERT_EQ(view["status"], "succeeded") << view.dump(1);
  ASSERT_EQ(view["gates"].size(), 2u);
  EXPECT_EQ(view["gates"][0]["verdict"], "fail");
  EXPECT_EQ(view["gates"][1]["verdict"], "pass");
  const auto requests = model.bodies();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0]["messages"][1]["content"].get<std::string>().find("did not pass"), std::string::npos);
  EXPECT_NE(requests[1]["messages"][1]["content"].get<std::string>().find("- clamp: Failed"), std::string::npos);
  EXPECT_EQ(Head("refs/heads/cogo/model-loop").size(), 40u);
  EXPECT_EQ(json::parse(Slurp(artifacts_ + "/model-loop/edits.json"))["source"], "model");
}

// A build-test worker SIGKILLed mid-build: the lease runs out, the message is claimed again, the
// retry builds in a fresh workspace (the first one removed), and exactly one report is written.
TEST_F(CodegenTest, WorkerKilledMidBuildRetriesInAFreshWorkspace) {
  const auto log = ScratchFile("codegen-kill.log");
  const auto id = bus_->Publish(Message(json{{"taskId", "killed"}, {"repo", repo_},
                                             {"build", "touch started; sleep 2.71; echo built"},
                                             {"test", "ctest --version >/dev/null && echo '100% tests passed, 0 tests failed out of 1'"}}
                                            .dump(), "code", "build-test")).id;
  auto args = BuildTestArgs();
  args.insert(args.end(), {"--lease-ms", "1000", "--heartbeat-ms", "300"});
  {
    ChildProcess first("cogo-build-test-worker", args, log);
    ASSERT_TRUE(WaitFor([&] {
      if (!fs::exists(workspaces_)) return false;
      for (const auto& e : fs::directory_iterator(workspaces_)) {
        if (fs::exists(e.path() / "started")) return true;
      }
      return false;
    }, 30s)) << log;
    first.Signal(SIGKILL);
    (void)first.Wait(10s);
  }
  // The parent-death signal reaches the sandbox asynchronously: on a loaded machine it takes a while.
  EXPECT_TRUE(WaitFor([&] { return RunShell("ps -eo args | grep -c '^sleep 2.71'") == "0\n"; }, 10s))
      << "the sandbox died with its worker";
  WorkerDaemon reclaimer("cogo-bus-reclaimer", {"--interval", "200ms"}, log);
  WorkerDaemon second("cogo-build-test-worker", args, log);
  ASSERT_TRUE(WaitFor([&] { return Final(id); }, 40s)) << log;
  ASSERT_EQ(MessageStatus(id), "done") << LastError(id);
  const json report = Result(id);
  EXPECT_GE(report["attempt"]["fence"].get<int64_t>(), 2);
  EXPECT_EQ(report["build"]["ok"], true);
  EXPECT_EQ(json::parse(Slurp(artifacts_ + "/killed/build-test/report.json"))["attempt"], report["attempt"]);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE service = 'code'"), 1);
  EXPECT_TRUE(WorkspacesEmpty());
}

}  // namespace
}  // namespace cogo::testing
