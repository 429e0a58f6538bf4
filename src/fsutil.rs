//! Files: the one place that writes files, atomically (temp file in the
//! same directory, fsync, rename), so nothing already written is ever torn;
//! the bounded reader of input files (suites, prompt files, schemas,
//! templates), which opens only regular files of a bounded size, so a FIFO,
//! a device or a huge file can never block or exhaust a read; and the
//! check that a directory can be written before anything is written to it.

use std::io::{Read as _, Write as _};
use std::path::Path;

/// Writes `bytes` to `path` atomically, creating parent directories.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The most an input file (a suite, a prompt file, a JSON schema, a
/// template) may hold: far beyond any hand-written file.
pub(crate) const MAX_INPUT_BYTES: u64 = 16 * 1024 * 1024;

/// The text of the regular file at `path` (symlinks followed), at most
/// `max_bytes` long. A FIFO, a socket, a device or a directory is an error
/// before anything is opened, so reading never blocks on it.
pub(crate) fn read_text(path: &Path, max_bytes: u64) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind};
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file (a FIFO, socket or device)"
        };
        return Err(Error::new(ErrorKind::InvalidInput, what));
    }
    let too_big = || {
        Error::new(
            ErrorKind::InvalidData,
            format!("larger than {} MiB", max_bytes / (1024 * 1024)),
        )
    };
    if meta.len() > max_bytes {
        return Err(too_big());
    }
    // Sized from the metadata (one byte more to see growth): a `Take`
    // gives `read_to_end` no size hint, and doubling a 300 MB buffer copies it.
    let mut bytes: Vec<u8> =
        Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0).saturating_add(1));
    std::fs::File::open(path)?
        .take(max_bytes + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_big());
    }
    String::from_utf8(bytes)
        .map_err(|_| Error::new(ErrorKind::InvalidData, "stream did not contain valid UTF-8"))
}

/// Why `dir` cannot hold outputs, or `None` when it can: it is a directory
/// this process may write, or the nearest existing ancestor is, so it can
/// be created. Writes nothing.
pub(crate) fn unwritable_dir(dir: &Path) -> Option<String> {
    let mut existing = dir;
    loop {
        match std::fs::metadata(existing) {
            Ok(meta) if meta.is_dir() => break,
            Ok(_) if existing == dir => return Some("it exists and is not a directory".into()),
            Ok(_) => {
                return Some(format!(
                    "{} is not a directory, so it cannot be created",
                    existing.display()
                ));
            }
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                match existing.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => existing = parent,
                    _ => {
                        existing = Path::new(".");
                        break;
                    }
                }
            }
            Err(err) => return Some(format!("cannot inspect {}: {err}", existing.display())),
        }
    }
    if writable(existing) {
        None
    } else if existing == dir {
        Some("the directory is not writable".into())
    } else {
        Some(format!(
            "{} is not writable, so it cannot be created",
            existing.display()
        ))
    }
}

#[cfg(unix)]
fn writable(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access(2) reads a NUL-terminated path that outlives the call.
    unsafe { libc::access(path.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

#[cfg(not(unix))]
fn writable(dir: &Path) -> bool {
    std::fs::metadata(dir).is_ok_and(|m| !m.permissions().readonly())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn fifo_and_devices_are_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("temp dir");
        let fifo = dir.path().join("fifo.yaml");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(status.success(), "mkfifo: {status}");
        for path in [fifo.as_path(), Path::new("/dev/zero"), dir.path()] {
            let err = read_text(path, MAX_INPUT_BYTES).expect_err("not a regular file");
            assert_eq!(
                err.kind(),
                std::io::ErrorKind::InvalidInput,
                "{}: {err}",
                path.display()
            );
        }
    }

    #[test]
    fn files_over_the_limit_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("big.yaml");
        std::fs::write(&path, "x".repeat(11)).expect("write");
        let err = read_text(&path, 10).expect_err("too big");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
        assert_eq!(read_text(&path, 11).expect("fits"), "x".repeat(11));
    }

    #[test]
    fn output_dirs() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("file");
        std::fs::write(&file, "x").expect("write");
        assert_eq!(unwritable_dir(dir.path()), None);
        assert_eq!(unwritable_dir(&dir.path().join("new/deeper")), None);
        assert_eq!(
            unwritable_dir(&file).as_deref(),
            Some("it exists and is not a directory")
        );
        let under_file = unwritable_dir(&file.join("sub"));
        assert!(
            under_file
                .as_deref()
                .is_some_and(|r| r.ends_with("is not a directory, so it cannot be created")),
            "{under_file:?}"
        );
        assert_eq!(
            unwritable_dir(Path::new("/dev/null")).as_deref(),
            Some("it exists and is not a directory")
        );
    }
}
