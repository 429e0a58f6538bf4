//! What a reasoning model spent before it answered, as results record it:
//! per request ([`Reasoning`]: which form the reasoning came in, its
//! tokens and where their count came from, how long it took, the answer's
//! tokens, the reasoning text) and per cell or summary row
//! ([`ReasoningStats`]: their distributions). Plain data and pure
//! functions; the figures are measured by the OpenAI client and made into
//! a sample by the executor.
//!
//! One definition throughout: TTFT stays the time to the first *answer*
//! token; `ttfo_reasoning_ms` is the time to the first reasoning token;
//! the reasoning time is the span between the two (thinking, without the
//! prompt's processing); answer tokens are what was generated after it,
//! and the decode speed of a reasoning request counts them only.

use serde::{Deserialize, Serialize};

use super::summary::Dist;
use super::{Sample, TokenSource};

/// How a server handed over a model's reasoning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReasoningForm {
    /// A `reasoning_content` field beside `content` (llama-server,
    /// DeepSeek, vLLM's reasoning parsers).
    ReasoningContent,
    /// A `reasoning` field beside `content` (OpenRouter, newer vLLM, Ollama).
    Reasoning,
    /// `<think>…</think>` at the start of `content` (a server that passes
    /// the model's text through unparsed).
    ThinkTags,
}

/// One request's reasoning, when the model reasoned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Reasoning {
    /// The form the reasoning came in (the first one seen).
    pub form: ReasoningForm,
    /// Reasoning tokens: `usage.completion_tokens_details.reasoning_tokens`,
    /// else the streamed events that carried reasoning, counted.
    pub tokens: Option<u64>,
    /// Where `tokens` came from (`usage`, or `estimate` when counted).
    pub token_source: Option<TokenSource>,
    /// From the first reasoning token to the first answer token (`ttft_ms`
    /// − `ttfo_reasoning_ms`), streaming only.
    pub reasoning_ms: Option<f64>,
    /// Tokens of the answer: output tokens less reasoning tokens when both
    /// come from `usage`, else the streamed answer events counted.
    pub answer_tokens: Option<u64>,
    /// The reasoning text (the answer is the sample's `text`).
    pub text: String,
}

/// Distributions of a cell's (or a summary row's) reasoning figures, over
/// its successful requests that reasoned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReasoningStats {
    /// Requests that reasoned.
    pub n: usize,
    pub ttfo_reasoning_ms: Option<Dist>,
    pub reasoning_ms: Option<Dist>,
    pub reasoning_tokens: Option<Dist>,
    pub answer_tokens: Option<Dist>,
}

impl ReasoningStats {
    /// Over `samples` (already filtered to the ones that count); `None`
    /// when none of them reasoned.
    pub fn of<'a>(samples: impl Iterator<Item = &'a Sample>) -> Option<ReasoningStats> {
        let reasoned: Vec<&Sample> = samples.filter(|s| s.reasoning.is_some()).collect();
        if reasoned.is_empty() {
            return None;
        }
        let dist = |f: &dyn Fn(&Sample) -> Option<f64>| {
            Dist::of(&reasoned.iter().filter_map(|s| f(s)).collect::<Vec<_>>())
        };
        Some(ReasoningStats {
            n: reasoned.len(),
            ttfo_reasoning_ms: dist(&|s| s.ttfo_reasoning_ms),
            reasoning_ms: dist(&|s| s.reasoning.as_ref()?.reasoning_ms),
            reasoning_tokens: dist(&|s| Some(s.reasoning.as_ref()?.tokens? as f64)),
            answer_tokens: dist(&|s| Some(s.reasoning.as_ref()?.answer_tokens? as f64)),
        })
    }
}
