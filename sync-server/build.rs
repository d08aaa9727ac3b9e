//! Finds the commit the server is built from, for the `tandem_build_info` metric.
//!
//! `TANDEM_GIT_SHA` set at build time wins (release pipelines set it; the code reads it with
//! `option_env!`). Otherwise, when the source is a git checkout and `git` runs, this passes
//! `git rev-parse --short=12 HEAD` as `TANDEM_BUILD_GIT_SHA`; a build from a source archive
//! reports `unknown`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn main() {
    println!("cargo:rerun-if-env-changed=TANDEM_GIT_SHA");
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("TANDEM_GIT_SHA").is_some() {
        return;
    }
    let Some(sha) = git(&["rev-parse", "--short=12", "HEAD"]) else { return };
    println!("cargo:rustc-env=TANDEM_BUILD_GIT_SHA={sha}");
    // Run again when HEAD moves: a checkout changes HEAD, a commit a branch's ref (a loose
    // file under refs/heads, or packed-refs in a fresh clone). Only paths that exist are
    // named: a missing one would rerun this on every build.
    for path in ["HEAD", "refs/heads", "packed-refs"] {
        if let Some(path) = git(&["rev-parse", "--git-path", path])
            && std::path::Path::new(&path).exists()
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
