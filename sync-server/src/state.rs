//! The state every request handler shares: one [`AppState`], cloned per request.

use std::sync::Arc;

use tandem_protocol::snowflake::Snowflake;
use tokio_util::sync::CancellationToken;

use crate::auth::code::CodeHasher;
use crate::auth::password::PasswordHasher;
use crate::auth::throttle::Throttle;
use crate::auth::token::TokenKeys;
use crate::config::Config;
use crate::mailer::Mailer;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::sync::Hub;

/// Shared server state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The sharded store.
    pub store: Store,
    /// Issues and checks tokens.
    pub tokens: TokenKeys,
    /// Hashes passwords off the async threads.
    pub passwords: PasswordHasher,
    /// Hashes verification codes.
    pub codes: CodeHasher,
    /// Rate limits on account calls.
    pub throttle: Arc<Throttle>,
    /// Makes list and user ids.
    pub ids: Arc<Snowflake>,
    /// Delivers verification codes.
    pub mailer: Mailer,
    /// Real-time sync: rooms and sockets.
    pub hub: Hub,
    /// The server's metrics (a recorder of this instance's own).
    pub metrics: Arc<Metrics>,
    /// Cancelled when the server starts draining: `/readyz` answers 503 from then on.
    pub draining: CancellationToken,
    /// The configuration the server started with.
    pub config: Arc<Config>,
}
