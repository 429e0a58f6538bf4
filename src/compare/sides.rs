//! The two sides of a comparison: results files, directories holding
//! `results.json`, or a file as it was at a git revision (read with `git
//! show`, no checkout).

use std::path::{Path, PathBuf};

use crate::results::{self, Results};

/// Why a side of a comparison could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SideError {
    #[error("{0}")]
    Results(#[from] results::ReadError),
    #[error("`{rev}` is neither a file nor a git revision holding {path}: {reason}")]
    Git {
        rev: String,
        path: String,
        reason: String,
    },
}

/// Reads a side given as a path (per-request figures: a comparison reads
/// no inter-token gaps).
pub fn read_path(path: &Path) -> Result<(Results, String), SideError> {
    let (doc, file) = results::read_per_request(path)?;
    Ok((doc, file.display().to_string()))
}

/// The results file named by `path`, the directory to run git in, and the
/// file's name there.
pub(super) fn git_location(path: &Path) -> (PathBuf, PathBuf, String) {
    let file = results::results_file(path);
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    (file, dir, name)
}

/// Reads `file` as it was at git revision `rev` (no checkout).
pub fn read_revision(rev: &str, file: &Path) -> Result<(Results, String), SideError> {
    let (file, dir, name) = git_location(file);
    let text = crate::git::show(&dir, rev, &name).map_err(|reason| SideError::Git {
        rev: rev.to_string(),
        path: file.display().to_string(),
        reason,
    })?;
    let label = format!("{}@{rev}", file.display());
    Ok((results::parse_per_request(&text, &label)?, label))
}

/// Resolves the command's arguments: `compare NEW` (base = `HEAD` version of
/// NEW), `compare BASE NEW` with paths, or a revision for BASE. The two
/// sides are read side by side, each on its own thread.
pub fn read_sides(first: &str, second: Option<&str>) -> Result<[(Results, String); 2], SideError> {
    let (base_from, new_from) = match second {
        None => (Path::new(first), Path::new(first)),
        Some(second) => (Path::new(first), Path::new(second)),
    };
    let base = || {
        if second.is_some() && base_from.exists() {
            read_path(base_from)
        } else {
            let rev = if second.is_some() { first } else { "HEAD" };
            read_revision(rev, new_from)
        }
    };
    std::thread::scope(|scope| {
        let base = scope.spawn(|| results::on_one_thread(base));
        let new = results::on_one_thread(|| read_path(new_from));
        let base = base
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        Ok([base?, new?])
    })
}
