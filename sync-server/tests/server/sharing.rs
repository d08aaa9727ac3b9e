//! Sharing, role changes, pending invitations and taking access back.

use serde_json::json;

use crate::support::{PASSWORD, TestServer, email};

#[tokio::test]
async fn sharing_gives_access_and_sharing_again_changes_the_role() {
    let server = TestServer::start().await;
    let alice = server.signup(&email("alice")).await;
    let bob = server.signup(&email("bob")).await;
    let id = server.create_list(&alice, "Trip").await;

    let (status, body) = server
        .post(
            "sharelist",
            Some(&alice.token),
            json!({"list_id": id, "target_email": bob.email, "permission": "EDITOR"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["message"], format!("Invitation sent to {}", bob.email));
    assert_eq!(server.lists(&bob).await, vec![(id, "Trip".into(), "EDITOR".into())]);

    server.share(&alice, id, &bob.email, "VIEWER").await;
    assert_eq!(server.lists(&bob).await, vec![(id, "Trip".into(), "VIEWER".into())]);
    let (_, body) = server.get(&format!("/api/todolist/read?id={id}"), Some(&alice.token)).await;
    assert_eq!(
        body["data"]["collaborators"],
        json!([
            {"user_id": alice.id, "email": alice.email, "role": "OWNER"},
            {"user_id": bob.id, "email": bob.email, "role": "VIEWER"},
        ])
    );
}

#[tokio::test]
async fn an_invitation_to_a_new_email_takes_effect_when_it_is_verified() {
    let server = TestServer::start().await;
    let alice = server.signup(&email("alice")).await;
    let id = server.create_list(&alice, "Welcome").await;
    let newcomer = email("newcomer");
    server.share(&alice, id, &newcomer, "VIEWER").await;

    // Registered but not verified: still pending.
    let code = server.register(&newcomer, PASSWORD).await;
    server.share(&alice, id, &newcomer, "EDITOR").await;
    let (status, _) = server.post("verify", None, json!({"email": newcomer, "code": code})).await;
    assert_eq!(status, 200);
    let user = server.login(&newcomer, PASSWORD).await;
    assert_eq!(
        server.lists(&user).await,
        vec![(id, "Welcome".into(), "EDITOR".into())],
        "latest role wins"
    );
}

#[tokio::test]
async fn sharing_with_the_owner_or_as_owner_is_refused() {
    let server = TestServer::start().await;
    let alice = server.signup(&email("alice")).await;
    let bob = server.signup(&email("bob")).await;
    let id = server.create_list(&alice, "Mine").await;
    for (target, permission) in [
        (&alice.email, "EDITOR"),
        (&bob.email, "OWNER"),
        (&bob.email, "ADMIN"),
        (&"nope".to_owned(), "EDITOR"),
    ] {
        let (status, body) = server
            .post(
                "sharelist",
                Some(&alice.token),
                json!({"list_id": id, "target_email": target, "permission": permission}),
            )
            .await;
        assert_eq!(status, 422, "{target} {permission}: {body}");
    }
    assert!(server.lists(&bob).await.is_empty());
}

#[tokio::test]
async fn the_owner_removes_members_and_members_leave() {
    let server = TestServer::start().await;
    let alice = server.signup(&email("alice")).await;
    let bob = server.signup(&email("bob")).await;
    let carol = server.signup(&email("carol")).await;
    let id = server.create_list(&alice, "Chores").await;
    server.share(&alice, id, &bob.email, "EDITOR").await;
    server.share(&alice, id, &carol.email, "VIEWER").await;

    // An editor cannot remove others.
    let (status, _) = server
        .post("unshare", Some(&bob.token), json!({"list_id": id, "target_email": carol.email}))
        .await;
    assert_eq!(status, 403);
    // The owner removes bob.
    let (status, body) = server
        .post("unshare", Some(&alice.token), json!({"list_id": id, "target_email": bob.email}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(server.lists(&bob).await.is_empty());
    let (status, _) = server.get(&format!("/api/todolist/read?id={id}"), Some(&bob.token)).await;
    assert_eq!(status, 404);
    // Carol leaves by herself.
    let (status, _) = server
        .post("unshare", Some(&carol.token), json!({"list_id": id, "target_email": carol.email}))
        .await;
    assert_eq!(status, 200);
    assert!(server.lists(&carol).await.is_empty());
    // The owner cannot leave; removing a non-member is refused.
    let (status, _) = server
        .post("unshare", Some(&alice.token), json!({"list_id": id, "target_email": alice.email}))
        .await;
    assert_eq!(status, 422);
    let (status, _) = server
        .post("unshare", Some(&alice.token), json!({"list_id": id, "target_email": bob.email}))
        .await;
    assert_eq!(status, 422);

    // Unsharing a pending invitation cancels it.
    let later = email("later");
    server.share(&alice, id, &later, "EDITOR").await;
    let (status, _) = server
        .post("unshare", Some(&alice.token), json!({"list_id": id, "target_email": later}))
        .await;
    assert_eq!(status, 200);
    let late = server.signup(&later).await;
    assert!(server.lists(&late).await.is_empty());
}
