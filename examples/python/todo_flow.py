"""Tandem from Python: the whole flow a mobile or desktop app goes through.

Two people (Alice and Bob), each with their own data folder, as on two phones:
sign up, make a list and share it, edit offline on both sides, sync, and watch
live updates with background sync on. Swift and Kotlin get the same API in their
own casing (`TandemClient(dataDir:serverUrl:)`, `client.addItem(...)`).

    ffi/generate-bindings.sh bindings                  # tandem.py + the native library
    cargo run --release -p tandem-server &             # or any running tandem-server
    PYTHONPATH=bindings python3 examples/python/todo_flow.py [http://127.0.0.1:8080]
"""

import sys
import tempfile
import threading
import time
import uuid

from tandem import ChangeKind, Role, TandemClient, TandemError

SERVER = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"
PASSWORD = "correct horse battery"


def sign_up(client, email):
    """Register, verify with the code (returned directly by a demo-mode server), log in."""
    registered = client.register(email, PASSWORD)
    code = registered.demo_code if registered.is_demo else input(f"code sent to {email}: ")
    client.verify(email, code)
    return client.login(email, PASSWORD)


def show(who, client, list_id):
    todo = client.get_list(list_id)
    print(f"{who} sees {todo.title!r} ({todo.role.name}):")
    for item in todo.items:
        print(f"   [{'x' if item.done else ' '}] {item.content}")


class Printer:
    """A change listener. It runs on the thread that made the change (the sync thread for
    remote changes): an app would hand the event to its UI thread here."""

    def __init__(self):
        self.remote_change = threading.Event()

    def on_change(self, event):
        print(f"   event: list {event.list_id}: {event.kind}")
        if event.kind == ChangeKind.REMOTE_CHANGED():
            self.remote_change.set()


def main():
    tag = uuid.uuid4().hex[:6]
    alice_email, bob_email = f"alice-{tag}@example.com", f"bob-{tag}@example.com"
    with tempfile.TemporaryDirectory() as alice_dir, tempfile.TemporaryDirectory() as bob_dir:
        alice = TandemClient(alice_dir, SERVER)
        bob = TandemClient(bob_dir, SERVER)
        try:
            sign_up(alice, alice_email)
            sign_up(bob, bob_email)
        except TandemError.Offline as e:
            sys.exit(f"cannot reach {SERVER}: {e}")

        # Lists work offline; the first sync gives the list to the server.
        groceries = alice.create_list("Groceries")
        alice.add_item(groceries.id, "milk")
        alice.sync_now(10_000)
        list_id = next(l.id for l in alice.lists() if l.title == "Groceries")
        alice.share_list(list_id, bob_email, Role.EDITOR)
        bob.sync_now(10_000)

        # Both edit offline...
        alice.add_item(list_id, "eggs")
        milk = bob.get_list(list_id).items[0].id
        bob.set_done(list_id, milk, True)
        bob.add_item(list_id, "bread")
        # ...then sync: the edits merge, nobody's work is lost.
        for client in (alice, bob, alice):
            report = client.sync_now(10_000)
            assert report.in_step, report.reason
        show("Alice", alice, list_id)
        show("Bob", bob, list_id)

        # Live: Alice keeps syncing in the background and hears about Bob's edits.
        printer = Printer()
        alice.subscribe(printer)
        alice.start_sync()
        bob.add_item(list_id, "coffee")
        bob.sync_now(10_000)
        if printer.remote_change.wait(timeout=15):
            show("Alice (live)", alice, list_id)
        else:
            print("no live update within 15 s:", alice.sync_status())
        alice.stop_sync()


if __name__ == "__main__":
    main()
