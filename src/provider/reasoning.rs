//! A reasoning model's thinking, told apart from its answer while the
//! response streams: the `reasoning_content` and `reasoning` fields, and
//! `<think>…</think>` at the very start of `content` (a tag split across
//! events is still found). The OpenAI client feeds every event's choices
//! through [`Thought::take`], which keeps the reasoning text, counts the
//! events that carried reasoning and answer, and hands back the answer
//! alone, so TTFT stays the time to the first answer token and checks
//! read the answer. [`Thought::finish`] turns what was seen into the
//! sample's [`Reasoning`]. Never times anything itself; never panics.
//!
//! Content whose first characters are not `<think>` is passed through
//! untouched and unbuffered (a borrowed string, as before): a model that
//! does not reason pays one comparison per event.

use std::borrow::Cow;

use crate::results::{Reasoning, ReasoningForm, TokenSource};

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

/// Where the reading of `content` stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Tags {
    /// No content yet, or only a beginning of `<think>` (held).
    #[default]
    Start,
    /// Inside `<think>`; holds what may be the beginning of `</think>`.
    Inside,
    /// Just after `</think>`: whitespace before the answer is dropped.
    Closed,
    /// Everything is answer.
    Plain,
}

/// What a response's reasoning amounted to while it streamed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Thought {
    /// The first form the reasoning came in; `None` while none came.
    pub form: Option<ReasoningForm>,
    /// The reasoning text, every form joined in arrival order.
    pub text: String,
    /// Streamed events that carried reasoning.
    pub events: u64,
    /// Streamed events that carried answer content.
    pub answer_events: u64,
    /// `usage.completion_tokens_details.reasoning_tokens`, when sent.
    pub usage_tokens: Option<u64>,
    tags: Tags,
    /// Content held back while a tag may be under way.
    held: String,
}

impl Thought {
    /// Takes one event's reasoning field (`reasoning_content` or
    /// `reasoning`, with its form) and content; returns the answer part
    /// of the content, how many choices carried answer, and whether the
    /// event carried reasoning.
    pub fn take<'a>(
        &mut self,
        field: Option<(&str, ReasoningForm)>,
        content: Cow<'a, str>,
        with_content: u32,
    ) -> (Cow<'a, str>, u32, bool) {
        let mut reasoned = false;
        if let Some((text, form)) = field.filter(|(t, _)| !t.is_empty()) {
            self.text.push_str(text);
            self.form.get_or_insert(form);
            reasoned = true;
        }
        let (answer, with_content) = if self.tags == Tags::Plain {
            (content, with_content)
        } else if content.is_empty() {
            (content, 0)
        } else {
            let before = self.text.len();
            let answer = self.split(&content);
            if self.text.len() > before {
                self.form.get_or_insert(ReasoningForm::ThinkTags);
                reasoned = true;
            }
            let n = u32::from(!answer.is_empty());
            (Cow::Owned(answer), n)
        };
        self.events += u64::from(reasoned);
        self.answer_events += u64::from(with_content);
        (answer, with_content, reasoned)
    }

    /// Content read through the tag states: reasoning goes to `text`, the
    /// answer is returned.
    fn split(&mut self, content: &str) -> String {
        let mut answer = String::new();
        let mut rest: String = std::mem::take(&mut self.held) + content;
        loop {
            match self.tags {
                Tags::Start => {
                    if let Some(after) = rest.strip_prefix(OPEN) {
                        rest = after.to_string();
                        self.tags = Tags::Inside;
                    } else if OPEN.starts_with(rest.as_str()) {
                        self.held = rest;
                        return answer;
                    } else {
                        self.tags = Tags::Plain;
                    }
                }
                Tags::Inside => {
                    if let Some(at) = rest.find(CLOSE) {
                        self.text.push_str(&rest[..at]);
                        rest = rest[at + CLOSE.len()..].to_string();
                        self.tags = Tags::Closed;
                    } else {
                        let keep = partial_suffix(&rest, CLOSE);
                        let cut = rest.len() - keep;
                        self.text.push_str(&rest[..cut]);
                        self.held = rest[cut..].to_string();
                        return answer;
                    }
                }
                Tags::Closed => {
                    let trimmed = rest.trim_start();
                    if trimmed.is_empty() {
                        return answer;
                    }
                    rest = trimmed.to_string();
                    self.tags = Tags::Plain;
                }
                Tags::Plain => {
                    answer.push_str(&rest);
                    return answer;
                }
            }
        }
    }

    /// At the end of the response: what is still held is answer (a
    /// beginning of `<think>` that never completed) or reasoning (a
    /// `<think>` never closed, as when `max_tokens` ends the thinking).
    pub fn flush(&mut self) -> String {
        let held = std::mem::take(&mut self.held);
        match self.tags {
            Tags::Inside => {
                self.text.push_str(&held);
                String::new()
            }
            _ => held,
        }
    }

    /// A whole (non-streamed) message: its reasoning field and content;
    /// returns the answer.
    pub fn take_whole(&mut self, field: Option<(&str, ReasoningForm)>, content: &str) -> String {
        let (answer, _, _) = self.take(field, Cow::Borrowed(content), 1);
        let mut answer = answer.into_owned();
        answer.push_str(&self.flush());
        self.events = 0;
        self.answer_events = 0;
        answer
    }

    /// The sample's reasoning figures, given what the request measured;
    /// `None` when the model did not reason (and `usage` counted no
    /// reasoning tokens).
    pub fn finish(
        &self,
        ttft_ms: Option<f64>,
        ttfo_reasoning_ms: Option<f64>,
        output_tokens: Option<u64>,
        output_source: Option<TokenSource>,
    ) -> Option<Reasoning> {
        let counted = self.usage_tokens.filter(|n| *n > 0);
        if self.form.is_none() && counted.is_none() {
            return None;
        }
        let from_usage = output_source == Some(TokenSource::Usage);
        let (tokens, token_source, answer_tokens) = match (self.usage_tokens, output_tokens) {
            (Some(reasoning), Some(output)) if from_usage => (
                Some(reasoning),
                Some(TokenSource::Usage),
                Some(output.saturating_sub(reasoning)),
            ),
            _ if self.events > 0 => (
                Some(self.events),
                Some(TokenSource::Estimate),
                Some(self.answer_events),
            ),
            _ => (
                self.usage_tokens,
                self.usage_tokens.map(|_| TokenSource::Usage),
                None,
            ),
        };
        Some(Reasoning {
            form: self.form.unwrap_or(ReasoningForm::ReasoningContent),
            tokens,
            token_source,
            reasoning_ms: ttft_ms
                .zip(ttfo_reasoning_ms)
                .map(|(answer, thought)| crate::results::to_microsecond(answer - thought))
                .filter(|ms| *ms >= 0.0),
            answer_tokens,
            text: self.text.clone(),
        })
    }
}

/// The length of the longest end of `text` that begins `tag`.
fn partial_suffix(text: &str, tag: &str) -> usize {
    (1..tag.len())
        .rev()
        .find(|&n| {
            text.len() >= n
                && text.is_char_boundary(text.len() - n)
                && tag.starts_with(&text[text.len() - n..])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds content events; returns (answer, reasoning, events that
    /// reasoned).
    fn feed(events: &[&str]) -> (String, String, Vec<bool>) {
        let mut t = Thought::default();
        let mut answer = String::new();
        let mut reasoned = Vec::new();
        for e in events {
            let (a, _, r) = t.take(None, Cow::Borrowed(e), 1);
            answer.push_str(&a);
            reasoned.push(r);
        }
        answer.push_str(&t.flush());
        (answer, t.text, reasoned)
    }

    #[test]
    fn think_tags_split_across_events_are_found() {
        let (answer, reasoning, reasoned) =
            feed(&["<th", "ink>Let me", " see</th", "ink>\n\n", "Paris", "."]);
        assert_eq!(
            (answer.as_str(), reasoning.as_str()),
            ("Paris.", "Let me see")
        );
        assert_eq!(reasoned, [false, true, true, false, false, false]);
    }

    #[test]
    fn content_without_tags_is_answer_untouched() {
        let (answer, reasoning, _) = feed(&["\n", "<b>bold</b>", " text"]);
        assert_eq!(
            (answer.as_str(), reasoning.as_str()),
            ("\n<b>bold</b> text", "")
        );
        let (answer, _, _) = feed(&["<", "b>x"]);
        assert_eq!(answer, "<b>x");
        let (answer, _, _) = feed(&["<thi"]);
        assert_eq!(answer, "<thi", "a tag that never completed is answer");
    }

    #[test]
    fn a_think_never_closed_is_all_reasoning() {
        let (answer, reasoning, _) = feed(&["<think>a", "b</thi"]);
        assert_eq!((answer.as_str(), reasoning.as_str()), ("", "ab</thi"));
    }

    #[test]
    fn a_multibyte_end_does_not_split_a_character() {
        let (answer, reasoning, _) = feed(&["<think>é", "ü</think>ok"]);
        assert_eq!((answer.as_str(), reasoning.as_str()), ("ok", "éü"));
    }

    #[test]
    fn counts_come_from_usage_or_from_the_stream() {
        let mut t = Thought::default();
        for _ in 0..3 {
            t.take(
                Some(("r", ReasoningForm::ReasoningContent)),
                Cow::Borrowed(""),
                0,
            );
        }
        for _ in 0..5 {
            t.take(None, Cow::Borrowed("a"), 1);
        }
        let counted = t
            .finish(Some(100.0), Some(40.0), Some(8), Some(TokenSource::Usage))
            .unwrap();
        assert_eq!(
            (counted.tokens, counted.token_source, counted.answer_tokens),
            (Some(3), Some(TokenSource::Estimate), Some(5))
        );
        assert_eq!(counted.reasoning_ms, Some(60.0));
        t.usage_tokens = Some(4);
        let usage = t
            .finish(Some(100.0), Some(40.0), Some(10), Some(TokenSource::Usage))
            .unwrap();
        assert_eq!(
            (usage.tokens, usage.token_source, usage.answer_tokens),
            (Some(4), Some(TokenSource::Usage), Some(6))
        );
        assert_eq!(Thought::default().finish(None, None, Some(3), None), None);
    }

    #[test]
    fn the_effort_goes_out_in_the_endpoint_s_own_field() {
        use crate::provider::{Request, Thinking};
        use crate::suite::{Message, ReasoningControl, ReasoningEffort, Role};
        use serde_json::json;
        let req = Request {
            id: 1,
            model: "m".into(),
            messages: vec![Message {
                role: Role::User,
                content: "hi".into(),
            }],
            temperature: 0.0,
            top_p: None,
            max_tokens: 8,
            seed: 3,
            stream: true,
            ignore_eos: false,
            timeout: std::time::Duration::from_secs(1),
            response_format: None,
            thinking: None,
            cache: true,
        };
        let body = crate::provider::openai::body("m", &req);
        assert!(
            body.get("reasoning_effort").is_none() && body.get("chat_template_kwargs").is_none()
        );
        let with = |effort, control| {
            let req = Request {
                thinking: Some(Thinking::of(effort, control)),
                ..req.clone()
            };
            crate::provider::openai::body("m", &req)
        };
        let hosted = with(ReasoningEffort::High, ReasoningControl::ReasoningEffort);
        assert_eq!(hosted["reasoning_effort"], "high", "{hosted}");
        let off = with(ReasoningEffort::None, ReasoningControl::EnableThinking);
        assert_eq!(
            off["chat_template_kwargs"],
            json!({"enable_thinking": false}),
            "{off}"
        );
        assert!(off.get("reasoning_effort").is_none(), "{off}");
        let on = with(ReasoningEffort::Low, ReasoningControl::EnableThinking);
        assert_eq!(
            on["chat_template_kwargs"],
            json!({"enable_thinking": true}),
            "{on}"
        );
    }

    #[test]
    fn a_whole_response_keeps_its_reasoning_apart() {
        use crate::provider::Measured;
        use crate::provider::openai::{Target, absorb_final};
        use serde_json::json;
        let t = Target::local("http://h".into(), &crate::secrets::Secrets::default());
        for (message, form) in [
            (
                json!({"reasoning_content": "hmm", "content": "Paris"}),
                ReasoningForm::ReasoningContent,
            ),
            (
                json!({"reasoning": "hmm", "content": "Paris"}),
                ReasoningForm::Reasoning,
            ),
            (
                json!({"content": "<think>hmm</think>\n\nParis"}),
                ReasoningForm::ThinkTags,
            ),
        ] {
            let mut m = Measured::default();
            let body = json!({"choices": [{"message": message, "finish_reason": "stop"}],
                "usage": {"completion_tokens": 5, "completion_tokens_details": {"reasoning_tokens": 3}}});
            absorb_final(&body, &mut m, &t).unwrap();
            assert_eq!(
                (m.text.as_str(), m.reasoning.text.as_str()),
                ("Paris", "hmm"),
                "{body}"
            );
            let r = m
                .reasoning
                .finish(None, None, m.output_tokens, m.token_source)
                .unwrap();
            assert_eq!(
                (r.form, r.tokens, r.answer_tokens),
                (form, Some(3), Some(2)),
                "{body}"
            );
        }
    }
}
