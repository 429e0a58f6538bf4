//! Diagnostics that point into a suite file: one renderer, rustc-style, with
//! the source line and carets; never decides what is an error.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::node::Pos;

/// One error at a place in a source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub message: String,
    pub file: PathBuf,
    pub pos: Pos,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(message: impl Into<String>, file: &Path, pos: Pos) -> Diagnostic {
        Diagnostic {
            message: message.into(),
            file: file.to_path_buf(),
            pos,
            hint: None,
        }
    }

    #[must_use]
    pub(crate) fn with_hint(mut self, hint: Option<String>) -> Diagnostic {
        self.hint = hint;
        self
    }

    /// Renders against the text of `self.file`:
    ///
    /// ```text
    /// error: expected integer, found string "three"
    ///   --> suites/quickstart.yaml:30:11
    ///    |
    /// 30 |   rounds: three
    ///    |           ^^^^^
    ///    = hint: ...
    /// ```
    pub fn render(&self, source: &str) -> String {
        let mut out = format!("error: {}\n", self.message);
        let line_no = self.pos.line.to_string();
        let gutter = " ".repeat(line_no.len());
        let _ = writeln!(
            out,
            "{gutter}--> {}:{}:{}",
            self.file.display(),
            self.pos.line,
            self.pos.col
        );
        if let Some(line) = self
            .pos
            .line
            .checked_sub(1)
            .and_then(|i| source.lines().nth(i))
        {
            let (line, col) = window(line.trim_end_matches('\r'), self.pos.col.saturating_sub(1));
            let width = line.chars().count();
            let start = col.min(width);
            let len = self.pos.len.min(width.saturating_sub(start)).max(1);
            let _ = writeln!(out, "{gutter} |");
            let _ = writeln!(out, "{line_no} | {line}");
            let _ = writeln!(out, "{gutter} | {}{}", " ".repeat(start), "^".repeat(len));
        }
        if let Some(hint) = &self.hint {
            let _ = writeln!(out, "{gutter} = hint: {hint}");
        }
        out
    }
}

/// Source lines longer than this are shown as a window around the column.
const MAX_SHOWN_CHARS: usize = 160;
/// How much of a long line the window shows before the column.
const SHOWN_BEFORE: usize = 40;

/// `line` as shown, and the 0-based column `col` within it: a line longer
/// than [`MAX_SHOWN_CHARS`] is cut to a window around `col`, with `…`
/// where it was cut.
fn window(line: &str, col: usize) -> (String, usize) {
    let width = line.chars().count();
    if width <= MAX_SHOWN_CHARS {
        return (line.to_string(), col);
    }
    let from = col.min(width).saturating_sub(SHOWN_BEFORE);
    let shown: String = line.chars().skip(from).take(MAX_SHOWN_CHARS).collect();
    let mut text = String::new();
    let mut col = col - from;
    if from > 0 {
        text.push('…');
        col += 1;
    }
    text.push_str(&shown);
    if from + MAX_SHOWN_CHARS < width {
        text.push('…');
    }
    (text, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_line_and_carets() {
        let d = Diagnostic::new(
            "bad",
            Path::new("s.yaml"),
            Pos {
                line: 2,
                col: 3,
                len: 4,
            },
        )
        .with_hint(Some("fix it".into()));
        assert_eq!(
            d.render("a: 1\nb: true\n"),
            "error: bad\n --> s.yaml:2:3\n  |\n2 | b: true\n  |   ^^^^\n  = hint: fix it\n"
        );
    }

    #[test]
    fn long_lines_show_a_window_around_the_column() {
        let source = format!("x: {}BAD{}\n", "a".repeat(300), "b".repeat(300));
        let d = Diagnostic::new(
            "bad",
            Path::new("s.yaml"),
            Pos {
                line: 1,
                col: 304,
                len: 3,
            },
        );
        let rendered = d.render(&source);
        let lines: Vec<&str> = rendered.lines().collect();
        assert_eq!(
            lines[3],
            format!("1 | …{}BAD{}…", "a".repeat(40), "b".repeat(117)),
            "{rendered}"
        );
        assert_eq!(lines[4], format!("  | {}^^^", " ".repeat(41)), "{rendered}");
    }
}
