//! Bad input gets a clear error in the envelope, changes nothing, and is never a 500.

use serde_json::json;

use crate::support::{TestServer, email};

#[tokio::test]
async fn malformed_bodies_are_400_in_the_envelope() {
    let server = TestServer::start().await;
    let alice = server.signup(&email("alice")).await;
    let t = Some(alice.token.as_str());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("create", b"{".to_vec()),
        ("create", b"".to_vec()),
        ("create", b"[1,2]".to_vec()),
        ("create", br#"{"titel":"typo"}"#.to_vec()),
        ("create", br#"{"title":42}"#.to_vec()),
        ("update", br#"{"id":"1001","title":"x"}"#.to_vec()),
        ("update", br#"{"id":-1,"title":"x"}"#.to_vec()),
        ("update", br#"{"id":1.5,"title":"x"}"#.to_vec()),
        ("delete", br#"{"id":18446744073709551616}"#.to_vec()),
        ("sharelist", br#"{"list_id":1,"target_email":"a@b.com"}"#.to_vec()),
        ("register", b"\xff\xfe".to_vec()),
        ("login", br#"{"email":null,"password":"x"}"#.to_vec()),
    ];
    for (call, body) in cases {
        let (status, reply) = server.post_raw(call, t, body.clone()).await;
        assert_eq!(status, 400, "{call} {}: {reply}", String::from_utf8_lossy(&body));
        assert!(!reply["message"].as_str().unwrap().is_empty());
    }
    let (status, _) = server.get("/api/todolist/read?id=abc", t).await;
    assert_eq!(status, 400);
    let (status, _) = server.get("/api/todolist/read?id=-5", t).await;
    assert_eq!(status, 400);
    assert!(server.lists(&alice).await.is_empty(), "nothing was created");
}

#[tokio::test]
async fn ids_out_of_range_name_no_list() {
    let server = TestServer::start().await;
    let alice = server.signup(&email("alice")).await;
    for id in [0u64, 1 << 53, u64::MAX] {
        let (status, _) =
            server.get(&format!("/api/todolist/read?id={id}"), Some(&alice.token)).await;
        assert_eq!(status, 404, "{id}");
        let (status, _) =
            server.post("update", Some(&alice.token), json!({"id": id, "title": "x"})).await;
        assert_eq!(status, 404, "{id}");
    }
}

#[tokio::test]
async fn bodies_over_64_kib_are_413() {
    let server = TestServer::start().await;
    let alice = server.signup(&email("alice")).await;
    let big = json!({"title": "x".repeat(70 * 1024)}).to_string().into_bytes();
    let (status, body) = server.post_raw("create", Some(&alice.token), big).await;
    assert_eq!(status, 413, "{body}");
    let (status, _) = server
        .post_raw(
            "register",
            None,
            json!({"email": "a@example.com", "password": "p".repeat(100_000)})
                .to_string()
                .into_bytes(),
        )
        .await;
    assert_eq!(status, 413);
    assert!(server.lists(&alice).await.is_empty());
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_envelope() {
    let server = TestServer::start().await;
    let (status, body) = server.get("/api/todolist/nope", None).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = server.get("/api/todolist/create", None).await;
    assert_eq!(status, 405, "{body}");
}

#[tokio::test]
async fn health_and_openapi_are_served() {
    let server = TestServer::start().await;
    let (status, body) = server.get("/healthz", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["ok"], true);

    let resp = reqwest::get(format!("{}/api/openapi.json", server.base)).await.unwrap();
    assert_eq!(resp.status(), 200);
    let doc: serde_json::Value = resp.json().await.unwrap();
    for call in [
        "register",
        "verify",
        "login",
        "create",
        "read",
        "update",
        "delete",
        "sharelist",
        "unshare",
    ] {
        assert!(
            doc["paths"].get(format!("/api/todolist/{call}")).is_some(),
            "{call} missing from OpenAPI"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}
