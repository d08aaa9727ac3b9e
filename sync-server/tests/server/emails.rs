//! Email addresses as an attacker spells them: Unicode normalisation forms, full-width forms,
//! case, the punycode spelling of a domain, and look-alikes that mix scripts.

use serde_json::json;

use crate::support::{PASSWORD, TestServer};

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
