//! Context depth against a model's context window. A suite that puts
//! `context_tokens` of filler before each prompt and lets the model answer
//! `max_tokens` more needs a window at least that large; where the model
//! declares its `context_window`, a depth it cannot hold is an error here,
//! before anything runs, pointing at the value that asks for it (a matrix
//! entry, the model's own parameters or the suite's defaults). Where only
//! the server knows its window, the request fails as `too_long` instead.

use std::path::Path;

use super::Model;
use super::diag::Diagnostic;
use super::node::Node;
use super::raw::RawSuite;

/// A diagnostic for every depth a model with a declared window cannot hold.
pub(super) fn check(file: &Path, root: &Node, raw: &RawSuite, models: &[Model]) -> Vec<Diagnostic> {
    let at = |pointer: &str| root.lookup(pointer).map_or(root.pos, |n| n.pos);
    let matrix = raw.matrix.as_ref();
    let mut found = Vec::new();
    for (i, m) in raw.models.iter().enumerate() {
        let Some(model) = models.iter().find(|r| r.id == m.id) else {
            continue;
        };
        let Some(window) = model.context_window else {
            continue;
        };
        let max_tokens = matrix
            .and_then(|x| x.max_tokens.as_ref())
            .and_then(|v| v.iter().copied().max())
            .unwrap_or(model.params.max_tokens);
        // Each depth the model's cells ask for, and where it is written.
        let depths: Vec<(u32, String)> =
            if let Some(values) = matrix.and_then(|x| x.context_tokens.as_ref()) {
                values
                    .iter()
                    .enumerate()
                    .map(|(j, v)| (*v, format!("/matrix/context_tokens/{j}")))
                    .collect()
            } else {
                let own = m.params.as_ref().and_then(|p| p.context_tokens).is_some();
                let pointer = if own {
                    format!("/models/{i}/params/context_tokens")
                } else {
                    "/defaults/context_tokens".to_string()
                };
                vec![(model.params.context_tokens, pointer)]
            };
        for (depth, pointer) in depths {
            let needed = u64::from(depth) + u64::from(max_tokens);
            if depth == 0 || needed <= u64::from(window) {
                continue;
            }
            found.push(
                Diagnostic::new(
                    format!(
                        "context_tokens {depth} plus max_tokens {max_tokens} is {needed} tokens, more than model `{}` holds (context_window {window})",
                        model.id
                    ),
                    file,
                    at(&pointer),
                )
                .with_hint(Some(format!(
                    "use at most {} context tokens, or a larger window (llama-server `--ctx-size`)",
                    window.saturating_sub(max_tokens)
                ))),
            );
        }
    }
    found
}
