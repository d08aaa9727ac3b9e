// Tandem's Kotlin binding on the JVM against a real tandem-server: three people, three data
// folders, the story of tests/python/test_tandem.py.
//
// Run by `cargo test -p tandem-ffi --test bindings` (ffi/tests/bindings.rs), which generates
// uniffi/tandem/tandem.kt, compiles it with this folder's files in one kotlinc call, starts
// the server and runs `java`. By hand, with a server running, the bindings generated
// (ffi/generate-bindings.sh bindings) and L the Kotlin distribution's lib/ folder:
//
//     J=/usr/share/java/jna.jar:$L/kotlin-test.jar:$L/kotlinx-coroutines-core-jvm.jar
//     kotlinc-jvm -cp $J -d story bindings/uniffi/tandem/tandem.kt ffi/tests/kotlin/*.kt
//     TANDEM_SERVER_URL=http://127.0.0.1:8080 java -Djna.library.path=bindings \
//         -cp story:$J:$L/kotlin-stdlib.jar TandemStoryKt
//
// Exits 0 when every step passed; otherwise prints the failed step's stack trace, exits 1.

import java.nio.file.Files
import java.nio.file.Path
import java.util.UUID
import java.util.concurrent.Executors
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit
import kotlin.system.exitProcess
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertTrue
import kotlin.test.fail
import kotlinx.coroutines.asCoroutineDispatcher
import kotlinx.coroutines.runBlocking
import uniffi.tandem.ChangeAction
import uniffi.tandem.ChangeEvent
import uniffi.tandem.ChangeKind
import uniffi.tandem.ChangeListener
import uniffi.tandem.Role
import uniffi.tandem.TandemClient
import uniffi.tandem.TandemException

const val PASSWORD = "correct horse battery"
const val SYNC_TIMEOUT_MS: ULong = 15_000u

/** Registers, verifies with the demo code, and logs in. */
fun signUp(client: TandemClient, email: String): uniffi.tandem.User {
    val registered = client.register(email, PASSWORD)
    assertTrue(registered.isDemo, "the test server runs in demo mode")
    client.verify(email, registered.demoCode ?: fail("no demo code"))
    return client.login(email, PASSWORD)
}

/** What a person sees: (content, done) in display order. */
fun items(client: TandemClient, listId: ULong): List<Pair<String, Boolean>> =
    client.getList(listId).items.map { it.content to it.done }

/** One sync round that must end in step. */
fun synced(client: TandemClient) {
    val report = client.syncNow(SYNC_TIMEOUT_MS)
    assertTrue(report.inStep, "sync not in step: ${report.reason}")
}

fun main() {
    val server = System.getenv("TANDEM_SERVER_URL") ?: "http://127.0.0.1:8080"
    val dirs = List(3) { Files.createTempDirectory("tandem-kotlin-") }
    val tag = UUID.randomUUID().toString().take(8)
    val (aMail, bMail, cMail) = listOf("alice", "bob", "carol").map { "$it-$tag@example.com" }
    val clients = dirs.map { TandemClient(it.toString(), server) }
    val failure = runCatching {
        story(clients[0], clients[1], clients[2], aMail, bMail, cMail)
        offlineServerIsAnOfflineError()
    }.exceptionOrNull()
    clients.forEach { it.stopSync(); it.close() }
    dirs.forEach { it.toFile().deleteRecursively() }
    if (failure != null) {
        failure.printStackTrace()
        // Not a rethrow: a thread a failed step left running would keep the JVM alive.
        exitProcess(1)
    }
    println("Kotlin story: every step passed")
}

fun story(
    alice: TandemClient,
    bob: TandemClient,
    carol: TandemClient,
    aMail: String,
    bMail: String,
    cMail: String,
) {
    // Accounts.
    val user = signUp(alice, aMail)
    assertEquals(aMail, user.email)
    assertTrue(user.id > 0uL)
    signUp(bob, bMail)
    signUp(carol, cMail)
    assertEquals(true, alice.account()?.signedIn)
    assertFailsWith<TandemException.Unauthorized> { alice.login(aMail, "wrong password") }

    // Alice makes a list offline, fills it, syncs it to the server, shares it.
    val created = alice.createList("Groceries")
    assertEquals(Role.OWNER, created.role)
    val milkId = alice.addItem(created.id, "milk")
    val typo = alice.addItem(created.id, "egs")
    alice.editItem(created.id, typo, "eggs")
    val soap = alice.addItem(created.id, "soap")
    alice.removeItem(created.id, soap)
    alice.moveItem(created.id, typo, null)
    assertEquals(listOf("eggs" to false, "milk" to false), items(alice, created.id))
    synced(alice)
    val listId = alice.lists().single { it.title == "Groceries" }.id
    alice.shareList(listId, bMail, Role.EDITOR)
    alice.shareList(listId, cMail, Role.VIEWER)

    synced(bob)
    synced(carol)
    assertEquals(Role.EDITOR, bob.getList(listId).role)
    assertEquals(listOf("eggs" to false, "milk" to false), items(bob, listId))

    // Offline edits on both sides, then sync: both see the same items.
    alice.addItem(listId, "coffee")
    alice.renameList(listId, "Groceries (week 12)")
    val milk = bob.getList(listId).items.single { it.content == "milk" }.id
    assertEquals(milkId, milk, "ids survive the trip as ULong")
    bob.setDone(listId, milk, true)
    val bread = bob.addItem(listId, "bread")
    bob.moveItem(listId, bread, null)
    synced(alice)
    synced(bob)
    synced(alice)
    assertEquals(items(alice, listId), items(bob, listId))
    assertEquals(
        listOf("bread" to false, "coffee" to false, "eggs" to false, "milk" to true),
        items(alice, listId).sortedBy { it.first },
    )
    assertEquals("bread" to false, items(alice, listId).first())
    assertEquals("Groceries (week 12)", bob.getList(listId).title)

    // A viewer cannot edit; a list one cannot see is NotFound.
    synced(carol)
    assertEquals(Role.VIEWER, carol.getList(listId).role)
    val refused = assertFailsWith<TandemException.Forbidden> { carol.addItem(listId, "chocolate") }
    assertTrue(refused.message.orEmpty().isNotEmpty(), "the refusal says why")
    assertFailsWith<TandemException.NotFound> { carol.getList(listId + 1_000_000uL) }

    // History: members read it, newest first; its authors are members.
    val page = carol.history(listId, null, null, null)
    assertTrue(page.changes.isNotEmpty())
    assertTrue(page.changes.all { it.hash.length == 64 && it.email in setOf(aMail, bMail) })
    val milkChecked = alice.history(listId, milk, null, 1u).changes.single()
    assertEquals(bMail, milkChecked.email, "Bob checked the milk last")
    assertTrue(ChangeAction.Checked(milk) in milkChecked.actions, "${milkChecked.actions}")
    assertFailsWith<TandemException.InvalidInput> { carol.history(listId, null, null, 0u) }

    // Live updates, the way an app wires them (the README's snippet): background sync on,
    // Alice's model hears about Bob's edit on its "UI" thread, never on the Rust thread.
    val uiThread = Executors.newSingleThreadExecutor { Thread(it, "ui") }
    try {
        val ui = uiThread.asCoroutineDispatcher()
        val model = ListModel(alice, ui)
        val seen = LinkedBlockingQueue<Pair<ChangeEvent, String>>()
        val calledOn = LinkedBlockingQueue<Pair<ChangeEvent, String>>()
        val subscription = model.watch { event -> seen.put(event to Thread.currentThread().name) }
        val spy = alice.subscribe(object : ChangeListener {
            override fun onChange(event: ChangeEvent) {
                calledOn.put(event to Thread.currentThread().name)
            }
        })
        runBlocking(ui) {
            assertTrue(model.sync().inStep)
            model.startSync()
        }
        waitUntil("background sync connects") { alice.syncStatus().connected }
        bob.addItem(listId, "tea")
        synced(bob)
        val remote = { e: Pair<ChangeEvent, String> ->
            e.first.listId == listId && e.first.kind == ChangeKind.RemoteChanged
        }
        val (event, thread) = nextMatching(seen, predicate = remote)
        assertEquals(listId, event.listId)
        assertEquals("ui", thread, "the model posts events to the UI thread")
        val rustThread = nextMatching(calledOn, predicate = remote).second
        assertTrue(rustThread !in setOf("ui", "main"), "onChange ran on $rustThread")
        assertTrue("tea" to false in items(alice, listId))
        assertTrue(alice.unsubscribe(subscription))
        assertTrue(alice.unsubscribe(spy))
        assertFalse(alice.unsubscribe(spy), "a subscription ends once")
        alice.stopSync()
        assertFalse(alice.syncStatus().running)
        model.close()
    } finally {
        uiThread.shutdown()
    }

    // Logout forgets the token, keeps the lists.
    alice.logout()
    assertEquals(false, alice.account()?.signedIn)
    assertEquals("Groceries (week 12)", alice.getList(listId).title)
    assertFailsWith<TandemException.Unauthorized> { alice.syncNow(SYNC_TIMEOUT_MS) }
}

/** A server that does not answer is `Offline`; a bad title is refused with no server at all. */
fun offlineServerIsAnOfflineError() {
    val dir: Path = Files.createTempDirectory("tandem-kotlin-offline-")
    try {
        // The discard port: nothing listens there.
        TandemClient(dir.toString(), "http://127.0.0.1:9").use { client ->
            assertFailsWith<TandemException.Offline> {
                client.register("nobody@example.com", PASSWORD)
            }
            assertFailsWith<TandemException.InvalidInput> { client.createList("") }
        }
    } finally {
        dir.toFile().deleteRecursively()
    }
}

/** Polls `condition` until it holds; fails after `timeoutMs`. */
fun waitUntil(what: String, timeoutMs: Long = 15_000, condition: () -> Boolean) {
    val deadline = System.nanoTime() + timeoutMs * 1_000_000
    while (!condition()) {
        if (System.nanoTime() > deadline) fail("timed out waiting until $what")
        Thread.sleep(50)
    }
}

/** Takes from `queue` until an element matches; fails after `timeoutMs`, listing the others. */
fun <T> nextMatching(
    queue: LinkedBlockingQueue<T>,
    timeoutMs: Long = 20_000,
    predicate: (T) -> Boolean,
): T {
    val deadline = System.nanoTime() + timeoutMs * 1_000_000
    val seen = mutableListOf<T>()
    while (true) {
        val left = (deadline - System.nanoTime()) / 1_000_000
        val next = if (left > 0) queue.poll(left, TimeUnit.MILLISECONDS) else null
        next ?: fail("no matching event within ${timeoutMs}ms; saw $seen")
        if (predicate(next)) return next
        seen.add(next)
    }
}
