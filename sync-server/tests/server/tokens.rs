//! Tokens that are correctly signed but name no account: refused on REST and on the sync
//! socket, as a forged one would be.

use std::time::Duration;

use tandem_protocol::UserId;
use tandem_server::auth::token::TokenKeys;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::support::{TestServer, email};

const SECRET: &str = "a-test-secret-that-is-long-enough-for-hs256";

#[tokio::test]
async fn a_signed_token_for_a_user_that_does_not_exist_is_refused() {
    let server =
        TestServer::start_with(|config| config.auth.jwt_secret = Some(SECRET.into())).await;
    let real = server.signup(&email("real")).await;
    // Signed with the server's own secret, for an id no account has (a deleted account, or
    // another deployment sharing the secret).
    let keys = TokenKeys::new(SECRET.as_bytes(), Duration::from_secs(600)).unwrap();
    let ghost = keys.issue(UserId(real.id + 1), "ghost@example.com");
    // Even the real account's id with another email is the account, as stored.
    let renamed = keys.issue(UserId(real.id), "someone-else@example.com");

    let (status, body) = server.get("/api/todolist/read", Some(&ghost)).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["message"].as_str().unwrap().contains("does not exist"), "{body}");
    let (status, body) =
        server.post("create", Some(&ghost), serde_json::json!({"title": "Squat"})).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) =
        server.post("reserve_ids", Some(&ghost), serde_json::json!({"count": 5})).await;
    assert_eq!(status, 401, "{body}");

    let url = format!("{}/api/todolist/sync", server.base.replace("http://", "ws://"));
    let mut request = url.clone().into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {ghost}").parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        other => panic!("expected an HTTP 401, got {:?}", other.map(|_| ())),
    }
    match tokio_tungstenite::connect_async(format!("{url}?access_token={ghost}")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        other => panic!("expected an HTTP 401, got {:?}", other.map(|_| ())),
    }

    // The real account's token works, and its email is the stored one whatever the token says.
    let (status, _) = server.get("/api/todolist/read", Some(&renamed)).await;
    assert_eq!(status, 200);
    let list = server
        .create_list(&crate::support::TestUser { token: renamed, ..real.clone() }, "Mine")
        .await;
    let (_, body) = server.get(&format!("/api/todolist/read?id={list}"), Some(&real.token)).await;
    assert_eq!(body["data"]["collaborators"][0]["email"], real.email.as_str());
}
