//! Changes that arrive before their dependencies. Automerge would park them in the
//! document's queue, where they stay for good: `save()` writes them into the stored document,
//! every new replica is sent them, and one that reuses another member's actor id and next
//! sequence number blocks that member's real change. The room never gives Automerge such a
//! change. It keeps it aside for the peer that sent it, asks that peer for what is missing
//! (an honest peer sends a change before its dependencies only when Automerge's Bloom filter
//! gave a false positive), and drops it if the peer's next message brings none of what was
//! asked for. (A peer can only bring a change whose hash a dependency names by having that
//! change: made-up dependencies never make progress, while an honest peer whose answer
//! itself waits for a dependency, after a second false positive, keeps its changes.)

use std::collections::{HashMap, HashSet, VecDeque};

use automerge::ChangeHash;

use crate::intake::Incoming;

/// A peer's changes sorted by what can be applied now.
#[derive(Debug, Default)]
pub(super) struct Sorted {
    /// Changes whose dependencies are all in the document or earlier here, in an order in
    /// which they can be applied.
    pub(super) ready: Vec<Incoming>,
    /// Changes of the latest message still waiting for a dependency.
    pub(super) waiting: Vec<Incoming>,
    /// Changes held since the peer's previous message that are still waiting, when the
    /// latest message brought nothing they wait for: dropped.
    pub(super) dropped: usize,
}

/// Sorts `held` (kept from the peer's previous message) and `new` (its latest message):
/// changes the document has (`has`) or that repeat are skipped; the rest are applied in
/// dependency order where they can be (Kahn's algorithm, linear in the changes).
pub(super) fn sort(
    has: impl Fn(&ChangeHash) -> bool,
    held: Vec<Incoming>,
    new: Vec<Incoming>,
) -> Sorted {
    // What the held changes were waiting for, and whether the new message brought any of it.
    let held_hashes: HashSet<ChangeHash> = held.iter().map(|i| i.change.hash()).collect();
    let asked: HashSet<ChangeHash> = held
        .iter()
        .flat_map(|i| i.change.deps().iter().copied())
        .filter(|dep| !held_hashes.contains(dep) && !has(dep))
        .collect();
    let progress = new.iter().any(|i| asked.contains(&i.change.hash()));
    // (change, whether it was held before), in arrival order, without repeats.
    let mut pool: Vec<(Incoming, bool)> = Vec::new();
    let mut index: HashMap<ChangeHash, usize> = HashMap::new();
    for (incoming, was_held) in
        held.into_iter().map(|i| (i, true)).chain(new.into_iter().map(|i| (i, false)))
    {
        let hash = incoming.change.hash();
        if has(&hash) || index.contains_key(&hash) {
            continue;
        }
        index.insert(hash, pool.len());
        pool.push((incoming, was_held));
    }
    let mut waiting_on = vec![0usize; pool.len()];
    let mut blocked = vec![false; pool.len()];
    let mut dependents: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, (incoming, _)) in pool.iter().enumerate() {
        let mut deps: HashSet<ChangeHash> = HashSet::new();
        for dep in incoming.change.deps() {
            if !deps.insert(*dep) || has(dep) {
                continue;
            }
            match index.get(dep) {
                Some(&j) => {
                    waiting_on[i] += 1;
                    dependents.entry(j).or_default().push(i);
                }
                None => blocked[i] = true,
            }
        }
    }
    let mut queue: VecDeque<usize> =
        (0..pool.len()).filter(|&i| waiting_on[i] == 0 && !blocked[i]).collect();
    let mut order = Vec::with_capacity(pool.len());
    while let Some(i) = queue.pop_front() {
        order.push(i);
        for &d in dependents.get(&i).map(Vec::as_slice).unwrap_or_default() {
            waiting_on[d] -= 1;
            if waiting_on[d] == 0 && !blocked[d] {
                queue.push_back(d);
            }
        }
    }
    let mut slots: Vec<Option<(Incoming, bool)>> = pool.into_iter().map(Some).collect();
    let mut sorted = Sorted::default();
    for i in order {
        let (incoming, _) = slots[i].take().expect("each change is ordered once");
        sorted.ready.push(incoming);
    }
    for (incoming, was_held) in slots.into_iter().flatten() {
        if was_held && !progress {
            sorted.dropped += 1;
        } else {
            sorted.waiting.push(incoming);
        }
    }
    sorted
}
