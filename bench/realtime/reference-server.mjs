// Reference realtime gateway for the benchmark: Node.js socket.io 4 + @socket.io/redis-adapter,
// with the contract of SPEC §5 that the benchmark exercises.
//
// - Handshake: `auth.token` (or `?token=`), an HS256 JWT signed with DARTWING_JWT_SECRET; refused
//   with a connect_error naming the reason otherwise.
// - Every socket joins `user:{email}`.
// - `subscribe` / `unsubscribe` `{room}` with acks `{ok:true}` / `{ok:false,error}`. Rooms are checked
//   against the room grammar only (user:, doc:, org:, sync:, room:); membership is NOT looked up
//   (a socket may join its own user room only, and any org/doc/sync/custom room).
// - A subscriber on the Redis channel `dartwing:realtime` routes each message (room, else user, else
//   doctype+docname, else broadcast) to this node's LOCAL sockets only.
// - GET /health → 200 (readiness for the driver).
//
// Environment: PORT (required), REDIS_URL (default redis://127.0.0.1:6379), DARTWING_JWT_SECRET,
// NODE_ID (log prefix).

import http from "node:http";
import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-adapter";
import { createClient } from "redis";
import jwt from "jsonwebtoken";

const port = Number(process.env.PORT);
const redisUrl = process.env.REDIS_URL || "redis://127.0.0.1:6379";
const secret = process.env.DARTWING_JWT_SECRET;
const nodeId = process.env.NODE_ID || `ref-${port}`;
const CHANNEL = "dartwing:realtime";

if (!port || !secret) {
  console.error("reference-server: PORT and DARTWING_JWT_SECRET are required");
  process.exit(2);
}

const ROOM = /^(user:[^\s:]+@[^\s:]+|doc:[^:\s]+:[^\s]+|org:[^:\s]+|sync:[^:\s]+:[^:\s]+|room:[^\s]+)$/;

const httpServer = http.createServer((req, res) => {
  if (req.url === "/health") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ status: "ok", node_id: nodeId }));
    return;
  }
  res.writeHead(404);
  res.end();
});

const pubClient = createClient({ url: redisUrl });
const subClient = pubClient.duplicate();
const channelClient = pubClient.duplicate();
for (const client of [pubClient, subClient, channelClient]) {
  client.on("error", (e) => console.error(`${nodeId}: redis error: ${e.message}`));
}
await Promise.all([pubClient.connect(), subClient.connect(), channelClient.connect()]);

const io = new Server(httpServer, {
  path: "/socket.io/",
  // A key of its own, so the benchmark never mixes with other socket.io servers on the same Redis.
  adapter: createAdapter(pubClient, subClient, { key: "rtbench-reference" }),
  serveClient: false,
});

io.use((socket, next) => {
  const token = socket.handshake.auth?.token || socket.handshake.query?.token;
  if (!token || typeof token !== "string") {
    next(new Error("Authentication required: pass auth {token}"));
    return;
  }
  try {
    const claims = jwt.verify(token, secret, { algorithms: ["HS256"] });
    if (typeof claims.email !== "string" || !claims.email) {
      next(new Error("Token has no email claim"));
      return;
    }
    socket.data.email = claims.email.toLowerCase();
    next();
  } catch (e) {
    next(new Error(`Invalid token: ${e.message}`));
  }
});

function checkRoom(socket, payload) {
  const room = payload && typeof payload === "object" ? payload.room : undefined;
  if (typeof room !== "string" || !ROOM.test(room)) {
    return { error: "room must be user:, doc:, org:, sync: or room: followed by a name" };
  }
  if (room.startsWith("user:") && room !== `user:${socket.data.email}`) {
    return { error: "Not permitted to join another user's room" };
  }
  return { room };
}

io.on("connection", (socket) => {
  socket.join(`user:${socket.data.email}`);
  socket.on("subscribe", (payload, ack) => {
    const { room, error } = checkRoom(socket, payload);
    if (error) {
      if (typeof ack === "function") ack({ ok: false, error });
      return;
    }
    socket.join(room);
    if (typeof ack === "function") ack({ ok: true });
  });
  socket.on("unsubscribe", (payload, ack) => {
    const { room, error } = checkRoom(socket, payload);
    if (error) {
      if (typeof ack === "function") ack({ ok: false, error });
      return;
    }
    socket.leave(room);
    if (typeof ack === "function") ack({ ok: true });
  });
});

await channelClient.subscribe(CHANNEL, (raw) => {
  let payload;
  try {
    payload = JSON.parse(raw);
  } catch {
    return;
  }
  if (!payload || typeof payload.event !== "string") return;
  let target;
  if (payload.room) target = io.local.to(payload.room);
  else if (payload.user) target = io.local.to(`user:${payload.user}`);
  else if (payload.doctype && payload.docname) target = io.local.to(`doc:${payload.doctype}:${payload.docname}`);
  else target = io.local;
  target.emit(payload.event, payload.message ?? null);
});

httpServer.listen(port, "127.0.0.1", () => {
  console.error(`${nodeId}: listening on 127.0.0.1:${port}`);
});

const shutdown = () => {
  io.close();
  Promise.allSettled([pubClient.quit(), subClient.quit(), channelClient.quit()]).finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 3000).unref();
};
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
