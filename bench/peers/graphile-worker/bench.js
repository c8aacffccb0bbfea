#!/usr/bin/env node
// graphile-worker as a comparison peer for the cogo bus benchmark.
//
//   node bench.js --url URL --pgbench PATH [--jobs 20000] [--runs 3] [--producers 8]
//                 [--concurrency 24] [--configs batched,default] [--modes drain,e2e,latency]
//                 [--rate 100] [--duration 10]
//
// drain: --jobs no-op jobs enqueued first in one graphile_worker.add_jobs call, then a worker
//        pool started and timed until every job has run and been deleted (completed).
// e2e:   the worker pool is started first; --producers pgbench clients each add one job per
//        transaction with graphile_worker.add_job (add_job.sql); timed from the first insert
//        until every job has run and been completed.
// latency: --rate jobs/s for --duration s to an idle worker pool, one add_job per transaction
//        from this process; the time from the commit's return to the handler's start.
// Every run checks exactly-once: the handler counts calls per payload number and per job id;
// each of 1..jobs must have run once, no job twice, and the jobs table must end empty.
// Prints one JSON document on stdout; progress goes to stderr.
"use strict";

const { spawn } = require("node:child_process");
const path = require("node:path");
const { run, runMigrations, Logger } = require("graphile-worker");
const { Client } = require("pg");

function parseArgs(argv) {
  const opts = {
    url: process.env.DATABASE_URL,
    pgbench: "pgbench",
    jobs: 20000,
    runs: 3,
    producers: 8,
    pgbenchThreads: 2,
    concurrency: 24,
    configs: "batched,default",
    modes: "drain,e2e",
    rate: 100,
    duration: 10,
    timeoutS: 600,
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

// Worker configurations. "default" is graphile-worker's defaults apart from concurrency;
// "batched" adds the batching its performance guide recommends for high throughput
// (a local queue of locked jobs and batched completions).
function workerConfig(name, concurrency) {
  const base = { concurrency, maxPoolSize: Math.max(10, concurrency + 2) };
  if (name === "default") return { ...base, preset: { worker: {} } };
  if (name === "batched")
    return {
      ...base,
      preset: { worker: { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 } },
    };
  throw new Error(`unknown config ${name}`);
}

const quietLogger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") process.stderr.write(`graphile-worker ${level}: ${message}\n`);
});

const log = (m) => process.stderr.write(`graphile-worker bench: ${m}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

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
    this.bad = 0; // payload numbers outside 1..n
    this.done = null;
    this.onAll = new Promise((r) => (this.done = r));
  }
  record(payload, jobId) {
    this.calls++;
    if (this.firstNs === 0n) this.firstNs = process.hrtime.bigint();
    const i = payload && payload.i;
    if (Number.isInteger(i) && i >= 1 && i <= this.n) {
      this.byNumber[i]++;
      this.startNs[i] = process.hrtime.bigint();
    } else {
      this.bad++;
    }
    this.byJobId.set(jobId, (this.byJobId.get(jobId) || 0) + 1);
    if (this.calls === this.n) this.done();
  }
  verify(remainingRows) {
    let missing = 0, twice = 0;
    for (let i = 1; i <= this.n; i++) {
      if (this.byNumber[i] === 0) missing++;
      else if (this.byNumber[i] > 1) twice++;
    }
    let idTwice = 0;
    for (const c of this.byJobId.values()) if (c > 1) idTwice++;
    const ok = missing === 0 && twice === 0 && idTwice === 0 && this.bad === 0 &&
      this.calls === this.n && remainingRows === 0;
    return { ok, handler_calls: this.calls, distinct_jobs: this.byJobId.size, missing,
             ran_twice: twice + idTwice, unknown: this.bad, rows_left: remainingRows };
  }
}

async function withClient(url, fn) {
  const c = new Client({ connectionString: url });
  await c.connect();
  try { return await fn(c); } finally { await c.end(); }
}

async function countJobs(c) {
  const r = await c.query("SELECT count(*)::int AS n FROM graphile_worker._private_jobs");
  return r.rows[0].n;
}

async function reset(url) {
  await withClient(url, async (c) => {
    await c.query("TRUNCATE graphile_worker._private_jobs");
    await c.query("CREATE SEQUENCE IF NOT EXISTS cogo_bench_seq");
    await c.query("ALTER SEQUENCE cogo_bench_seq RESTART WITH 1");
    await c.query("VACUUM ANALYZE graphile_worker._private_jobs");
    await c.query("CHECKPOINT");
  });
}

async function startRunner(opts, config, tally) {
  return run({
    connectionString: opts.url,
    ...workerConfig(config, opts.concurrency),
    noHandleSignals: true,
    logger: quietLogger,
    taskList: { noop: async (payload, helpers) => { tally.record(payload, helpers.job.id); } },
  });
}

// Waits for every handler call, then for the completions to reach the table.
async function waitDone(opts, tally, poller) {
  const deadline = Date.now() + opts.timeoutS * 1000;
  const timeout = sleep(opts.timeoutS * 1000).then(() => "timeout");
  if ((await Promise.race([tally.onAll.then(() => "ok"), timeout])) === "timeout") return false;
  while (Date.now() < deadline) {
    if ((await countJobs(poller)) === 0) return true;
    await sleep(5);
  }
  return false;
}

function runPgbench(opts) {
  const perClient = Math.ceil(opts.jobs / opts.producers);
  if (perClient * opts.producers !== opts.jobs) throw new Error("--jobs must divide by --producers");
  const u = new URL(opts.url);
  const args = ["-n", "-h", u.hostname, "-p", u.port || "5432", "-U", decodeURIComponent(u.username || "postgres"),
    "-c", String(opts.producers), "-j", String(opts.pgbenchThreads), "-t", String(perClient), "-M", "prepared",
    "-f", path.join(__dirname, "add_job.sql"), u.pathname.replace(/^\//, "")];
  return new Promise((resolve, reject) => {
    const p = spawn(opts.pgbench, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "", err = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (err += d));
    p.on("error", reject);
    p.on("close", (code) => {
      if (code !== 0) return reject(new Error(`pgbench exited ${code}: ${err}`));
      const m = out.match(/tps = ([\d.]+) \(without initial connection time\)/);
      resolve({ tps: m ? Number(m[1]) : null });
    });
  });
}

async function oneRun(opts, mode, config) {
  await reset(opts.url);
  const tally = new Tally(opts.jobs);
  const poller = new Client({ connectionString: opts.url });
  await poller.connect();
  let runner, t0, producer = null;
  try {
    if (mode === "drain") {
      await poller.query(
        `SELECT graphile_worker.add_jobs(array(
           SELECT ('noop', json_build_object('i', g), null, null, null, null, null, null)::graphile_worker.job_spec
           FROM generate_series(1, $1::int) AS g))`, [opts.jobs]);
      await poller.query("VACUUM ANALYZE graphile_worker._private_jobs");
      await poller.query("CHECKPOINT");
      t0 = process.hrtime.bigint();
      runner = await startRunner(opts, config, tally);
      if (!(await waitDone(opts, tally, poller))) throw new Error("timed out");
    } else {
      runner = await startRunner(opts, config, tally);
      await sleep(200); // let the pool connect and LISTEN before producing
      t0 = process.hrtime.bigint();
      const pgb = runPgbench(opts);
      if (!(await waitDone(opts, tally, poller))) throw new Error("timed out");
      producer = await pgb;
    }
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    await runner.stop();
    runner = null;
    await sleep(100); // a late duplicate would show up here
    const check = tally.verify(await countJobs(poller));
    const r = { mode, config, seconds: +seconds.toFixed(3), jobs_per_s: Math.round(opts.jobs / seconds),
      ...afterFirstCall(opts.jobs, seconds, tally.firstNs - t0), ...check };
    if (producer) r.producer_tps = producer.tps;
    return r;
  } finally {
    if (runner) await runner.stop().catch(() => {});
    await poller.end();
  }
}

async function latencyRun(opts, config) {
  const n = opts.rate * opts.duration;
  const o = { ...opts, jobs: n };
  await reset(opts.url);
  const tally = new Tally(n);
  const poller = new Client({ connectionString: opts.url });
  const producer = new Client({ connectionString: opts.url });
  await poller.connect();
  await producer.connect();
  let runner;
  try {
    runner = await startRunner(o, config, tally);
    await sleep(1000); // the pool is connected, listening and idle
    const commitNs = new Array(n + 1).fill(0n);
    const intervalNs = BigInt(Math.round(1e9 / opts.rate));
    let due = process.hrtime.bigint();
    for (let i = 1; i <= n; i++) {
      const wait = Number(due - process.hrtime.bigint()) / 1e6;
      if (wait > 0) await sleep(wait);
      due += intervalNs;
      await producer.query("SELECT graphile_worker.add_job('noop', json_build_object('i', $1::int))", [i]);
      commitNs[i] = process.hrtime.bigint();
    }
    if (!(await waitDone(o, tally, poller))) throw new Error("timed out");
    await runner.stop();
    runner = null;
    await sleep(100);
    const check = tally.verify(await countJobs(poller));
    const ms = [];
    for (let i = 1; i <= n; i++) ms.push(Number(tally.startNs[i] - commitNs[i]) / 1e6);
    ms.sort((a, b) => a - b);
    const at = (p) => ms[Math.min(n - 1, Math.floor((p / 100) * n))];
    return { mode: "latency", config, messages: n, rate_per_s: opts.rate, p50_ms: at(50), p90_ms: at(90),
             p99_ms: at(99), max_ms: ms[n - 1], ...check };
  } finally {
    if (runner) await runner.stop().catch(() => {});
    await producer.end();
    await poller.end();
  }
}

async function main() {
  const opts = parseArgs(process.argv);
  await runMigrations({ connectionString: opts.url, logger: quietLogger });
  const version = JSON.parse(require("node:fs").readFileSync(
    path.join(path.dirname(require.resolve("graphile-worker")), "..", "package.json"), "utf8")).version;
  const results = [];
  let allOk = true;
  for (const mode of opts.modes.split(",")) {
    for (const config of opts.configs.split(",")) {
      const runs = [];
      for (let i = 1; i <= (mode === "latency" ? 1 : opts.runs); i++) {
        const r = mode === "latency" ? await latencyRun(opts, config) : await oneRun(opts, mode, config);
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
  process.stdout.write(JSON.stringify({ peer: "graphile-worker", version, node: process.version,
    jobs: opts.jobs, concurrency: opts.concurrency, producers: opts.producers,
    configs: Object.fromEntries(opts.configs.split(",").map((c) => [c, workerConfig(c, opts.concurrency)])),
    results }, null, 2) + "\n");
  process.exit(allOk ? 0 : 3);
}

main().catch((e) => { process.stderr.write(`graphile-worker bench: ${e.stack || e}\n`); process.exit(1); });
