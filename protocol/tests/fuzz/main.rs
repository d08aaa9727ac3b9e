//! Fuzzing the code that reads what peers send (issue 11): the wire decoders
//! (`ClientMessage::decode`, `ServerMessage::decode`), the room's receive path (`Room`), and
//! the document loader (`ListDoc::load`, `load_incremental`, `validate`).
//!
//! Seeded with real exchanges ([`record`], kept in `fuzz-corpus/seeds/`), mutated from blind
//! bit flips up to structure-aware edits of Automerge chunks with their checksums fixed
//! ([`mutate`], [`chunk`]), run in a watched child process ([`engine`]) so that a hang or an
//! abort is caught too, with every allocation counted by the allocator below. A finding is a
//! panic that escapes, a room that reports `Refusal::Broken` (Automerge panicked inside), a
//! broken property ([`targets`]), a hang, a crash, or an input whose peak allocation passes
//! [`engine::alloc_bound`].
//!
//! By default each target runs a fixed number of inputs from a fixed random seed, ~10 s each;
//! `TANDEM_FUZZ_SECS=600 cargo test -p tandem-protocol --test fuzz -- --nocapture` runs longer
//! (see the engine for the other knobs). Known findings are in `fuzz-corpus/findings/`, each
//! with a note and a regression test in [`findings`].

use peak_alloc::PeakAlloc;

mod bombs;
mod chunk;
mod corpus;
mod engine;
mod findings;
mod mutate;
mod record;
mod seeds;
mod targets;

/// Counts every allocation of this test binary, so that the engine can measure one input.
#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

/// Fails on the findings of a run that are not known (see `fuzz-corpus/findings/`), printing
/// every finding, known or not.
fn assert_clean(target: &str, run: &engine::Run) {
    let known = engine::known_signatures();
    let mut new = Vec::new();
    for f in &run.findings {
        let signature = f.signature();
        if known.contains(&signature) {
            println!("[fuzz {target}] known finding ({signature})");
        } else {
            new.push(format!("  {signature}\n    {}\n    {}", f.detail, f.file));
        }
    }
    assert!(
        new.is_empty(),
        "fuzzing {target} found what fuzz-corpus/findings/ does not list:\n{}",
        new.join("\n")
    );
}

#[test]
fn fuzz_wire() {
    if let Some(run) = engine::fuzz("wire", "fuzz_wire", 8_000) {
        assert_clean("wire", &run);
    }
}

#[test]
fn fuzz_loader() {
    if let Some(run) = engine::fuzz("loader", "fuzz_loader", 2_400) {
        assert_clean("loader", &run);
    }
}

#[test]
fn fuzz_room() {
    if let Some(run) = engine::fuzz("room", "fuzz_room", 1_000) {
        assert_clean("room", &run);
    }
}

/// The committed seeds still mean what they meant: replayed into a fresh room, every message
/// gets the kind of verdict it got when recorded, and the room ends with the recorded
/// document.
#[test]
fn seeds_replay_as_recorded() {
    let _alone = engine::MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    use tandem_protocol::ListDoc;
    use tandem_protocol::room::Room;
    for s in corpus::sessions() {
        let doc =
            if s.base.is_empty() { ListDoc::empty() } else { ListDoc::load(&s.base).unwrap() };
        let mut room = Room::new(doc);
        for &(peer, role) in &s.peers {
            room.join(peer, tandem_protocol::UserId(peer + 1), role);
        }
        for (i, step) in s.steps.iter().enumerate() {
            // The kind of verdict only: error texts may change.
            let verdict = targets::verdict(&room.receive(step.peer, &step.data));
            let kind = |v: &str| v.split(':').next().unwrap().to_owned();
            assert_eq!(kind(&verdict), kind(&step.verdict), "{} step {i}: {verdict}", s.name);
            if room.unsaved().is_some() {
                room.mark_saved();
            }
        }
        let mut end = ListDoc::load(&s.snapshot).unwrap();
        end.validate().unwrap();
        assert_eq!(room.heads(), end.heads(), "{}", s.name);
        assert!(s.steps.iter().any(|st| st.verdict == "changed"), "{}", s.name);
    }
}

/// The scenarios still record (the APIs they use still behave). `TANDEM_FUZZ_RECORD=1`
/// replaces the committed seeds with these, and rebuilds the two bombs in `findings/` from
/// them; `TANDEM_FUZZ_RECORD=bombs` rebuilds only the bombs.
#[test]
fn seeds_record() {
    let _alone = engine::MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let sessions = record::record_all();
    for s in &sessions {
        assert!(s.steps.len() >= 3 && !s.chunks.is_empty(), "{}", s.name);
    }
    let record = std::env::var("TANDEM_FUZZ_RECORD").unwrap_or_default();
    if record == "1" {
        for s in &sessions {
            corpus::write_session(s);
        }
    }
    if record == "1" || record == "bombs" {
        let reserved = corpus::sessions().into_iter().find(|s| s.name == "reserved-list").unwrap();
        let decompression = bombs::decompression_bomb(&reserved).encode();
        corpus::write_finding("decompression-bomb.case", &decompression);
        corpus::write_finding("rle-op-bomb.case", &bombs::rle_op_bomb(&reserved).encode());
    }
}

/// The meter sees an allocation made after it starts, and the bound catches a blow-up.
#[test]
fn the_meter_catches_a_blow_up() {
    let _alone = engine::MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let mut meter = engine::Meter::default();
    meter.start(100);
    let big = vec![1u8; 8 << 20];
    assert!(meter.peak() >= 8 << 20);
    assert!(meter.peak() > engine::alloc_bound(1_000, meter.document_len()));
    drop(big);
}

/// The watchdog works: a fuzzing test whose time bound every input exceeds reports a hang,
/// with the input, and fails.
#[test]
fn the_watchdog_reports_a_hang() {
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-watchdog");
    let run = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["fuzz_wire", "--exact", "--nocapture"])
        .env("TANDEM_FUZZ_HANG_SECS", "0")
        .env("TANDEM_FUZZ_OUT", &out)
        .env_remove("TANDEM_FUZZ_WORKER")
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&run.stdout);
    assert!(!run.status.success(), "{printed}");
    assert!(printed.contains("[fuzz wire] hang: input "), "{printed}");
    let kept = std::fs::read_dir(out.join("wire")).unwrap().any(|f| {
        let name = f.unwrap().file_name().into_string().unwrap();
        name.starts_with("wire-hang-") && name.ends_with(".case")
    });
    assert!(kept, "the input is kept");
}

/// Replays one saved case (`TANDEM_FUZZ_CASE=path`), with the usual panic output and
/// backtrace, to see where a finding comes from. Does nothing without the variable.
#[test]
fn fuzz_replay() {
    let Ok(path) = std::env::var("TANDEM_FUZZ_CASE") else { return };
    let case = targets::Case::decode(&std::fs::read(&path).unwrap());
    let engine::Checked { outcome, peak, bound } = engine::check(&case);
    println!(
        "{path}: {outcome:?}, peak {peak} bytes (bound {bound}) for {} input bytes",
        case.input_len()
    );
    println!("{}", targets::describe(&case));
}

/// Writes the seeds as raw inputs for the libFuzzer targets in `fuzz/` (see its README):
/// `TANDEM_FUZZ_EXPORT=dir` gets `dir/wire`, `dir/loader` and `dir/room`. Does nothing without
/// the variable.
#[test]
fn fuzz_export() {
    let Ok(root) = std::env::var("TANDEM_FUZZ_EXPORT") else { return };
    let sessions = corpus::sessions();
    let mut wire = Vec::new();
    let mut loader = Vec::new();
    for case in seeds::cases("wire", &sessions).into_iter().chain(seeds::cases("loader", &sessions))
    {
        match case {
            targets::Case::ClientFrame(f) | targets::Case::ServerFrame(f) => wire.push(f.to_vec()),
            targets::Case::Load(b) => loader.push(b.to_vec()),
            targets::Case::LoadIncremental { base, data } => {
                loader.push([base.to_vec(), data.to_vec()].concat())
            }
            targets::Case::Room { .. } => {}
        }
    }
    // A room input: the session (in file-name order), the sender's place among its peers,
    // then the message, as `fuzz/src/lib.rs` reads it.
    let mut room = Vec::new();
    for (s, session) in sessions.iter().enumerate() {
        for step in &session.steps {
            let peer = session.peers.iter().position(|(p, _)| *p == step.peer).unwrap();
            room.push([&[s as u8, peer as u8][..], &step.data].concat());
        }
    }
    for (target, inputs) in [("wire", wire), ("loader", loader), ("room", room)] {
        let dir = std::path::Path::new(&root).join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, input) in inputs.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:03}")), input).unwrap();
        }
        println!("{}: {} inputs", dir.display(), inputs.len());
    }
}
