//! Rate limits on the account calls (register, verify, login), per account (normalised email)
//! and per client address, so that neither guessing one account's password from many
//! addresses nor many accounts from one address goes fast.
//!
//! GCRA limiters from `governor`, in memory, per node. A refusal says when to come back
//! (`Retry-After`).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Deserialize;

/// The account calls that are throttled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `POST register`.
    Register,
    /// `POST verify`.
    Verify,
    /// `POST login`.
    Login,
}

/// How many calls of each throttled kind are allowed per minute (also the burst).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleConfig {
    /// Calls per minute for one account (email), per action.
    pub per_account_per_minute: u32,
    /// Calls per minute from one client address, per action.
    pub per_address_per_minute: u32,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self { per_account_per_minute: 10, per_address_per_minute: 60 }
    }
}

/// Refused: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

type Limiter<K> = DefaultKeyedRateLimiter<K>;

/// The limiters of one server node.
#[derive(Debug)]
pub struct Throttle {
    accounts: Limiter<(Action, String)>,
    addresses: Limiter<(Action, IpAddr)>,
    clock: DefaultClock,
}

impl Throttle {
    /// Limiters with the configured rates (0 is taken as 1).
    pub fn new(config: ThrottleConfig) -> Self {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        Self {
            accounts: RateLimiter::keyed(quota(config.per_account_per_minute)),
            addresses: RateLimiter::keyed(quota(config.per_address_per_minute)),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one `action` for `account` from `address`, or says how long to wait. The
    /// address is checked first, so a flood from one address does not lock its victims out.
    pub fn check(
        &self,
        action: Action,
        account: &str,
        address: Option<IpAddr>,
    ) -> Result<(), RetryAfter> {
        if let Some(address) = address {
            self.addresses
                .check_key(&(action, address))
                .map_err(|not_until| RetryAfter(not_until.wait_time_from(self.clock.now())))?;
        }
        self.accounts
            .check_key(&(action, account.to_owned()))
            .map_err(|not_until| RetryAfter(not_until.wait_time_from(self.clock.now())))
    }

    /// Forgets keys whose limits have fully recovered, so memory follows recent callers.
    pub fn forget_idle(&self) {
        self.accounts.retain_recent();
        self.addresses.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_account_and_address_has_its_own_budget() {
        let throttle =
            Throttle::new(ThrottleConfig { per_account_per_minute: 3, per_address_per_minute: 5 });
        let home: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..3 {
            throttle.check(Action::Login, "a@x.com", Some(home)).unwrap();
        }
        let wait = throttle.check(Action::Login, "a@x.com", Some(home)).unwrap_err();
        assert!(wait.0 > Duration::ZERO && wait.0 <= Duration::from_secs(60));
        // Another action on the same account, and another account, are unaffected.
        throttle.check(Action::Verify, "a@x.com", Some(home)).unwrap();
        throttle.check(Action::Login, "b@x.com", Some(home)).unwrap();
        // The address has now made 5 login attempts (4 counted before the account refusal
        // plus b's): the next login from it is refused whatever the account.
        assert!(throttle.check(Action::Login, "c@x.com", Some(home)).is_err());
        let elsewhere: IpAddr = "10.0.0.2".parse().unwrap();
        throttle.check(Action::Login, "c@x.com", Some(elsewhere)).unwrap();
    }
}
