//! Filler text: the deterministic words that synthetic prompts and
//! context depth (`context_tokens`) are made of, and their calibration
//! against the server's tokenizer. Common English words are about one
//! token each; where the server has a tokenizer (llama.cpp `/tokenize`),
//! dyno counts the tokens of a probe of the same words once per launch and
//! scales the number of words by what it found, so a depth of 2,048 tokens
//! is 2,048 tokens for this model, give or take a few.
//!
//! A filler is drawn from a seed: the same request gets the same words in
//! every run, and two requests with different seeds share no prefix beyond
//! their first word or so, so no prompt cache holds one request's filler
//! for the next. That is what a depth measures: prompt processing at that
//! depth, as llama-bench's `-d` does, not a cache hit.

use crate::provider::{Concurrent, Request};
use crate::suite::{Message, Role};

/// Words fillers are made of (common words: about one token each).
pub(crate) const WORDS: [&str; 32] = [
    "the", "model", "reads", "this", "text", "and", "then", "writes", "a", "long", "answer",
    "about", "what", "it", "has", "seen", "in", "the", "prompt", "so", "that", "every", "request",
    "has", "the", "same", "shape", "for", "the", "load", "test", "here",
];

/// Words in the calibration probe.
const PROBE_WORDS: usize = 512;

/// Words per token of filler text on the server behind `sender`, from its
/// tokenizer; 1.0 where it has none.
pub(crate) async fn words_per_token(sender: &dyn Concurrent) -> f64 {
    let probe = words(PROBE_WORDS, 0);
    sender
        .count_tokens(&probe)
        .await
        .filter(|t| *t > 0)
        .map_or(1.0, |t| PROBE_WORDS as f64 / t as f64)
}

/// `count` words drawn from [`WORDS`] by `seed`, joined by spaces.
pub(crate) fn words(count: usize, seed: u64) -> String {
    let mut text = String::with_capacity(count * 6);
    for k in 0..count as u64 {
        if k > 0 {
            text.push(' ');
        }
        let i = usize::try_from(mix(seed ^ mix(k)) % WORDS.len() as u64).unwrap_or(0);
        text.push_str(WORDS[i]);
    }
    text
}

/// Puts about `tokens` tokens of filler (drawn by `seed`) before the first
/// user message of `request` (a user message of its own when it has
/// none), a blank line between them.
pub(crate) fn with_context(request: &mut Request, tokens: u32, words_per_token: f64, seed: u64) {
    if tokens == 0 {
        return;
    }
    let count = (f64::from(tokens) * words_per_token).round().max(1.0) as usize;
    let filler = words(count, seed);
    match request.messages.iter_mut().find(|m| m.role == Role::User) {
        Some(message) => message.content = format!("{filler}\n\n{}", message.content),
        None => request.messages.push(Message {
            role: Role::User,
            content: filler,
        }),
    }
}

/// splitmix64's finaliser: a well-mixed 64-bit value of `x`.
pub(crate) fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filler_is_the_same_for_its_seed_and_differs_between_seeds() {
        let a = words(200, 7);
        assert_eq!(a, words(200, 7));
        assert_eq!(a.split(' ').count(), 200, "{a}");
        let b = words(200, 8);
        // Different seeds part within the first few words.
        let shared = a
            .split(' ')
            .zip(b.split(' '))
            .take_while(|(x, y)| x == y)
            .count();
        assert!(shared < 4, "{shared} words shared: {a} / {b}");
    }
}
