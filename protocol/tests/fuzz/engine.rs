//! The fuzzing loop, in a child process watched by the test.
//!
//! The test ([`fuzz`]) starts this very test binary again, running only itself, with
//! `TANDEM_FUZZ_WORKER` set and its address space capped (`ulimit -v`); that child is the
//! worker ([`work`]). The worker runs the seeds, then mutations of what is in its pool, each
//! input under `catch_unwind` with its allocations counted, and adds to the pool every input
//! whose outcome (its label, see [`crate::targets`]) it had not seen: feedback from what the
//! code under test answered, the part of coverage guidance that works on stable Rust without
//! instrumenting the build. Before each input it writes the input to a file and says so on
//! stdout; the parent reads those lines, so when the worker hangs (no answer within the time
//! bound) or dies (an allocation past the cap, a stack overflow, an abort), the parent kills
//! or buries it and keeps that input as the finding.
//!
//! Findings land in `target/tmp/fuzz/<target>/` (one `.case` file each, see
//! [`crate::targets::Case`]); copy the ones worth keeping to `fuzz-corpus/findings/` with a
//! note. Knobs: `TANDEM_FUZZ_SECS` (run for this long instead of the fixed case budget),
//! `TANDEM_FUZZ_SEED` (the random seed; fixed by default so CI is repeatable),
//! `TANDEM_FUZZ_HANG_SECS` (10), `TANDEM_FUZZ_MEMORY_MIB` (the worker's address-space cap,
//! 4096), `TANDEM_FUZZ_ADD` (more first inputs: a `.case` file or a folder of them),
//! `TANDEM_FUZZ_OUT` (where findings land instead of `target/tmp/fuzz`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::ALLOC;
use crate::mutate;
use crate::seeds;
use crate::targets::{self, Case, kind_of};

/// Bytes one input may cost at its peak: `ALLOC_FACTOR` × (the bytes the peer sent + the
/// document as saved) + `ALLOC_SLACK`. Calibrated on the seeds, whose worst input stays
/// several times below it (the run prints its worst ratio).
pub const ALLOC_FACTOR: usize = 1024;
/// See [`ALLOC_FACTOR`]: what an empty document, a sync state and a message cost anyway.
pub const ALLOC_SLACK: usize = 4 << 20;

/// The peak bytes an input with `input_len` bytes against a document of `document_len` bytes
/// may allocate.
pub fn alloc_bound(input_len: usize, document_len: usize) -> usize {
    ALLOC_FACTOR * (input_len + document_len) + ALLOC_SLACK
}

/// Counts the bytes allocated from [`Meter::start`] on (the set-up before it is not counted).
#[derive(Debug, Default)]
pub struct Meter {
    baseline: Option<usize>,
    document_len: usize,
}

impl Meter {
    /// Counting starts here; `document_len` is the document's saved size.
    pub fn start(&mut self, document_len: usize) {
        self.document_len = document_len;
        self.baseline = Some(ALLOC.current_usage());
        ALLOC.reset_peak_usage();
    }

    /// The peak bytes above the baseline since [`Meter::start`].
    pub fn peak(&self) -> usize {
        self.baseline.map_or(0, |b| ALLOC.peak_usage().saturating_sub(b))
    }

    /// The document's saved size, as given to [`Meter::start`].
    pub fn document_len(&self) -> usize {
        self.document_len
    }
}

/// What one input did that it must not.
#[derive(Debug, Clone)]
pub struct Finding {
    /// `panic`, `broken`, `property` or `alloc` (in the worker); `hang` or `crash` (parent).
    pub kind: String,
    /// What happened.
    pub detail: String,
    /// Where the input was saved (empty until it is).
    pub file: String,
}

impl Finding {
    fn new(kind: &str, detail: String) -> Self {
        Self { kind: kind.into(), detail, file: String::new() }
    }

    /// What tells this finding from others of its kind: where the panic was (file and line,
    /// from the crate's own folder on), the outcome of an allocation finding, or the kind of
    /// message.
    pub fn signature(&self) -> String {
        if let Some((label, _)) = self.detail.split_once(": peak ") {
            return format!("{} {label}", self.kind);
        }
        let place = self.detail.rsplit_once(" at ").map(|(_, p)| p.trim_end_matches(')'));
        match place.and_then(|p| p.rfind("/src/").map(|i| (p, i))) {
            Some((p, i)) => {
                let start = p[..i].rfind('/').map_or(0, |s| s + 1);
                format!("{} {}", self.kind, &p[start..])
            }
            None => format!("{} {}", self.kind, kind_of(&self.detail)),
        }
    }
}

/// The signatures of the known findings: the `Signature:` line of each note in
/// `fuzz-corpus/findings/`.
pub fn known_signatures() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(crate::corpus::findings_dir()) else { return Vec::new() };
    let mut known = Vec::new();
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            let note = std::fs::read_to_string(&path).unwrap();
            for line in note.lines() {
                if let Some(sig) = line.strip_prefix("Signature: ") {
                    known.push(sig.trim().trim_matches('`').to_owned());
                }
            }
        }
    }
    known
}

thread_local! {
    /// Set while [`check`] runs an input on this thread: panics there are findings, kept
    /// quiet; any other panic (in the harness itself, or another test) prints as usual.
    static IN_CHECK: Cell<bool> = const { Cell::new(false) };
    /// The last panic's message and place, recorded while [`IN_CHECK`].
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs (once) the panic hook that records, quietly, the panics of [`check`].
fn quiet_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_CHECK.get() {
                return default(info);
            }
            let payload = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let place =
                info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
            LAST_PANIC.set(Some(format!("{payload} at {place}")));
        }));
    });
}

fn take_panic() -> Option<String> {
    LAST_PANIC.take()
}

/// Held by whatever measures allocations in this process ([`check`], and the tests that
/// allocate much): the allocator counts the whole process, so two at once would blur.
pub static MEASURING: Mutex<()> = Mutex::new(());

/// What [`check`] saw of one input.
#[derive(Debug)]
pub struct Checked {
    /// Its label, or what it did wrong.
    pub outcome: Result<String, Finding>,
    /// The peak bytes allocated while it ran.
    pub peak: usize,
    /// The bound on that peak ([`alloc_bound`]).
    pub bound: usize,
}

/// Runs one case as the fuzzer does.
pub fn check(case: &Case) -> Checked {
    let _alone = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    quiet_panics();
    take_panic();
    let mut meter = Meter::default();
    IN_CHECK.set(true);
    let result = catch_unwind(AssertUnwindSafe(|| targets::run(case, &mut meter)));
    IN_CHECK.set(false);
    let peak = meter.peak();
    let bound = alloc_bound(case.input_len(), meter.document_len());
    let caught = take_panic();
    let outcome = match result {
        Err(_) => Err(Finding::new("panic", caught.unwrap_or_default())),
        Ok(Err(problem))
            if problem.starts_with("Refusal::Broken") || problem.starts_with("broken") =>
        {
            let place = caught.map(|p| format!(" (automerge panicked: {p})")).unwrap_or_default();
            Err(Finding::new("broken", format!("{problem}{place}")))
        }
        Ok(Err(problem)) => Err(Finding::new("property", problem)),
        Ok(Ok(label)) => {
            if peak > bound {
                Err(Finding::new(
                    "alloc",
                    format!(
                        "{label}: peak {} KiB for {} input bytes against a {} byte document \
                         (bound {} KiB)",
                        peak >> 10,
                        case.input_len(),
                        meter.document_len(),
                        bound >> 10
                    ),
                ))
            } else {
                Ok(label)
            }
        }
    };
    Checked { outcome, peak, bound }
}

/// How long the worker runs.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Inputs (seeds included) when no time is given.
    pub cases: u64,
    /// A time budget (`TANDEM_FUZZ_SECS`) instead of the case budget.
    pub secs: Option<f64>,
    /// A case-budget run stops here anyway, so that a slow machine keeps CI bounded.
    pub max_secs: f64,
}

fn env_f64(name: &str) -> Option<f64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn out_dir(target: &str) -> PathBuf {
    let root = std::env::var_os("TANDEM_FUZZ_OUT")
        .map_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz"), PathBuf::from);
    root.join(target)
}

/// The cases of `target` in `TANDEM_FUZZ_ADD` (a `.case` file, or a folder of them, such as
/// `fuzz-corpus/findings`), run first with the seeds.
fn added_cases(target: &str) -> Vec<Case> {
    let Ok(path) = std::env::var("TANDEM_FUZZ_ADD") else { return Vec::new() };
    let path = PathBuf::from(path);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&path) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => vec![path],
    };
    files.retain(|f| f.extension().is_some_and(|e| e == "case"));
    files.sort();
    files
        .iter()
        .map(|f| Case::decode(&std::fs::read(f).unwrap()))
        .filter(|c| c.target() == target)
        .collect()
}

/// The worker: fuzzes `target` within `budget`, printing its protocol lines for the parent.
fn work(target: &str, budget: Budget) {
    let out = out_dir(target);
    let sessions = crate::corpus::sessions();
    let donors = seeds::donors(&sessions);
    let mut pool: Vec<Case> = seeds::cases(target, &sessions);
    pool.extend(added_cases(target));
    let seed_count = pool.len();
    let seed: u64 = std::env::var("TANDEM_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(
        // Fixed per target, so that CI runs the same inputs every time.
        target.bytes().fold(11, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))),
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let mut labels: HashMap<String, u64> = HashMap::new();
    let mut found: HashMap<String, ()> = HashMap::new();
    let mut worst: Option<(f64, usize, usize, Case, String)> = None;
    let mut stdout = std::io::stdout();
    let mut n = 0u64;
    loop {
        let elapsed = started.elapsed().as_secs_f64();
        let done = match budget.secs {
            Some(secs) => elapsed >= secs,
            None => n >= budget.cases || elapsed >= budget.max_secs,
        };
        if done && n >= seed_count as u64 {
            break;
        }
        let case = if (n as usize) < seed_count {
            pool[n as usize].clone()
        } else {
            let parent = pool.choose(&mut rng).unwrap().clone();
            let mut case = mutate::case(&mut rng, &parent, &donors);
            if rand::Rng::gen_bool(&mut rng, 0.3) {
                case = mutate::case(&mut rng, &case, &donors);
            }
            case
        };
        std::fs::write(out.join("current.case"), case.encode()).unwrap();
        writeln!(stdout, "BEGIN {n}").unwrap();
        stdout.flush().unwrap();
        let Checked { outcome, peak, bound } = check(&case);
        writeln!(stdout, "END {n}").unwrap();
        match outcome {
            Ok(label) => {
                // The worst input is the one closest to its bound.
                let share = peak as f64 / bound as f64;
                if worst.as_ref().is_none_or(|w| share > w.0) {
                    worst = Some((share, peak, bound, case.clone(), label.clone()));
                }
                let seen = labels.entry(label).or_insert(0);
                *seen += 1;
                if *seen == 1 && (n as usize) >= seed_count {
                    pool.push(case);
                }
            }
            Err(finding) => {
                if found.insert(finding.signature(), ()).is_none() {
                    let file = out.join(format!("{target}-{}-{n}.case", finding.kind));
                    std::fs::write(&file, case.encode()).unwrap();
                    writeln!(
                        stdout,
                        "FINDING {} {} {}",
                        finding.kind,
                        file.display(),
                        finding.detail.replace('\n', " ")
                    )
                    .unwrap();
                }
            }
        }
        n += 1;
    }
    let mut seen: Vec<_> = labels.iter().map(|(l, n)| format!("{n:>8} {l}")).collect();
    seen.sort();
    std::fs::write(out.join("outcomes.txt"), seen.join("\n")).unwrap();
    if let Some((share, peak, bound, case, label)) = &worst {
        let file = out.join("worst-alloc.case");
        std::fs::write(&file, case.encode()).unwrap();
        writeln!(
            stdout,
            "REPORT worst allocation: {} KiB for a {} byte input ({label}), {:.0}% of its bound \
             of {} KiB; {}",
            peak >> 10,
            case.input_len(),
            share * 100.0,
            bound >> 10,
            file.display()
        )
        .unwrap();
    }
    writeln!(
        stdout,
        "REPORT {target}: {n} inputs ({seed_count} seeds) in {:.1} s, seed {seed}, {} outcomes \
         seen, pool {}",
        started.elapsed().as_secs_f64(),
        labels.len(),
        pool.len()
    )
    .unwrap();
}

/// What a fuzzing run found, as the parent saw it.
#[derive(Debug, Default)]
pub struct Run {
    /// Findings (the worker's and the parent's own: hangs and crashes).
    pub findings: Vec<Finding>,
    /// The worker's report lines.
    pub report: Vec<String>,
}

/// Fuzzes `target` in a child process running the test `test_name` of this binary. In that
/// child (the worker) it fuzzes and returns `None`; in the parent it returns what was found.
pub fn fuzz(target: &str, test_name: &str, cases: u64) -> Option<Run> {
    let budget = Budget { cases, secs: env_f64("TANDEM_FUZZ_SECS"), max_secs: 60.0 };
    if let Ok(worker) = std::env::var("TANDEM_FUZZ_WORKER") {
        if worker == target {
            work(target, budget);
        }
        return None;
    }
    let out = out_dir(target);
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let hang = Duration::from_secs_f64(env_f64("TANDEM_FUZZ_HANG_SECS").unwrap_or(10.0));
    let memory_kib = (env_f64("TANDEM_FUZZ_MEMORY_MIB").unwrap_or(4096.0) * 1024.0) as u64;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -v "$0" && exec "$@""#)
        .arg(memory_kib.to_string())
        .arg(std::env::current_exe().unwrap())
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env("TANDEM_FUZZ_WORKER", target)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(out.join("stderr.txt")).unwrap()))
        .spawn()
        .expect("the test binary starts again as the worker");
    let (tx, rx) = channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut run = Run::default();
    let mut in_flight: Option<(String, Instant)> = None;
    let mut hung = false;
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                if let Some(n) = line.strip_prefix("BEGIN ") {
                    in_flight = Some((n.to_owned(), Instant::now()));
                } else if line.starts_with("END ") {
                    // An input that finished, but late, went over the bound all the same.
                    if in_flight.as_ref().is_some_and(|(_, since)| since.elapsed() > hang) {
                        child.kill().unwrap();
                        hung = true;
                        break;
                    }
                    in_flight = None;
                } else if let Some(rest) = line.strip_prefix("FINDING ") {
                    let mut parts = rest.splitn(3, ' ');
                    let (kind, file) = (parts.next().unwrap(), parts.next().unwrap_or(""));
                    let finding = Finding {
                        kind: kind.into(),
                        detail: parts.next().unwrap_or("").into(),
                        file: file.into(),
                    };
                    println!("[fuzz {target}] {}: {}", finding.signature(), finding.file);
                    run.findings.push(finding);
                } else if let Some(rest) = line.strip_prefix("REPORT ") {
                    println!("[fuzz {target}] {rest}");
                    run.report.push(rest.to_owned());
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if in_flight.as_ref().is_some_and(|(_, since)| since.elapsed() > hang) {
                    child.kill().unwrap();
                    hung = true;
                    break;
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let status = child.wait().unwrap();
    if let Some((n, since)) = in_flight {
        let kind = if hung { "hang" } else { "crash" };
        let file = out.join(format!("{target}-{kind}-{n}.case"));
        let _ = std::fs::copy(out.join("current.case"), &file);
        let stderr = std::fs::read_to_string(out.join("stderr.txt")).unwrap_or_default();
        let tail: String = stderr.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
        let detail = format!(
            "input {n} ran {:.1} s, worker {status}: {tail}",
            since.elapsed().as_secs_f64()
        );
        println!("[fuzz {target}] {kind}: {detail}; {}", file.display());
        run.findings.push(Finding { kind: kind.into(), detail, file: file.display().to_string() });
    } else if !status.success() {
        let stderr = std::fs::read_to_string(out.join("stderr.txt")).unwrap_or_default();
        panic!("the {target} worker failed outside an input ({status}): {stderr}");
    }
    assert!(
        run.report.iter().any(|r| r.starts_with(&format!("{target}:"))) || !run.findings.is_empty(),
        "the {target} worker never reported"
    );
    Some(run)
}
