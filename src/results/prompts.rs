//! What requests say about their prompts: how deep the context was, how
//! fast the server processed the prompt, and how much of it came from the
//! server's prompt cache.
//!
//! - **Cached tokens** are the prompt tokens the server reports it reused
//!   from its prompt cache for a request (`usage.prompt_tokens_details.
//!   cached_tokens`, or llama.cpp's `timings.cache_n`), recorded per sample.
//! - **Cache hit rate** of a group of requests is Σ cached tokens ÷
//!   Σ prompt tokens over the requests whose server reported both; a
//!   request that reports no cached tokens is left out, not counted as a
//!   miss.
//! - **Prompt tok/s** of a request is its uncached prompt tokens (prompt
//!   tokens − cached tokens) ÷ TTFT: the prompt processing the client sees,
//!   first token included.

use serde::{Deserialize, Serialize};

use super::Sample;
use super::summary::Dist;

/// The prompt figures of a group of requests (a model at one set of axis
/// values). Depth figures are filled only where the suite sets a
/// `context_tokens` axis.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PromptFigures {
    /// Filler context before each prompt (the `context_tokens` axis value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_tokens: Option<u32>,
    /// Prompt tokens per request, as the server counted them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<Dist>,
    /// (prompt tokens − cached tokens) ÷ TTFT, per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tps: Option<Dist>,
    /// Σ cached tokens ÷ Σ prompt tokens, where the server reported both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_hit_rate: Option<f64>,
}

impl PromptFigures {
    /// The figures of `samples` (successful, warm) at axis values `axes`.
    pub fn of(axes: Option<&str>, samples: &[&Sample]) -> PromptFigures {
        let context_tokens = axes.and_then(context_tokens);
        let dist = |f: fn(&Sample) -> Option<f64>| {
            context_tokens
                .and_then(|_| Dist::of(&samples.iter().filter_map(|s| f(s)).collect::<Vec<_>>()))
        };
        PromptFigures {
            context_tokens,
            prompt_tokens: dist(|s| s.prompt_tokens.map(|t| t as f64)),
            prompt_tps: dist(prompt_tps),
            cache_hit_rate: cache_hit_rate(samples.iter().copied()),
        }
    }
}

/// The `context_tokens` value in an axes label (`context_tokens=2048,cache=true`).
pub fn context_tokens(axes: &str) -> Option<u32> {
    axes.split(',')
        .find_map(|a| a.strip_prefix("context_tokens="))
        .and_then(|v| v.parse().ok())
}

/// Σ cached ÷ Σ prompt tokens over `samples` that report both; `None`
/// when none does (or their prompts hold no tokens).
pub fn cache_hit_rate<'a>(samples: impl Iterator<Item = &'a Sample>) -> Option<f64> {
    let (cached, prompt) = samples
        .filter_map(|s| Some((s.cached_tokens?, s.prompt_tokens?)))
        .fold((0u64, 0u64), |(c, p), (sc, sp)| (c + sc.min(sp), p + sp));
    (prompt > 0).then(|| cached as f64 / prompt as f64)
}

/// A request's uncached prompt tokens per second of TTFT.
pub fn prompt_tps(s: &Sample) -> Option<f64> {
    let ttft = s.ttft_ms.filter(|t| *t > 0.0)?;
    let fresh = s
        .prompt_tokens?
        .saturating_sub(s.cached_tokens.unwrap_or(0));
    Some(fresh as f64 * 1000.0 / ttft)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Round;

    fn sample(prompt: u64, cached: Option<u64>, ttft: f64) -> Sample {
        let mut s = Sample::new("k".into(), "m", "p", Round::Measured(1));
        s.prompt_tokens = Some(prompt);
        s.cached_tokens = cached;
        s.ttft_ms = Some(ttft);
        s
    }

    #[test]
    fn the_hit_rate_counts_only_requests_that_report_their_cache() {
        let samples = [
            sample(1000, Some(0), 500.0),
            sample(1000, Some(900), 50.0),
            sample(400, None, 9.0),
        ];
        let rate = cache_hit_rate(samples.iter());
        assert_eq!(rate, Some(0.45), "{rate:?}");
        assert_eq!(cache_hit_rate([sample(10, None, 1.0)].iter()), None);
        // Uncached tokens over TTFT: 100 fresh tokens in 50 ms.
        assert_eq!(prompt_tps(&samples[1]), Some(2000.0));
    }

    #[test]
    fn depth_comes_from_the_axes_label() {
        assert_eq!(
            context_tokens("stream=true,context_tokens=2048"),
            Some(2048)
        );
        assert_eq!(context_tokens("cache=false"), None);
    }
}
