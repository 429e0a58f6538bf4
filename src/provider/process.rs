//! Process control for what dyno starts (managed servers, adapters): each
//! child leads a process group of its own, so stopping it stops everything
//! it started; and one description of how a process ended. Never signals a
//! process outside a group dyno created.

use std::process::ExitStatus;

/// The process group of a child started with [`own_group`]: the leader's
/// pid is the group id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Group {
    pgid: i32,
}

/// Makes the command's child the leader of a new process group.
pub(crate) fn own_group(command: &mut std::process::Command) {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        command.process_group(0);
    }
    #[cfg(not(unix))]
    {
        let _ = command;
    }
}

impl Group {
    /// The pid of a child spawned with [`own_group`], and its group.
    pub(crate) fn of(child: &tokio::process::Child) -> std::io::Result<(u32, Group)> {
        let pid = child
            .id()
            .ok_or_else(|| std::io::Error::other("the process exited before its pid was read"))?;
        let pgid = i32::try_from(pid)
            .map_err(|_| std::io::Error::other(format!("pid {pid} is out of range")))?;
        Ok((pid, Group { pgid }))
    }

    /// The group led by `pgid` (for tests that watch a group from outside).
    #[cfg(test)]
    pub(crate) fn of_pgid(pgid: i32) -> Group {
        Group { pgid }
    }

    /// Asks every process of the group to end (SIGTERM).
    pub(crate) fn terminate(self) {
        #[cfg(unix)]
        self.signal(libc::SIGTERM);
    }

    /// Ends every process of the group at once (SIGKILL).
    pub(crate) fn kill(self) {
        #[cfg(unix)]
        self.signal(libc::SIGKILL);
    }

    /// Whether the group still has a member that is not a zombie. Orphans
    /// may stay zombies for a while (or for good, under an init that does
    /// not reap), so `kill(-pgid, 0)` alone is not enough where `/proc` can
    /// tell.
    pub(crate) fn alive(self) -> bool {
        #[cfg(unix)]
        {
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
        #[cfg(not(unix))]
        {
            false
        }
    }

    /// `kill(2)` to the whole group; true if delivered (or, for signal 0, if
    /// the group exists). Refuses groups 0 and 1, which would mean our own
    /// group or every process.
    #[cfg(unix)]
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

/// How [`describe_exit`] describes a process that ended with status 0.
pub(crate) const CLEAN_EXIT: &str = "exited with status 0";

/// "exited with status 3", "killed by signal 9 (SIGKILL)", ...
pub(crate) fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(signal) = status.signal() {
            let name = SIGNAL_NAMES
                .iter()
                .find(|(number, _)| *number == signal)
                .map_or(String::new(), |(_, name)| format!(" ({name})"));
            let core = if status.core_dumped() {
                ", core dumped"
            } else {
                ""
            };
            return format!("killed by signal {signal}{name}{core}");
        }
    }
    format!("exited ({status})")
}

/// The signals a server or adapter is commonly killed by, by number.
#[cfg(unix)]
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

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt as _;

    #[test]
    fn exit_descriptions() {
        assert_eq!(describe_exit(ExitStatus::from_raw(0)), CLEAN_EXIT);
        assert_eq!(
            describe_exit(ExitStatus::from_raw(3 << 8)),
            "exited with status 3"
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(9)),
            "killed by signal 9 (SIGKILL)"
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(15)),
            "killed by signal 15 (SIGTERM)"
        );
    }

    #[test]
    fn signals_refuse_our_own_group_and_everyone() {
        assert!(!Group { pgid: 0 }.signal(0));
        assert!(!Group { pgid: 1 }.signal(0));
    }
}
