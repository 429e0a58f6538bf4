//! Process control for what dyno starts (managed servers, adapters): each
//! child gets a process tree of its own that dyno can end as a whole (a
//! process group on Unix, a job object on Windows), so stopping it stops
//! everything it started; and one description of how a process ended.
//! Never touches a process outside a group or job dyno created.
//!
//! The platform code is in `unix` and `windows`; callers see only
//! [`Group`], [`own_group`] and [`describe_exit`].

use std::process::ExitStatus;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as sys;
#[cfg(all(test, unix))]
pub(crate) use unix::proc_state;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as sys;

/// The process tree of a child started with [`own_group`]: the process
/// group it leads (Unix) or the job object it was put in (Windows; the job
/// ends its processes when the last `Group` of it is dropped).
#[derive(Debug, Clone)]
pub(crate) struct Group {
    inner: sys::Group,
}

/// Prepares `command` so its child can lead a tree of its own: a new
/// process group on Unix, a new console process group on Windows (so a
/// Ctrl+C meant for dyno reaches dyno, which stops its children itself).
pub(crate) fn own_group(command: &mut std::process::Command) {
    sys::own_group(command);
}

impl Group {
    /// The pid of a child spawned with [`own_group`], and its group.
    pub(crate) fn of(child: &tokio::process::Child) -> std::io::Result<(u32, Group)> {
        let pid = child
            .id()
            .ok_or_else(|| std::io::Error::other("the process exited before its pid was read"))?;
        let inner = sys::Group::of(child, pid)?;
        Ok((pid, Group { inner }))
    }

    /// The group led by `pgid` (for tests that watch a group from outside).
    #[cfg(all(test, unix))]
    pub(crate) fn of_pgid(pgid: i32) -> Group {
        Group {
            inner: unix::Group::of_pgid(pgid),
        }
    }

    /// Asks every process of the group to end: SIGTERM on Unix; on Windows,
    /// which has no such request, the job's processes end at once.
    pub(crate) fn terminate(&self) {
        self.inner.terminate();
    }

    /// Ends every process of the group at once (SIGKILL; the job's
    /// termination on Windows).
    pub(crate) fn kill(&self) {
        self.inner.kill();
    }

    /// Puts the group on the list that an interrupt, an error exit or a
    /// panic ends (`super::children`), for as long as the registration
    /// lives.
    pub(crate) fn register(&self) -> super::children::Registration {
        let group = self.clone();
        super::children::register(move || group.kill())
    }

    /// Whether the group still has a live member.
    pub(crate) fn alive(&self) -> bool {
        self.inner.alive()
    }
}

/// How [`describe_exit`] describes a process that ended with status 0.
pub(crate) const CLEAN_EXIT: &str = "exited with status 0";

/// SIGKILL to the process group `pgid` leads (never group 0 or 1); true if
/// it was delivered.
#[cfg(unix)]
pub(crate) fn kill_group(pgid: u32) -> bool {
    i32::try_from(pgid).is_ok_and(|pgid| unix::Group::of_pgid(pgid).kill())
}

/// Whether the process crashed on a bad memory access or an illegal
/// instruction (SIGSEGV, SIGILL, SIGBUS; an access violation or illegal
/// instruction on Windows): what a binary built for another CPU does.
pub(crate) fn crashed(status: ExitStatus) -> bool {
    sys::crashed(status)
}

/// "exited with status 3", "killed by signal 9 (SIGKILL)", "exited with
/// status 0xC0000005 (STATUS_ACCESS_VIOLATION)", ...
pub(crate) fn describe_exit(status: ExitStatus) -> String {
    if let Some(abnormal) = sys::describe_abnormal(status) {
        return abnormal;
    }
    match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => format!("exited ({status})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(unix)]
    use std::os::unix::process::ExitStatusExt as _;
    #[cfg(windows)]
    use std::os::windows::process::ExitStatusExt as _;

    /// Raw wait statuses and how they read.
    #[cfg(unix)]
    const EXITS: [(i32, &str); 4] = [
        (0, CLEAN_EXIT),
        (3 << 8, "exited with status 3"),
        (9, "killed by signal 9 (SIGKILL)"),
        (15, "killed by signal 15 (SIGTERM)"),
    ];

    /// Raw exit codes and how they read.
    #[cfg(windows)]
    const EXITS: [(u32, &str); 3] = [
        (0, CLEAN_EXIT),
        (3, "exited with status 3"),
        (
            0xC000_0005,
            "exited with status 0xC0000005 (STATUS_ACCESS_VIOLATION)",
        ),
    ];

    #[test]
    fn exit_descriptions() {
        for (raw, text) in EXITS {
            assert_eq!(describe_exit(ExitStatus::from_raw(raw)), text);
        }
    }
}
