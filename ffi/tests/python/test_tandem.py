"""Tandem's Python bindings against a real tandem-server: two people, two data folders.

Run by `cargo test -p tandem-ffi` (ffi/tests/bindings.rs), which generates the bindings and
starts the server. By hand, with a server running and the bindings generated:

    ffi/generate-bindings.sh bindings
    TANDEM_SERVER_URL=http://127.0.0.1:8080 TANDEM_BINDINGS_DIR=bindings \
        python3 ffi/tests/python/test_tandem.py

Uses only the standard library (unittest).
"""

import os
import queue
import sys
import tempfile
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.environ.get("TANDEM_BINDINGS_DIR", "bindings"))

from tandem import ChangeKind, Role, TandemClient, TandemError  # noqa: E402

SERVER = os.environ.get("TANDEM_SERVER_URL", "http://127.0.0.1:8080")
SYNC_TIMEOUT_MS = 15_000
PASSWORD = "correct horse battery"


def sign_up(client, email):
    """Registers, verifies with the demo code, and logs in."""
    registered = client.register(email, PASSWORD)
    assert registered.is_demo, "the test server runs in demo mode"
    client.verify(email, registered.demo_code)
    return client.login(email, PASSWORD)


def items(client, list_id):
    """What a person sees: (content, done) in display order."""
    return [(i.content, i.done) for i in client.get_list(list_id).items]


def synced(client):
    report = client.sync_now(SYNC_TIMEOUT_MS)
    assert report.in_step, report.reason
    return report


class Recorder:
    """A change listener: keeps every event on a queue (listeners run on other threads)."""

    def __init__(self):
        self.events = queue.Queue()

    def on_change(self, event):
        self.events.put(event)

    def wait_for(self, predicate, timeout=20.0):
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            seen.append(event)
            if predicate(event):
                return event
        raise AssertionError(f"no matching event within {timeout}s; saw {seen}")


class TandemStory(unittest.TestCase):
    """One story, in order: each step builds on the previous ones."""

    @classmethod
    def setUpClass(cls):
        cls.dirs = [tempfile.TemporaryDirectory() for _ in range(3)]
        tag = uuid.uuid4().hex[:8]
        cls.emails = [f"{who}-{tag}@example.com" for who in ("alice", "bob", "carol")]
        cls.alice, cls.bob, cls.carol = (TandemClient(d.name, SERVER) for d in cls.dirs)

    @classmethod
    def tearDownClass(cls):
        for client in (cls.alice, cls.bob, cls.carol):
            client.stop_sync()
        for d in cls.dirs:
            d.cleanup()

    def test_story(self):
        alice, bob, carol = self.alice, self.bob, self.carol
        a_mail, b_mail, c_mail = self.emails

        # Accounts.
        user = sign_up(alice, a_mail)
        self.assertEqual(user.email, a_mail)
        self.assertIsInstance(user.id, int)
        sign_up(bob, b_mail)
        sign_up(carol, c_mail)
        self.assertTrue(alice.account().signed_in)
        with self.assertRaises(TandemError.Unauthorized):
            alice.login(a_mail, "wrong password")

        # Alice makes a list (offline-capable), syncs it to the server, shares it.
        created = alice.create_list("Groceries")
        self.assertEqual(created.role, Role.OWNER)
        alice.add_item(created.id, "milk")
        synced(alice)
        (groceries,) = [l for l in alice.lists() if l.title == "Groceries"]
        list_id = groceries.id
        alice.share_list(list_id, b_mail, Role.EDITOR)
        alice.share_list(list_id, c_mail, Role.VIEWER)

        synced(bob)
        synced(carol)
        self.assertEqual(bob.get_list(list_id).role, Role.EDITOR)
        self.assertEqual(items(bob, list_id), [("milk", False)])

        # Offline edits on both sides, then sync: both see the same items.
        alice.add_item(list_id, "eggs")
        alice.rename_list(list_id, "Groceries (week 12)")
        milk = bob.get_list(list_id).items[0].id
        bob.set_done(list_id, milk, True)
        bread = bob.add_item(list_id, "bread")
        bob.move_item(list_id, bread, None)
        synced(alice)
        synced(bob)
        synced(alice)
        self.assertEqual(items(alice, list_id), items(bob, list_id))
        self.assertEqual(
            sorted(items(alice, list_id)), [("bread", False), ("eggs", False), ("milk", True)]
        )
        self.assertEqual(items(alice, list_id)[0], ("bread", False))
        self.assertEqual(bob.get_list(list_id).title, "Groceries (week 12)")

        # A viewer cannot edit.
        synced(carol)
        self.assertEqual(carol.get_list(list_id).role, Role.VIEWER)
        with self.assertRaises(TandemError.Forbidden):
            carol.add_item(list_id, "chocolate")
        with self.assertRaises(TandemError.NotFound):
            carol.get_list(list_id + 1_000_000)

        # History: every member may read it (newest first, by item too), the authors are
        # members, and a list one cannot see is NotFound.
        page = carol.history(list_id, None, None, None)
        self.assertIsInstance(page.changes, list)
        for change in page.changes:
            self.assertEqual(len(change.hash), 64)
            self.assertIn(change.email, (a_mail, b_mail))
            self.assertTrue(change.accepted_at.endswith("Z"))
        by_item = alice.history(list_id, milk, None, 1)
        self.assertLessEqual(len(by_item.changes), 1)
        with self.assertRaises(TandemError.NotFound):
            carol.history(list_id + 1_000_000, None, None, None)
        with self.assertRaises(TandemError.InvalidInput):
            carol.history(list_id, None, None, 0)

        # Live updates: with background sync on, Alice hears about Bob's edit.
        recorder = Recorder()
        subscription = alice.subscribe(recorder)
        alice.start_sync()
        deadline = time.monotonic() + 15
        while not alice.sync_status().connected and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(alice.sync_status().connected, alice.sync_status().last_error)
        bob.add_item(list_id, "coffee")
        synced(bob)
        event = recorder.wait_for(
            lambda e: e.list_id == list_id and e.kind == ChangeKind.REMOTE_CHANGED()
        )
        self.assertEqual(event.list_id, list_id)
        self.assertIn(("coffee", False), items(alice, list_id))
        self.assertTrue(alice.unsubscribe(subscription))
        alice.stop_sync()
        self.assertFalse(alice.sync_status().running)

    def test_calls_from_many_threads(self):
        with tempfile.TemporaryDirectory() as d:
            client = TandemClient(d, SERVER)
            lst = client.create_list("Threads")
            recorder = Recorder()
            client.subscribe(recorder)

            class Broken:
                def on_change(self, event):
                    raise RuntimeError("a listener with a bug")

            client.subscribe(Broken())  # its exception must not fail the edits
            threads = [
                threading.Thread(target=lambda n=n: client.add_item(lst.id, f"item {n}"))
                for n in range(8)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(len(client.get_list(lst.id).items), 8)
            kinds = [recorder.events.get_nowait().kind for _ in range(8)]
            self.assertEqual(kinds, [ChangeKind.ITEMS_CHANGED()] * 8)

    def test_offline_server_is_an_offline_error(self):
        with tempfile.TemporaryDirectory() as d:
            client = TandemClient(d, "http://127.0.0.1:9")  # discard port: nothing listens
            with self.assertRaises(TandemError.Offline):
                client.register("nobody@example.com", PASSWORD)
            with self.assertRaises(TandemError.InvalidInput):
                client.create_list("")


if __name__ == "__main__":
    unittest.main(verbosity=2)
