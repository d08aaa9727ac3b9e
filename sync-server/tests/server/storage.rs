//! One storage conformance suite, run against SQLite and PostgreSQL shard maps over two
//! physical databases, asserting that rows land where the shard map says.

use std::sync::Arc;

use serde_json::json;
use sqlx::Row as _;
use tandem_protocol::automerge::ChangeHash;
use tandem_protocol::history::ChangeAction;
use tandem_protocol::{ItemId, ListDoc, ListId, Role, UserId};
use tandem_server::auth::email::Email;
use tandem_server::store::accounts::NewRegistration;
use tandem_server::store::database::{Database, sqlite_url};
use tandem_server::store::documents::Save;
use tandem_server::store::history::{HistoryPage, HistoryQuery};
use tandem_server::store::lists::ItemRecord;
use tandem_server::store::shard_map::{email_shard, list_shard, user_shard};
use tandem_server::store::{AcceptedChange, ActorBinding};
use tandem_server::store::{ShardSpec, Store, StoreError};

use crate::support::{PgDatabases, TestServer, email, split_map};

/// The normal form of a test address.
fn addr(raw: &str) -> Email {
    Email::parse(raw).unwrap()
}

/// Runs the suite over a store built from `specs`.
async fn conformance(specs: Vec<ShardSpec>, data_dir: &std::path::Path) {
    let store = Store::open(&specs, data_dir).await.expect("store opens");
    assert_eq!(store.shards().databases().len(), specs.len());
    assert!(store.health().await.iter().all(|(_, ok)| *ok));

    // Users land on the database of their user shard; emails on the database of their hash.
    let mut users = Vec::new();
    for i in 0..12u64 {
        let candidate = UserId(1_000_000 + i * 37);
        let address = format!("user{i}@example.com");
        let reg = NewRegistration {
            email: addr(&address),
            password_hash: "hash".into(),
            code_hash: "code".into(),
            code_expires_at: i64::MAX,
        };
        let id = store.register(candidate, &reg).await.unwrap();
        assert_eq!(id, candidate);
        let verified =
            store.check_code(&addr(&address), 5, |stored| stored == "code").await.unwrap();
        assert_eq!(verified, tandem_server::store::accounts::CodeCheck::Verified(id));
        assert_row_only_in(
            &store,
            "users",
            "user_id",
            id.as_i64(),
            expected_db(&specs, user_shard(id), true),
        )
        .await;
        let email_db = expected_db(&specs, email_shard(&address), true);
        assert_email_only_in(&store, &address, email_db).await;
        users.push((id, address));
    }
    assert!(matches!(
        store
            .register(
                UserId(99),
                &NewRegistration {
                    email: addr(&users[0].1),
                    password_hash: "x".into(),
                    code_hash: "y".into(),
                    code_expires_at: i64::MAX,
                }
            )
            .await,
        Err(StoreError::Conflict(_))
    ));

    // Lists, collaborators and items land on the list shard's database; the index on the
    // member's user shard.
    let (owner, owner_email) = users[0].clone();
    let mut lists = Vec::new();
    for i in 0..10u64 {
        let id = ListId(5_000_000 + i * 1031);
        let title = format!("List {i}");
        let snapshot = ListDoc::new(&title).unwrap().save();
        store.create_list(id, owner, &owner_email, &title, &snapshot).await.unwrap();
        assert_row_only_in(
            &store,
            "list_documents",
            "list_id",
            id.as_i64(),
            expected_db(&specs, list_shard(id), false),
        )
        .await;
        let list_db = expected_db(&specs, list_shard(id), false);
        assert_row_only_in(&store, "todo_lists", "list_id", id.as_i64(), list_db).await;
        assert_row_only_in(&store, "list_collaborators", "list_id", id.as_i64(), list_db).await;
        lists.push(id);
    }
    let (member, member_email) = users[1].clone();
    for &list in &lists {
        store.share(list, owner, &addr(&member_email), Role::Editor).await.unwrap();
    }
    let user_db = expected_db(&specs, user_shard(member), true);
    for (i, db) in store.shards().databases().iter().enumerate() {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM user_list_index WHERE user_id = $1")
            .bind(member.as_i64())
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(
            n,
            if i == user_db { 10 } else { 0 },
            "index rows of the member on database {i}"
        );
    }
    let seen =
        store.accessible_lists(member, &store.indexed_lists(member).await.unwrap()).await.unwrap();
    assert_eq!(seen.iter().map(|a| a.list.id).collect::<Vec<_>>(), lists);
    assert!(seen.iter().all(|a| a.role == Role::Editor));

    // Renames check role and version inside the list shard, and store the document change.
    let mut doc = load(&store, lists[0]).await;
    let before = doc.heads();
    doc.set_title("Renamed").unwrap();
    let chunk = doc.save_after(&before);
    let (_, version) = store
        .rename_with_change(lists[0], member, "Renamed", Some(1), &chunk, &[], &[])
        .await
        .unwrap();
    assert_eq!(version, 2);
    assert_eq!(load(&store, lists[0]).await.title().unwrap(), "Renamed");
    assert!(matches!(
        store.rename_with_change(lists[0], member, "Stale", Some(1), &chunk, &[], &[]).await,
        Err(StoreError::Conflict(_))
    ));
    let (stranger, _) = users[2].clone();
    assert!(matches!(
        store.rename_with_change(lists[0], stranger, "No", None, &chunk, &[], &[]).await,
        Err(StoreError::NotFound)
    ));
    store.share(lists[0], owner, &addr(&users[3].1), Role::Viewer).await.unwrap();
    assert!(matches!(
        store.rename_with_change(lists[0], users[3].0, "No", None, &chunk, &[], &[]).await,
        Err(StoreError::Forbidden(_))
    ));

    // Saved changes update the rows in the same transaction; compaction keeps the document.
    let mut doc = load(&store, lists[4]).await;
    let before = doc.heads();
    doc.add_item(ItemId(11), "milk").unwrap();
    doc.add_item(ItemId(12), "eggs").unwrap();
    let chunk = doc.save_after(&before);
    let items: Vec<ItemRecord> = doc.items().unwrap().into_iter().map(ItemRecord::from).collect();
    let save = Save {
        list: lists[4],
        chunk,
        title: "List 4".into(),
        upserts: items,
        removed: Vec::new(),
        replace_all: false,
        new_actors: Vec::new(),
        accepted: Vec::new(),
    };
    let saved = store.save_changes(save).await.unwrap();
    assert_eq!(saved.version, 2, "the save is the list's second version");
    let detail = store.list_detail(lists[4], owner).await.unwrap();
    assert_eq!(
        detail.items.iter().map(|i| i.content.as_str()).collect::<Vec<_>>(),
        ["milk", "eggs"]
    );
    assert_eq!(detail.access.list.version, 2);
    store.compact_document(lists[4], &doc.save(), saved.seq).await.unwrap();
    let stored = store.load_document(lists[4]).await.unwrap();
    assert_eq!((stored.parts.len(), stored.chunks), (1, 0));
    assert_eq!(load(&store, lists[4]).await.item_count().unwrap(), 2);

    // Items written to the list shard come back in sort_rank order, ties by id, byte-wise.
    let list_db = &store.shards().databases()[expected_db(&specs, list_shard(lists[1]), false)];
    for (item, rank) in [(3i64, "a0"), (1, "Zz"), (2, "a0"), (4, "a0V")] {
        sqlx::query(
            "INSERT INTO todo_items (list_id, item_id, content, is_done, sort_rank, created_at, updated_at)
             VALUES ($1, $2, $3, 0, $4, 0, 0)",
        )
        .bind(lists[1].as_i64())
        .bind(item)
        .bind(format!("item {item}"))
        .bind(rank)
        .execute(list_db.pool())
        .await
        .unwrap();
    }
    let detail = store.list_detail(lists[1], owner).await.unwrap();
    let order: Vec<u64> = detail.items.iter().map(|i| i.id.get()).collect();
    assert_eq!(order, vec![1, 2, 3, 4], "'Z' < 'a' byte-wise, then ties by id");

    // Delete hides the list everywhere and drops it from the members' index.
    store.delete_list(lists[2], owner).await.unwrap();
    assert!(matches!(store.access(lists[2], member).await, Err(StoreError::NotFound)));
    assert!(!store.indexed_lists(member).await.unwrap().contains(&lists[2]));

    // Saves arriving together share a transaction (group commit), yet each gets its own
    // answer: the deleted list's save is refused and writes nothing, the others all land.
    let mut saves = Vec::new();
    for (n, &list) in [lists[5], lists[6], lists[7], lists[2], lists[8]].iter().enumerate() {
        let mut doc = if list == lists[2] {
            ListDoc::new("deleted meanwhile").unwrap()
        } else {
            load(&store, list).await
        };
        let before = doc.heads();
        doc.add_item(ItemId(100 + n as u64), "together").unwrap();
        let item = doc.item(ItemId(100 + n as u64)).unwrap().unwrap();
        saves.push(store.save_changes(Save {
            list,
            chunk: doc.save_after(&before),
            title: format!("Saved together {n}"),
            upserts: vec![item.into()],
            removed: Vec::new(),
            replace_all: false,
            new_actors: Vec::new(),
            accepted: Vec::new(),
        }));
    }
    let results = futures_util::future::join_all(saves).await;
    assert!(matches!(results[3], Err(StoreError::NotFound)), "the deleted list refuses its save");
    let deleted_chunks: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM list_changes WHERE list_id = $1")
            .bind(lists[2].as_i64())
            .fetch_one(
                store.shards().databases()[expected_db(&specs, list_shard(lists[2]), false)].pool(),
            )
            .await
            .unwrap();
    assert_eq!(deleted_chunks, 0, "nothing of the refused save was written");
    for (n, &list) in [lists[5], lists[6], lists[7], lists[8]].iter().enumerate() {
        let n = if n == 3 { 4 } else { n };
        assert_eq!(results[n].as_ref().unwrap().seq, 1, "each list's first chunk");
        let detail = store.list_detail(list, owner).await.unwrap();
        assert_eq!(detail.access.list.title, format!("Saved together {n}"));
        assert_eq!(detail.items.len(), 1);
        assert_eq!(load(&store, list).await.item_count().unwrap(), 1);
    }

    // A lost index row comes back with repair; a stale one goes.
    let user_db = &store.shards().databases()[expected_db(&specs, user_shard(member), true)];
    sqlx::query("DELETE FROM user_list_index WHERE user_id = $1 AND list_id = $2")
        .bind(member.as_i64())
        .bind(lists[3].as_i64())
        .execute(user_db.pool())
        .await
        .unwrap();
    store.index_put(member, ListId(42), Role::Owner).await.unwrap();
    let report = store.repair_list_index().await.unwrap();
    assert_eq!((report.upserted, report.removed), (1, 1));
    let indexed = store.indexed_lists(member).await.unwrap();
    assert!(indexed.contains(&lists[3]) && !indexed.contains(&ListId(42)));
    assert_eq!(
        store.repair_list_index().await.unwrap(),
        Default::default(),
        "repair is idempotent"
    );

    store.close().await;
}

/// A list's stored document, loaded.
async fn load(store: &Store, list: ListId) -> ListDoc {
    let mut doc = ListDoc::empty();
    for part in store.load_document(list).await.unwrap().parts {
        doc.load_incremental(&part).unwrap();
    }
    doc
}

/// The index in `specs` of the database holding `shard` (user shards if `users`).
fn expected_db(specs: &[ShardSpec], shard: u16, users: bool) -> usize {
    specs
        .iter()
        .position(|s| {
            let range = if users { s.users } else { s.lists };
            range.is_some_and(|[start, end]| (start..end).contains(&shard))
        })
        .unwrap()
}

async fn assert_row_only_in(store: &Store, table: &str, key: &str, value: i64, expected: usize) {
    for (i, db) in store.shards().databases().iter().enumerate() {
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE {key} = $1");
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(value)
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(
            n > 0,
            i == expected,
            "{table}.{key}={value} on database {i}, expected only on {expected}"
        );
    }
}

async fn assert_email_only_in(store: &Store, address: &str, expected: usize) {
    for (i, db) in store.shards().databases().iter().enumerate() {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM user_emails WHERE email = $1")
            .bind(address)
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(n, i64::from(i == expected), "email {address} on database {i}");
    }
}

#[tokio::test]
async fn conformance_on_one_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    conformance(vec![tandem_server::config::single_sqlite_shard()], dir.path()).await;
}

#[tokio::test]
async fn conformance_on_two_sqlite_files() {
    let dir = tempfile::tempdir().unwrap();
    conformance(split_map("sqlite:a.db", "sqlite:b.db"), dir.path()).await;
    assert!(dir.path().join("a.db").exists() && dir.path().join("b.db").exists());
}

#[tokio::test]
async fn conformance_on_two_postgres_databases() {
    let Some(pg) = PgDatabases::create(2).await else { return };
    let dir = tempfile::tempdir().unwrap();
    conformance(pg.split_map(), dir.path()).await;
}

/// Concurrent registrations of one email yield exactly one account.
async fn registration_race(specs: Vec<ShardSpec>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&specs, dir.path()).await.unwrap());
    for round in 0..20 {
        let address = format!("race{round}@example.com");
        let mut tasks = Vec::new();
        for i in 0..16u64 {
            let store = store.clone();
            let address = address.clone();
            tasks.push(tokio::spawn(async move {
                let reg = NewRegistration {
                    email: addr(&address),
                    password_hash: format!("hash{i}"),
                    code_hash: "code".into(),
                    code_expires_at: i64::MAX,
                };
                // Candidate ids spread over every user shard.
                store.register(UserId(7_000_000 + round * 1000 + i * 131), &reg).await
            }));
        }
        let mut winners = std::collections::HashSet::new();
        for task in tasks {
            winners.insert(task.await.unwrap().unwrap());
        }
        assert_eq!(winners.len(), 1, "every registration agrees on one account");
        let mut rows = 0;
        for db in store.shards().databases() {
            rows += sqlx::query("SELECT user_id FROM users WHERE email = $1")
                .bind(&address)
                .fetch_all(db.pool())
                .await
                .unwrap()
                .len();
            let emails: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM user_emails WHERE email = $1")
                    .bind(&address)
                    .fetch_one(db.pool())
                    .await
                    .unwrap();
            assert!(emails <= 1);
        }
        assert_eq!(rows, 1, "exactly one account row for {address}");
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_registrations_make_one_account_on_sqlite() {
    registration_race(split_map("sqlite:a.db", "sqlite:b.db")).await;
}

// Several threads, so that the inserts of one round really run at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_registrations_make_one_account_on_postgres() {
    let Some(pg) = PgDatabases::create(2).await else { return };
    registration_race(pg.split_map()).await;
}

#[tokio::test]
async fn the_api_works_on_postgres_shards() {
    let Some(pg) = PgDatabases::create(2).await else { return };
    let specs = pg.split_map();
    let server = TestServer::start_with(|c| c.shards = specs).await;
    let alice = server.signup(&email("alice")).await;
    let bob = server.signup(&email("bob")).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(server.create_list(&alice, &format!("PG list {i}")).await);
    }
    for &id in &ids {
        server.share(&alice, id, &bob.email, "VIEWER").await;
    }
    let seen: Vec<u64> = server
        .lists(&bob)
        .await
        .into_iter()
        .map(|(id, _, role)| {
            assert_eq!(role, "VIEWER");
            id
        })
        .collect();
    assert_eq!(seen, ids);
    let (status, _) =
        server.post("update", Some(&bob.token), json!({"id": ids[0], "title": "x"})).await;
    assert_eq!(status, 403);
    let (status, body) = server.get("/healthz", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn sqlite_databases_are_durable_by_construction() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&sqlite_url(&dir.path().join("d.db"))).await.unwrap();
    let mut conn = db.pool().acquire().await.unwrap();
    let mode: String =
        sqlx::query("PRAGMA journal_mode").fetch_one(&mut *conn).await.unwrap().get(0);
    let sync: i64 = sqlx::query("PRAGMA synchronous").fetch_one(&mut *conn).await.unwrap().get(0);
    assert_eq!((mode.as_str(), sync), ("wal", 2));
}

/// Registers and verifies `n` accounts named `{prefix}{i}@example.com` straight in the store.
async fn accounts(store: &Store, prefix: &str, first_id: u64, n: u64) -> Vec<(UserId, String)> {
    let mut users = Vec::new();
    for i in 0..n {
        let address = format!("{prefix}{i}@example.com");
        let reg = NewRegistration {
            email: addr(&address),
            password_hash: "hash".into(),
            code_hash: "code".into(),
            code_expires_at: i64::MAX,
        };
        let id = store.register(UserId(first_id + i * 41), &reg).await.unwrap();
        store.check_code(&addr(&address), 5, |stored| stored == "code").await.unwrap();
        users.push((id, address));
    }
    users
}

/// Makes one change with `edit` on `doc` and returns its hash (the document's only head
/// after a local change).
fn change(doc: &mut ListDoc, edit: impl FnOnce(&mut ListDoc)) -> [u8; 32] {
    edit(doc);
    let heads = doc.heads();
    assert_eq!(heads.len(), 1);
    heads[0].0
}

/// `list`'s stored document with `actor` making the next changes.
async fn load_as(store: &Store, list: ListId, actor: &[u8]) -> ListDoc {
    let mut doc = load(store, list).await;
    doc.automerge_mut().set_actor(tandem_protocol::automerge::ActorId::from(actor));
    doc
}

/// A save of everything `doc` changed since `before`, with its item rows.
fn save_of(list: ListId, doc: &mut ListDoc, before: &[ChangeHash], items: &[u64]) -> Save {
    let upserts =
        items.iter().filter_map(|&i| doc.item(ItemId(i)).unwrap()).map(ItemRecord::from).collect();
    Save {
        list,
        chunk: doc.save_after(before),
        title: doc.title().unwrap(),
        upserts,
        removed: Vec::new(),
        replace_all: false,
        new_actors: Vec::new(),
        accepted: Vec::new(),
    }
}

fn accepted(hash: [u8; 32], user: UserId, actions: &[ChangeAction]) -> AcceptedChange {
    AcceptedChange { hash, user, actions: actions.to_vec() }
}

fn bound(actor: &[u8], user: UserId) -> ActorBinding {
    ActorBinding { actor: actor.to_vec(), user }
}

/// Rows of `list` in `table`, on the list's database.
async fn count_rows(store: &Store, table: &str, list: ListId) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table} WHERE list_id = $1");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(list.as_i64())
        .fetch_one(store.shards().for_list(list).pool())
        .await
        .unwrap()
}

/// What a refused save must leave as it was: chunks, history, actions, bindings, version.
async fn footprint(store: &Store, list: ListId, owner: UserId) -> (Vec<i64>, i64) {
    let mut counts = Vec::new();
    for table in ["list_changes", "list_history", "list_history_actions", "list_actors"] {
        counts.push(count_rows(store, table, list).await);
    }
    (counts, store.access(list, owner).await.unwrap().list.version)
}

/// The actions of a history page, newest first, with who made each change.
fn who_did(page: &HistoryPage) -> Vec<(String, Vec<ChangeAction>)> {
    page.entries.iter().map(|e| (e.email.clone().unwrap_or_default(), e.actions.clone())).collect()
}

/// Actor bindings and the verified history, over a store built from `specs`: bindings load
/// back with the document, rebinding to the same user is a no-op and to another user fails
/// the whole save, history rows are written with the chunk or not at all, and the history
/// reads back newest first, by page and by item, for members only.
async fn actors_and_history(specs: Vec<ShardSpec>, data_dir: &std::path::Path) {
    use ChangeAction::*;
    let store = Store::open(&specs, data_dir).await.expect("store opens");
    let users = accounts(&store, "hist", 3_000_000, 4).await;
    let [(owner, owner_email), (editor, editor_email), (viewer, viewer_email), (stranger, _)] =
        <[_; 4]>::try_from(users).unwrap();
    let mut lists = Vec::new();
    for i in 0..6u64 {
        // Spread over both halves of a split shard map.
        let id = ListId(8_000_000 + i * 2_039);
        let snapshot = ListDoc::new("History").unwrap().save();
        store.create_list(id, owner, &owner_email, "History", &snapshot).await.unwrap();
        store.share(id, owner, &addr(&editor_email), Role::Editor).await.unwrap();
        store.share(id, owner, &addr(&viewer_email), Role::Viewer).await.unwrap();
        lists.push(id);
    }
    let list = lists[0];
    let (owner_actor, editor_actor) = ([0x0a; 16], [0xed; 16]);

    // The editor's first changes: the binding and the history land with the chunk.
    let mut doc = load_as(&store, list, &editor_actor).await;
    let before = doc.heads();
    let added = change(&mut doc, |d| drop(d.add_item(ItemId(1), "milk").unwrap()));
    let checked = change(&mut doc, |d| d.set_done(ItemId(1), true).unwrap());
    let mut save = save_of(list, &mut doc, &before, &[1]);
    save.new_actors = vec![bound(&editor_actor, editor)];
    save.accepted = vec![
        accepted(added, editor, &[Added { item: ItemId(1) }]),
        accepted(checked, editor, &[Checked { item: ItemId(1) }]),
    ];
    store.save_changes(save).await.unwrap();
    assert_eq!(store.load_document(list).await.unwrap().actors, [bound(&editor_actor, editor)]);
    let list_db = expected_db(&specs, list_shard(list), false);
    for table in ["list_actors", "list_history", "list_history_actions"] {
        assert_row_only_in(&store, table, "list_id", list.as_i64(), list_db).await;
    }

    // The same actor bound to the same user again: a no-op, the save goes through.
    let before = doc.heads();
    let edited = change(&mut doc, |d| d.edit_content(ItemId(1), "oat milk").unwrap());
    let mut save = save_of(list, &mut doc, &before, &[1]);
    save.new_actors = vec![bound(&editor_actor, editor)];
    save.accepted = vec![accepted(edited, editor, &[Edited { item: ItemId(1) }])];
    store.save_changes(save).await.unwrap();
    assert_eq!(store.load_document(list).await.unwrap().actors, [bound(&editor_actor, editor)]);

    // The owner's device claims the editor's actor: the whole save is refused and writes
    // nothing, neither the chunk, nor the item, nor the history, nor the binding.
    let untouched = footprint(&store, list, owner).await;
    let mut forged = load_as(&store, list, &editor_actor).await;
    let before = forged.heads();
    let forged_hash = change(&mut forged, |d| drop(d.add_item(ItemId(2), "forged").unwrap()));
    let mut save = save_of(list, &mut forged, &before, &[2]);
    save.new_actors = vec![bound(&owner_actor, owner), bound(&editor_actor, owner)];
    save.accepted = vec![accepted(forged_hash, owner, &[Added { item: ItemId(2) }])];
    let refused = store.save_changes(save.clone()).await;
    assert!(
        matches!(refused, Err(StoreError::ActorTaken { list: l, .. }) if l == list),
        "{refused:?}"
    );
    assert_eq!(footprint(&store, list, owner).await, untouched, "the refused save wrote nothing");
    assert_eq!(store.list_detail(list, owner).await.unwrap().items.len(), 1);
    assert_eq!(store.load_document(list).await.unwrap().actors, [bound(&editor_actor, editor)]);

    // The same refused save among others committed together: it alone fails, and still
    // writes nothing; its neighbours land with their history.
    let mut group = vec![store.save_changes(save)];
    let mut hashes = Vec::new();
    for &other in &lists[1..4] {
        let mut doc = load_as(&store, other, &owner_actor).await;
        let before = doc.heads();
        let hash = change(&mut doc, |d| drop(d.add_item(ItemId(5), "together").unwrap()));
        let mut save = save_of(other, &mut doc, &before, &[5]);
        save.new_actors = vec![bound(&owner_actor, owner)];
        save.accepted = vec![accepted(hash, owner, &[Added { item: ItemId(5) }])];
        group.push(store.save_changes(save));
        hashes.push(hash);
    }
    let results = futures_util::future::join_all(group).await;
    assert!(matches!(results[0], Err(StoreError::ActorTaken { .. })), "{:?}", results[0]);
    assert_eq!(footprint(&store, list, owner).await, untouched);
    for (i, &other) in lists[1..4].iter().enumerate() {
        assert_eq!(results[i + 1].as_ref().unwrap().seq, 1, "list {other} saved");
        let query = HistoryQuery { item: None, before: None, limit: 10 };
        let page = store.history(other, owner, &query).await.unwrap();
        assert_eq!(page.entries.len(), 1);
        assert_eq!(page.entries[0].hash, hashes[i]);
        assert_eq!(store.load_document(other).await.unwrap().actors, [bound(&owner_actor, owner)]);
    }

    // A rename records its change; a refused rename records nothing.
    let mut doc = load_as(&store, list, &owner_actor).await;
    let before = doc.heads();
    let renamed = change(&mut doc, |d| d.set_title("Groceries").unwrap());
    let chunk = doc.save_after(&before);
    let binding = [bound(&owner_actor, owner)];
    let history = [accepted(renamed, owner, &[Renamed])];
    let by_viewer =
        store.rename_with_change(list, viewer, "Groceries", None, &chunk, &binding, &history).await;
    assert!(matches!(by_viewer, Err(StoreError::Forbidden(_))));
    assert_eq!(footprint(&store, list, owner).await, untouched);
    store
        .rename_with_change(list, owner, "Groceries", None, &chunk, &binding, &history)
        .await
        .unwrap();

    // Reading: newest first, one page at a time, the same for every member.
    let newest = HistoryQuery { item: None, before: None, limit: 2 };
    for reader in [owner, editor, viewer] {
        let page = store.history(list, reader, &newest).await.unwrap();
        assert_eq!(
            who_did(&page),
            [
                (owner_email.clone(), vec![Renamed]),
                (editor_email.clone(), vec![Edited { item: ItemId(1) }]),
            ]
        );
        assert_eq!(page.entries[0].hash, renamed);
        assert!(page.entries[0].seq > page.entries[1].seq);
        let accepted_at = page.entries[0].accepted_at;
        assert!(accepted_at > 1_700_000_000_000 && accepted_at <= tandem_server::store::now_ms());
        let older = HistoryQuery { before: page.next_before, ..newest };
        let page = store.history(list, reader, &older).await.unwrap();
        assert_eq!(
            who_did(&page),
            [
                (editor_email.clone(), vec![Checked { item: ItemId(1) }]),
                (editor_email.clone(), vec![Added { item: ItemId(1) }]),
            ]
        );
        assert_eq!(page.next_before, None, "the last page");
    }
    // One item's history: who checked it off.
    let item = HistoryQuery { item: Some(ItemId(1)), before: None, limit: 1 };
    let page = store.history(list, viewer, &item).await.unwrap();
    assert_eq!(who_did(&page), [(editor_email.clone(), vec![Edited { item: ItemId(1) }])]);
    let page = store
        .history(list, viewer, &HistoryQuery { before: page.next_before, limit: 10, ..item })
        .await
        .unwrap();
    assert_eq!(page.entries.iter().map(|e| e.hash).collect::<Vec<_>>(), [checked, added]);
    let none = HistoryQuery { item: Some(ItemId(99)), before: None, limit: 10 };
    assert_eq!(store.history(list, owner, &none).await.unwrap(), HistoryPage::default());

    // Members only; a former member's changes keep their author's email.
    assert!(matches!(store.history(list, stranger, &newest).await, Err(StoreError::NotFound)));
    store.unshare(list, editor, &addr(&editor_email)).await.unwrap();
    assert!(matches!(store.history(list, editor, &newest).await, Err(StoreError::NotFound)));
    let page = store.history(list, viewer, &HistoryQuery { limit: 10, ..newest }).await.unwrap();
    assert_eq!(page.entries.len(), 4);
    assert!(page.entries[1..].iter().all(|e| e.email.as_deref() == Some(editor_email.as_str())));
    store.delete_list(lists[3], owner).await.unwrap();
    assert!(matches!(store.history(lists[3], owner, &newest).await, Err(StoreError::NotFound)));

    // A list first seen through sync starts with its bindings and history.
    let born = ListId(8_500_000);
    store.reserve_list_ids(owner, &[born], 1_000).await.unwrap();
    let mut doc = ListDoc::new("Born offline").unwrap();
    let creator = doc.automerge().get_actor().to_bytes().to_vec();
    let created = doc.heads()[0].0;
    let items: Vec<ItemRecord> = Vec::new();
    store
        .create_list_from_sync(
            born,
            owner,
            &owner_email,
            &doc.save(),
            "Born offline",
            &items,
            &[bound(&creator, owner)],
            &[accepted(created, owner, &[Created])],
        )
        .await
        .unwrap();
    assert_eq!(store.load_document(born).await.unwrap().actors, [bound(&creator, owner)]);
    let page = store.history(born, owner, &newest).await.unwrap();
    assert_eq!(who_did(&page), [(owner_email.clone(), vec![Created])]);

    // Two nodes bind one actor to two users at once: the database decides, exactly one save
    // lands, and the loser's changes are nowhere.
    let node2 = Store::open(&specs, data_dir).await.expect("a second node opens the store");
    let contested = lists[4];
    store.share(contested, owner, &addr(&editor_email), Role::Editor).await.unwrap();
    let actor = [0xcc; 16];
    let mut saves = Vec::new();
    for (node, user) in [(&store, owner), (&node2, editor)] {
        let mut doc = load_as(node, contested, &actor).await;
        let before = doc.heads();
        let text = format!("by {user}");
        let hash = change(&mut doc, |d| drop(d.add_item(ItemId(7), &text).unwrap()));
        let mut save = save_of(contested, &mut doc, &before, &[7]);
        save.new_actors = vec![bound(&actor, user)];
        save.accepted = vec![accepted(hash, user, &[Added { item: ItemId(7) }])];
        saves.push((user, hash, save));
    }
    let (a, b) = (saves.remove(0), saves.remove(0));
    let (ra, rb) = tokio::join!(store.save_changes(a.2), node2.save_changes(b.2));
    let (winner, loser, lost) = match (&ra, &rb) {
        (Ok(_), Err(StoreError::ActorTaken { .. })) => (a.0, b.1, rb),
        (Err(StoreError::ActorTaken { .. }), Ok(_)) => (b.0, a.1, ra),
        other => panic!("exactly one save must win: {other:?}"),
    };
    assert!(lost.is_err());
    assert_eq!(store.load_document(contested).await.unwrap().actors, [bound(&actor, winner)]);
    let page = store.history(contested, owner, &newest).await.unwrap();
    assert_eq!(page.entries.len(), 1);
    assert_ne!(page.entries[0].hash, loser);
    assert_eq!(page.entries[0].user, winner);
    assert_eq!(count_rows(&store, "list_changes", contested).await, 1);

    node2.close().await;
    store.close().await;
}

#[tokio::test]
async fn actors_and_history_on_one_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    actors_and_history(vec![tandem_server::config::single_sqlite_shard()], dir.path()).await;
}

#[tokio::test]
async fn actors_and_history_on_two_sqlite_files() {
    let dir = tempfile::tempdir().unwrap();
    actors_and_history(split_map("sqlite:a.db", "sqlite:b.db"), dir.path()).await;
}

// Several threads, so that the two nodes' saves really race.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actors_and_history_on_two_postgres_databases() {
    let Some(pg) = PgDatabases::create(2).await else { return };
    let dir = tempfile::tempdir().unwrap();
    actors_and_history(pg.split_map(), dir.path()).await;
}
