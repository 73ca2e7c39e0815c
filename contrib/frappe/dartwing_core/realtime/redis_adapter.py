"""Publish Dartwing realtime events from Python (Frappe or any service).

Events go to the Redis channel ``dartwing:realtime`` with the payload of the Dartwing Core
realtime gateway (``{"event", "message", "room", "user", "doctype", "docname"}``); every gateway
node delivers each event to its own sockets, so subscribers get it once whatever node they use.

Routing: ``room`` if set; else ``user`` -> ``user:{user}``; else ``doctype`` + ``docname`` ->
``doc:{doctype}:{docname}``; else every connected socket.

Inside Frappe, ``patch_frappe_realtime()`` makes ``frappe.publish_realtime`` publish here, after the
current database transaction commits (and not at all if it rolls back), as Frappe itself does. In
``hooks.py``: ``on_startup = ["dartwing_core.realtime.redis_adapter.patch_frappe_realtime"]``.

Redis: ``configure(redis_url=...)``, else the first of ``DARTWING_REDIS_URL``,
``REDIS_SOCKETIO_URL``, the site configuration's ``redis_socketio`` then ``redis_cache`` (inside
Frappe), and ``redis://127.0.0.1:6379``.
"""

import json
import os
import time

import redis

CHANNEL = os.environ.get("DARTWING_REALTIME_CHANNEL", "dartwing:realtime")
_client = None


def redis_url():
    """The Redis URL to publish on when ``configure`` gave none (see the module documentation)."""
    for name in ("DARTWING_REDIS_URL", "REDIS_SOCKETIO_URL"):
        if os.environ.get(name):
            return os.environ[name]
    try:
        import frappe
    except ImportError:
        frappe = None
    conf = getattr(frappe, "conf", None) if frappe is not None else None
    if conf is not None:
        for key in ("redis_socketio", "redis_cache"):
            if conf.get(key):
                return conf.get(key)
    return "redis://127.0.0.1:6379"


def get_redis_client():
    """The Redis client events are published with (created on first use)."""
    global _client
    if _client is None:
        _client = redis.Redis.from_url(redis_url())
    return _client


def configure(redis_url=None, channel=None, client=None):
    """Sets the Redis connection (URL or a ready ``redis.Redis``) and the channel name."""
    global _client, CHANNEL
    if client is not None:
        _client = client
    elif redis_url is not None:
        _client = redis.Redis.from_url(redis_url)
    if channel is not None:
        CHANNEL = channel


def payload(event, message=None, room=None, user=None, doctype=None, docname=None):
    """The channel payload for one event (only the routing fields that are set)."""
    if not event or not isinstance(event, str):
        raise ValueError("event must be a non-empty string")
    body = {"event": event, "message": message, "sent_at_ms": time.time() * 1000}
    for key, value in (("room", room), ("user", user), ("doctype", doctype), ("docname", docname)):
        if value:
            body[key] = value
    return body


def publish(event, message=None, room=None, user=None, doctype=None, docname=None):
    """Publishes one event now; returns how many gateway nodes received it."""
    data = json.dumps(payload(event, message, room, user, doctype, docname), default=str)
    return get_redis_client().publish(CHANNEL, data)


def publish_realtime(event=None, message=None, room=None, user=None, doctype=None, docname=None,
                     after_commit=False, **_ignored):
    """``frappe.publish_realtime``-compatible: publishes now, or after the current Frappe
    transaction commits when ``after_commit`` is true."""
    if after_commit:
        import frappe  # only inside Frappe

        frappe.db.after_commit.add(lambda: publish(event, message, room, user, doctype, docname))
        return None
    return publish(event, message, room, user, doctype, docname)


def patch_frappe_realtime(always_after_commit=True):
    """Routes ``frappe.publish_realtime`` through the Dartwing gateway. With
    ``always_after_commit`` (the default) events wait for the transaction to commit, so clients
    never hear of a change that was rolled back."""
    import frappe

    original = frappe.publish_realtime

    def dartwing_publish_realtime(event=None, message=None, room=None, user=None, doctype=None,
                                  docname=None, after_commit=False, **kwargs):
        return publish_realtime(event, message, room, user, doctype, docname,
                                after_commit=after_commit or always_after_commit)

    dartwing_publish_realtime.original = original
    frappe.publish_realtime = dartwing_publish_realtime
    return original
