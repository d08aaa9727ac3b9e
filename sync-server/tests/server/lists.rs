//! Creating, reading, renaming and deleting lists.

use serde_json::json;

use crate::support::{TestServer, email};

#[tokio::test]
async fn a_created_list_is_read_back_with_its_details() {
    let server = TestServer::start().await;
    let alice = server.signup(&email("alice")).await;
    let (status, body) =
        server.post("create", Some(&alice.token), json!({"title": "My New Project"})).await;
    assert_eq!(status, 200, "{body}");
    let id = body["data"]["id"].as_u64().unwrap();
    assert!(id < 1 << 53);
    assert_eq!(body["data"]["title"], "My New Project");
    let created_at = body["data"]["created_at"].as_str().unwrap().to_owned();
    assert!(created_at.ends_with('Z') && created_at.len() == 20, "RFC 3339 UTC: {created_at}");

    let second = server.create_list(&alice, "Team Shared List").await;
    assert_eq!(
        server.lists(&alice).await,
        vec![
            (id, "My New Project".into(), "OWNER".into()),
            (second, "Team Shared List".into(), "OWNER".into())
        ]
    );

    let (status, body) =
        server.get(&format!("/api/todolist/read?id={id}"), Some(&alice.token)).await;
    assert_eq!(status, 200, "{body}");
    let data = &body["data"];
    assert_eq!(data["id"], id);
    assert_eq!(data["title"], "My New Project");
    assert_eq!(data["role"], "OWNER");
    assert_eq!(data["version"], 1);
    assert_eq!(data["created_at"], created_at);
    assert_eq!(data["items"], json!([]));
    assert_eq!(
        data["collaborators"],
        json!([{"user_id": alice.id, "email": alice.email, "role": "OWNER"}])
    );
}

#[tokio::test]
async fn update_bumps_the_version_and_checks_it_when_asked() {
    let server = TestServer::start().await;
    let alice = server.signup(&email("alice")).await;
    let id = server.create_list(&alice, "Draft").await;
    let (status, body) = server
        .post("update", Some(&alice.token), json!({"id": id, "title": "Renamed Project"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"], json!({"id": id, "title": "Renamed Project", "version": 2}));

    let (status, body) = server
        .post("update", Some(&alice.token), json!({"id": id, "title": "Stale", "version": 1}))
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = server
        .post("update", Some(&alice.token), json!({"id": id, "title": "Fresh", "version": 2}))
        .await;
    assert_eq!(status, 200);

    let (_, body) = server.get(&format!("/api/todolist/read?id={id}"), Some(&alice.token)).await;
    assert_eq!(
        (body["data"]["title"].as_str(), body["data"]["version"].as_i64()),
        (Some("Fresh"), Some(3))
    );
}

#[tokio::test]
async fn titles_are_checked() {
    let server = TestServer::start().await;
    let alice = server.signup(&email("alice")).await;
    for title in ["", "   ", &"x".repeat(256), "tab\there", "nul\0"] {
        let (status, body) =
            server.post("create", Some(&alice.token), json!({"title": title})).await;
        assert_eq!(status, 422, "{title:?}: {body}");
    }
    let id = server.create_list(&alice, &"é".repeat(255)).await;
    let (status, _) =
        server.post("update", Some(&alice.token), json!({"id": id, "title": ""})).await;
    assert_eq!(status, 422);
    assert_eq!(server.lists(&alice).await.len(), 1, "refused calls changed nothing");
}

#[tokio::test]
async fn a_deleted_list_disappears_for_every_member() {
    let server = TestServer::start().await;
    let alice = server.signup(&email("alice")).await;
    let bob = server.signup(&email("bob")).await;
    let id = server.create_list(&alice, "Doomed").await;
    server.share(&alice, id, &bob.email, "EDITOR").await;
    assert_eq!(server.lists(&bob).await.len(), 1);

    let (status, body) = server.post("delete", Some(&alice.token), json!({"id": id})).await;
    assert_eq!((status, body["message"].as_str().unwrap()), (200, "List deleted successfully"));

    for user in [&alice, &bob] {
        assert!(server.lists(user).await.is_empty());
        let (status, _) =
            server.get(&format!("/api/todolist/read?id={id}"), Some(&user.token)).await;
        assert_eq!(status, 404);
        let (status, _) =
            server.post("update", Some(&user.token), json!({"id": id, "title": "x"})).await;
        assert_eq!(status, 404);
    }
    let (status, _) = server.post("delete", Some(&alice.token), json!({"id": id})).await;
    assert_eq!(status, 404);
    let (status, _) = server
        .post(
            "sharelist",
            Some(&alice.token),
            json!({"list_id": id, "target_email": bob.email, "permission": "VIEWER"}),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn ids_are_reserved_for_lists_made_offline() {
    let server = TestServer::start().await;
    let alice = server.signup(&email("alice")).await;
    let (status, body) = server.post("reserve_ids", Some(&alice.token), json!({"count": 5})).await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<u64> =
        body["data"]["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(ids.len(), 5);
    assert!(ids.iter().all(|&id| id > 0 && id < 1 << 53));
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), 5);
    for count in [0, 101] {
        let (status, _) =
            server.post("reserve_ids", Some(&alice.token), json!({"count": count})).await;
        assert_eq!(status, 422);
    }
}

#[tokio::test]
async fn lists_survive_a_restart() {
    let mut server = TestServer::start().await;
    let alice = server.signup(&email("alice")).await;
    let id = server.create_list(&alice, "Durable").await;
    let data_dir = server.dir.path().to_path_buf();
    server.stop().await;

    let mut config = crate::support::test_config(&data_dir);
    config.listen = "127.0.0.1:0".parse().unwrap();
    let again = tandem_server::Server::start(config).await.unwrap();
    let base = format!("http://{}", again.addr());
    // The same token still works: the secret was kept in the data folder.
    let resp = reqwest::Client::new()
        .get(format!("{base}/api/todolist/read?id={id}"))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["data"]["title"], "Durable");
    again.shutdown().await.unwrap();
}
