#!/usr/bin/env node
// pg-boss as a comparison peer for the cogo bus benchmark.
//
//   node bench.js --url URL [--jobs 20000] [--runs 1] [--producers 8] [--concurrency 4]
//                 [--batch-size 100] [--configs poll,notify] [--modes drain,e2e,latency]
//                 [--rate 100] [--duration 10]
//
// Configurations: "poll" is pg-boss's polling at its shortest allowed interval (0.5 s);
// "notify" turns on its LISTEN/NOTIFY wake-up (useListenNotify on the instance, notify on the
// queue), polling staying as its backstop. Both fetch batches of --batch-size with
// --concurrency fetch loops and keep fetching while a batch comes back full (burstWhenBatchFull).
// drain:   --jobs no-op jobs inserted first (boss.insert, 5,000 per call), then the workers are
//          started and timed until every job has run and is completed.
// e2e:     the workers start first; --producers concurrent producers (a separate process, as
//          cogo's and graphile-worker's producers are separate) each send one job per
//          transaction with boss.send; timed from the first send until every job has completed.
// latency: --rate jobs/s for --duration s to idle workers, one boss.send each from this
//          process; the time from send() returning (the commit) to the handler's start.
// Every run checks exactly-once: the handler counts calls per payload number and per job id;
// each of 1..jobs must have run once, and the table must hold every job, completed.
// Prints one JSON document on stdout; progress goes to stderr.
import { PgBoss } from "pg-boss";
import pg from "pg";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const kQueue = "noop";
const kInsertChunk = 5000;

function parseArgs(argv) {
  const opts = {
    url: process.env.DATABASE_URL,
    jobs: 20000,
    runs: 1,
    producers: 8,
    concurrency: 4,
    batchSize: 100,
    configs: "poll,notify",
    modes: "drain,e2e,latency",
    rate: 100,
    duration: 10,
    timeoutS: 600,
    produce: "", // internal: "first,count,step" runs a producer process instead of a bench
  };
  for (let i = 2; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "").replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(key in opts)) throw new Error(`unknown option ${argv[i]}`);
    const v = argv[i + 1];
    opts[key] = typeof opts[key] === "number" ? Number(v) : v;
  }
  if (!opts.url) throw new Error("--url (or DATABASE_URL) is required");
  return opts;
}

const log = (m) => process.stderr.write(`pg-boss bench: ${m}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const nowNs = () => process.hrtime.bigint();
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

function instanceOptions(opts, config, workers) {
  return {
    connectionString: opts.url,
    max: workers ? opts.concurrency + 4 : opts.producers + 2,
    useListenNotify: config === "notify" && workers,
    supervise: false, // no maintenance passes during a timed run
    schedule: false,
    migrate: true,
  };
}

function workOptions(opts) {
  return {
    batchSize: opts.batchSize,
    localConcurrency: opts.concurrency,
    pollingIntervalSeconds: 0.5, // the shortest pg-boss allows
    notifyPollingIntervalSeconds: 0.5,
    burstWhenBatchFull: true,
  };
}

// The run split at the first handler call: how long the workers took to start (connections,
// first fetch) and the rate from then on (docs/benchmarks.md, "Start-up and the drain").
function afterFirstCall(jobs, seconds, firstCallNs) {
  const first = Number(firstCallNs) / 1e9;
  return { first_call_s: +first.toFixed(4), after_first_call_jobs_per_s: Math.round(jobs / (seconds - first)) };
}

class Tally {
  constructor(n) {
    this.n = n;
    this.byNumber = new Uint32Array(n + 1);
    this.startNs = new Array(n + 1).fill(0n);
    this.byJobId = new Map();
    this.calls = 0;
    this.firstNs = 0n; // the first handler call
    this.bad = 0;
    this.done = null;
    this.onAll = new Promise((r) => (this.done = r));
  }
  record(data, jobId, t) {
    this.calls++;
    if (this.firstNs === 0n) this.firstNs = t;
    const i = data && data.i;
    if (Number.isInteger(i) && i >= 1 && i <= this.n) {
      this.byNumber[i]++;
      this.startNs[i] = t;
    } else {
      this.bad++;
    }
    this.byJobId.set(jobId, (this.byJobId.get(jobId) || 0) + 1);
    if (this.calls === this.n) this.done();
  }
  verify(rows) {
    let missing = 0, twice = 0, idTwice = 0;
    for (let i = 1; i <= this.n; i++) {
      if (this.byNumber[i] === 0) missing++;
      else if (this.byNumber[i] > 1) twice++;
    }
    for (const c of this.byJobId.values()) if (c > 1) idTwice++;
    const ok = missing === 0 && twice === 0 && idTwice === 0 && this.bad === 0 &&
      this.calls === this.n && rows.total === this.n && rows.completed === this.n;
    return { ok, handler_calls: this.calls, distinct_jobs: this.byJobId.size, missing,
             ran_twice: twice + idTwice, unknown: this.bad, rows: rows.total, rows_completed: rows.completed };
  }
}

async function countJobs(c) {
  const r = await c.query(
    "SELECT count(*)::int AS total, count(*) FILTER (WHERE state = 'completed')::int AS completed " +
    "FROM pgboss.job WHERE name = $1", [kQueue]);
  return r.rows[0];
}

async function reset(opts, config) {
  const boss = new PgBoss(instanceOptions(opts, config, false));
  boss.on("error", (e) => log(`error: ${e.message}`));
  await boss.start();
  if (await boss.getQueue(kQueue)) await boss.deleteQueue(kQueue);
  await boss.createQueue(kQueue, { notify: config === "notify", retryLimit: 0 });
  await boss.stop({ graceful: false, wait: true });
  const c = new pg.Client({ connectionString: opts.url });
  await c.connect();
  try {
    await c.query("VACUUM ANALYZE pgboss.job");
    await c.query("CHECKPOINT");
  } finally {
    await c.end();
  }
}

async function startWorkers(opts, config, tally) {
  const boss = new PgBoss(instanceOptions(opts, config, true));
  boss.on("error", (e) => log(`error: ${e.message}`));
  boss.on("warning", (w) => log(`warning: ${w.message}`));
  await boss.start();
  await boss.work(kQueue, workOptions(opts), async (jobs) => {
    const t = nowNs();
    for (const j of jobs) tally.record(j.data, j.id, t);
  });
  return boss;
}

async function waitDone(opts, tally, poller) {
  const deadline = Date.now() + opts.timeoutS * 1000;
  const timeout = sleep(opts.timeoutS * 1000).then(() => "timeout");
  if ((await Promise.race([tally.onAll.then(() => "ok"), timeout])) === "timeout") return false;
  while (Date.now() < deadline) {
    if ((await countJobs(poller)).completed === opts.jobs) return true;
    await sleep(5);
  }
  return false;
}

// The producer process: --produce "p,producers,jobs" sends i = p+1, p+1+producers, ... <= jobs.
// It says "ready" once connected and starts on "go", so the timed run holds no process start.
async function produce(opts) {
  const [p, producers, jobs] = opts.produce.split(",").map(Number);
  const boss = new PgBoss({ ...instanceOptions(opts, "poll", false), max: 1 });
  await boss.start();
  await boss.send(kQueue, { i: 0 }, { startAfter: 3600 }).then((id) => boss.deleteJob(kQueue, id)); // warm
  process.stdout.write("ready\n");
  await new Promise((r) => process.stdin.once("data", r));
  for (let i = p + 1; i <= jobs; i += producers) await boss.send(kQueue, { i });
  await boss.stop({ graceful: false, wait: true });
}

// Starts the producer processes; resolves once every one is ready, with a go() that starts them
// and returns a promise of their end.
async function startProducers(opts) {
  const self = fileURLToPath(import.meta.url);
  const children = [], ready = [], ended = [];
  for (let p = 0; p < opts.producers; p++) {
    const c = spawn(process.execPath, [self, "--url", opts.url, "--produce", `${p},${opts.producers},${opts.jobs}`],
                    { stdio: ["pipe", "pipe", "inherit"] });
    children.push(c);
    ready.push(new Promise((resolve, reject) => {
      c.stdout.once("data", resolve);
      c.on("error", reject);
    }));
    ended.push(new Promise((resolve, reject) => {
      c.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`producer exited ${code}`))));
    }));
  }
  await Promise.all(ready);
  return () => {
    for (const c of children) c.stdin.end("go\n");
    return Promise.all(ended);
  };
}

async function throughputRun(opts, mode, config) {
  await reset(opts, config);
  const tally = new Tally(opts.jobs);
  const poller = new pg.Client({ connectionString: opts.url });
  await poller.connect();
  let boss = null, t0;
  try {
    if (mode === "drain") {
      const filler = new PgBoss(instanceOptions(opts, config, false));
      await filler.start();
      for (let first = 1; first <= opts.jobs; first += kInsertChunk) {
        const chunk = [];
        for (let i = first; i < Math.min(first + kInsertChunk, opts.jobs + 1); i++) chunk.push({ data: { i } });
        await filler.insert(kQueue, chunk);
      }
      await filler.stop({ graceful: false, wait: true });
      await poller.query("VACUUM ANALYZE pgboss.job");
      await poller.query("CHECKPOINT");
      t0 = nowNs();
      boss = await startWorkers(opts, config, tally);
      if (!(await waitDone(opts, tally, poller))) throw new Error("timed out");
    } else {
      boss = await startWorkers(opts, config, tally);
      const go = await startProducers(opts);
      await sleep(1000); // the fetch loops and the listener are up and idle
      t0 = nowNs();
      const producers = go();
      if (!(await waitDone(opts, tally, poller))) throw new Error("timed out");
      await producers;
    }
    const seconds = Number(nowNs() - t0) / 1e9;
    await boss.stop({ graceful: true, wait: true });
    boss = null;
    await sleep(100);
    const check = tally.verify(await countJobs(poller));
    return { mode, config, seconds: +seconds.toFixed(3), jobs_per_s: Math.round(opts.jobs / seconds),
      ...afterFirstCall(opts.jobs, seconds, tally.firstNs - t0), ...check };
  } finally {
    if (boss) await boss.stop({ graceful: false, wait: true }).catch(() => {});
    await poller.end();
  }
}

async function latencyRun(opts, config) {
  const n = opts.rate * opts.duration;
  const o = { ...opts, jobs: n };
  await reset(o, config);
  const tally = new Tally(n);
  const poller = new pg.Client({ connectionString: opts.url });
  await poller.connect();
  const producer = new PgBoss({ ...instanceOptions(o, config, false), max: 1 });
  await producer.start();
  let boss = null;
  try {
    boss = await startWorkers(o, config, tally);
    await sleep(1000);
    const commitNs = new Array(n + 1).fill(0n);
    const intervalNs = BigInt(Math.round(1e9 / opts.rate));
    let due = nowNs();
    for (let i = 1; i <= n; i++) {
      const wait = Number(due - nowNs()) / 1e6;
      if (wait > 0) await sleep(wait);
      due += intervalNs;
      await producer.send(kQueue, { i });
      commitNs[i] = nowNs();
    }
    if (!(await waitDone(o, tally, poller))) throw new Error("timed out");
    await boss.stop({ graceful: true, wait: true });
    boss = null;
    await sleep(100);
    const check = tally.verify(await countJobs(poller));
    const ms = [];
    for (let i = 1; i <= n; i++) ms.push(Number(tally.startNs[i] - commitNs[i]) / 1e6);
    ms.sort((a, b) => a - b);
    return { mode: "latency", config, messages: n, rate_per_s: opts.rate, p50_ms: percentile(ms, 50),
             p90_ms: percentile(ms, 90), p99_ms: percentile(ms, 99), max_ms: ms[ms.length - 1], ...check };
  } finally {
    if (boss) await boss.stop({ graceful: false, wait: true }).catch(() => {});
    await producer.stop({ graceful: false, wait: true }).catch(() => {});
    await poller.end();
  }
}

async function main() {
  const opts = parseArgs(process.argv);
  if (opts.produce) return produce(opts);
  const require = createRequire(import.meta.url);
  const pkg = require.resolve("pg-boss/package.json");
  const version = JSON.parse(readFileSync(pkg, "utf8")).version;
  const results = [];
  let allOk = true;
  for (const mode of opts.modes.split(",")) {
    for (const config of opts.configs.split(",")) {
      const runs = [];
      for (let i = 1; i <= (mode === "latency" ? 1 : opts.runs); i++) {
        const r = mode === "latency" ? await latencyRun(opts, config) : await throughputRun(opts, mode, config);
        log(`${mode} ${config} run ${i}: ` + (mode === "latency"
          ? `p50 ${r.p50_ms.toFixed(2)} / p99 ${r.p99_ms.toFixed(2)} ms`
          : `${r.jobs_per_s} jobs/s in ${r.seconds}s (first call after ${r.first_call_s}s, ` +
            `${r.after_first_call_jobs_per_s} jobs/s from it)`) + `, exactly-once ${r.ok ? "ok" : "FAILED " + JSON.stringify(r)}`);
        allOk = allOk && r.ok;
        runs.push(r);
      }
      const summary = { mode, config, exactly_once: runs.every((r) => r.ok), runs };
      if (mode !== "latency") {
        summary.median_jobs_per_s = Math.round(median(runs.map((r) => r.jobs_per_s)));
        summary.median_first_call_s = median(runs.map((r) => r.first_call_s));
        summary.median_after_first_call_jobs_per_s = Math.round(median(runs.map((r) => r.after_first_call_jobs_per_s)));
      }
      results.push(summary);
    }
  }
  process.stdout.write(JSON.stringify({ peer: "pg-boss", version, node: process.version, jobs: opts.jobs,
    concurrency: opts.concurrency, batch_size: opts.batchSize, producers: opts.producers,
    work_options: workOptions(opts), results }, null, 2) + "\n");
  process.exit(allOk ? 0 : 3);
}

main().catch((e) => { process.stderr.write(`pg-boss bench: ${e.stack || e}\n`); process.exit(1); });
