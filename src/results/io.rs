//! Reading and writing `results.json`: the one loader, which checks the
//! format version before anything else, and the one serializer.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{READABLE_FORMATS, Results, mode, parts};

/// The file every run writes into its output directory.
pub const RESULTS_FILE: &str = "results.json";

/// Why a results document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
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
    #[error(
        "{what}: sample {index} has {field} = {value}, which no measurement gives \
         (a time or speed is a finite number from 0 to {MAX_FIGURE:e}); the file was edited or damaged"
    )]
    Value {
        what: String,
        index: usize,
        field: &'static str,
        value: f64,
    },
}

/// The largest time (ms) or speed (tokens/s) a sample may hold: eleven
/// days in milliseconds, far beyond any request.
pub(super) const MAX_FIGURE: f64 = 1e9;

/// Every sample's times and speeds are finite and in `0..=MAX_FIGURE`:
/// what compare, history and the reports compute with.
fn check_figures(doc: &Results, what: &str) -> Result<(), ReadError> {
    for s in &doc.samples {
        let fields = [
            ("ttft_ms", s.ttft_ms),
            ("e2e_ms", s.e2e_ms),
            ("tpot_ms", s.tpot_ms),
            ("decode_tps", s.decode_tps),
        ];
        let gaps = s.itl_ms.iter().map(|&gap| ("itl_ms", Some(gap)));
        for (field, value) in fields.into_iter().chain(gaps) {
            if let Some(value) = value
                && !(value.is_finite() && (0.0..=MAX_FIGURE).contains(&value))
            {
                return Err(ReadError::Value {
                    what: what.to_string(),
                    index: s.index,
                    field,
                    value,
                });
            }
        }
    }
    Ok(())
}

/// `path` itself, or `path/results.json` when `path` is a directory.
pub fn results_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(RESULTS_FILE)
    } else {
        path.to_path_buf()
    }
}

/// Parses a results document; `what` names it in errors. A document of
/// another format says so rather than failing on a field: its version is
/// read when the document does not parse (and checked when it does), so a
/// readable document is parsed once.
pub fn parse(text: &str, what: &str) -> Result<Results, ReadError> {
    parse_as(text, what, false)
}

/// [`parse`], reading every sample's inter-token gaps or (`per_request`)
/// none.
fn parse_as(text: &str, what: &str, per_request: bool) -> Result<Results, ReadError> {
    #[derive(Deserialize)]
    struct Version {
        format_version: u32,
    }
    let unreadable = |found: u32| ReadError::Format {
        what: what.to_string(),
        found,
    };
    let in_parts = (!mode::one_thread_only())
        .then(|| parts::parse_in_parts(text, per_request))
        .flatten();
    let parsed = match in_parts {
        Some(doc) => Ok(doc),
        None => mode::with_per_request(per_request, || serde_json::from_str::<Results>(text)),
    };
    match parsed {
        Ok(doc) if READABLE_FORMATS.contains(&doc.format_version) => {
            check_figures(&doc, what)?;
            Ok(doc)
        }
        Ok(doc) => Err(unreadable(doc.format_version)),
        Err(err) => match serde_json::from_str::<Version>(text) {
            Ok(v) if !READABLE_FORMATS.contains(&v.format_version) => {
                Err(unreadable(v.format_version))
            }
            _ => Err(ReadError::Parse {
                what: what.to_string(),
                reason: err.to_string(),
            }),
        },
    }
}

/// [`parse`] for readers of per-request figures only (`dyno compare`,
/// `dyno history`, the built-in reports): every sample's `itl_ms` is left
/// empty, which makes a streamed run's results about twice as fast to
/// read. Aggregates already in the document (cells, summaries, load
/// points) keep their inter-token figures.
pub fn parse_per_request(text: &str, what: &str) -> Result<Results, ReadError> {
    parse_as(text, what, true)
}

/// The largest results file `load` reads (a FIFO or a device is refused
/// whatever its size).
const MAX_RESULTS_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// Reads the results at `path` (a file, or a directory holding
/// `results.json`); returns them with the file they came from.
pub fn read(path: &Path) -> Result<(Results, PathBuf), ReadError> {
    load_with(path, parse)
}

/// [`load`] through [`parse_per_request`].
pub fn read_per_request(path: &Path) -> Result<(Results, PathBuf), ReadError> {
    load_with(path, parse_per_request)
}

fn load_with(
    path: &Path,
    parse: fn(&str, &str) -> Result<Results, ReadError>,
) -> Result<(Results, PathBuf), ReadError> {
    let file = results_file(path);
    let text =
        crate::fsutil::read_text(&file, MAX_RESULTS_BYTES).map_err(|source| ReadError::Io {
            path: file.clone(),
            source,
        })?;
    let doc = parse(&text, &file.display().to_string())?;
    Ok((doc, file))
}

/// The document as committed: pretty JSON (two-space indent) with a final
/// newline, each array of numbers on one line (`"itl_ms": [12.5, 11.9]`),
/// which keeps a run of long answers a third smaller and as easy to diff.
pub fn to_json(doc: &Results) -> Result<String, serde_json::Error> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, Layout::default());
    serde::Serialize::serialize(doc, &mut ser)?;
    out.push(b'\n');
    // serde_json writes UTF-8 only.
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// `serde_json`'s pretty layout, except that array values which are
/// numbers follow each other on the line, separated by `, `.
#[derive(Default)]
struct Layout {
    indent: usize,
    /// Whether the innermost open array or object has a value yet.
    has_value: bool,
    /// An array value is about to be written: whether it is the first.
    pending: Option<bool>,
    /// Per open array: whether its values went on one line.
    inline: Vec<bool>,
}

impl Layout {
    fn newline<W: ?Sized + std::io::Write>(&self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b"\n")?;
        for _ in 0..self.indent {
            w.write_all(b"  ")?;
        }
        Ok(())
    }

    /// Before a number: `, ` unless it is the array's first value.
    fn number<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        if let Some(first) = self.pending.take() {
            if let Some(inline) = self.inline.last_mut() {
                *inline = true;
            }
            if !first {
                w.write_all(b", ")?;
            }
        }
        Ok(())
    }

    /// Before any other value: the pretty layout's line break and indent.
    fn other<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        if let Some(first) = self.pending.take() {
            if !first {
                w.write_all(b",")?;
            }
            self.newline(w)?;
        }
        Ok(())
    }
}

/// Number writers: the separator, then the number as `serde_json` writes it.
macro_rules! numbers {
    ($($name:ident: $ty:ty),* $(,)?) => {$(
        fn $name<W: ?Sized + std::io::Write>(&mut self, w: &mut W, value: $ty) -> std::io::Result<()> {
            self.number(w)?;
            serde_json::ser::CompactFormatter.$name(w, value)
        }
    )*};
}

impl serde_json::ser::Formatter for Layout {
    numbers!(
        write_i8: i8, write_i16: i16, write_i32: i32, write_i64: i64, write_i128: i128,
        write_u8: u8, write_u16: u16, write_u32: u32, write_u64: u64, write_u128: u128,
        write_f32: f32, write_f64: f64,
    );

    fn write_number_str<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        value: &str,
    ) -> std::io::Result<()> {
        self.number(w)?;
        w.write_all(value.as_bytes())
    }

    fn write_null<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.other(w)?;
        w.write_all(b"null")
    }

    fn write_bool<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        value: bool,
    ) -> std::io::Result<()> {
        self.other(w)?;
        w.write_all(if value { b"true" } else { b"false" })
    }

    fn begin_string<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.other(w)?;
        w.write_all(b"\"")
    }

    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.other(w)?;
        self.indent += 1;
        self.has_value = false;
        self.inline.push(false);
        w.write_all(b"[")
    }

    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.indent -= 1;
        let inline = self.inline.pop().unwrap_or(false);
        if self.has_value && !inline {
            self.newline(w)?;
        }
        w.write_all(b"]")
    }

    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        _: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.pending = Some(first);
        Ok(())
    }

    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.other(w)?;
        self.indent += 1;
        self.has_value = false;
        w.write_all(b"{")
    }

    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.indent -= 1;
        if self.has_value {
            self.newline(w)?;
        }
        w.write_all(b"}")
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if !first {
            w.write_all(b",")?;
        }
        self.newline(w)
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_23_figures_no_measurement_gives_are_refused_on_load() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/results/quickstart/results.json"
        ))
        .unwrap();
        let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        for (field, value) in [
            ("e2e_ms", serde_json::json!(-5.0)),
            ("ttft_ms", serde_json::json!(1e308)),
            ("decode_tps", serde_json::json!(2e9)),
        ] {
            let mut bad = doc.clone();
            bad["samples"][3][field] = value.clone();
            let err = parse(&bad.to_string(), "edited").unwrap_err().to_string();
            assert!(
                err.starts_with(&format!(
                    "edited: sample {} has {field} = ",
                    bad["samples"][3]["index"]
                )),
                "{err}"
            );
            assert!(err.contains("no measurement gives"), "{err}");
        }
        doc["samples"][3]["itl_ms"] = serde_json::json!([1.0, -2.0]);
        let err = parse(&doc.to_string(), "edited").unwrap_err().to_string();
        assert!(err.contains("has itl_ms = -2"), "{err}");
    }

    #[test]
    fn the_layout_is_pretty_with_number_arrays_on_one_line_and_reads_back() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/results/quickstart/results.json"
        ))
        .unwrap();
        let doc = parse(&text, "quickstart").unwrap();
        let json = to_json(&doc).unwrap();
        assert_eq!(parse(&json, "again").unwrap(), doc);
        // The same document as serde_json's pretty printer, whitespace aside.
        let squeeze = |s: &str| s.split_whitespace().collect::<String>();
        assert_eq!(
            squeeze(&json),
            squeeze(&(serde_json::to_string_pretty(&doc).unwrap() + "\n"))
        );
        let itl = json
            .lines()
            .find(|l| {
                l.trim_start().starts_with("\"itl_ms\": [1")
                    || l.trim_start().starts_with("\"itl_ms\": [2")
            })
            .unwrap_or_else(|| panic!("no itl_ms line in {}", &json[..2000]));
        assert!(itl.trim_end().ends_with("],"), "{itl}");
        assert!(itl.contains(", "), "{itl}");
        assert!(
            json.contains("\n  \"samples\": [\n    {\n"),
            "{}",
            &json[..500]
        );
        assert!(
            json.contains("\"checks\": [\n"),
            "arrays of objects stay one per line"
        );
        assert!(json.ends_with("}\n"));
        assert!(to_json(&doc).unwrap().len() < serde_json::to_string_pretty(&doc).unwrap().len());
    }
}
