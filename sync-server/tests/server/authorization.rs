//! The authorization matrix: owner, editor, viewer, non-member and anonymous, against every
//! call on a list.

use serde_json::{Value, json};

use crate::support::{TestServer, TestUser, email};

#[derive(Clone, Copy, Debug)]
enum Who {
    Owner,
    Editor,
    Viewer,
    Stranger,
    Anonymous,
}

const EVERYONE: [Who; 5] = [Who::Owner, Who::Editor, Who::Viewer, Who::Stranger, Who::Anonymous];

struct World {
    server: TestServer,
    owner: TestUser,
    editor: TestUser,
    viewer: TestUser,
    stranger: TestUser,
    extra: TestUser,
    list: u64,
}

impl World {
    async fn new() -> Self {
        let server = TestServer::start().await;
        let owner = server.signup(&email("owner")).await;
        let editor = server.signup(&email("editor")).await;
        let viewer = server.signup(&email("viewer")).await;
        let stranger = server.signup(&email("stranger")).await;
        let extra = server.signup(&email("extra")).await;
        let list = server.create_list(&owner, "Matrix").await;
        server.share(&owner, list, &editor.email, "EDITOR").await;
        server.share(&owner, list, &viewer.email, "VIEWER").await;
        Self { server, owner, editor, viewer, stranger, extra, list }
    }

    fn token(&self, who: Who) -> Option<&str> {
        match who {
            Who::Owner => Some(&self.owner.token),
            Who::Editor => Some(&self.editor.token),
            Who::Viewer => Some(&self.viewer.token),
            Who::Stranger => Some(&self.stranger.token),
            Who::Anonymous => None,
        }
    }

    async fn post(&self, who: Who, call: &str, body: Value) -> u16 {
        self.server.post(call, self.token(who), body).await.0
    }
}

#[tokio::test]
async fn every_call_answers_by_role() {
    let w = World::new().await;
    let id = w.list;

    // read (list of lists, and the list itself)
    for (who, expected) in EVERYONE.into_iter().zip([200, 200, 200, 200, 401]) {
        assert_eq!(
            w.server.get("/api/todolist/read", w.token(who)).await.0,
            expected,
            "read all as {who:?}"
        );
    }
    for (who, expected) in EVERYONE.into_iter().zip([200, 200, 200, 404, 401]) {
        let status = w.server.get(&format!("/api/todolist/read?id={id}"), w.token(who)).await.0;
        assert_eq!(status, expected, "read one as {who:?}");
    }
    // create needs only an account
    for (who, expected) in EVERYONE.into_iter().zip([200, 200, 200, 200, 401]) {
        assert_eq!(
            w.post(who, "create", json!({"title": "x"})).await,
            expected,
            "create as {who:?}"
        );
    }
    // reserve_ids needs only an account
    for (who, expected) in EVERYONE.into_iter().zip([200, 200, 200, 200, 401]) {
        assert_eq!(
            w.post(who, "reserve_ids", json!({"count": 1})).await,
            expected,
            "reserve as {who:?}"
        );
    }
    // update
    for (who, expected) in EVERYONE.into_iter().zip([200, 200, 403, 404, 401]) {
        assert_eq!(
            w.post(who, "update", json!({"id": id, "title": "t"})).await,
            expected,
            "update as {who:?}"
        );
    }
    // sharelist
    let share = json!({"list_id": id, "target_email": w.extra.email, "permission": "VIEWER"});
    for (who, expected) in EVERYONE.into_iter().zip([200, 403, 403, 404, 401]) {
        assert_eq!(w.post(who, "sharelist", share.clone()).await, expected, "share as {who:?}");
    }
    // unshare someone else (extra is a viewer now; the owner's call removes them last)
    let unshare = json!({"list_id": id, "target_email": w.extra.email});
    for (who, expected) in [Who::Editor, Who::Viewer, Who::Stranger, Who::Anonymous, Who::Owner]
        .into_iter()
        .zip([403, 403, 404, 401, 200])
    {
        assert_eq!(w.post(who, "unshare", unshare.clone()).await, expected, "unshare as {who:?}");
    }
    // delete (the owner last)
    for (who, expected) in [Who::Editor, Who::Viewer, Who::Stranger, Who::Anonymous, Who::Owner]
        .into_iter()
        .zip([403, 403, 404, 401, 200])
    {
        assert_eq!(w.post(who, "delete", json!({"id": id})).await, expected, "delete as {who:?}");
    }
}

#[tokio::test]
async fn refused_calls_change_nothing() {
    let w = World::new().await;
    let id = w.list;
    w.post(Who::Viewer, "update", json!({"id": id, "title": "viewer was here"})).await;
    w.post(Who::Stranger, "update", json!({"id": id, "title": "stranger was here"})).await;
    w.post(Who::Editor, "delete", json!({"id": id})).await;
    w.post(
        Who::Editor,
        "sharelist",
        json!({"list_id": id, "target_email": w.stranger.email, "permission": "EDITOR"}),
    )
    .await;
    let (_, body) =
        w.server.get(&format!("/api/todolist/read?id={id}"), Some(&w.owner.token)).await;
    assert_eq!(body["data"]["title"], "Matrix");
    assert_eq!(body["data"]["version"], 1);
    assert_eq!(body["data"]["collaborators"].as_array().unwrap().len(), 3);
    assert!(w.server.lists(&w.stranger).await.is_empty());
}

#[tokio::test]
async fn a_stranger_cannot_tell_a_hidden_list_from_a_missing_one() {
    let w = World::new().await;
    let hidden =
        w.server.get(&format!("/api/todolist/read?id={}", w.list), Some(&w.stranger.token)).await;
    let missing = w.server.get("/api/todolist/read?id=123456789", Some(&w.stranger.token)).await;
    assert_eq!(hidden, missing);
}
