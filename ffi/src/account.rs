//! The account values the bindings hand out: the answer to `register`, the signed-in user,
//! and what the store remembers about the account.

use tandem_client as core;

/// The answer to `register`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RegisterResult {
    /// The server runs in demo mode: the code comes back here instead of by email.
    pub is_demo: bool,
    /// The verification code, in demo mode only.
    pub demo_code: Option<String>,
}

impl From<core::RegisterOutcome> for RegisterResult {
    fn from(outcome: core::RegisterOutcome) -> Self {
        Self { is_demo: outcome.is_demo, demo_code: outcome.demo_code }
    }
}

/// A user as the server describes them.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct User {
    /// The account's id.
    pub id: u64,
    /// The account's email.
    pub email: String,
}

impl From<core::User> for User {
    fn from(user: core::User) -> Self {
        Self { id: user.id.get(), email: user.email }
    }
}

/// What the local store knows about the account, without asking the server.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Account {
    /// The server this store belongs to.
    pub server_url: String,
    /// The user last signed in here, if any.
    pub user: Option<User>,
    /// Whether a token is stored (it may still be refused by the server).
    pub signed_in: bool,
}

impl From<core::Account> for Account {
    fn from(account: core::Account) -> Self {
        Self {
            server_url: account.server_url,
            user: account.user.map(User::from),
            signed_in: account.signed_in,
        }
    }
}
