// One load-generator process of the realtime benchmark (forked by driver.mjs, spoken to over IPC).
//
// It opens Socket.IO clients (socket.io-client 4, WebSocket transport, one connection each),
// subscribes each to its room, and counts the `bench` events it receives: per benchmark step the
// number received, duplicates (a room sequence number not above the last one seen by that socket)
// and a latency histogram (publish timestamp → receipt, 0.1 ms buckets). `sync_delta` events whose
// document data carries the same fields (`s` step, `q` sequence, `t` write time) are counted the
// same way (a duplicate is a sequence number that socket has already seen: a batch's deltas may
// arrive in any order).
//
// Messages from the driver:
//   {cmd:"connect", clients:[{url, token, room|null, localAddress?}], concurrency, timeoutMs}
//       → {type:"connected", ok, failed, subscribed, errors:[...first few], ms}
//   {cmd:"count"}            → {type:"count", received}
//   {cmd:"stats", step}      → {type:"stats", step, received, duplicates, hist:[[bucket,count],...]}
//   {cmd:"close"}            → disconnects everything and exits

import { io } from "socket.io-client";
import { performance } from "node:perf_hooks";

const BUCKET_MS = 0.1;
const BUCKETS = 100_000; // 0 .. 10 s; the last bucket holds everything slower
const now = () => performance.timeOrigin + performance.now();

const sockets = [];
const steps = new Map(); // step → {received, duplicates, hist: Uint32Array}
let receivedTotal = 0;

function stepStats(step) {
  let stats = steps.get(step);
  if (!stats) {
    stats = { received: 0, duplicates: 0, hist: new Uint32Array(BUCKETS) };
    steps.set(step, stats);
  }
  return stats;
}

function onBench(state, message) {
  const t = now();
  receivedTotal++;
  if (!message || typeof message.s !== "number") return;
  const stats = stepStats(message.s);
  stats.received++;
  if (message.q <= state.lastSeq) stats.duplicates++;
  else state.lastSeq = message.q;
  const bucket = Math.min(BUCKETS - 1, Math.max(0, Math.floor((t - message.t) / BUCKET_MS)));
  stats.hist[bucket]++;
}

function onDelta(state, row) {
  const t = now();
  receivedTotal++;
  const data = row && row.data;
  if (!data || typeof data.s !== "number") return;
  const stats = stepStats(data.s);
  stats.received++;
  if (state.deltas.has(data.q)) stats.duplicates++;
  else state.deltas.add(data.q);
  const bucket = Math.min(BUCKETS - 1, Math.max(0, Math.floor((t - data.t) / BUCKET_MS)));
  stats.hist[bucket]++;
}

function openClient(spec, timeoutMs) {
  return new Promise((resolve) => {
    const state = { lastSeq: -1, deltas: new Set() };
    const socket = io(spec.url, {
      path: "/socket.io/",
      transports: ["websocket"],
      auth: { token: spec.token },
      reconnection: false,
      forceNew: true,
      timeout: timeoutMs,
      // Spreads many connections over several source addresses (ephemeral ports run out at ~28,000).
      ...(spec.localAddress ? { localAddress: spec.localAddress } : {}),
    });
    let settled = false;
    const done = (result) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    const timer = setTimeout(() => done({ ok: false, error: "timed out" }), timeoutMs);
    socket.on("bench", (message) => onBench(state, message));
    socket.on("sync_delta", (row) => onDelta(state, row));
    socket.on("connect_error", (e) => {
      done({ ok: false, error: `connect_error: ${e.message}` });
      socket.close();
    });
    socket.on("connect", () => {
      sockets.push(socket);
      if (!spec.room) {
        done({ ok: true, subscribed: false });
        return;
      }
      socket
        .timeout(timeoutMs)
        .emit("subscribe", { room: spec.room }, (err, ack) => {
          if (err) done({ ok: true, subscribed: false, error: "subscribe ack timed out" });
          else if (ack && ack.ok === true) done({ ok: true, subscribed: true });
          else done({ ok: true, subscribed: false, error: `subscribe refused: ${JSON.stringify(ack)}` });
        });
    });
  });
}

async function connectAll({ clients, concurrency, timeoutMs }) {
  const started = now();
  let next = 0;
  let ok = 0;
  let failed = 0;
  let subscribed = 0;
  const errors = [];
  const perRoom = {};
  async function lane() {
    while (next < clients.length) {
      const spec = clients[next++];
      const result = await openClient(spec, timeoutMs);
      if (result.ok) ok++;
      else failed++;
      if (result.subscribed) {
        subscribed++;
        perRoom[spec.room] = (perRoom[spec.room] || 0) + 1;
      }
      if (result.error && errors.length < 5) errors.push(result.error);
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, lane));
  return { type: "connected", ok, failed, subscribed, perRoom, errors, ms: now() - started };
}

function sparse(hist) {
  const out = [];
  for (let i = 0; i < hist.length; i++) if (hist[i]) out.push([i, hist[i]]);
  return out;
}

process.on("message", async (msg) => {
  switch (msg.cmd) {
    case "connect":
      process.send(await connectAll(msg));
      break;
    case "count":
      process.send({ type: "count", received: receivedTotal });
      break;
    case "stats": {
      const stats = stepStats(msg.step);
      process.send({
        type: "stats",
        step: msg.step,
        received: stats.received,
        duplicates: stats.duplicates,
        hist: sparse(stats.hist),
      });
      steps.delete(msg.step);
      break;
    }
    case "close":
      for (const socket of sockets) socket.close();
      setTimeout(() => process.exit(0), 200);
      break;
    default:
      break;
  }
});
process.on("disconnect", () => process.exit(0));
