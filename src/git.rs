//! The one place dyno runs `git`: the revision a run was made at, a file
//! as it was at a revision, and the commits that changed a file. Revisions
//! never reach git as options.

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `git -C dir ARGS…`, its output captured.
fn git(dir: &Path, args: &[&str]) -> std::io::Result<Output> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
}

/// The git revision (`HEAD`) of the repository holding `dir`, if any.
pub(crate) fn revision(dir: &Path) -> Option<String> {
    let out = git(dir, &["rev-parse", "HEAD"]).ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The text of `name` (relative to `dir`) at revision `rev`; `Err` holds
/// git's own message.
pub(crate) fn show(dir: &Path, rev: &str, name: &str) -> Result<String, String> {
    if rev.starts_with('-') {
        return Err(format!("`{rev}` is not a revision"));
    }
    let object = format!("{rev}:./{name}");
    let out = git(dir, &["show", "--end-of-options", &object]).map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The commits that changed `name` (relative to `dir`), oldest first, as
/// (hash, subject); `Err` holds git's own message.
pub(crate) fn log(dir: &Path, name: &str) -> Result<Vec<(String, String)>, String> {
    let out = git(dir, &["log", "--reverse", "--format=%H%x09%s", "--", name])
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let (commit, subject) = line.split_once('\t').unwrap_or((line, ""));
            (commit.to_string(), subject.to_string())
        })
        .collect())
}
