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
    pub fn with_hint(mut self, hint: Option<String>) -> Diagnostic {
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
            let line = line.trim_end_matches('\r');
            let width = line.chars().count();
            let start = self.pos.col.saturating_sub(1).min(width);
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
}
