//! Limits per user on this node, across all of the user's sync sockets: how many sockets may
//! be open at once, and how many messages per second they may send together. Per-socket
//! limits alone let one account buy capacity by opening more sockets.
//!
//! A socket takes a [`SocketSlot`] before its upgrade (so a refusal costs no socket task)
//! and gives it back when the slot is dropped: when the socket ends, or when the upgrade
//! never completes.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tandem_protocol::UserId;

/// Keys of the message limiter kept beyond the users with open sockets before idle ones are
/// swept.
const SWEEP_SLACK: usize = 1024;

/// The per-user socket slots and message budget of one server node.
#[derive(Debug)]
pub struct UserLimits {
    max_sockets: usize,
    sockets: Mutex<HashMap<UserId, usize>>,
    messages: DefaultKeyedRateLimiter<UserId>,
}

/// One open (or opening) socket of a user; dropping it frees the slot.
#[derive(Debug)]
pub struct SocketSlot {
    limits: Arc<UserLimits>,
    user: UserId,
}

impl UserLimits {
    /// At most `max_sockets` sockets per user and `messages_per_second` messages per second
    /// per user (also the burst; 0 is taken as 1).
    pub fn new(max_sockets: usize, messages_per_second: u32) -> Self {
        let quota =
            Quota::per_second(NonZeroU32::new(messages_per_second).unwrap_or(NonZeroU32::MIN));
        Self { max_sockets, sockets: Mutex::default(), messages: RateLimiter::keyed(quota) }
    }

    /// A slot for one more socket of `user`, or `None` if the user has the most allowed.
    pub fn claim(self: &Arc<Self>, user: UserId) -> Option<SocketSlot> {
        let mut sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        let open = sockets.entry(user).or_default();
        if *open >= self.max_sockets {
            if *open == 0 {
                sockets.remove(&user);
            }
            return None;
        }
        *open += 1;
        Some(SocketSlot { limits: Arc::clone(self), user })
    }

    /// Counts one message of `user`; false when the user is over their rate.
    pub fn allow_message(&self, user: UserId) -> bool {
        self.messages.check_key(&user).is_ok()
    }

    /// Sockets `user` has open (or opening) now.
    pub fn open_sockets(&self, user: UserId) -> usize {
        self.sockets.lock().unwrap_or_else(|p| p.into_inner()).get(&user).copied().unwrap_or(0)
    }

    fn release(&self, user: UserId) {
        let users = {
            let mut sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(open) = sockets.get_mut(&user) {
                *open -= 1;
                if *open == 0 {
                    sockets.remove(&user);
                }
            }
            sockets.len()
        };
        // Keys of users who went away are forgotten once their budget has fully recovered
        // (forgetting earlier would hand out a fresh burst), in sweeps amortised over many
        // disconnections.
        if self.messages.len() > 2 * users + SWEEP_SLACK {
            self.messages.retain_recent();
        }
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        self.limits.release(self.user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_per_user_and_freed_when_dropped() {
        let limits = Arc::new(UserLimits::new(2, 10));
        let (a, b) = (UserId(1), UserId(2));
        let first = limits.claim(a).unwrap();
        let _second = limits.claim(a).unwrap();
        assert!(limits.claim(a).is_none());
        let _other = limits.claim(b).expect("another user has their own slots");
        drop(first);
        assert_eq!(limits.open_sockets(a), 1);
        let _third = limits.claim(a).expect("a freed slot is taken again");
    }

    #[test]
    fn the_message_budget_is_per_user() {
        let limits = UserLimits::new(2, 3);
        for _ in 0..3 {
            assert!(limits.allow_message(UserId(1)));
        }
        assert!(!limits.allow_message(UserId(1)));
        assert!(limits.allow_message(UserId(2)));
    }
}
