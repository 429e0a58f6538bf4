//! Reading and writing `results.json`: the one loader, which checks the
//! format version before anything else, and the one serializer.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{READABLE_FORMATS, Results};

/// The file every run writes into its output directory.
pub const RESULTS_FILE: &str = "results.json";

/// Why a results document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} is not a dyno results file: {reason}")]
    Parse { what: String, reason: String },
    #[error(
        "{what} has results format {found}; this dyno reads formats {}–{}",
        READABLE_FORMATS.start(),
        READABLE_FORMATS.end()
    )]
    Format { what: String, found: u32 },
}

/// `path` itself, or `path/results.json` when `path` is a directory.
pub fn results_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(RESULTS_FILE)
    } else {
        path.to_path_buf()
    }
}

/// Parses a results document; `what` names it in errors. The format
/// version is read first, so a document of another format says so rather
/// than failing on a field.
pub fn parse(text: &str, what: &str) -> Result<Results, LoadError> {
    #[derive(Deserialize)]
    struct Version {
        format_version: u32,
    }
    let parse_error = |e: serde_json::Error| LoadError::Parse {
        what: what.to_string(),
        reason: e.to_string(),
    };
    let version: Version = serde_json::from_str(text).map_err(parse_error)?;
    if !READABLE_FORMATS.contains(&version.format_version) {
        return Err(LoadError::Format {
            what: what.to_string(),
            found: version.format_version,
        });
    }
    serde_json::from_str(text).map_err(parse_error)
}

/// The largest results file `load` reads (a FIFO or a device is refused
/// whatever its size).
const MAX_RESULTS_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// Reads the results at `path` (a file, or a directory holding
/// `results.json`); returns them with the file they came from.
pub fn load(path: &Path) -> Result<(Results, PathBuf), LoadError> {
    let file = results_file(path);
    let text =
        crate::fsutil::read_text(&file, MAX_RESULTS_BYTES).map_err(|source| LoadError::Io {
            path: file.clone(),
            source,
        })?;
    let doc = parse(&text, &file.display().to_string())?;
    Ok((doc, file))
}

/// The document as committed: pretty JSON with a final newline.
pub fn to_json(doc: &Results) -> Result<String, serde_json::Error> {
    Ok(serde_json::to_string_pretty(doc)? + "\n")
}
