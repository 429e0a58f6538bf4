//! Process groups on Unix: the child leads a group of its own (`setpgid`),
//! signals go to the whole group with `kill(-pgid, …)`, and membership is
//! read from `/proc` where there is one. Never signals group 0 or 1.

use std::process::ExitStatus;

/// A process group: the leader's pid is the group id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Group {
    pgid: i32,
}

/// Makes the command's child the leader of a new process group.
pub(super) fn own_group(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt as _;
    command.process_group(0);
    #[cfg(target_os = "linux")]
    {
        // The child dies with dyno, even when dyno is killed with SIGKILL:
        // the kernel sends it SIGKILL when the thread that started it ends
        // (a runtime's worker thread lives as long as dyno).
        let parent = std::process::id();
        // SAFETY: between fork and exec only async-signal-safe calls are
        // made: prctl(2), getppid(2) and errno through `last_os_error`.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                // dyno died before the prctl: do not outlive it.
                if u32::try_from(libc::getppid()).ok() != Some(parent) {
                    return Err(std::io::Error::other("dyno exited while starting it"));
                }
                Ok(())
            });
        }
    }
}

impl Group {
    /// The group that `pid`, spawned with [`own_group`], leads.
    pub(super) fn of(_child: &tokio::process::Child, pid: u32) -> std::io::Result<Group> {
        let pgid = i32::try_from(pid)
            .map_err(|_| std::io::Error::other(format!("pid {pid} is out of range")))?;
        Ok(Group { pgid })
    }

    pub(super) fn of_pgid(pgid: i32) -> Group {
        Group { pgid }
    }

    /// SIGTERM to every process of the group.
    pub(super) fn terminate(self) {
        self.signal(libc::SIGTERM);
    }

    /// SIGKILL to every process of the group; true if delivered.
    pub(super) fn kill(self) -> bool {
        self.signal(libc::SIGKILL)
    }

    /// Whether the group still has a member that is not a zombie. Orphans
    /// may stay zombies for a while (or for good, under an init that does
    /// not reap), so `kill(-pgid, 0)` alone is not enough where `/proc` can
    /// tell.
    pub(super) fn alive(self) -> bool {
        if !self.signal(0) {
            return false;
        }
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return true;
        };
        entries.flatten().any(|entry| {
            entry
                .file_name()
                .to_str()
                .and_then(|pid| pid.parse::<i32>().ok())
                .and_then(proc_state)
                .is_some_and(|(state, group)| group == self.pgid && !matches!(state, 'Z' | 'X'))
        })
    }

    /// `kill(2)` to the whole group; true if delivered (or, for signal 0, if
    /// the group exists). Refuses groups 0 and 1, which would mean our own
    /// group or every process.
    fn signal(self, signal: libc::c_int) -> bool {
        // SAFETY: kill(2) takes two integers and touches no memory of this
        // process; a negative pid addresses exactly one process group that
        // this module's caller created, and `pgid > 1` rules out 0 and -1.
        self.pgid > 1 && unsafe { libc::kill(-self.pgid, signal) == 0 }
    }
}

/// State letter and process group of `pid` from `/proc/{pid}/stat`.
pub(crate) fn proc_state(pid: i32) -> Option<(char, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid pgrp ..."; comm may hold spaces and parens.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

/// "killed by signal 9 (SIGKILL)" for a process a signal ended; `None`
/// for one that exited.
pub(super) fn describe_abnormal(status: ExitStatus) -> Option<String> {
    use std::os::unix::process::ExitStatusExt as _;
    let signal = status.signal()?;
    let name = SIGNAL_NAMES
        .iter()
        .find(|(number, _)| *number == signal)
        .map_or(String::new(), |(_, name)| format!(" ({name})"));
    let core = if status.core_dumped() {
        ", core dumped"
    } else {
        ""
    };
    Some(format!("killed by signal {signal}{name}{core}"))
}

/// SIGSEGV, SIGILL or SIGBUS.
pub(super) fn crashed(status: ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt as _;
    matches!(
        status.signal(),
        Some(libc::SIGSEGV | libc::SIGILL | libc::SIGBUS)
    )
}

/// The signals a server or adapter is commonly killed by, by number.
const SIGNAL_NAMES: [(i32, &str); 11] = [
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGINT, "SIGINT"),
    (libc::SIGQUIT, "SIGQUIT"),
    (libc::SIGILL, "SIGILL"),
    (libc::SIGABRT, "SIGABRT"),
    (libc::SIGBUS, "SIGBUS"),
    (libc::SIGFPE, "SIGFPE"),
    (libc::SIGKILL, "SIGKILL"),
    (libc::SIGSEGV, "SIGSEGV"),
    (libc::SIGPIPE, "SIGPIPE"),
    (libc::SIGTERM, "SIGTERM"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_refuse_our_own_group_and_everyone() {
        assert!(!Group { pgid: 0 }.signal(0));
        assert!(!Group { pgid: 1 }.signal(0));
    }
}
