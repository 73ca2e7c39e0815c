"""Unit tests of the Frappe patch's after-commit semantics, with a stand-in ``frappe`` module.

Delivery through a real gateway is tested by the Rust cluster suite, which runs this file too.
"""

import json
import os
import sys
import types
import unittest

import dartwing_realtime


class FakeRedis:
    def __init__(self):
        self.published = []

    def publish(self, channel, data):
        self.published.append((channel, json.loads(data)))
        return 1


class AfterCommit:
    def __init__(self):
        self.callbacks = []

    def add(self, callback):
        self.callbacks.append(callback)

    def run(self):
        for callback in self.callbacks:
            callback()
        self.callbacks = []

    def discard(self):
        self.callbacks = []


def fake_frappe():
    frappe = types.ModuleType("frappe")
    frappe.db = types.SimpleNamespace(after_commit=AfterCommit())
    frappe.publish_realtime = lambda *a, **k: "original"
    return frappe


class PatchTest(unittest.TestCase):
    def setUp(self):
        self.redis = FakeRedis()
        dartwing_realtime.configure(client=self.redis, channel="test:channel")
        self.frappe = fake_frappe()
        sys.modules["frappe"] = self.frappe
        dartwing_realtime.patch_frappe_realtime()

    def tearDown(self):
        sys.modules.pop("frappe", None)

    def test_events_wait_for_commit(self):
        self.frappe.publish_realtime("task_updated", {"name": "T-1"}, doctype="Task", docname="T-1")
        self.assertEqual(self.redis.published, [])
        self.frappe.db.after_commit.run()
        [(channel, body)] = self.redis.published
        self.assertEqual(channel, "test:channel")
        self.assertEqual(body["event"], "task_updated")
        self.assertEqual(body["doctype"], "Task")
        self.assertEqual(body["docname"], "T-1")
        self.assertNotIn("room", body)

    def test_rolled_back_events_are_never_sent(self):
        self.frappe.publish_realtime("task_updated", {}, user="ann@example.com")
        self.frappe.db.after_commit.discard()
        self.assertEqual(self.redis.published, [])

    def test_original_is_kept(self):
        self.assertEqual(self.frappe.publish_realtime.original(), "original")

    def test_payload_requires_an_event(self):
        with self.assertRaises(ValueError):
            dartwing_realtime.payload("")


class ModuleTest(unittest.TestCase):
    def test_the_specs_path_is_the_same_module(self):
        from dartwing_core.realtime import redis_adapter

        self.assertIs(redis_adapter, dartwing_realtime)

    def test_the_redis_url_comes_from_the_environment_then_frappes_site_configuration(self):
        saved = {name: os.environ.pop(name, None) for name in ("DARTWING_REDIS_URL", "REDIS_SOCKETIO_URL")}
        frappe = fake_frappe()
        frappe.conf = {"redis_socketio": "redis://socketio:12311", "redis_cache": "redis://cache:13311"}
        sys.modules["frappe"] = frappe
        try:
            self.assertEqual(dartwing_realtime.redis_url(), "redis://socketio:12311")
            del frappe.conf["redis_socketio"]
            self.assertEqual(dartwing_realtime.redis_url(), "redis://cache:13311")
            os.environ["REDIS_SOCKETIO_URL"] = "redis://from-env:6379"
            self.assertEqual(dartwing_realtime.redis_url(), "redis://from-env:6379")
            os.environ["DARTWING_REDIS_URL"] = "redis://dartwing:6379"
            self.assertEqual(dartwing_realtime.redis_url(), "redis://dartwing:6379")
        finally:
            sys.modules.pop("frappe", None)
            for name, value in saved.items():
                os.environ.pop(name, None)
                if value is not None:
                    os.environ[name] = value
        self.assertEqual(dartwing_realtime.redis_url(), saved["DARTWING_REDIS_URL"] or saved["REDIS_SOCKETIO_URL"] or "redis://127.0.0.1:6379")


if __name__ == "__main__":
    unittest.main()
