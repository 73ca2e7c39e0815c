"""Test agent: drives official python-socketio connections on behalf of a Rust test.

Protocol: one JSON command per line on stdin, one JSON reply per line on stdout, same ``id``.
"""

import asyncio
import json
import sys
import time

import socketio

clients = {}


def reply(cmd_id, body):
    sys.stdout.write(json.dumps({"id": cmd_id, **body}) + "\n")
    sys.stdout.flush()


async def connect(cmd):
    client = socketio.AsyncClient(reconnection=bool(cmd.get("reconnection", False)))
    state = {"client": client, "events": []}
    clients[cmd["client"]] = state

    @client.on("*")
    async def any_event(event, data=None):
        state["events"].append({"event": event, "data": data, "at": int(time.time() * 1000)})

    @client.event
    async def connect_error(data):
        message = data.get("message") if isinstance(data, dict) else data
        state["connect_error"] = str(message)

    url = cmd["url"]
    auth = None
    if cmd.get("query_token"):
        url = f"{url}?token={cmd['token']}"
    elif "token" in cmd:
        auth = {"token": cmd["token"]}
    try:
        await client.connect(
            url,
            auth=auth,
            transports=[cmd.get("transport", "websocket")],
            wait_timeout=10,
        )
    except socketio.exceptions.ConnectionError as err:
        return {"ok": False, "error": state.get("connect_error") or str(err)}
    return {"ok": True, "sid": client.sid}


async def handle(cmd):
    state = clients.get(cmd.get("client"))
    kind = cmd.get("cmd")
    if kind == "connect":
        return await connect(cmd)
    if kind == "emit":
        if state is None:
            return {"ok": False, "error": "no such client"}
        if cmd.get("no_ack"):
            await state["client"].emit(cmd["event"], cmd.get("data"))
            return {"ok": True}
        try:
            ack = await state["client"].call(
                cmd["event"], cmd.get("data"), timeout=cmd.get("timeout_ms", 15000) / 1000
            )
        except socketio.exceptions.TimeoutError:
            return {"ok": False, "error": "operation has timed out"}
        return {"ok": True, "ack": ack}
    if kind == "events":
        if state is None:
            return {"ok": True, "events": [], "connected": False}
        return {"ok": True, "events": state["events"], "connected": state["client"].connected}
    if kind == "clear":
        if state is not None:
            state["events"] = []
        return {"ok": True}
    if kind == "disconnect":
        if state is not None:
            await state["client"].disconnect()
            clients.pop(cmd["client"], None)
        return {"ok": True}
    return {"ok": False, "error": f"unknown command {kind}"}


async def main():
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        try:
            cmd = json.loads(line)
        except ValueError:
            reply(None, {"ok": False, "error": "bad command line"})
            continue
        try:
            reply(cmd.get("id"), await handle(cmd))
        except Exception as err:  # reported to the test, which fails with it
            reply(cmd.get("id"), {"ok": False, "error": repr(err)})
    for state in list(clients.values()):
        await state["client"].disconnect()


asyncio.run(main())
