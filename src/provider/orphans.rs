//! The server process groups a run starts, written down as they start
//! (`logs/servers.jsonl` in the output directory), so that the next run,
//! `--resume` or `dyno check` on that directory ends any that an earlier
//! dyno left behind when it was killed outright (SIGKILL, a lost terminal).
//! A group is ended only when its leader is provably the one written down:
//! the same pid and the same start time. On Windows a job object ends
//! them with dyno, and nothing is written.

use std::io::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The record's name, in a run's `logs/` directory.
pub(crate) const FILE: &str = "servers.jsonl";

/// One line of the record: a group started, or (with `stopped`) ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    pid: u32,
    /// The leader's start time (clock ticks since boot on Linux, seconds
    /// since 1970 elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    started: Option<u64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    server: String,
    /// The command as shown in the server's log (secrets redacted).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    command: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    stopped: bool,
}

/// Writes down that `server` started as group `pid` (running `command`,
/// redacted), in `dir`. Best effort: a record that cannot be written
/// loses only the clean-up after a SIGKILL.
pub(crate) fn started(dir: &Path, pid: u32, server: &str, command: &str) {
    if cfg!(unix) {
        append(
            dir,
            &Entry {
                pid,
                started: crate::measure::resources::tree::process_start(pid),
                server: server.to_string(),
                command: command.to_string(),
                stopped: false,
            },
        );
    }
}

/// Writes down that group `pid` ended.
pub(crate) fn stopped(dir: &Path, pid: u32) {
    if cfg!(unix) {
        append(
            dir,
            &Entry {
                pid,
                started: None,
                server: String::new(),
                command: String::new(),
                stopped: true,
            },
        );
    }
}

fn append(dir: &Path, entry: &Entry) {
    let Ok(line) = serde_json::to_string(entry) else {
        return;
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(FILE));
    if let Ok(mut file) = file {
        let _ = file.write_all(format!("{line}\n").as_bytes());
    }
}

/// Ends every group written down in `dir` that never ended and whose
/// leader is still the process that was started (same pid, same start
/// time), then removes the record. Returns one line per group ended, for
/// the user.
pub(crate) fn end_leftovers(dir: &Path) -> Vec<String> {
    let path = dir.join(FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Vec::new();
    };
    let mut open: Vec<Entry> = Vec::new();
    for entry in text
        .lines()
        .filter_map(|l| serde_json::from_str::<Entry>(l).ok())
    {
        open.retain(|e| e.pid != entry.pid);
        if !entry.stopped {
            open.push(entry);
        }
    }
    let mut ended = Vec::new();
    for entry in open {
        let alive_as_recorded = entry.started.is_some()
            && crate::measure::resources::tree::process_start(entry.pid) == entry.started;
        if alive_as_recorded && kill_group(entry.pid) {
            ended.push(format!(
                "ended server `{}` (process group {}: {}), left running by an earlier dyno that was killed",
                entry.server, entry.pid, entry.command
            ));
        }
    }
    let _ = std::fs::remove_file(&path);
    ended
}

/// SIGKILL to the group `pgid` leads; true if delivered.
#[cfg(unix)]
fn kill_group(pgid: u32) -> bool {
    super::process::kill_group(pgid)
}

#[cfg(not(unix))]
fn kill_group(_pgid: u32) -> bool {
    false
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_group_written_down_and_still_running_is_ended_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let spawn = || {
            let mut command = std::process::Command::new("sleep");
            command.arg("30");
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
            command.spawn().unwrap()
        };
        let (mut left, mut ended_cleanly, mut reused) = (spawn(), spawn(), spawn());
        started(dir.path(), left.id(), "left", "sleep 30");
        started(dir.path(), ended_cleanly.id(), "clean", "sleep 30");
        stopped(dir.path(), ended_cleanly.id());
        // A pid written down with another start time: a later process that
        // reused the pid, which must be left alone.
        append(
            dir.path(),
            &Entry {
                pid: reused.id(),
                started: Some(1),
                server: "reused".into(),
                command: "sleep 30".into(),
                stopped: false,
            },
        );
        let ended = end_leftovers(dir.path());
        assert_eq!(ended.len(), 1, "{ended:?}");
        assert!(ended[0].contains("`left`"), "{ended:?}");
        let status = left.wait().unwrap();
        assert!(!status.success(), "{status:?}");
        for child in [&mut ended_cleanly, &mut reused] {
            assert!(
                child.try_wait().unwrap().is_none(),
                "a group not ours was ended"
            );
            child.kill().unwrap();
            child.wait().unwrap();
        }
        assert!(!dir.path().join(FILE).exists(), "the record is removed");
        assert!(end_leftovers(dir.path()).is_empty());
    }
}
