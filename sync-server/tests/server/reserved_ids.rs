//! The cap on list ids one user may hold reserved and unused (`[limits]
//! max_reserved_ids_per_user`): one account cannot reserve ids without end.

use serde_json::{Value, json};
use tandem_protocol::{ItemId, ListDoc, ListId};

use crate::support::{PgDatabases, TestServer, TestUser, email};
use crate::sync_client::SyncClient;

async fn reserve(server: &TestServer, user: &TestUser, count: u32) -> (u16, Value) {
    server.post("reserve_ids", Some(&user.token), json!({"count": count})).await
}

fn ids(body: &Value) -> Vec<u64> {
    body["data"]["ids"].as_array().unwrap().iter().map(|id| id.as_u64().unwrap()).collect()
}

#[tokio::test]
async fn a_user_holds_at_most_the_default_thousand_unused_reserved_ids() {
    let server = TestServer::start().await;
    let alice = server.signup(&email("alice")).await;
    let bob = server.signup(&email("bob")).await;
    let mut held = Vec::new();
    for _ in 0..10 {
        let (status, body) = reserve(&server, &alice, 100).await;
        assert_eq!(status, 200, "{body}");
        held.extend(ids(&body));
    }
    assert_eq!(held.len(), 1000);

    // One more is refused with a clear answer, and reserves nothing.
    let (status, body) = reserve(&server, &alice, 1).await;
    assert_eq!(status, 422, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("1000"), "{message}");
    // The cap is per user: others are not affected.
    let (status, body) = reserve(&server, &bob, 100).await;
    assert_eq!(status, 200, "{body}");

    // An id that became a list no longer counts: exactly one more can be reserved (so the
    // refused call above left nothing behind).
    let mut client = SyncClient::connect(&server, &alice).await;
    let made_offline = ListId(held[0]);
    let mut doc = ListDoc::new("Made offline").unwrap();
    doc.add_item(ItemId(1), "ticket").unwrap();
    client.hold(made_offline, doc);
    client.settle().await;
    assert!(client.list_errors(made_offline).is_empty(), "{:?}", client.events);
    assert_eq!(server.lists(&alice).await.len(), 1);

    let (status, body) = reserve(&server, &alice, 2).await;
    assert_eq!(status, 422, "a call that would go beyond is refused whole: {body}");
    let (status, body) = reserve(&server, &alice, 1).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = reserve(&server, &alice, 1).await;
    assert_eq!(status, 422, "{body}");
}

/// Eight concurrent calls of 100 against a cap of 250: the calls that succeed hold at most
/// 250 ids together (calls that race past the cap together may all be refused), and the
/// refused ones leave nothing behind.
async fn concurrent_calls_stay_under_the_cap(server: &TestServer) {
    let alice = server.signup(&email("alice")).await;
    let calls = (0..8).map(|_| reserve(server, &alice, 100));
    let answers = futures_util::future::join_all(calls).await;
    assert!(answers.iter().all(|(status, _)| *status == 200 || *status == 422), "{answers:?}");
    let granted: u32 = answers
        .iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| ids(body).len() as u32)
        .sum();
    assert!(granted <= 250, "{granted} ids granted over a cap of 250");
    // Exactly the rest of the cap can still be reserved, one call of at most 100 at a time.
    let mut room = 250 - granted;
    while room > 0 {
        let count = room.min(100);
        let (status, body) = reserve(server, &alice, count).await;
        assert_eq!(status, 200, "{body}");
        room -= count;
    }
    let (status, _) = reserve(server, &alice, 1).await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn concurrent_reservations_never_pass_the_cap_together() {
    let server =
        TestServer::start_with(|config| config.limits.max_reserved_ids_per_user = 250).await;
    concurrent_calls_stay_under_the_cap(&server).await;
}

#[tokio::test]
async fn the_cap_holds_over_two_postgres_databases() {
    let Some(pg) = PgDatabases::create(2).await else { return };
    let server = TestServer::start_with(|config| {
        config.shards = pg.split_map();
        config.limits.max_reserved_ids_per_user = 250;
    })
    .await;
    concurrent_calls_stay_under_the_cap(&server).await;
}
