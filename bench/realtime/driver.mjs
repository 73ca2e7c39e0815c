#!/usr/bin/env node
// Driver of the realtime gateway benchmark: Dartwing's Socket.IO gateway next to the Node.js
// socket.io 4 + @socket.io/redis-adapter reference, 3 nodes each on one Redis, same load generator.
//
// Per run and system:
//   fanout R=…  start 3 fresh nodes; C clients spread round-robin over them, client i subscribed to
//               org room i mod R; the publisher (this process) PUBLISHes to `dartwing:realtime` at
//               stepped rates; per step: delivered msgs/s, p50/p99 latency, loss, duplicates, CPU
//               of the servers / load generator / Redis, RSS per connection. Stepping stops at the
//               first step with loss > 0, a duplicate, or p99 > the latency goal.
//   idle        start 1 fresh node and open N idle connections to it: how many connected, RSS per
//               connection. Beyond 20,000 connections the clients' source addresses are spread over
//               127.0.0.x (a source address has ~28,000 ephemeral ports).
//   delta       (Dartwing only) start 1 fresh node; S clients subscribe to sync:Task:{org}; the owner
//               writes Task documents through sync.upsert_batch over HTTP at a steady item rate; per
//               item, the time from sending the write to each subscriber receiving its sync_delta
//               (p50/p99/max), loss and duplicates, and the server's CPU.
// The summary prints medians over the runs as a Markdown table with Dartwing/reference ratios.
//
// Run through `cargo run -p dartwing-bench --release -- realtime` (which builds the server and
// creates the PostgreSQL schema), or directly: node driver.mjs --help.

import { fork, spawn } from "node:child_process";
import { createClient } from "redis";
import { performance } from "node:perf_hooks";
import { readFileSync, mkdtempSync, openSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir, loadavg, cpus } from "node:os";
import { execFileSync } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import jwt from "jsonwebtoken";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CHANNEL = "dartwing:realtime";
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const HELP = `usage: node driver.mjs [options]
  --systems LIST          dartwing,reference (default: both; dartwing needs --dartwing-binary)
  --dartwing-binary PATH  release dartwing binary
  --database-url URL      PostgreSQL URL shared by the 3 Dartwing nodes (fresh schema recommended)
  --redis-url URL         default redis://127.0.0.1:6379
  --clients N             clients per fan-out scenario (default 1000)
  --rooms LIST            org rooms per scenario (default 10,100)
  --rates LIST            publish rates in msgs/s stepped through (default 25,50,…,3200,4800,6400,9600,12800)
  --step-secs S           seconds per step (default 5)
  --p99-goal MS           latency goal that ends the stepping (default 100)
  --idle N                idle connections to one node (default 10000; 0 skips)
  --scenarios LIST        fanout,idle,delta (default: fanout,idle)
  --delta-rate N          delta: items written per second (default 1000)
  --delta-secs S          delta: seconds of writing (default 10)
  --delta-batch N         delta: items per upsert_batch request (default 10)
  --delta-subscribers N   delta: subscribed sockets (default 10)
  --runs N                repetitions; the summary shows medians (default 3)
  --workers N             load-generator processes (default 2; idle uses one per 12,500 connections at least)
  --strict                exit 1 when a step lost or duplicated a message, or a client failed to connect
                          or subscribe (the latency goal still only ends the stepping)
  --json PATH             also write every measurement as JSON`;

function parseArgs(argv) {
  const opts = {
    systems: ["dartwing", "reference"],
    dartwingBinary: null,
    databaseUrl: null,
    redisUrl: "redis://127.0.0.1:6379",
    clients: 1000,
    rooms: [10, 100],
    rates: [25, 50, 100, 150, 200, 300, 400, 600, 800, 1200, 1600, 2400, 3200, 4800, 6400, 9600, 12800],
    stepSecs: 5,
    p99Goal: 100,
    idle: 10000,
    scenarios: ["fanout", "idle"],
    deltaRate: 1000,
    deltaSecs: 10,
    deltaBatch: 10,
    deltaSubscribers: 10,
    runs: 3,
    strict: false,
    workers: 2,
    json: null,
  };
  const list = (v) => v.split(",").map((s) => s.trim()).filter(Boolean);
  const nums = (v) => list(v).map(Number);
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${key} needs a value`);
      return v;
    };
    switch (key) {
      case "--systems": opts.systems = list(val()); break;
      case "--dartwing-binary": opts.dartwingBinary = val(); break;
      case "--database-url": opts.databaseUrl = val(); break;
      case "--redis-url": opts.redisUrl = val(); break;
      case "--clients": opts.clients = Number(val()); break;
      case "--rooms": opts.rooms = nums(val()); break;
      case "--rates": opts.rates = nums(val()); break;
      case "--step-secs": opts.stepSecs = Number(val()); break;
      case "--p99-goal": opts.p99Goal = Number(val()); break;
      case "--idle": opts.idle = Number(val()); break;
      case "--scenarios": opts.scenarios = list(val()); break;
      case "--delta-rate": opts.deltaRate = Number(val()); break;
      case "--delta-secs": opts.deltaSecs = Number(val()); break;
      case "--delta-batch": opts.deltaBatch = Number(val()); break;
      case "--delta-subscribers": opts.deltaSubscribers = Number(val()); break;
      case "--strict": opts.strict = true; break;
      case "--runs": opts.runs = Number(val()); break;
      case "--workers": opts.workers = Number(val()); break;
      case "--json": opts.json = val(); break;
      case "-h": case "--help": console.log(HELP); process.exit(0); break;
      default: throw new Error(`unknown option ${key}\n${HELP}`);
    }
  }
  for (const s of opts.systems) {
    if (!["dartwing", "reference"].includes(s)) throw new Error(`unknown system ${s}`);
  }
  for (const s of opts.scenarios) {
    if (!["fanout", "idle", "delta"].includes(s)) throw new Error(`unknown scenario ${s}`);
  }
  if (opts.scenarios.includes("delta") && !opts.systems.includes("dartwing")) {
    throw new Error("the delta scenario measures the dartwing system only");
  }
  if (!opts.scenarios.includes("fanout")) opts.rooms = [];
  if (!opts.scenarios.includes("idle")) opts.idle = 0;
  if (opts.systems.includes("dartwing") && (!opts.dartwingBinary || !opts.databaseUrl)) {
    throw new Error("the dartwing system needs --dartwing-binary and --database-url");
  }
  return opts;
}

// ---------------------------------------------------------------- /proc readings

const CLK_TCK = 100;
function cpuSeconds(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}
function rssKiB(pid) {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}
const sum = (xs) => xs.reduce((a, b) => a + b, 0);

// ---------------------------------------------------------------- servers

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

// Open files a benchmark process may need: every connection is a file descriptor.
let openFilesWanted = 20000;

// Runs `argv` through sh with the open-files limit raised: the hard limit to `openFilesWanted`
// when it is lower and the user may raise it (root), then the soft limit to the hard limit.
function spawnRaised(argv, options) {
  const script = `hard=$(ulimit -Hn); if [ "$hard" != unlimited ] && [ "$hard" -lt ${openFilesWanted} ]; then ulimit -Hn ${openFilesWanted} 2>/dev/null; fi; ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"`;
  return spawn("sh", ["-c", script, "sh", ...argv], options);
}

async function waitHealthy(base, child, logPath, timeoutMs = 60000) {
  const started = Date.now();
  for (;;) {
    if (child.exitCode !== null) {
      throw new Error(`server ${base} exited (${child.exitCode}) during startup; log ${logPath}:\n${tail(logPath)}`);
    }
    try {
      const res = await fetch(`${base}/health`, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) return;
    } catch {
      // not up yet
    }
    if (Date.now() - started > timeoutMs) throw new Error(`${base}/health not 200 within ${timeoutMs} ms; log ${logPath}:\n${tail(logPath)}`);
    await sleep(100);
  }
}

function tail(file) {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-15).join("\n");
  } catch {
    return "(no log)";
  }
}

class Cluster {
  constructor(system, opts, secret, count, maxConnections = 10000) {
    this.system = system;
    this.opts = opts;
    this.secret = secret;
    this.count = count;
    this.maxConnections = maxConnections;
    this.nodes = [];
    this.dir = mkdtempSync(path.join(tmpdir(), `rtbench-${system}-`));
  }

  async start() {
    for (let i = 1; i <= this.count; i++) {
      const port = await freePort();
      const base = `http://127.0.0.1:${port}`;
      const logPath = path.join(this.dir, `n${i}.log`);
      const log = openSync(logPath, "w");
      const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("DARTWING_")));
      env.DARTWING_JWT_SECRET = this.secret;
      let argv;
      if (this.system === "dartwing") {
        const data = path.join(this.dir, `n${i}-data`);
        argv = [this.opts.dartwingBinary, "serve", "--listen", `127.0.0.1:${port}`, "--node-id", `n${i}`,
          "--database-url", this.opts.databaseUrl, "--redis-url", this.opts.redisUrl, "--data-dir", data];
        // Same as the reference, which logs nothing per connection: warnings only, no access log.
        env.DARTWING_OBSERVABILITY__LOG_LEVEL = "warn";
        env.DARTWING_OBSERVABILITY__ACCESS_LOG = "false";
        env.DARTWING_HTTP__MAX_CONNECTIONS = String(this.maxConnections);
      } else {
        argv = [process.execPath, path.join(HERE, "reference-server.mjs")];
        env.PORT = String(port);
        env.REDIS_URL = this.opts.redisUrl;
        env.NODE_ID = `ref${i}`;
      }
      const child = spawnRaised(argv, { env, stdio: ["ignore", log, log] });
      const node = { id: `n${i}`, base, child, logPath };
      this.nodes.push(node);
      // The first Dartwing node runs the migrations; start the others once it is up.
      await waitHealthy(base, child, logPath);
    }
  }

  pids() {
    return this.nodes.map((n) => n.child.pid);
  }

  async stop() {
    await Promise.all(this.nodes.map((n) => new Promise((resolve) => {
      if (n.child.exitCode !== null) return resolve();
      const timer = setTimeout(() => n.child.kill("SIGKILL"), 10000);
      n.child.once("exit", () => { clearTimeout(timer); resolve(); });
      n.child.kill("SIGTERM");
    })));
    const crashed = this.nodes.filter((n) => n.child.signalCode === "SIGKILL");
    for (const n of crashed) console.error(`warning: ${this.system} ${n.id} had to be killed`);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- identities and rooms

const userEmail = (i) => `rtbench-u${i}@example.com`;

function tokenFor(secret, email) {
  return jwt.sign({ email }, secret, { algorithm: "HS256", expiresIn: "6h" });
}

// Dartwing: user i creates organization i (and so is its Owner, an active member); returns names.
async function createOrganizations(base, secret, count) {
  const names = [];
  for (let i = 0; i < count; i++) {
    const res = await fetch(`${base}/api/resource/Organization`, {
      method: "POST",
      headers: { authorization: `Bearer ${tokenFor(secret, userEmail(i))}`, "content-type": "application/json" },
      body: JSON.stringify({ org_name: `Realtime Bench ${i} ${Date.now()}`, org_type: "Company" }),
    });
    const body = await res.json().catch(() => ({}));
    if (res.status !== 200 || !body?.data?.name) {
      throw new Error(`POST /api/resource/Organization answered ${res.status}: ${JSON.stringify(body)}`);
    }
    names.push(body.data.name);
  }
  return names;
}

// ---------------------------------------------------------------- load generator

class LoadGen {
  constructor(count) {
    this.workers = [];
    for (let i = 0; i < count; i++) {
      const argv = [process.execPath, "--max-old-space-size=4096", path.join(HERE, "loadgen-worker.mjs")];
      const child = spawnRaised(argv, { stdio: ["ignore", "inherit", "inherit", "ipc"] });
      const worker = { child, waiting: [] };
      child.on("message", (msg) => {
        const w = worker.waiting.shift();
        if (w) w(msg);
      });
      this.workers.push(worker);
    }
  }

  ask(worker, msg) {
    return new Promise((resolve, reject) => {
      if (worker.child.exitCode !== null) return reject(new Error("a load-generator worker exited"));
      worker.waiting.push(resolve);
      worker.child.send(msg);
    });
  }

  pids() {
    return this.workers.map((w) => w.child.pid);
  }

  async connect(clients, timeoutMs = 30000) {
    const shares = this.workers.map(() => []);
    clients.forEach((c, i) => shares[i % shares.length].push(c));
    const replies = await Promise.all(this.workers.map((w, i) =>
      this.ask(w, { cmd: "connect", clients: shares[i], concurrency: 64, timeoutMs })));
    return {
      ok: sum(replies.map((r) => r.ok)),
      failed: sum(replies.map((r) => r.failed)),
      subscribed: sum(replies.map((r) => r.subscribed)),
      errors: replies.flatMap((r) => r.errors).slice(0, 5),
      perRoom: replies.reduce((acc, r) => {
        for (const [room, n] of Object.entries(r.perRoom || {})) acc[room] = (acc[room] || 0) + n;
        return acc;
      }, {}),
      ms: Math.max(...replies.map((r) => r.ms)),
    };
  }

  async received() {
    const replies = await Promise.all(this.workers.map((w) => this.ask(w, { cmd: "count" })));
    return sum(replies.map((r) => r.received));
  }

  async stats(step) {
    const replies = await Promise.all(this.workers.map((w) => this.ask(w, { cmd: "stats", step })));
    const hist = new Map();
    for (const r of replies) for (const [b, c] of r.hist) hist.set(b, (hist.get(b) || 0) + c);
    return {
      received: sum(replies.map((r) => r.received)),
      duplicates: sum(replies.map((r) => r.duplicates)),
      hist: [...hist.entries()].sort((a, b) => a[0] - b[0]),
    };
  }

  async close() {
    await Promise.all(this.workers.map((w) => new Promise((resolve) => {
      if (w.child.exitCode !== null) return resolve();
      const timer = setTimeout(() => { w.child.kill("SIGKILL"); }, 5000);
      w.child.once("exit", () => { clearTimeout(timer); resolve(); });
      try { w.child.send({ cmd: "close" }); } catch { w.child.kill("SIGKILL"); }
    })));
  }
}

// p50, p99 and max latency (ms) of a load generator's stats (0.1 ms histogram buckets).
function latencies(st) {
  return {
    p50: percentile(st.hist, st.received, 0.5),
    p99: percentile(st.hist, st.received, 0.99),
    max: st.hist.length ? (st.hist[st.hist.length - 1][0] + 1) * 0.1 : NaN,
  };
}

function percentile(hist, total, p) {
  if (!total) return NaN;
  const rank = Math.ceil(total * p);
  let seen = 0;
  for (const [bucket, count] of hist) {
    seen += count;
    if (seen >= rank) return (bucket + 1) * 0.1; // upper edge of the 0.1 ms bucket
  }
  return NaN;
}

// ---------------------------------------------------------------- scenarios

async function redisPid(redis) {
  const info = await redis.info("server");
  const m = /process_id:(\d+)/.exec(info);
  return m ? Number(m[1]) : null;
}

// Publishes `bench` messages round-robin over the rooms at `rate` msgs/s for `durationMs`;
// message = {s: step, r: room index, q: room sequence number, t: send time in ms}.
async function publishFor(redis, roomNames, seqs, step, rate, durationMs, perRoom = null) {
  const rooms = roomNames.length;
  const total = Math.round((durationMs / 1000) * rate);
  const t0 = now();
  let sent = 0;
  let cursor = 0;
  while (sent < total) {
    const elapsed = now() - t0;
    const due = Math.min(Math.floor((elapsed / 1000) * rate) + 1, total);
    const batch = [];
    while (sent < due) {
      const r = cursor;
      cursor = (cursor + 1) % rooms;
      const payload = { event: "bench", room: roomNames[r], message: { s: step, r, q: seqs[r]++, t: now() } };
      if (perRoom) perRoom[r]++;
      sent++;
      batch.push(redis.publish(CHANNEL, JSON.stringify(payload)));
    }
    if (batch.length) await Promise.all(batch);
    if (sent < total) await sleep(Math.max(1, Math.min(10, 1000 / rate)));
  }
  return sent;
}

async function fanout(system, opts, secret, rooms, orgNames, redis) {
  const cluster = new Cluster(system, opts, secret, 3);
  const loadgen = new LoadGen(opts.workers);
  const result = { system, rooms, clients: opts.clients, steps: [] };
  try {
    await cluster.start();
    const roomNames = system === "dartwing"
      ? orgNames.slice(0, rooms).map((o) => `org:${o}`)
      : Array.from({ length: rooms }, (_, r) => `org:RTBENCH-ORG-${r}`);
    const tokens = Array.from({ length: rooms }, (_, r) => tokenFor(secret, userEmail(r)));
    const subscribers = new Array(rooms).fill(0);
    const clients = [];
    for (let i = 0; i < opts.clients; i++) {
      const r = i % rooms;
      subscribers[r]++;
      clients.push({ url: cluster.nodes[i % cluster.nodes.length].base, token: tokens[r], room: roomNames[r] });
    }
    await sleep(500);
    const rssBefore = cluster.pids().map(rssKiB);
    const conn = await loadgen.connect(clients);
    result.connect = conn;
    if (conn.subscribed !== opts.clients) {
      // Measured with the clients that did subscribe; the shortfall is reported.
      result.connectShortfall = `only ${conn.ok} of ${opts.clients} connected and ${conn.subscribed} subscribed: ${conn.errors.join("; ")}`;
      console.error(`  ${system} R=${rooms}: ${result.connectShortfall}`);
      if (conn.subscribed < opts.clients * 0.9) {
        result.error = result.connectShortfall;
        return result;
      }
    }
    roomNames.forEach((name, r) => { subscribers[r] = conn.perRoom[name] || 0; });
    await sleep(1000);
    const rssAfter = cluster.pids().map(rssKiB);
    result.rssPerConnKiB = (sum(rssAfter) - sum(rssBefore)) / Math.max(1, conn.ok);
    result.rssNodesMiB = rssAfter.map((k) => k / 1024);

    const rPid = await redisPid(redis);
    const seqs = new Array(rooms).fill(0);
    // Warm-up (not measured): 2 s at the first rate, so JIT and buffers settle.
    await publishFor(redis, roomNames, seqs, -1, opts.rates[0], 2000);
    await sleep(1000);
    let totalPublished = 0;
    for (let s = 0; s < opts.rates.length; s++) {
      const rate = opts.rates[s];
      const perRoom = new Array(rooms).fill(0);
      const cpu0 = { servers: cluster.pids().map(cpuSeconds), loadgen: loadgen.pids().map(cpuSeconds), redis: cpuSeconds(rPid), driver: process.cpuUsage() };
      const receivedBefore = await loadgen.received();
      const t0 = now();
      const sent = await publishFor(redis, roomNames, seqs, s, rate, opts.stepSecs * 1000, perRoom);
      const publishMs = now() - t0;
      totalPublished += sent;
      const expected = sum(perRoom.map((n, r) => n * subscribers[r]));
      // Drain: until every expected delivery arrived, or nothing new for 1 s (at most 10 s).
      const drainStart = now();
      let last = await loadgen.received();
      let lastChange = now();
      while (last - receivedBefore < expected && now() - lastChange < 1000 && now() - drainStart < 10000) {
        await sleep(100);
        const current = await loadgen.received();
        if (current !== last) { last = current; lastChange = now(); }
      }
      const wallMs = now() - t0;
      const cpu1 = { servers: cluster.pids().map(cpuSeconds), loadgen: loadgen.pids().map(cpuSeconds), redis: cpuSeconds(rPid), driver: process.cpuUsage(cpu0.driver) };
      const st = await loadgen.stats(s);
      const unique = st.received - st.duplicates;
      const secs = wallMs / 1000;
      const step = {
        rate,
        published: sent,
        publishedPerSec: sent / (publishMs / 1000),
        expected,
        received: st.received,
        duplicates: st.duplicates,
        loss: Math.max(0, expected - unique),
        deliveredPerSec: unique / (publishMs / 1000),
        ...latencies(st),
        // CPU as % of one core over the step (publishing + drain).
        serverCpu: (100 * (sum(cpu1.servers) - sum(cpu0.servers))) / secs,
        // Server CPU time (3 nodes, user + system) over the step ÷ unique deliveries.
        serverCpuUsPerDelivery: unique > 0 ? (1e6 * (sum(cpu1.servers) - sum(cpu0.servers))) / unique : NaN,
        loadgenCpu: (100 * (sum(cpu1.loadgen) - sum(cpu0.loadgen))) / secs,
        redisCpu: (100 * (cpu1.redis - cpu0.redis)) / secs,
        driverCpu: (100 * (cpu1.driver.user + cpu1.driver.system)) / 1e6 / secs,
        rssNodesMiB: cluster.pids().map(rssKiB).map((k) => k / 1024),
      };
      step.ok = step.loss === 0 && step.duplicates === 0 && step.p99 <= opts.p99Goal;
      result.steps.push(step);
      console.error(`  ${system} R=${rooms} ${rate}/s: delivered ${step.deliveredPerSec.toFixed(0)}/s p50 ${step.p50.toFixed(1)} ms p99 ${step.p99.toFixed(1)} ms loss ${step.loss} dup ${step.duplicates} cpu srv ${step.serverCpu.toFixed(0)}% (${step.serverCpuUsPerDelivery.toFixed(1)} µs/delivery) gen ${step.loadgenCpu.toFixed(0)}% redis ${step.redisCpu.toFixed(0)}% pub ${step.driverCpu.toFixed(0)}%${step.ok ? "" : "  ← goal missed"}`);
      if (!step.ok) break;
      await sleep(500);
    }
    result.totalPublished = totalPublished;
  } finally {
    await loadgen.close();
    await cluster.stop();
  }
  return result;
}

// Connections per client source address (each has ~28,000 ephemeral ports towards one server port).
const CONNECTIONS_PER_SOURCE = 20000;

async function idle(system, opts, secret) {
  const cluster = new Cluster(system, opts, secret, 1, opts.idle + 1000);
  const loadgen = new LoadGen(Math.max(opts.workers, Math.ceil(opts.idle / 12500)));
  const result = { system, target: opts.idle };
  try {
    await cluster.start();
    await sleep(500);
    const pid = cluster.pids()[0];
    const before = rssKiB(pid);
    const users = 100;
    const tokens = Array.from({ length: users }, (_, u) => tokenFor(secret, userEmail(u)));
    const sources = Math.ceil(opts.idle / CONNECTIONS_PER_SOURCE);
    const clients = Array.from({ length: opts.idle }, (_, i) => ({
      url: cluster.nodes[0].base,
      token: tokens[i % users],
      room: null,
      localAddress: sources > 1 ? `127.0.0.${1 + (i % sources)}` : undefined,
    }));
    const conn = await loadgen.connect(clients, 60000);
    await sleep(2000);
    const after = rssKiB(pid);
    result.connected = conn.ok;
    result.failed = conn.failed;
    result.errors = conn.errors;
    result.connectSecs = conn.ms / 1000;
    result.rssMiB = after / 1024;
    result.rssPerConnKiB = conn.ok ? (after - before) / conn.ok : NaN;
    console.error(`  ${system} idle: ${conn.ok}/${opts.idle} connected in ${(conn.ms / 1000).toFixed(1)} s, RSS ${(after / 1024).toFixed(0)} MiB, ${result.rssPerConnKiB.toFixed(1)} KiB/conn${conn.errors.length ? `; errors: ${conn.errors.join("; ")}` : ""}`);
  } finally {
    await loadgen.close();
    await cluster.stop();
  }
  return result;
}

// The sync path end to end on one node: a write through sync.upsert_batch over HTTP until its
// sync_delta reaches every subscribed socket.
async function delta(opts, secret, run) {
  const cluster = new Cluster("dartwing", opts, secret, 1);
  const loadgen = new LoadGen(1);
  const result = { system: "dartwing", rate: opts.deltaRate, subscribers: opts.deltaSubscribers };
  const step = 1_000_000 + run;
  try {
    await cluster.start();
    const base = cluster.nodes[0].base;
    const [org] = await createOrganizations(base, secret, 1);
    const token = tokenFor(secret, userEmail(0));
    const room = `sync:Task:${org}`;
    const clients = Array.from({ length: opts.deltaSubscribers }, () => ({ url: base, token, room }));
    const conn = await loadgen.connect(clients, 30000);
    if (conn.subscribed !== opts.deltaSubscribers) {
      throw new Error(`${conn.subscribed} of ${opts.deltaSubscribers} subscribed: ${conn.errors.join("; ")}`);
    }
    const pid = cluster.pids()[0];
    const cpu0 = cpuSeconds(pid);
    const batches = Math.max(1, Math.round((opts.deltaRate * opts.deltaSecs) / opts.deltaBatch));
    const interval = (1000 * opts.deltaBatch) / opts.deltaRate;
    const url = `${base}/api/method/dartwing_core.sync.upsert_batch`;
    const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
    let written = 0;
    let refused = 0;
    const t0 = now();
    for (let b = 0; b < batches; b++) {
      const due = t0 + b * interval;
      if (due > now()) await sleep(due - now());
      const sentAt = now();
      const items = Array.from({ length: opts.deltaBatch }, (_, i) => {
        const q = b * opts.deltaBatch + i;
        return {
          op_id: `delta-${run}-${q}`, op: "insert", doctype: "Task", name: `${org}-D${run}-${q}`,
          data: { title: `delta ${q}`, s: step, q, t: sentAt }, client_ts: new Date(sentAt).toISOString(),
        };
      });
      const res = await fetch(url, { method: "POST", headers, body: JSON.stringify({ org, items }) });
      const body = await res.json().catch(() => ({}));
      const answers = body?.message?.results ?? body?.message ?? [];
      if (res.status !== 200 || !Array.isArray(answers)) {
        throw new Error(`upsert_batch answered ${res.status}: ${JSON.stringify(body).slice(0, 300)}`);
      }
      const applied = answers.filter((a) => a.status === "applied").length;
      written += applied;
      refused += opts.deltaBatch - applied;
    }
    const writeMs = now() - t0;
    const expected = written * opts.deltaSubscribers;
    const drainStart = now();
    let received = await loadgen.received();
    while (received < expected && now() - drainStart < 10000) {
      await sleep(100);
      received = await loadgen.received();
    }
    const secs = (now() - t0) / 1000;
    const cpu = cpuSeconds(pid) - cpu0;
    const st = await loadgen.stats(step);
    const unique = st.received - st.duplicates;
    Object.assign(result, {
      written,
      refused,
      writtenPerSec: written / (writeMs / 1000),
      expected,
      received: st.received,
      duplicates: st.duplicates,
      loss: Math.max(0, expected - unique),
      deliveredPerSec: unique / (writeMs / 1000),
      ...latencies(st),
      serverCpu: (100 * cpu) / secs,
    });
    console.error(`  dartwing delta: ${result.writtenPerSec.toFixed(0)} items/s written (${refused} not applied), ${result.deliveredPerSec.toFixed(0)} deltas/s delivered to ${opts.deltaSubscribers} sockets, p50 ${result.p50.toFixed(1)} ms p99 ${result.p99.toFixed(1)} ms max ${result.max.toFixed(1)} ms, loss ${result.loss} dup ${result.duplicates}, server CPU ${result.serverCpu.toFixed(0)}%`);
  } catch (e) {
    result.error = e.message;
  } finally {
    await loadgen.close();
    await cluster.stop();
  }
  return result;
}

// ---------------------------------------------------------------- summary

function median(xs) {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return NaN;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

// The best step of a fan-out result: the last one meeting the goal.
function best(result) {
  const ok = (result.steps || []).filter((s) => s.ok);
  return ok.length ? ok[ok.length - 1] : null;
}

const fmt = (x, digits = 0) => (Number.isFinite(x) ? x.toFixed(digits) : "–");
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? `${(a / b).toFixed(2)}×` : "–");

function summarize(opts, all) {
  const lines = [];
  const systems = opts.systems;
  const by = (system, kind, rooms) => all.filter((r) => r.system === system && r.kind === kind && (rooms === undefined || r.rooms === rooms));
  const header = `| Scenario | Metric | ${systems.map((s) => (s === "dartwing" ? "Dartwing" : "Reference (socket.io)")).join(" | ")}${systems.length === 2 ? " | Dartwing / reference" : ""} |`;
  lines.push(header);
  lines.push(`|${" --- |".repeat(systems.length + 2 + (systems.length === 2 ? 1 : 0))}`);
  const row = (scenario, metric, values, digits = 0) => {
    const cells = values.map((v) => fmt(v, digits));
    const r = values.length === 2 ? ` | ${ratio(values[0], values[1])}` : "";
    lines.push(`| ${scenario} | ${metric} | ${cells.join(" | ")}${r} |`);
  };
  for (const rooms of opts.rooms) {
    const scen = `C=${opts.clients}, R=${rooms}`;
    const pick = (f) => systems.map((s) => median(by(s, "fanout", rooms).map((r) => { const b = best(r); return b ? f(b, r) : NaN; })));
    // "≥" when a run never missed the goal: the fastest step was not fast enough to find the limit.
    const capped = systems.map((s) => by(s, "fanout", rooms).some((r) => (r.steps || []).length && r.steps.every((st) => st.ok)));
    const maxes = pick((b) => b.deliveredPerSec);
    {
      const cells = maxes.map((v, i) => `${capped[i] ? "≥ " : ""}${fmt(v)}`);
      const r = maxes.length === 2 ? ` | ${capped[1] ? "" : capped[0] ? "≥ " : ""}${ratio(maxes[0], maxes[1])}` : "";
      lines.push(`| ${scen} | max delivered msgs/s (0 loss, p99 ≤ ${opts.p99Goal} ms) | ${cells.join(" | ")}${r} |`);
    }
    row(scen, "publish rate at that step (msgs/s)", pick((b) => b.rate));
    row(scen, "p50 latency at that step (ms)", pick((b) => b.p50), 1);
    row(scen, "p99 latency at that step (ms)", pick((b) => b.p99), 1);
    row(scen, "server CPU, 3 nodes (% of a core)", pick((b) => b.serverCpu));
    row(scen, "server CPU per delivery (µs)", pick((b) => b.serverCpuUsPerDelivery), 2);
    row(scen, "load generator CPU (% of a core)", pick((b) => b.loadgenCpu));
    row(scen, "server RSS per connection (KiB)", systems.map((s) => median(by(s, "fanout", rooms).map((r) => r.rssPerConnKiB ?? NaN))), 1);
  }
  if (opts.idle > 0) {
    const scen = `idle, 1 node, N=${opts.idle}`;
    row(scen, "connected", systems.map((s) => median(by(s, "idle").map((r) => r.connected))));
    row(scen, "RSS per connection (KiB)", systems.map((s) => median(by(s, "idle").map((r) => r.rssPerConnKiB))), 1);
  }
  if (opts.scenarios.includes("delta")) {
    const scen = `delta, 1 node, ${opts.deltaRate} items/s × ${opts.deltaSubscribers} sockets`;
    const pick = (f) => systems.map((s) => median(by(s, "delta").map(f)));
    row(scen, "items written/s (upsert_batch over HTTP)", pick((r) => r.writtenPerSec));
    row(scen, "sync_delta delivered/s", pick((r) => r.deliveredPerSec));
    row(scen, "write → sync_delta p50 (ms)", pick((r) => r.p50), 1);
    row(scen, "write → sync_delta p99 (ms)", pick((r) => r.p99), 1);
    row(scen, "write → sync_delta max (ms)", pick((r) => r.max), 1);
    row(scen, "server CPU (% of a core)", pick((r) => r.serverCpu));
  }
  return lines.join("\n");
}

// What `--strict` refuses: loss, duplicates, clients that did not connect or subscribe, and
// fan-out scenarios without a single step (nothing was measured).
function strictProblems(opts, all) {
  const problems = [];
  for (const r of all) {
    const name = r.kind === "fanout" ? `run ${r.run} ${r.system} fan-out R=${r.rooms}` : `run ${r.run} ${r.system} ${r.kind}`;
    if (r.kind === "delta") {
      if (r.error) problems.push(`${name}: ${r.error}`);
      else {
        if (!(r.written > 0)) problems.push(`${name}: nothing written`);
        if (r.refused > 0) problems.push(`${name}: ${r.refused} item(s) not applied`);
        if (r.loss > 0) problems.push(`${name}: ${r.loss} delta(s) lost`);
        if (r.duplicates > 0) problems.push(`${name}: ${r.duplicates} duplicate delta(s)`);
      }
    } else if (r.kind === "fanout") {
      if (r.connectShortfall) problems.push(`${name}: ${r.connectShortfall}`);
      if (!(r.steps || []).length) problems.push(`${name}: no step ran`);
      for (const st of r.steps || []) {
        if (st.loss > 0) problems.push(`${name} at ${st.rate}/s: ${st.loss} message(s) lost`);
        if (st.duplicates > 0) problems.push(`${name} at ${st.rate}/s: ${st.duplicates} duplicate(s)`);
        if (!(st.received > 0)) problems.push(`${name} at ${st.rate}/s: nothing delivered`);
      }
    } else if (r.connected !== r.target) {
      problems.push(`${name}: ${r.connected} of ${r.target} connected${r.errors?.length ? `: ${r.errors.join("; ")}` : ""}`);
    }
  }
  return problems;
}

// ---------------------------------------------------------------- main

function versions(opts) {
  const pkg = (name) => {
    try {
      return JSON.parse(readFileSync(path.join(HERE, "node_modules", name, "package.json"), "utf8")).version;
    } catch {
      return "?";
    }
  };
  let dartwing = "";
  if (opts.systems.includes("dartwing")) {
    try {
      dartwing = `${execFileSync(opts.dartwingBinary, ["--version"], { encoding: "utf8" }).trim()}, `;
    } catch {
      dartwing = "dartwing ?, ";
    }
  }
  return `${dartwing}node ${process.version}, socket.io ${pkg("socket.io")}, @socket.io/redis-adapter ${pkg("@socket.io/redis-adapter")}, socket.io-client ${pkg("socket.io-client")}`;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  openFilesWanted = Math.max(openFilesWanted, opts.idle + 10000, opts.clients + 10000);
  const secret = process.env.DARTWING_JWT_SECRET || "rtbench-secret-0123456789abcdef0123456789abcdef";
  const redis = createClient({ url: opts.redisUrl });
  redis.on("error", (e) => console.error(`driver redis error: ${e.message}`));
  await redis.connect();
  const all = [];
  const loadStart = loadavg();
  let orgNames = [];
  try {
    if (opts.systems.includes("dartwing") && opts.rooms.length) {
      const maxRooms = Math.max(...opts.rooms);
      const cluster = new Cluster("dartwing", opts, secret, 1);
      try {
        await cluster.start();
        orgNames = await createOrganizations(cluster.nodes[0].base, secret, maxRooms);
      } finally {
        await cluster.stop();
      }
      console.error(`created ${orgNames.length} organizations for the Dartwing rooms`);
    }
    for (let run = 1; run <= opts.runs; run++) {
      for (const system of opts.systems) {
        for (const rooms of opts.rooms) {
          console.error(`run ${run}/${opts.runs}: ${system} fan-out C=${opts.clients} R=${rooms}`);
          const r = await fanout(system, opts, secret, rooms, orgNames, redis);
          if (r.error) console.error(`  ${system} R=${rooms}: ${r.error}`);
          all.push({ kind: "fanout", run, ...r });
        }
        if (opts.idle > 0) {
          console.error(`run ${run}/${opts.runs}: ${system} idle connections N=${opts.idle}`);
          all.push({ kind: "idle", run, ...(await idle(system, opts, secret)) });
        }
        if (system === "dartwing" && opts.scenarios.includes("delta")) {
          console.error(`run ${run}/${opts.runs}: dartwing write → sync_delta at ${opts.deltaRate} items/s`);
          const r = await delta(opts, secret, run);
          if (r.error) console.error(`  dartwing delta: ${r.error}`);
          all.push({ kind: "delta", run, ...r });
        }
      }
    }
  } finally {
    await redis.quit().catch(() => {});
  }
  if (opts.json) writeFileSync(opts.json, JSON.stringify({ options: opts, results: all }, null, 2));
  console.log(`\nRealtime gateway benchmark: medians of ${opts.runs} run(s); ${opts.workers} load-generator process(es); steps of ${opts.stepSecs} s; goal p99 ≤ ${opts.p99Goal} ms, zero loss.`);
  console.log(`machine: ${cpus().length} CPU(s), load average at start ${loadStart.map((l) => l.toFixed(2)).join(" ")}, at end ${loadavg().map((l) => l.toFixed(2)).join(" ")}; ${versions(opts)}\n`);
  console.log(summarize(opts, all));
  const failures = all.filter((r) => r.error);
  if (failures.length) {
    console.log(`\n${failures.length} measurement(s) failed: ${failures.map((f) => `${f.system} ${f.kind === "fanout" ? `R=${f.rooms}` : f.kind}: ${f.error}`).join(" | ")}`);
    process.exitCode = 1;
  }
  if (opts.strict) {
    const problems = strictProblems(opts, all);
    if (problems.length) {
      console.log(`\nstrict: ${problems.length} problem(s):\n${problems.map((p) => `- ${p}`).join("\n")}`);
      process.exitCode = 1;
    } else {
      console.log("\nstrict: every client connected and subscribed; no step lost or duplicated a message");
    }
  }
}

main().catch((e) => {
  console.error(`error: ${e.stack || e}`);
  process.exit(1);
});
