// The README's Kotlin snippet, word for word from the `import` lines on (ffi/tests/bindings.rs
// checks that the README shows this file): how an app calls Tandem off the UI thread and
// brings change events back to it. TandemStory.kt drives it.

import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancel
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import uniffi.tandem.ChangeEvent
import uniffi.tandem.ChangeListener
import uniffi.tandem.SyncReport
import uniffi.tandem.TandemClient

/** A screen's model; `ui` is `Dispatchers.Main` on Android. */
class ListModel(private val client: TandemClient, ui: CoroutineDispatcher) {
    private val scope = CoroutineScope(SupervisorJob() + ui)

    // Every TandemClient call blocks: network ones for up to their timeout. Never on the UI thread.
    suspend fun sync(): SyncReport = withContext(Dispatchers.IO) { client.syncNow(15_000uL) }

    suspend fun startSync() = withContext(Dispatchers.IO) { client.startSync() }

    // onChange runs on a Rust thread (background sync's, for remote changes):
    // post the event to the UI thread and return at once.
    fun watch(render: (ChangeEvent) -> Unit): ULong =
        client.subscribe(object : ChangeListener {
            override fun onChange(event: ChangeEvent) {
                scope.launch { render(event) }
            }
        })

    fun close() = scope.cancel()
}
