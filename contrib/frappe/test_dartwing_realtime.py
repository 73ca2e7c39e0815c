"""Unit tests of the Frappe patch's after-commit semantics, with a stand-in ``frappe`` module.

Delivery through a real gateway is tested by the Rust cluster suite, which runs this file too.
"""

import json
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


if __name__ == "__main__":
    unittest.main()
