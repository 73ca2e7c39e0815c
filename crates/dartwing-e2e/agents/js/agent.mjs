// Test agent: drives official socket.io-client connections on behalf of a Rust test.
// Protocol: one JSON command per line on stdin, one JSON reply per line on stdout, same `id`.
import { io } from "socket.io-client";
import readline from "node:readline";

const clients = new Map();

function reply(id, body) {
  process.stdout.write(JSON.stringify({ id, ...body }) + "\n");
}

function connect(cmd) {
  return new Promise((resolve) => {
    const options = {
      transports: [cmd.transport || "websocket"],
      reconnection: cmd.reconnection ?? false,
      forceNew: true,
      timeout: 10000,
    };
    if (cmd.token !== undefined && !cmd.query_token) options.auth = { token: cmd.token };
    if (cmd.query_token) options.query = { token: cmd.token };
    const socket = io(cmd.url, options);
    const state = { socket, events: [], errors: [] };
    clients.set(cmd.client, state);
    socket.onAny((event, ...args) => state.events.push({ event, data: args[0] ?? null, at: Date.now() }));
    socket.on("connect_error", (err) => {
      state.errors.push(err.message);
      if (!options.reconnection) resolve({ ok: false, error: err.message });
    });
    socket.on("connect", () => resolve({ ok: true, sid: socket.id }));
  });
}

async function handle(cmd) {
  const state = clients.get(cmd.client);
  switch (cmd.cmd) {
    case "connect":
      return connect(cmd);
    case "emit": {
      if (!state) return { ok: false, error: "no such client" };
      const args = cmd.data === undefined ? [] : [cmd.data];
      if (cmd.no_ack) {
        state.socket.emit(cmd.event, ...args);
        return { ok: true };
      }
      try {
        const ack = await state.socket.timeout(cmd.timeout_ms ?? 15000).emitWithAck(cmd.event, ...args);
        return { ok: true, ack };
      } catch (err) {
        return { ok: false, error: String(err.message || err) };
      }
    }
    case "events":
      return { ok: true, events: state ? state.events : [], connected: state ? state.socket.connected : false };
    case "clear":
      if (state) state.events = [];
      return { ok: true };
    case "disconnect":
      if (state) state.socket.disconnect();
      clients.delete(cmd.client);
      return { ok: true };
    default:
      return { ok: false, error: `unknown command ${cmd.cmd}` };
  }
}

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", async (line) => {
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (err) {
    reply(null, { ok: false, error: "bad command line" });
    return;
  }
  try {
    reply(cmd.id, await handle(cmd));
  } catch (err) {
    reply(cmd.id, { ok: false, error: String(err) });
  }
});
lines.on("close", () => {
  for (const { socket } of clients.values()) socket.disconnect();
  process.exit(0);
});
