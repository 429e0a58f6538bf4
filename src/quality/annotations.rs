//! Human ratings: output-text hashing and the `annotations.csv` format,
//! rows to CSV text and back (the caller reads and writes the files).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------
// Human annotations
// ---------------------------------------------------------------------------

/// Key of an output text in annotation files: the first 16 hex digits of
/// its SHA-256.
pub(crate) fn text_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// One human annotation: a score and a note on one model output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnotationRow {
    /// Model id.
    pub model: String,
    /// Prompt id.
    pub prompt: String,
    /// The prompt's user message(s), to rate the output against (empty in
    /// files written before the column existed).
    pub prompt_text: String,
    /// What a good answer covers (the prompt's rubric); empty without one.
    pub rubric: String,
    /// [`text_hash`] of `output`: the key that ties the annotation to results.
    pub output_hash: String,
    /// The output text, for the annotator to read.
    pub output: String,
    /// The annotator's score; `None` while unscored (an empty cell).
    pub score: Option<f64>,
    /// Free-text note.
    pub note: String,
}

impl AnnotationRow {
    /// An unscored row for `output`, with its hash filled in.
    pub fn new(model: &str, prompt: &str, output: &str) -> Self {
        Self {
            model: model.to_string(),
            prompt: prompt.to_string(),
            prompt_text: String::new(),
            rubric: String::new(),
            output_hash: text_hash(output),
            output: output.to_string(),
            score: None,
            note: String::new(),
        }
    }

    #[cfg(test)]
    /// Whether `output_hash` is still the hash of `output` (an annotator may
    /// have edited the text).
    pub(crate) fn hash_matches(&self) -> bool {
        self.output_hash == text_hash(&self.output)
    }
}

/// The annotation CSV's columns, in written order. `prompt_text` and
/// `rubric` may be absent from a file (older files lack them).
pub(crate) const ANNOTATION_COLUMNS: [&str; 8] = [
    "model",
    "prompt",
    "prompt_text",
    "rubric",
    "output_hash",
    "output",
    "score",
    "note",
];

/// Why annotation CSV cannot be written or read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnnotationError {
    /// The CSV itself is malformed (e.g. a row with the wrong number of fields).
    #[error("annotations CSV, line {line}: {message}")]
    Csv {
        /// 1-based line where the problem was found (0 when unknown).
        line: u64,
        /// The CSV reader's or writer's message.
        message: String,
    },
    /// A required column is absent from the header row.
    #[error(
        "annotations CSV has no `{0}` column (expected: model, prompt, output_hash, output, score, note)"
    )]
    MissingColumn(&'static str),
    /// A score cell is neither empty nor a finite number.
    #[error(
        "annotations CSV, line {line}: score {value:?} is not a number (leave it empty for no score)"
    )]
    BadScore {
        /// 1-based line where the row starts.
        line: u64,
        /// The cell as written.
        value: String,
    },
    /// A row to write has a NaN or infinite score.
    #[error("annotation row {index} has a non-finite score")]
    NonFiniteScore {
        /// 0-based index of the row.
        index: usize,
    },
}

fn csv_error(err: &csv::Error) -> AnnotationError {
    AnnotationError::Csv {
        line: err.position().map_or(0, csv::Position::line),
        message: match err.kind() {
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => format!("{len} fields where the header has {expected_len}"),
            _ => err.to_string(),
        },
    }
}

/// The rows as CSV text with a header row ([`ANNOTATION_COLUMNS`]); any text
/// (commas, quotes, newlines) is quoted so it reads back unchanged.
pub fn write_annotations_csv(rows: &[AnnotationRow]) -> Result<String, AnnotationError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer
        .write_record(ANNOTATION_COLUMNS)
        .map_err(|e| csv_error(&e))?;
    for (index, row) in rows.iter().enumerate() {
        let score = match row.score {
            Some(s) if !s.is_finite() => return Err(AnnotationError::NonFiniteScore { index }),
            Some(s) => s.to_string(),
            None => String::new(),
        };
        writer
            .write_record([
                row.model.as_str(),
                row.prompt.as_str(),
                row.prompt_text.as_str(),
                row.rubric.as_str(),
                row.output_hash.as_str(),
                row.output.as_str(),
                score.as_str(),
                row.note.as_str(),
            ])
            .map_err(|e| csv_error(&e))?;
    }
    let bytes = writer.into_inner().map_err(|e| AnnotationError::Csv {
        line: 0,
        message: e.to_string(),
    })?;
    String::from_utf8(bytes).map_err(|e| AnnotationError::Csv {
        line: 0,
        message: e.to_string(),
    })
}

/// Rows of annotation CSV text. Columns are found by header name (any order;
/// extra columns are ignored; `prompt_text` and `rubric` may be missing; a
/// leading byte-order mark is skipped). An empty or blank score cell is
/// `None`.
pub fn read_annotations_csv(text: &str) -> Result<Vec<AnnotationRow>, AnnotationError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| csv_error(&e))?.clone();
    let optional = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let column = |name: &'static str| optional(name).ok_or(AnnotationError::MissingColumn(name));
    let (prompt_text, rubric) = (optional("prompt_text"), optional("rubric"));
    let [model, prompt, hash, output, score, note] = [
        column("model")?,
        column("prompt")?,
        column("output_hash")?,
        column("output")?,
        column("score")?,
        column("note")?,
    ];
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(&e))?;
        let line = record.position().map_or(0, csv::Position::line);
        let cell = |i: usize| record.get(i).unwrap_or("").to_string();
        let maybe = |i: Option<usize>| i.map(cell).unwrap_or_default();
        let raw_score = cell(score);
        let parsed = match raw_score.trim() {
            "" => None,
            s => match s.parse::<f64>() {
                Ok(v) if v.is_finite() => Some(v),
                _ => {
                    return Err(AnnotationError::BadScore {
                        line,
                        value: raw_score,
                    });
                }
            },
        };
        rows.push(AnnotationRow {
            model: cell(model),
            prompt: cell(prompt),
            prompt_text: maybe(prompt_text),
            rubric: maybe(rubric),
            output_hash: cell(hash),
            output: cell(output),
            score: parsed,
            note: cell(note),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes() {
        assert_eq!(text_hash(""), "e3b0c44298fc1c14");
        assert_eq!(text_hash("abc"), "ba7816bf8f01cfea");
        assert_eq!(text_hash("abc").len(), 16);
    }

    #[test]
    fn annotations_round_trip_hostile_text() {
        let hostile = [
            "plain",
            "commas, and \"quotes\", and 'single'",
            "line one\nline two\r\nline three\r",
            "  leading and trailing spaces  ",
            "=HYPERLINK(\"http://x\")",
            "",
            "\"",
            "tab\there; semicolon; ünïcødé ✓ \u{0}",
        ];
        let mut rows: Vec<AnnotationRow> = hostile
            .iter()
            .enumerate()
            .map(|(i, text)| AnnotationRow::new("m,1", &format!("p\"{i}"), text))
            .collect();
        rows[0].score = Some(4.0);
        rows[1].score = Some(3.5);
        rows[2].note = "note with\nnewline, comma and \"quote\"".into();
        rows[3].prompt_text = "Explain, \"briefly\":\nRAG".into();
        rows[3].rubric = "retrieval, grounding".into();
        let csv = write_annotations_csv(&rows).expect("writes");
        assert!(
            csv.starts_with("model,prompt,prompt_text,rubric,output_hash,output,score,note\n"),
            "{csv}"
        );
        let back = read_annotations_csv(&csv).expect("reads");
        assert_eq!(back, rows);
        assert!(back.iter().all(AnnotationRow::hash_matches));
        // A byte-order mark (spreadsheet export) is skipped.
        assert_eq!(
            read_annotations_csv(&format!("\u{feff}{csv}")).expect("reads"),
            rows
        );
    }

    #[test]
    fn annotations_read_errors_and_columns() {
        let text = "note,score,output,output_hash,prompt,model,extra\n\
                    ok,,out,h,p,m,x\n\
                    \"multi\nline\", 2 ,out,h,p,m,x\n\
                    bad,four,out,h,p,m,x\n";
        match read_annotations_csv(text) {
            Err(AnnotationError::BadScore { line, value }) => {
                assert_eq!((line, value.as_str()), (5, "four"));
            }
            other => panic!("expected BadScore, got {other:?}"),
        }
        let ok = read_annotations_csv(&text.replace("four", "")).expect("reads");
        assert_eq!(ok.len(), 3);
        // A file written before the prompt_text and rubric columns reads.
        assert_eq!(
            (ok[0].prompt_text.as_str(), ok[0].rubric.as_str()),
            ("", ""),
            "{ok:?}"
        );
        assert_eq!(ok[0].score, None);
        assert_eq!(ok[1].score, Some(2.0));
        assert_eq!(ok[1].note, "multi\nline");
        let err = read_annotations_csv("model,prompt,output\n").expect_err("missing column");
        assert_eq!(err, AnnotationError::MissingColumn("output_hash"));
        let err = read_annotations_csv("model,prompt,output_hash,output,score,note\na,b\n")
            .expect_err("short row");
        assert_eq!(
            err,
            AnnotationError::Csv {
                line: 2,
                message: "2 fields where the header has 6".into()
            }
        );
        let err =
            read_annotations_csv("model,prompt,output_hash,output,score,note\na,b,c,d,NaN,f\n")
                .expect_err("NaN");
        assert!(matches!(err, AnnotationError::BadScore { line: 2, .. }));
        let mut row = AnnotationRow::new("m", "p", "o");
        row.score = Some(f64::INFINITY);
        assert_eq!(
            write_annotations_csv(&[row]),
            Err(AnnotationError::NonFiniteScore { index: 0 })
        );
    }
}
