//! Text for messages: the first line of a long text, a clip to a number of
//! characters, an error's causes, hex digests. Every stage uses these; none
//! writes its own.

/// The first non-empty line of `text`, trimmed; `""` when there is none.
pub(crate) fn first_line(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

/// `text` cut to at most `max_chars` characters, with `…` where it was cut.
pub(crate) fn clip(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// The innermost cause of `err` (HTTP clients wrap the useful message).
pub(crate) fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// `err` and every cause that adds something, joined with `: `.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// `text` safe to print on a terminal: control characters other than
/// newline and tab, C1 controls (U+0085, a line break to some terminals)
/// and the Unicode line and paragraph separators written as `\u{85}`, so
/// input can neither break a message's lines nor drive the terminal.
pub(crate) fn printable(text: &str) -> String {
    let hidden = |c: char| {
        (c.is_control() && c != '\n' && c != '\t') || matches!(c, '\u{2028}' | '\u{2029}')
    };
    if !text.chars().any(hidden) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if hidden(c) {
                format!("\\u{{{:x}}}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_23_printable_escapes_what_would_break_a_line_or_drive_a_terminal() {
        assert_eq!(printable("plain\nline\ttab"), "plain\nline\ttab");
        assert_eq!(
            printable("a\u{85}b\u{2028}c\u{1b}[31md\r"),
            "a\\u{85}b\\u{2028}c\\u{1b}[31md\\u{d}"
        );
    }

    #[test]
    fn first_line_skips_blank_lines() {
        assert_eq!(first_line("\n  boom  \nmore"), "boom");
        assert_eq!(first_line(""), "");
    }

    #[test]
    fn clip_counts_characters() {
        assert_eq!(clip("héllo", 3), "hél…");
        assert_eq!(clip("abc", 3), "abc");
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(hex(&[0, 171, 255]), "00abff");
    }
}
