//! One storage conformance suite, run against SQLite and PostgreSQL shard maps over two
//! physical databases, asserting that rows land where the shard map says.

use std::sync::Arc;

use serde_json::json;
use sqlx::Row as _;
use tandem_protocol::{ItemId, ListDoc, ListId, Role, UserId};
use tandem_server::auth::email::Email;
use tandem_server::store::accounts::NewRegistration;
use tandem_server::store::database::{Database, sqlite_url};
use tandem_server::store::documents::Save;
use tandem_server::store::lists::ItemRecord;
use tandem_server::store::shard_map::{email_shard, list_shard, user_shard};
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
    let (_, version) =
        store.rename_with_change(lists[0], member, "Renamed", Some(1), &chunk).await.unwrap();
    assert_eq!(version, 2);
    assert_eq!(load(&store, lists[0]).await.title().unwrap(), "Renamed");
    assert!(matches!(
        store.rename_with_change(lists[0], member, "Stale", Some(1), &chunk).await,
        Err(StoreError::Conflict(_))
    ));
    let (stranger, _) = users[2].clone();
    assert!(matches!(
        store.rename_with_change(lists[0], stranger, "No", None, &chunk).await,
        Err(StoreError::NotFound)
    ));
    store.share(lists[0], owner, &addr(&users[3].1), Role::Viewer).await.unwrap();
    assert!(matches!(
        store.rename_with_change(lists[0], users[3].0, "No", None, &chunk).await,
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
    };
    let seq = store.save_changes(save).await.unwrap();
    let detail = store.list_detail(lists[4], owner).await.unwrap();
    assert_eq!(
        detail.items.iter().map(|i| i.content.as_str()).collect::<Vec<_>>(),
        ["milk", "eggs"]
    );
    assert_eq!(detail.access.list.version, 2);
    store.compact_document(lists[4], &doc.save(), seq).await.unwrap();
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
        assert_eq!(results[n].as_ref().unwrap(), &1, "each list's first chunk");
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
