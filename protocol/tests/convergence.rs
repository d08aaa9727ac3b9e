//! Convergence under a hostile network, over the sans-IO layer: 3 to 5 replicas sync through
//! the server's [`Room`], some speaking protocol version 1 (sync messages only), some version
//! 2 (saved batches streamed to them as frames, their own changes sent raw once in step, back
//! to sync messages when a frame does not apply); each seeded schedule makes random edits,
//! disconnects and reconnects replicas, and delivers messages late, out of order, twice or not
//! at all (dropped messages are retried by the sync protocol on the next round). At the end everyone reconnects and
//! syncs until quiet: every replica must hold the same document, with every item a replica
//! added and nobody removed.
//!
//! `TANDEM_SCHEDULES=N` runs N schedules (1,000 by default); `TANDEM_SEED=S` replays one.

use std::collections::{BTreeSet, VecDeque};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tandem_protocol::automerge::sync::{Message, State, SyncDoc as _};
use tandem_protocol::automerge::{ChangeHash, ReadDoc as _};
use tandem_protocol::room::Room;
use tandem_protocol::{ItemId, ListDoc, Role, UserId};

/// What travels from a replica to the room.
#[derive(Clone)]
enum Up {
    Sync(Vec<u8>),
    /// Version 2: raw changes.
    Changes(Vec<u8>),
}

/// What travels from the room to a replica.
#[derive(Clone)]
enum Down {
    Sync(Vec<u8>),
    /// Version 2: a saved batch and the heads after it.
    Frame(Vec<u8>, Vec<ChangeHash>),
}

struct Replica {
    doc: ListDoc,
    state: State,
    online: bool,
    /// Speaks protocol version 2.
    streams: bool,
    /// Version 2: changes already sent raw on this connection.
    sent_raw: BTreeSet<ChangeHash>,
    /// Frames on their way to the room / from the room.
    up: VecDeque<Up>,
    down: VecDeque<Down>,
}

impl Replica {
    /// The server's heads as this replica knows them, if it holds all of them and nothing it
    /// holds waits for a dependency: then it is in step, and (version 2) sends raw changes.
    fn in_step_at(&mut self) -> Option<Vec<ChangeHash>> {
        let theirs = self.state.their_heads.clone()?;
        let doc = self.doc.automerge();
        (doc.get_missing_deps(&theirs).is_empty() && doc.get_missing_deps(&[]).is_empty())
            .then_some(theirs)
    }
}

struct World {
    rng: StdRng,
    room: Room,
    replicas: Vec<Replica>,
    added: BTreeSet<u64>,
    removed: BTreeSet<u64>,
    next_item: u64,
    /// The list's version, as the server numbers saved batches.
    seq: u64,
}

impl World {
    fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let n = rng.gen_range(3..=5);
        let mut origin = ListDoc::new("Shared").unwrap();
        let mut room = Room::new(origin.clone());
        let replicas = (0..n)
            .map(|i| {
                let streams = rng.gen_bool(0.6);
                join(&mut room, i, streams);
                Replica {
                    doc: ListDoc::from_automerge(origin.automerge_mut().fork()),
                    state: State::new(),
                    online: true,
                    streams,
                    sent_raw: BTreeSet::new(),
                    up: VecDeque::new(),
                    down: VecDeque::new(),
                }
            })
            .collect();
        Self {
            rng,
            room,
            replicas,
            added: BTreeSet::new(),
            removed: BTreeSet::new(),
            next_item: 1,
            seq: 0,
        }
    }

    fn edit(&mut self, r: usize) {
        let doc = &mut self.replicas[r].doc;
        let items = doc.items().unwrap();
        let choice = if items.is_empty() { 0 } else { self.rng.gen_range(0..6) };
        match choice {
            0 | 1 => {
                let id = self.next_item * 10 + r as u64;
                self.next_item += 1;
                doc.add_item(ItemId(id), &format!("item {id}")).unwrap();
                self.added.insert(id);
            }
            2 => {
                let item = &items[self.rng.gen_range(0..items.len())];
                let text = format!("{} +{r}", item.content);
                doc.edit_content(item.id, &text).unwrap();
            }
            3 => {
                let item = &items[self.rng.gen_range(0..items.len())];
                doc.set_done(item.id, !item.done).unwrap();
            }
            4 => {
                let item = items[self.rng.gen_range(0..items.len())].id;
                if self.rng.gen_bool(0.5) || items.len() < 2 {
                    doc.move_to_first(item).unwrap();
                } else {
                    let after = items[self.rng.gen_range(0..items.len())].id;
                    if after != item {
                        doc.move_after(item, after).unwrap();
                    }
                }
            }
            _ => {
                let item = items[self.rng.gen_range(0..items.len())].id;
                doc.remove_item(item).unwrap();
                self.removed.insert(item.get());
            }
        }
    }

    /// One random step of the schedule.
    fn step(&mut self) {
        let r = self.rng.gen_range(0..self.replicas.len());
        match self.rng.gen_range(0..10) {
            0..=2 => self.edit(r),
            3 => {
                // Disconnect or reconnect: a new connection starts a fresh sync state on both
                // sides, and frames in flight are lost.
                let replica = &mut self.replicas[r];
                replica.online = !replica.online;
                replica.up.clear();
                replica.down.clear();
                replica.state = State::new();
                replica.sent_raw.clear();
                if replica.online {
                    join(&mut self.room, r, replica.streams);
                } else {
                    self.room.leave(r as u64);
                }
            }
            4 | 5 => self.replica_sends(r),
            6 | 7 => self.deliver_up(r),
            _ => self.deliver_down(r),
        }
    }

    fn replica_sends(&mut self, r: usize) {
        let replica = &mut self.replicas[r];
        if !replica.online {
            return;
        }
        if let Some(up) = next_up(replica) {
            replica.up.push_back(up);
        }
    }

    /// Takes a frame off a queue: usually the oldest, sometimes a later one (reordering),
    /// sometimes leaving a copy behind (duplication), sometimes losing it (drop).
    fn take<T: Clone>(rng: &mut StdRng, queue: &mut VecDeque<T>) -> Option<T> {
        if queue.is_empty() {
            return None;
        }
        let index = if rng.gen_bool(0.2) { rng.gen_range(0..queue.len()) } else { 0 };
        let frame = if rng.gen_bool(0.1) { queue[index].clone() } else { queue.remove(index)? };
        if rng.gen_bool(0.05) { None } else { Some(frame) }
    }

    fn deliver_up(&mut self, r: usize) {
        let Some(frame) = Self::take(&mut self.rng, &mut self.replicas[r].up) else { return };
        if !self.replicas[r].online {
            return;
        }
        // Out-of-order or duplicated frames may be refused; the protocol recovers later.
        let _ = match frame {
            Up::Sync(m) => self.room.receive(r as u64, &m),
            Up::Changes(c) => self.room.receive_changes(r as u64, &c),
        };
        self.save_and_send(|replicas, peer, down| replicas[peer].down.push_back(down));
    }

    /// Saves what the room merged, then streams it and sends each peer what it needs, handing
    /// each message to `deliver`.
    fn save_and_send(&mut self, mut deliver: impl FnMut(&mut Vec<Replica>, usize, Down)) {
        if self.room.unsaved().is_some() {
            self.seq += 1;
            self.room.mark_saved_as(self.seq);
        }
        for (batch, to) in self.room.stream() {
            for peer in to {
                deliver(
                    &mut self.replicas,
                    peer as usize,
                    Down::Frame(batch.chunk.clone(), batch.heads.clone()),
                );
            }
        }
        for peer in 0..self.replicas.len() {
            if self.replicas[peer].online {
                while let Some(m) = self.room.outgoing(peer as u64) {
                    deliver(&mut self.replicas, peer, Down::Sync(m));
                }
            }
        }
    }

    fn deliver_down(&mut self, r: usize) {
        let Some(frame) = Self::take(&mut self.rng, &mut self.replicas[r].down) else { return };
        let replica = &mut self.replicas[r];
        if !replica.online {
            return;
        }
        apply_down(replica, frame);
    }

    /// Everyone reconnects over a clean network and syncs until nothing more is said.
    fn settle(&mut self) {
        for (r, replica) in self.replicas.iter_mut().enumerate() {
            replica.online = true;
            replica.up.clear();
            replica.down.clear();
            replica.state = State::new();
            replica.sent_raw.clear();
            join(&mut self.room, r, replica.streams);
        }
        let mut last_round = Vec::new();
        for _round in 0..100 {
            let mut said = false;
            last_round.clear();
            for r in 0..self.replicas.len() {
                if let Some(up) = next_up(&mut self.replicas[r]) {
                    said = true;
                    let received = match &up {
                        Up::Sync(m) => {
                            let m = Message::decode(m).unwrap();
                            last_round.push(format!(
                                "replica {r}: sync, {} changes, {} heads, need {:?}",
                                m.changes.len(),
                                m.heads.len(),
                                m.need
                            ));
                            self.room.receive(r as u64, &m.encode())
                        }
                        Up::Changes(c) => {
                            last_round.push(format!("replica {r}: {} bytes of changes", c.len()));
                            self.room.receive_changes(r as u64, c)
                        }
                    };
                    last_round.push(format!("  room: {received:?}"));
                    received.expect("clean frames are accepted");
                }
                let mut sent = Vec::new();
                self.save_and_send(|_, peer, down| sent.push((peer, down)));
                for (peer, down) in sent {
                    said = true;
                    last_round.push(match &down {
                        Down::Sync(m) => {
                            let m = Message::decode(m).unwrap();
                            format!(
                                "room to {peer}: sync, {} changes, need {:?}",
                                m.changes.len(),
                                m.need
                            )
                        }
                        Down::Frame(c, _) => format!("room to {peer}: frame of {} bytes", c.len()),
                    });
                    apply_down(&mut self.replicas[peer], down);
                }
            }
            if !said {
                return;
            }
        }
        panic!("sync did not go quiet; the last round:\n{}", last_round.join("\n"));
    }
}

fn join(room: &mut Room, r: usize, streams: bool) {
    let (peer, user) = (r as u64, UserId(r as u64 + 1));
    if streams {
        room.join_streaming(peer, user, Role::Editor);
    } else {
        room.join(peer, user, Role::Editor);
    }
}

/// What a replica sends next, if anything: a version 2 replica in step sends its new changes
/// raw; otherwise (and to say where it stands) a sync message.
fn next_up(replica: &mut Replica) -> Option<Up> {
    if replica.streams
        && let Some(theirs) = replica.in_step_at()
    {
        let unsent: Vec<_> = replica
            .doc
            .automerge_mut()
            .get_changes(&theirs)
            .into_iter()
            .filter(|c| !replica.sent_raw.contains(&c.hash()))
            .collect();
        if !unsent.is_empty() {
            replica.sent_raw.extend(unsent.iter().map(|c| c.hash()));
            return Some(Up::Changes(unsent.iter().flat_map(|c| c.raw_bytes().to_vec()).collect()));
        }
    }
    let m = replica.doc.automerge_mut().sync().generate_sync_message(&mut replica.state)?;
    Some(Up::Sync(m.encode()))
}

/// A replica takes what the room sent. A frame that does not apply (a batch before it was
/// missed) leaves the replica out of step: it goes on with sync messages.
fn apply_down(replica: &mut Replica, down: Down) {
    match down {
        Down::Sync(m) => {
            if let Ok(m) = Message::decode(&m) {
                let _ =
                    replica.doc.automerge_mut().sync().receive_sync_message(&mut replica.state, m);
            }
        }
        Down::Frame(chunk, heads) => {
            let _ = replica.doc.load_incremental(&chunk);
            if replica.doc.automerge().get_missing_deps(&heads).is_empty() {
                // As if the server had said its heads in a sync message.
                replica.state.their_heads = Some(heads.clone());
                replica.state.shared_heads = heads;
            } else {
                // Missed a batch: say where we stand, and catch up by sync messages.
                replica.state.their_heads = None;
            }
        }
    }
}

fn run(seed: u64) -> Result<(), String> {
    let mut world = World::new(seed);
    let steps = world.rng.gen_range(50..300);
    for _ in 0..steps {
        world.step();
    }
    world.settle();
    let expected: Vec<u64> = world.added.difference(&world.removed).copied().collect();
    let server = world.room.doc().clone();
    server.validate().map_err(|e| format!("server document invalid: {e}"))?;
    let reference = server.items().unwrap();
    let mut ids: Vec<u64> = reference.iter().map(|i| i.id.get()).collect();
    ids.sort_unstable();
    if ids != expected {
        return Err(format!("server items {ids:?}, expected {expected:?}"));
    }
    for (r, replica) in world.replicas.iter().enumerate() {
        if replica.doc.items().unwrap() != reference
            || replica.doc.title().unwrap() != server.title().unwrap()
        {
            return Err(format!("replica {r} differs from the server"));
        }
    }
    Ok(())
}

#[test]
fn every_replica_converges_under_a_hostile_network() {
    if let Ok(seed) = std::env::var("TANDEM_SEED") {
        let seed: u64 = seed.parse().expect("TANDEM_SEED is a number");
        run(seed).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        return;
    }
    let schedules: u64 =
        std::env::var("TANDEM_SCHEDULES").ok().and_then(|s| s.parse().ok()).unwrap_or(1000);
    for seed in 0..schedules {
        let outcome = std::panic::catch_unwind(|| run(seed));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("seed {seed} failed (replay with TANDEM_SEED={seed}): {e}"),
            Err(_) => panic!("seed {seed} panicked (replay with TANDEM_SEED={seed})"),
        }
    }
}
