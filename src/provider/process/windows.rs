//! Job objects on Windows, which has no process groups to signal: the child
//! is put in a job of its own right after it is spawned, and the processes
//! it starts join that job. Ending the job ends the whole tree; the job is
//! created with `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`, so when dyno drops its
//! last handle (or dyno itself ends) the tree ends too. A grandchild started
//! in the instant between spawning the child and assigning it escapes the
//! job; servers and adapters start nothing that early.
//!
//! Windows has no polite stop request a console program is bound to
//! honour, so terminating a job ends its processes at once.

use std::process::ExitStatus;
use std::sync::Arc;

use windows_sys::Win32::Foundation::{CloseHandle, HANDLE};
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    JOBOBJECT_BASIC_ACCOUNTING_INFORMATION, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
    JobObjectBasicAccountingInformation, JobObjectExtendedLimitInformation,
    QueryInformationJobObject, SetInformationJobObject, TerminateJobObject,
};
use windows_sys::Win32::System::Threading::CREATE_NEW_PROCESS_GROUP;

/// The exit code the processes of a terminated job get.
const TERMINATED: u32 = 1;

/// A job object's handle, closed on drop (which ends the job's processes).
#[derive(Debug)]
struct Job(HANDLE);

// SAFETY: a kernel object handle is an opaque value that any thread may
// use; the job functions called here are safe to call concurrently.
unsafe impl Send for Job {}
// SAFETY: as above; `&Job` only ever passes the handle to the kernel.
unsafe impl Sync for Job {}

impl Drop for Job {
    fn drop(&mut self) {
        // SAFETY: the handle was returned by CreateJobObjectW, is owned by
        // this value alone, and is closed exactly once, here.
        unsafe {
            CloseHandle(self.0);
        }
    }
}

/// The job a child and its descendants run in; clones share the job.
#[derive(Debug, Clone)]
pub(super) struct Group {
    job: Arc<Job>,
}

/// Starts the child in a new console process group, so a Ctrl+C meant for
/// dyno is not also delivered to it.
pub(super) fn own_group(command: &mut std::process::Command) {
    use std::os::windows::process::CommandExt as _;
    command.creation_flags(CREATE_NEW_PROCESS_GROUP);
}

impl Group {
    /// A new job, with `child` in it.
    pub(super) fn of(child: &tokio::process::Child, pid: u32) -> std::io::Result<Group> {
        let process = child.raw_handle().ok_or_else(|| {
            std::io::Error::other(format!("process {pid} exited before it joined a job"))
        })?;
        // SAFETY: both pointer arguments may be null (default security, an
        // unnamed job); the returned handle is checked before use.
        let handle = unsafe { CreateJobObjectW(std::ptr::null(), std::ptr::null()) };
        if handle.is_null() {
            return Err(std::io::Error::last_os_error());
        }
        // From here on, dropping `job` closes the handle.
        let job = Job(handle);
        let mut limits = JOBOBJECT_EXTENDED_LIMIT_INFORMATION::default();
        limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
        let size = u32::try_from(std::mem::size_of_val(&limits)).unwrap_or(u32::MAX);
        // SAFETY: the pointer and size describe `limits`, a live value of
        // the type this information class expects.
        let set = unsafe {
            SetInformationJobObject(
                job.0,
                JobObjectExtendedLimitInformation,
                std::ptr::from_ref(&limits).cast(),
                size,
            )
        };
        if set == 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `process` is the live child's handle, owned by `child`,
        // which outlives this call; the job handle is valid.
        if unsafe { AssignProcessToJobObject(job.0, process.cast()) } == 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Group { job: Arc::new(job) })
    }

    /// Ends every process of the job (Windows has no SIGTERM).
    pub(super) fn terminate(&self) {
        self.kill();
    }

    /// Ends every process of the job at once.
    pub(super) fn kill(&self) {
        // SAFETY: the handle is valid while `self.job` lives; terminating
        // an empty job does nothing.
        unsafe {
            TerminateJobObject(self.job.0, TERMINATED);
        }
    }

    /// Whether a process of the job is still running.
    pub(super) fn alive(&self) -> bool {
        let mut info = JOBOBJECT_BASIC_ACCOUNTING_INFORMATION::default();
        let size = u32::try_from(std::mem::size_of_val(&info)).unwrap_or(u32::MAX);
        // SAFETY: the pointer and size describe `info`, a live value of the
        // type this information class fills; the length out-pointer may be
        // null.
        let read = unsafe {
            QueryInformationJobObject(
                self.job.0,
                JobObjectBasicAccountingInformation,
                std::ptr::from_mut(&mut info).cast(),
                size,
                std::ptr::null_mut(),
            )
        };
        read != 0 && info.ActiveProcesses > 0
    }
}

/// "exited with status 0xC0000005 (STATUS_ACCESS_VIOLATION)" for a process
/// that ended with an NTSTATUS error code (a crash); `None` otherwise.
pub(super) fn describe_abnormal(status: ExitStatus) -> Option<String> {
    let code = status.code()?.cast_unsigned();
    if code < 0xC000_0000 {
        return None;
    }
    let name = NTSTATUS_NAMES
        .iter()
        .find(|(number, _)| *number == code)
        .map_or(String::new(), |(_, name)| format!(" ({name})"));
    Some(format!("exited with status {code:#010X}{name}"))
}

/// STATUS_ACCESS_VIOLATION or STATUS_ILLEGAL_INSTRUCTION.
pub(super) fn crashed(status: ExitStatus) -> bool {
    matches!(
        status.code().map(i32::cast_unsigned),
        Some(0xC000_0005 | 0xC000_001D)
    )
}

/// The NTSTATUS codes a crashed server commonly ends with.
const NTSTATUS_NAMES: [(u32, &str); 7] = [
    (0xC000_0005, "STATUS_ACCESS_VIOLATION"),
    (0xC000_001D, "STATUS_ILLEGAL_INSTRUCTION"),
    (0xC000_0094, "STATUS_INTEGER_DIVIDE_BY_ZERO"),
    (0xC000_00FD, "STATUS_STACK_OVERFLOW"),
    (0xC000_013A, "STATUS_CONTROL_C_EXIT"),
    (0xC000_0409, "STATUS_STACK_BUFFER_OVERRUN"),
    (0xC000_0017, "STATUS_NO_MEMORY"),
];
