//! Shared prefixes: a system prompt or a document that a group of prompts
//! sends first (`prefix:` on a prompt, or beside `include:` for every
//! prompt it includes). The prefix becomes the start of each prompt's
//! system message, so every prompt of the group begins with the same
//! tokens, and a server with a prompt cache (llama.cpp, vLLM) processes
//! them once: what the `cached_tokens` of the group's later requests show.

use std::path::Path;

use super::diag::Diagnostic;
use super::node::Pos;
use super::raw::RawPrefix;
use super::{Message, Prompt, Role};

/// The text of `prefix`, read from its file (relative to `dir`) when it
/// names one; a diagnostic at `pos` when the file cannot be read.
pub(super) fn text(
    prefix: &RawPrefix,
    file: &Path,
    dir: &Path,
    pos: Pos,
) -> Result<String, Diagnostic> {
    match prefix {
        RawPrefix::Text(text) => Ok(text.clone()),
        RawPrefix::File { file: name } => {
            let path = dir.join(name);
            crate::fsutil::read_text(&path, crate::fsutil::MAX_INPUT_BYTES).map_err(|err| {
                Diagnostic::new(
                    format!("cannot read prefix {}: {err}", path.display()),
                    file,
                    pos,
                )
                .with_hint(Some(format!("paths are relative to {}", dir.display())))
            })
        }
    }
}

/// Puts `prefix` at the start of each prompt's system message (a system
/// message of its own when the prompt has none), a blank line between.
pub(super) fn apply(prefix: &str, prompts: &mut [Prompt]) {
    for prompt in prompts {
        match prompt.messages.first_mut() {
            Some(first) if first.role == Role::System => {
                first.content = format!("{prefix}\n\n{}", first.content);
            }
            _ => prompt.messages.insert(
                0,
                Message {
                    role: Role::System,
                    content: prefix.to_string(),
                },
            ),
        }
    }
}
