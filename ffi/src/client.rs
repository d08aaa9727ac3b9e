//! [`TandemClient`]: the object apps hold, one per data folder. It wraps a
//! [`tandem_client::Client`] and its [`SyncEngine`], and owns a small Tokio runtime so that
//! callers with no runtime of their own (a Swift or Kotlin UI thread, a Python script) can
//! make the client's async network calls as plain blocking calls.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tandem_client::{Client, ClientConfig, ItemId, ListId, SubscriptionId, SyncEngine, SyncHandle};
use tokio::runtime::Runtime;

use crate::{
    Account, ChangeEvent, ChangeListener, HistoryPage, ListSummary, RegisterResult, Role,
    SyncReport, SyncStatus, TandemError, TodoList, User,
};

/// Worker threads of the runtime that runs network calls: they only wait on sockets.
const RUNTIME_THREADS: usize = 2;

/// Tandem's client for one data folder, as the bindings see it.
///
/// Works offline: lists and items are edited in the local store and synced later. Every
/// method is blocking and may be called from any thread; network calls (account, sharing,
/// history, `sync_now`) run on the client's own runtime and are bounded in time, so call them
/// from a background thread in a UI app. Background sync (`start_sync`) runs on a thread of its own.
#[derive(uniffi::Object)]
pub struct TandemClient {
    client: Arc<Client>,
    engine: SyncEngine,
    /// `Some` until drop, which shuts it down without blocking (see [`Drop`] below).
    runtime: Option<Runtime>,
    /// The running background sync, if started.
    background: Mutex<Option<SyncHandle>>,
    /// Subscriptions handed out, by the number the app holds.
    subscriptions: Mutex<HashMap<u64, SubscriptionId>>,
    next_subscription: AtomicU64,
}

#[uniffi::export]
impl TandemClient {
    /// Opens (creating if needed) the store in `data_dir`, for the server at `server_url`
    /// (e.g. `http://127.0.0.1:8080`). Works with no network: nothing is sent until a
    /// network method is called.
    #[uniffi::constructor]
    pub fn new(data_dir: String, server_url: String) -> Result<Arc<Self>, TandemError> {
        let client =
            Arc::new(Client::open(ClientConfig::new(data_dir).with_server_url(server_url))?);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_THREADS)
            .thread_name("tandem-ffi")
            .enable_all()
            .build()
            .map_err(|e| TandemError::Internal(format!("cannot start the runtime: {e}")))?;
        Ok(Arc::new(Self {
            engine: SyncEngine::new(Arc::clone(&client)),
            client,
            runtime: Some(runtime),
            background: Mutex::new(None),
            subscriptions: Mutex::new(HashMap::new()),
            next_subscription: AtomicU64::new(1),
        }))
    }

    /// The server's base URL.
    pub fn server_url(&self) -> String {
        self.client.server_url().to_owned()
    }

    /// What the store knows about the account (no network); `None` before the first login.
    pub fn account(&self) -> Result<Option<Account>, TandemError> {
        Ok(self.client.account()?.map(Account::from))
    }

    // --- Account (network) ---

    /// Creates an account; the server sends a verification code (in demo mode it is
    /// returned here instead).
    pub fn register(&self, email: String, password: String) -> Result<RegisterResult, TandemError> {
        let client = Arc::clone(&self.client);
        self.block_on(async move { client.register(&email, &password).await })
            .map(RegisterResult::from)
    }

    /// Confirms the account with the code from `register`.
    pub fn verify(&self, email: String, code: String) -> Result<(), TandemError> {
        let client = Arc::clone(&self.client);
        self.block_on(async move { client.verify(&email, &code).await })
    }

    /// Signs in and keeps the token in the store.
    pub fn login(&self, email: String, password: String) -> Result<User, TandemError> {
        let client = Arc::clone(&self.client);
        self.block_on(async move { client.login(&email, &password).await }).map(User::from)
    }

    /// Forgets the stored token (no network). Local lists stay.
    pub fn logout(&self) -> Result<(), TandemError> {
        Ok(self.client.logout()?)
    }

    // --- Lists (local, offline) ---

    /// Creates a list owned by this user. Works offline; it reaches the server on the next
    /// sync.
    pub fn create_list(&self, title: String) -> Result<ListSummary, TandemError> {
        Ok(self.client.create_list(&title)?.into())
    }

    /// Every list visible here, with this user's role.
    pub fn lists(&self) -> Result<Vec<ListSummary>, TandemError> {
        Ok(self.client.lists()?.into_iter().map(ListSummary::from).collect())
    }

    /// One list with its items in display order.
    pub fn get_list(&self, list_id: u64) -> Result<TodoList, TandemError> {
        Ok(self.client.list(ListId(list_id))?.into())
    }

    /// Renames a list (OWNER or EDITOR).
    pub fn rename_list(&self, list_id: u64, title: String) -> Result<(), TandemError> {
        Ok(self.client.rename_list(ListId(list_id), &title)?)
    }

    /// Deletes a list (OWNER); the server is told on the next sync.
    pub fn delete_list(&self, list_id: u64) -> Result<(), TandemError> {
        Ok(self.client.delete_list(ListId(list_id))?)
    }

    // --- Sharing (network) ---

    /// Shares a list with `email` as `role` (OWNER only). The person need not have an
    /// account yet: the invitation waits for their verification.
    pub fn share_list(&self, list_id: u64, email: String, role: Role) -> Result<(), TandemError> {
        let client = Arc::clone(&self.client);
        self.block_on(async move { client.share_list(ListId(list_id), &email, role.into()).await })
            .map(drop)
    }

    /// Ends `email`'s access to a list (OWNER, or members removing themselves).
    pub fn unshare_list(&self, list_id: u64, email: String) -> Result<(), TandemError> {
        let client = Arc::clone(&self.client);
        self.block_on(async move { client.unshare_list(ListId(list_id), &email).await }).map(drop)
    }

    // --- History (network) ---

    /// A page of a list's history from the server, newest first: who made each change and
    /// when the server accepted it. `item_id`: only the changes to that item ("who checked
    /// this off"). `before`: the `next_before` of the previous page, `None` for the newest.
    /// `limit`: 1 to 100 entries, `None` for 100. Members only (`NotFound` for anyone else).
    pub fn history(
        &self,
        list_id: u64,
        item_id: Option<u64>,
        before: Option<i64>,
        limit: Option<u32>,
    ) -> Result<HistoryPage, TandemError> {
        let client = Arc::clone(&self.client);
        let query = tandem_client::HistoryQuery { item: item_id.map(ItemId), before, limit };
        self.block_on(async move { client.history(ListId(list_id), query).await })
            .map(HistoryPage::from)
    }

    // --- Items (local, offline) ---

    /// Adds an item at the end of a list; returns its id.
    pub fn add_item(&self, list_id: u64, content: String) -> Result<u64, TandemError> {
        Ok(self.client.add_item(ListId(list_id), &content)?.get())
    }

    /// Replaces an item's text.
    pub fn edit_item(
        &self,
        list_id: u64,
        item_id: u64,
        content: String,
    ) -> Result<(), TandemError> {
        Ok(self.client.edit_item(ListId(list_id), ItemId(item_id), &content)?)
    }

    /// Checks or unchecks an item.
    pub fn set_done(&self, list_id: u64, item_id: u64, done: bool) -> Result<(), TandemError> {
        Ok(self.client.set_done(ListId(list_id), ItemId(item_id), done)?)
    }

    /// Removes an item.
    pub fn remove_item(&self, list_id: u64, item_id: u64) -> Result<(), TandemError> {
        Ok(self.client.remove_item(ListId(list_id), ItemId(item_id))?)
    }

    /// Moves an item right after `after`, or first when `after` is `None`.
    pub fn move_item(
        &self,
        list_id: u64,
        item_id: u64,
        after: Option<u64>,
    ) -> Result<(), TandemError> {
        Ok(self.client.move_item(ListId(list_id), ItemId(item_id), after.map(ItemId))?)
    }

    // --- Sync ---

    /// One sync round, like `tandem sync`: pushes local changes, pulls remote ones, and
    /// returns once every list is in step or refused, or after `timeout_ms` (the report then
    /// says which lists are not in step). Fails with `Offline` or `Unauthorized` when it
    /// cannot connect or sign in.
    pub fn sync_now(&self, timeout_ms: u64) -> Result<SyncReport, TandemError> {
        let engine = self.engine.clone();
        let timeout = Duration::from_millis(timeout_ms);
        self.block_on(async move { engine.sync_once(timeout).await }).map(SyncReport::from)
    }

    /// Starts background sync on a thread of its own: stays connected, applies remote
    /// changes as they arrive (`REMOTE_CHANGED` events), pushes local edits as they are
    /// made, reconnects with backoff. Does nothing if already started. Returns at once.
    pub fn start_sync(&self) -> Result<(), TandemError> {
        let mut background = self.background();
        if background.is_none() {
            *background = Some(self.engine.start()?);
        }
        Ok(())
    }

    /// Stops background sync and waits (briefly) for its thread to close the connection.
    /// Does nothing if not started.
    pub fn stop_sync(&self) {
        let handle = self.background().take();
        if let Some(handle) = handle {
            handle.stop();
        }
    }

    /// Whether background sync runs and how its connection stands.
    pub fn sync_status(&self) -> SyncStatus {
        match &*self.background() {
            Some(handle) => SyncStatus::running(handle.status()),
            None => SyncStatus::stopped(),
        }
    }

    // --- Events ---

    /// Calls `listener.on_change` after every committed change (local edits and, with sync,
    /// remote ones). Returns a number to pass to `unsubscribe`. A listener that throws is
    /// logged and ignored: it cannot fail the edit or stop background sync.
    pub fn subscribe(&self, listener: Box<dyn ChangeListener>) -> u64 {
        let id = self.client.subscribe(move |event| {
            let event = ChangeEvent::from(event);
            // UniFFI turns an exception thrown by a foreign listener into a panic.
            let called = std::panic::catch_unwind(AssertUnwindSafe(|| listener.on_change(event)));
            if called.is_err() {
                tracing::error!("a change listener failed; the change itself is committed");
            }
        });
        let number = self.next_subscription.fetch_add(1, Ordering::Relaxed);
        lock(&self.subscriptions).insert(number, id);
        number
    }

    /// Ends a subscription; returns whether it existed.
    pub fn unsubscribe(&self, subscription: u64) -> bool {
        let id = lock(&self.subscriptions).remove(&subscription);
        id.is_some_and(|id| self.client.unsubscribe(id))
    }
}

impl TandemClient {
    /// Runs `work` on the client's runtime and waits for it. Spawning (rather than
    /// `Runtime::block_on`) keeps this safe from any thread, including a thread of another
    /// Tokio runtime, e.g. a listener called on the sync thread.
    fn block_on<T: Send + 'static>(
        &self,
        work: impl Future<Output = tandem_client::Result<T>> + Send + 'static,
    ) -> Result<T, TandemError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime().spawn(async move {
            let _ = tx.send(work.await);
        });
        match rx.recv() {
            Ok(result) => Ok(result?),
            Err(_) => Err(TandemError::Internal("the client's runtime stopped".into())),
        }
    }

    fn runtime(&self) -> &Runtime {
        self.runtime.as_ref().expect("the runtime is only taken on drop")
    }

    fn background(&self) -> MutexGuard<'_, Option<SyncHandle>> {
        lock(&self.background)
    }
}

impl Drop for TandemClient {
    /// Stops background sync without waiting and shuts the runtime down in the background:
    /// the last reference may be dropped on any thread, even inside another runtime (where
    /// a blocking shutdown would panic).
    fn drop(&mut self) {
        drop(self.background().take());
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Locks a mutex whose data stays consistent whatever a panicking holder did (a map of
/// subscriptions, an optional handle).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
