//! Email addresses as an attacker spells them: Unicode normalisation forms, full-width forms,
//! case, the punycode spelling of a domain, and look-alikes that mix scripts.

use serde_json::json;
use tandem_server::Server;
use tandem_server::auth::password::PasswordHasher;
use tandem_server::store::database::sqlite_url;

use crate::support::{PASSWORD, TestServer, test_config};

/// `josé@bücher.example` in its composed (NFC) form.
const NFC: &str = "jos\u{e9}@b\u{fc}cher.example";
/// What the server stores and shows for it: the domain in its IDNA ASCII form.
const STORED: &str = "jos\u{e9}@xn--bcher-kva.example";

/// Other spellings of the same address.
const SPELLINGS: [&str; 4] = [
    "jose\u{301}@bu\u{308}cher.example", // decomposed (NFD)
    "JOS\u{c9}@B\u{dc}CHER.Example",     // upper case
    "\u{ff4a}\u{ff4f}\u{ff53}\u{e9}\u{ff20}b\u{fc}cher\u{ff0e}example", // full-width forms
    "Jose\u{301}@XN--BCHER-KVA.example", // punycode domain
];

#[tokio::test]
async fn every_spelling_of_an_address_is_one_account() {
    let server = TestServer::start().await;
    let code = server.register(NFC, PASSWORD).await;
    // Verifying with another spelling verifies the same account.
    let (status, body) =
        server.post("verify", None, json!({"email": SPELLINGS[0], "code": code})).await;
    assert_eq!(status, 200, "{body}");

    for spelling in SPELLINGS {
        let (status, body) =
            server.post("register", None, json!({"email": spelling, "password": PASSWORD})).await;
        assert_eq!(status, 409, "registering {spelling:?} again: {body}");
    }

    let first = server.login(NFC, PASSWORD).await;
    assert_eq!(first.email, STORED);
    for spelling in SPELLINGS {
        let user = server.login(spelling, PASSWORD).await;
        assert_eq!((user.id, user.email.as_str()), (first.id, STORED), "{spelling:?}");
    }
}

#[tokio::test]
async fn sharing_with_any_spelling_reaches_the_one_account() {
    let server = TestServer::start().await;
    let alice = server.signup("alice@example.com").await;
    let jose = server.signup(NFC).await;
    let list = server.create_list(&alice, "Shared").await;
    server.share(&alice, list, SPELLINGS[2], "EDITOR").await;
    assert_eq!(server.lists(&jose).await, [(list, "Shared".to_owned(), "EDITOR".to_owned())]);

    // An invitation to a spelling with no account yet waits for the account, whatever
    // spelling it registers with.
    let invited = server.create_list(&alice, "For later").await;
    server.share(&alice, invited, "ZOE\u{308}@example.com", "VIEWER").await;
    let zoe = server.signup("zo\u{eb}@example.com").await;
    assert_eq!(server.lists(&zoe).await, [(invited, "For later".to_owned(), "VIEWER".to_owned())]);

    // Removing a member by another spelling of the address works too.
    let (status, body) = server
        .post("unshare", Some(&alice.token), json!({"list_id": list, "target_email": SPELLINGS[0]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(server.lists(&jose).await.is_empty());
}

#[tokio::test]
async fn look_alike_addresses_that_mix_scripts_are_refused() {
    let server = TestServer::start().await;
    let owner = server.signup("paypal@example.com").await;
    let list = server.create_list(&owner, "Payments").await;
    let cyrillic_a = '\u{430}';
    let mixed_domain = format!("ex{cyrillic_a}mple.com");
    let punycode = idna::domain_to_ascii(&mixed_domain).unwrap();
    for address in [
        format!("p{cyrillic_a}ypal@example.com"), // Cyrillic а among Latin letters
        format!("paypal@{mixed_domain}"),         // the same in the domain
        format!("paypal@{punycode}"),             // and its punycode spelling
        "\u{3bf}livia@example.com".to_owned(),    // a Greek omicron
    ] {
        let (status, body) =
            server.post("register", None, json!({"email": address, "password": PASSWORD})).await;
        assert_eq!(status, 422, "{address:?}: {body}");
        assert!(body["message"].as_str().unwrap().contains("mixes scripts"), "{body}");
        let (status, body) = server
            .post(
                "sharelist",
                Some(&owner.token),
                json!({"list_id": list, "target_email": address, "permission": "EDITOR"}),
            )
            .await;
        assert_eq!(status, 422, "{address:?}: {body}");
    }
    // Nothing was recorded: the owner's list still has only its owner.
    let (_, body) = server.get(&format!("/api/todolist/read?id={list}"), Some(&owner.token)).await;
    assert_eq!(body["data"]["collaborators"].as_array().unwrap().len(), 1);

    // Addresses in one script, or in a mix that does not imitate another, are welcome.
    for address in ["иван@пример.рф", "山田たろう@example.jp", "tanaka山田@example.jp"]
    {
        let (status, body) =
            server.post("register", None, json!({"email": address, "password": PASSWORD})).await;
        assert_eq!(status, 200, "{address:?}: {body}");
    }
}

#[tokio::test]
async fn accounts_stored_before_the_normal_form_are_rewritten_by_normalise_emails() {
    let mut server = TestServer::start().await;
    let alice = server.signup("alice@example.com").await;
    let shared = server.create_list(&alice, "Old friends").await;
    let invited = server.create_list(&alice, "For Zoe").await;
    let dir = server.dir.path().to_path_buf();
    server.stop().await;

    // Rows as the previous release wrote them (trimmed and lower-cased only): an account in
    // NFD with a Unicode domain, a member of Alice's list, and an invitation in NFD.
    let legacy = "jose\u{301}@b\u{fc}cher.example";
    let hash = PasswordHasher::new(1).await.unwrap().hash(PASSWORD.into()).await.unwrap();
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&sqlite_url(&dir.join("tandem.db"))).await.unwrap();
    let now = 1_700_000_000_000i64;
    let (shared_id, invited_id) = (shared as i64, invited as i64);
    sqlx::query(
        "INSERT INTO users (user_id, email, password_hash, verified_at, created_at, updated_at)
         VALUES (4242, $1, $2, $3, $3, $3)",
    )
    .bind(legacy)
    .bind(&hash)
    .bind(now)
    .execute(&db)
    .await
    .unwrap();
    sqlx::query("INSERT INTO user_emails (email, user_id, created_at) VALUES ($1, 4242, $2)")
        .bind(legacy)
        .bind(now)
        .execute(&db)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO list_collaborators (list_id, user_id, email, role, created_at)
         VALUES ($1, 4242, $2, 2, $3)",
    )
    .bind(shared_id)
    .bind(legacy)
    .bind(now)
    .execute(&db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO user_list_index (user_id, list_id, role, created_at) VALUES (4242, $1, 2, $2)",
    )
    .bind(shared_id)
    .bind(now)
    .execute(&db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO pending_invitations (email, list_id, role, invited_by, created_at)
         VALUES ($1, $2, 3, $3, $4)",
    )
    .bind("zoe\u{308}@example.com")
    .bind(invited_id)
    .bind(alice.id as i64)
    .bind(now)
    .execute(&db)
    .await
    .unwrap();
    db.close().await;

    // Before: the account is out of reach under every spelling.
    let restarted = Server::start(test_config(&dir)).await.unwrap();
    let client = TestServer::at(format!("http://{}", restarted.addr()));
    let (status, _) = client.post("login", None, json!({"email": NFC, "password": PASSWORD})).await;
    assert_eq!(status, 401);
    restarted.shutdown().await.unwrap();

    let run = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tandem-server"))
            .arg("--data-dir")
            .arg(&dir)
            .arg("normalise-emails")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let first = run();
    assert!(first.contains("1 accounts rewritten, 1 invitations moved"), "{first}");
    let again = run();
    assert!(again.contains("0 accounts rewritten, 0 invitations moved"), "{again}");

    let restarted = Server::start(test_config(&dir)).await.unwrap();
    let client = TestServer::at(format!("http://{}", restarted.addr()));
    let jose = client.login(SPELLINGS[0], PASSWORD).await;
    assert_eq!((jose.id, jose.email.as_str()), (4242, STORED));
    assert_eq!(
        client.lists(&jose).await,
        [(shared, "Old friends".to_owned(), "EDITOR".to_owned())]
    );
    let (_, body) =
        client.get(&format!("/api/todolist/read?id={shared}"), Some(&alice.token)).await;
    let emails: Vec<&str> = body["data"]["collaborators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["email"].as_str().unwrap())
        .collect();
    assert!(emails.contains(&STORED), "{emails:?}");
    let zoe = client.signup("zo\u{eb}@example.com").await;
    assert_eq!(client.lists(&zoe).await, [(invited, "For Zoe".to_owned(), "VIEWER".to_owned())]);
    restarted.shutdown().await.unwrap();
}
