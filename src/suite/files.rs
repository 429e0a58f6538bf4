//! Finding files by glob: the suites named on the command line
//! (`suites/**/*.yaml`) and the prompt files a suite includes. One walker
//! serves both. It never follows a symlinked directory (a link to `.`, to
//! `/` or to `/proc/self` cannot send it round or out), enters each
//! directory once, stops at a depth limit, and lists only regular files
//! (symlinked files included), so a FIFO or a device can never block a read.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};

/// Deepest directory level the walker enters below its root.
pub(crate) const MAX_DEPTH: usize = 32;

/// Why suite arguments name no files.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FilesError {
    #[error("invalid glob `{pattern}`: {reason}")]
    BadGlob { pattern: String, reason: String },
    #[error("`{0}` matches no file")]
    NoMatch(String),
}

/// Whether `text` holds a glob metacharacter.
pub(crate) fn is_glob(text: &str) -> bool {
    text.contains(['*', '?', '[', '{'])
}

/// A glob where `*` stops at `/` and `**` crosses directories.
pub(crate) fn compile(pattern: &str) -> Result<GlobMatcher, FilesError> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| FilesError::BadGlob {
            pattern: pattern.to_string(),
            reason: e.kind().to_string(),
        })
}

/// Expands globs among `args` (a plain path is kept as is); sorted per glob.
pub(crate) fn expand_args(args: &[String]) -> Result<Vec<PathBuf>, FilesError> {
    let mut files = Vec::new();
    for arg in args {
        if !is_glob(arg) {
            files.push(PathBuf::from(arg));
            continue;
        }
        let glob = compile(arg)?;
        let found = matching(&glob_root(arg), |path| glob.is_match(path));
        if found.is_empty() {
            return Err(FilesError::NoMatch(arg.clone()));
        }
        files.extend(found);
    }
    Ok(files)
}

/// The regular files under `root` (itself excluded) for which `keep`
/// holds, sorted. Paths are `root` joined with the relative path; an empty
/// root is the current directory, and its files have no `./` prefix.
pub(crate) fn matching(root: &Path, keep: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut visited = HashSet::new();
    walk(root, 0, &mut visited, &mut |path| {
        if keep(path) {
            found.push(path.to_path_buf());
        }
    });
    found.sort();
    found
}

fn walk(dir: &Path, depth: usize, visited: &mut HashSet<PathBuf>, visit: &mut dyn FnMut(&Path)) {
    let readable = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(canonical) = readable.canonicalize() else {
        return;
    };
    if depth > MAX_DEPTH || !visited.insert(canonical) {
        return;
    }
    let Ok(entries) = std::fs::read_dir(readable) else {
        return;
    };
    for entry in entries.flatten() {
        let path = if dir.as_os_str().is_empty() || dir == Path::new(".") {
            PathBuf::from(entry.file_name())
        } else {
            dir.join(entry.file_name())
        };
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            walk(&path, depth + 1, visited, visit);
        } else if kind.is_file() || (kind.is_symlink() && path.is_file()) {
            visit(&path);
        }
    }
}

/// The literal directory prefix of a glob (`suites/**/*.yaml` → `suites`).
fn glob_root(pattern: &str) -> PathBuf {
    let literal: Vec<&str> = pattern
        .split('/')
        .take_while(|part| !is_glob(part))
        .collect();
    if literal.is_empty() {
        PathBuf::new()
    } else {
        PathBuf::from(literal.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for f in files {
            let path = dir.path().join(f);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
            std::fs::write(path, "x").expect("write");
        }
        dir
    }

    #[test]
    fn globs_match_relative_paths_and_sort() {
        let dir = tree(&["b.yaml", "a.yaml", "sub/c.yaml", "sub/d.txt"]);
        let glob = compile("**/*.yaml").expect("glob");
        let found = matching(dir.path(), |p| {
            p.strip_prefix(dir.path())
                .is_ok_and(|rel| glob.is_match(rel))
        });
        let names: Vec<String> = found
            .iter()
            .map(|p| {
                p.strip_prefix(dir.path())
                    .expect("under")
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(names, ["a.yaml", "b.yaml", "sub/c.yaml"], "{found:?}");
    }

    #[cfg(unix)]
    #[test]
    fn symlink_loops_fifos_and_links_outside_end() {
        let dir = tree(&["p.yaml"]);
        std::os::unix::fs::symlink(".", dir.path().join("a")).expect("link a");
        std::os::unix::fs::symlink(".", dir.path().join("b")).expect("link b");
        std::os::unix::fs::symlink("/proc/self", dir.path().join("proc")).expect("link proc");
        let fifo = dir.path().join("fifo.yaml");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(status.success());
        let found = matching(dir.path(), |p| p.extension().is_some_and(|e| e == "yaml"));
        assert_eq!(
            found.len(),
            1,
            "{} files, first {:?}",
            found.len(),
            found.first()
        );
        assert_eq!(found, [dir.path().join("p.yaml")]);
    }

    #[test]
    fn glob_roots() {
        assert_eq!(glob_root("suites/**/*.yaml"), PathBuf::from("suites"));
        assert_eq!(glob_root("*.yaml"), PathBuf::new());
    }
}
