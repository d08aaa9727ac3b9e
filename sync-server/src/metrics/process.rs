//! The process's own numbers (resident memory, CPU time, open file descriptors), read from
//! `/proc/self` when `/metrics` is scraped. Containers and orchestrators watch these; reading
//! them at scrape time costs nothing between scrapes and needs no sampling task.
//!
//! Off Linux (no `/proc`) every value is `None` and the gauges stay at zero.

use std::path::Path;

/// Clock ticks per second of the CPU times in `/proc/self/stat`. The kernel reports them in
/// `USER_HZ`, which is 100 on every Linux architecture's user ABI.
const USER_HZ: f64 = 100.0;

/// One reading of the process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessSample {
    /// Resident set size in bytes (`VmRSS`).
    pub resident_bytes: Option<u64>,
    /// User plus system CPU time, in seconds.
    pub cpu_seconds: Option<f64>,
    /// Open file descriptors (sockets and database files included).
    pub open_fds: Option<u64>,
}

/// Reads the process's numbers now.
pub fn sample() -> ProcessSample {
    let proc = Path::new("/proc/self");
    ProcessSample {
        resident_bytes: std::fs::read_to_string(proc.join("status"))
            .ok()
            .and_then(|status| resident_bytes(&status)),
        cpu_seconds: std::fs::read_to_string(proc.join("stat"))
            .ok()
            .and_then(|stat| cpu_seconds(&stat)),
        open_fds: std::fs::read_dir(proc.join("fd")).ok().map(|dir| dir.count() as u64),
    }
}

/// `VmRSS:   12345 kB` from `/proc/self/status`, in bytes.
fn resident_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

/// `utime + stime` from `/proc/self/stat`, in seconds. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted from after its last `)`: there the state is
/// field 3, so utime (field 14) and stime (field 15) are the 12th and 13th.
fn cpu_seconds(stat: &str) -> Option<f64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_is_read_in_bytes() {
        let status = "Name:\ttandem-server\nVmPeak:\t  9000 kB\nVmRSS:\t    2048 kB\nThreads:\t4\n";
        assert_eq!(resident_bytes(status), Some(2048 * 1024));
        assert_eq!(resident_bytes("Name:\tx\n"), None);
    }

    #[test]
    fn cpu_time_skips_a_command_name_with_spaces_and_parentheses() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
        let stat = "42 (tandem (x) y) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0";
        assert_eq!(cpu_seconds(stat), Some(3.0));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_memory_and_descriptors() {
        let sample = sample();
        assert!(sample.resident_bytes.is_some_and(|b| b > 0));
        assert!(sample.open_fds.is_some_and(|n| n > 0));
        assert!(sample.cpu_seconds.is_some());
    }
}
