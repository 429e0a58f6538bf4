//! Incremental SSE framer: bytes in, events out; owns no I/O, no JSON, and never panics on any input.
//!
//! Implements the event-stream parsing rules of the WHATWG HTML spec
//! ("Server-sent events", §9.2.6):
//!
//! - lines end with LF, CRLF or a lone CR; a CR that ends one chunk and an LF
//!   that starts the next are a single line ending;
//! - a single UTF-8 BOM at the very start of the stream is ignored;
//! - lines starting with `:` are comments (keep-alives) and are ignored;
//! - `field: value` has at most one leading space stripped from the value; a
//!   line without `:` is a field name with an empty value;
//! - multiple `data` lines are joined with `\n`; a blank line dispatches;
//!   an event without any `data` line is not dispatched;
//! - `event` sets the type of the next event, `id` sets the last event ID
//!   (ignored if it contains NUL; persists across events, as in the spec);
//!   `retry` and unknown fields are ignored;
//! - invalid UTF-8 is replaced with U+FFFD.
//!
//! At end of stream, the spec discards an unterminated event; [`SseFramer::finish`]
//! reports it instead, so a truncated stream can be told apart from a clean end.

use std::borrow::Cow;
use std::ops::ControlFlow;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One dispatched server-sent event, owned (the tests' view of
/// [`EventRef`]).
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// Value of the last `event:` field of this event; `None` when absent or
    /// empty (the spec's default type, `message`).
    pub event: Option<String>,
    /// All `data:` lines of this event, joined with `\n`.
    pub data: String,
    /// The last event ID in effect when this event was dispatched (it persists
    /// across events, per spec); `None` when never set or reset to empty.
    pub id: Option<String>,
}

#[cfg(test)]
impl SseEvent {
    /// True for the OpenAI end-of-stream sentinel, `data: [DONE]`.
    pub(crate) fn is_done(&self) -> bool {
        self.data == "[DONE]"
    }
}

/// One dispatched event as [`SseFramer::push_with`] hands it over: borrowed
/// from the framer's buffers, which are reused for the next event, so
/// reading a stream allocates nothing per event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EventRef<'a> {
    /// As [`SseEvent::event`].
    pub event: Option<&'a str>,
    /// As [`SseEvent::data`].
    pub data: &'a str,
    /// As [`SseEvent::id`].
    pub id: Option<&'a str>,
}

#[cfg(test)]
impl EventRef<'_> {
    fn to_owned(self) -> SseEvent {
        SseEvent {
            event: self.event.map(str::to_string),
            data: self.data.to_string(),
            id: self.id.map(str::to_string),
        }
    }
}

/// What was left in the framer at end of stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Finish {
    /// True when the stream ended mid-event: there were unterminated bytes, or
    /// field lines (data, event, id, unknown) not followed by a blank line.
    /// Comments alone after the last blank line do not count.
    pub pending_partial: bool,
    /// Data of the undispatched event (joined with `\n`, including an
    /// unterminated final `data:` line), if it had any data.
    pub partial_data: Option<String>,
}

/// Incremental Server-Sent-Events framer.
///
/// Feed bytes with [`push_with`](Self::push_with) as they arrive; call
/// [`finish`](Self::finish) at EOF.
#[derive(Debug, Clone, Default)]
pub(crate) struct SseFramer {
    /// Bytes of the current unterminated line (plus, before the BOM check is
    /// done, up to 3 bytes of a possible BOM).
    buf: Vec<u8>,
    /// Offset in `buf` up to which no line terminator exists.
    scan: usize,
    /// The previous chunk ended with CR: an LF at the start of the next chunk
    /// belongs to that line ending.
    skip_lf: bool,
    /// The start-of-stream BOM check is complete.
    bom_done: bool,
    fields: FieldState,
}

/// Per-event field buffers (the spec's data buffer, event type buffer and
/// last event ID buffer).
#[derive(Debug, Clone, Default)]
struct FieldState {
    /// Data lines, each followed by `\n`.
    data: String,
    event: String,
    last_id: String,
    /// A field line was seen since the last blank line.
    dirty: bool,
}

impl FieldState {
    /// Processes one line (without its terminator); hands an event to
    /// `sink` if the line is blank and an event is ready.
    fn line<B>(
        &mut self,
        line: &[u8],
        sink: &mut impl FnMut(EventRef<'_>) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        if line.is_empty() {
            return self.dispatch(sink);
        }
        if line.first() == Some(&b':') {
            return ControlFlow::Continue(());
        }
        self.dirty = true;
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let (name, rest) = line.split_at(i);
                let value = rest.get(1..).unwrap_or_default();
                (name, value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match name {
            b"data" => {
                self.data.push_str(&lossy(value));
                self.data.push('\n');
            }
            b"event" => {
                self.event.clear();
                self.event.push_str(&lossy(value));
            }
            // An ID containing NUL is ignored.
            b"id" if !value.contains(&0) => {
                self.last_id.clear();
                self.last_id.push_str(&lossy(value));
            }
            _ => {} // `retry`, unknown fields, `id` with NUL
        }
        ControlFlow::Continue(())
    }

    /// Hands the event under way to `sink` (when it has data) and empties
    /// the buffers, keeping their memory.
    fn dispatch<B>(
        &mut self,
        sink: &mut impl FnMut(EventRef<'_>) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        self.dirty = false;
        if self.data.is_empty() {
            self.event.clear();
            return ControlFlow::Continue(());
        }
        let data = self.data.strip_suffix('\n').unwrap_or(&self.data);
        let flow = sink(EventRef {
            event: (!self.event.is_empty()).then_some(self.event.as_str()),
            data,
            id: (!self.last_id.is_empty()).then_some(self.last_id.as_str()),
        });
        self.data.clear();
        self.event.clear();
        flow
    }
}

fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// Processes every terminated line in `data` (lines start at 0; no terminator
/// exists before `from`), until `sink` breaks. Returns the number of bytes
/// consumed, i.e. the start of the unterminated remainder (or of the lines
/// after the event `sink` broke at), and how it ended.
fn scan_lines<B>(
    fields: &mut FieldState,
    data: &[u8],
    from: usize,
    skip_lf: &mut bool,
    sink: &mut impl FnMut(EventRef<'_>) -> ControlFlow<B>,
) -> (usize, ControlFlow<B>) {
    let mut line_start = 0;
    let mut pos = from;
    while let Some(off) = data
        .get(pos..)
        .and_then(|rest| rest.iter().position(|&b| b == b'\n' || b == b'\r'))
    {
        let end = pos + off;
        let flow = fields.line(data.get(line_start..end).unwrap_or_default(), sink);
        let mut next = end + 1;
        if data.get(end) == Some(&b'\r') {
            match data.get(next) {
                Some(b'\n') => next += 1,
                Some(_) => {}
                None => *skip_lf = true,
            }
        }
        line_start = next;
        pos = next;
        if flow.is_break() {
            return (line_start, flow);
        }
    }
    (line_start, ControlFlow::Continue(()))
}

impl SseFramer {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes as they arrive; returns every event completed by them.
    #[cfg(test)]
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        let ControlFlow::Continue(()) = self.push_with(bytes, |event| {
            events.push(event.to_owned());
            ControlFlow::<std::convert::Infallible>::Continue(())
        });
        events
    }

    /// Feeds bytes as they arrive and hands each event they complete to
    /// `sink`, borrowed, until `sink` breaks; bytes after the event it broke
    /// at stay in the framer for the next push.
    pub(crate) fn push_with<B>(
        &mut self,
        bytes: &[u8],
        mut sink: impl FnMut(EventRef<'_>) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        let mut input = bytes;
        if input.is_empty() {
            return ControlFlow::Continue(());
        }

        if !self.bom_done {
            // `buf` holds only a proper BOM prefix here (it starts empty).
            let take = (BOM.len() - self.buf.len().min(BOM.len())).min(input.len());
            let (head, rest) = input.split_at(take);
            self.buf.extend_from_slice(head);
            input = rest;
            if self.buf.len() < BOM.len() && BOM.starts_with(&self.buf) {
                return ControlFlow::Continue(()); // input exhausted; still could be a BOM
            }
            if self.buf == BOM {
                self.buf.clear();
            }
            self.bom_done = true;
            self.scan = 0;
        }

        if self.skip_lf && !input.is_empty() {
            self.skip_lf = false;
            if let Some(rest) = input.strip_prefix(b"\n") {
                input = rest;
            }
        }

        let flow = if self.buf.is_empty() {
            // Fast path: parse straight from the input, copy only the tail.
            let (consumed, flow) =
                scan_lines(&mut self.fields, input, 0, &mut self.skip_lf, &mut sink);
            self.buf
                .extend_from_slice(input.get(consumed..).unwrap_or_default());
            flow
        } else {
            self.buf.extend_from_slice(input);
            let (consumed, flow) = scan_lines(
                &mut self.fields,
                &self.buf,
                self.scan,
                &mut self.skip_lf,
                &mut sink,
            );
            self.buf.drain(..consumed.min(self.buf.len()));
            flow
        };
        // After a break the rest has not been scanned.
        self.scan = if flow.is_break() { 0 } else { self.buf.len() };
        flow
    }

    /// Bytes held for the event under way: its unterminated line and the
    /// data lines it has so far.
    pub(crate) fn pending(&self) -> usize {
        self.buf.len() + self.fields.data.len()
    }

    /// Ends the stream. An unterminated event is not dispatched (per spec) but
    /// reported, so an early EOF mid-event is detectable.
    pub(crate) fn finish(self) -> Finish {
        let mut fields = self.fields;
        let had_tail = !self.buf.is_empty();
        if had_tail {
            // A non-empty line never dispatches; this only collects its data.
            let _ = fields.line(&self.buf, &mut |_| ControlFlow::<()>::Continue(()));
        }
        let partial_data = if fields.data.is_empty() {
            None
        } else {
            let mut data = fields.data;
            if data.ends_with('\n') {
                data.pop();
            }
            Some(data)
        };
        Finish {
            pending_partial: had_tail || fields.dirty,
            partial_data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(data: &str) -> SseEvent {
        SseEvent {
            event: None,
            data: data.to_string(),
            id: None,
        }
    }

    fn all(input: &[u8]) -> (Vec<SseEvent>, Finish) {
        let mut f = SseFramer::new();
        let events = f.push(input);
        (events, f.finish())
    }

    fn chunked(chunks: &[&[u8]]) -> (Vec<SseEvent>, Finish) {
        let mut f = SseFramer::new();
        let mut events = Vec::new();
        for c in chunks {
            events.extend(f.push(c));
        }
        (events, f.finish())
    }

    fn bytewise(input: &[u8]) -> (Vec<SseEvent>, Finish) {
        let chunks: Vec<&[u8]> = input.chunks(1).collect();
        chunked(&chunks)
    }

    const CHUNK1: &str = r#"{"id":"chatcmpl-9x","object":"chat.completion.chunk","created":1718000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#;
    const CHUNK2: &str = r#"{"id":"chatcmpl-9x","object":"chat.completion.chunk","created":1718000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Héllo, wörld 👋"},"logprobs":null,"finish_reason":null}]}"#;
    const CHUNK3: &str = r#"{"id":"chatcmpl-9x","object":"chat.completion.chunk","created":1718000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}"#;
    const USAGE: &str = r#"{"id":"chatcmpl-9x","object":"chat.completion.chunk","created":1718000000,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}"#;

    fn openai_stream(eol: &str) -> Vec<u8> {
        let mut s = String::new();
        for (i, d) in [CHUNK1, CHUNK2, CHUNK3, USAGE, "[DONE]"].iter().enumerate() {
            if i == 2 {
                s.push_str(&format!(": OPENROUTER PROCESSING{eol}{eol}"));
            }
            s.push_str(&format!("data: {d}{eol}{eol}"));
        }
        s.into_bytes()
    }

    fn openai_expected() -> Vec<SseEvent> {
        [CHUNK1, CHUNK2, CHUNK3, USAGE, "[DONE]"]
            .iter()
            .map(|d| ev(d))
            .collect()
    }

    fn clean() -> Finish {
        Finish {
            pending_partial: false,
            partial_data: None,
        }
    }

    #[test]
    fn openai_stream_whole_bytewise_and_every_two_way_split() {
        for eol in ["\n", "\r\n", "\r"] {
            let input = openai_stream(eol);
            let expected = (openai_expected(), clean());
            assert_eq!(all(&input), expected, "whole, eol {eol:?}");
            assert_eq!(bytewise(&input), expected, "bytewise, eol {eol:?}");
            for i in 0..=input.len() {
                let (a, b) = input.split_at(i);
                assert_eq!(chunked(&[a, b]), expected, "split at {i}, eol {eol:?}");
            }
        }
        let events = all(&openai_stream("\n")).0;
        assert!(events.last().unwrap().is_done());
        assert_eq!(events.iter().filter(|e| e.is_done()).count(), 1);
    }

    #[test]
    fn openai_stream_every_three_way_split_of_a_window() {
        // Three-way splits around the CHUNK2 boundary (multi-byte UTF-8 inside).
        let input = openai_stream("\r\n");
        let expected = (openai_expected(), clean());
        let start = CHUNK1.len();
        let end = (start + 400).min(input.len());
        for i in start..end {
            for j in i..end {
                let (a, rest) = input.split_at(i);
                let (b, c) = rest.split_at(j - i);
                assert_eq!(chunked(&[a, b, c]), expected, "split at {i},{j}");
            }
        }
    }

    #[test]
    fn line_endings_lf_crlf_cr_mixed() {
        let input = b"data: a\n\ndata: b\r\n\r\ndata: c\r\rdata: d\r\n\ndata: e\n\r";
        let expected = vec![ev("a"), ev("b"), ev("c"), ev("d"), ev("e")];
        assert_eq!(all(input), (expected.clone(), clean()));
        assert_eq!(bytewise(input), (expected, clean()));
    }

    #[test]
    fn cr_lf_split_across_pushes_is_one_line_ending() {
        let mut f = SseFramer::new();
        assert_eq!(f.push(b"data: a\r"), vec![]);
        // The LF completes the CR above; it must not count as a blank line.
        assert_eq!(f.push(b"\n"), vec![]);
        assert_eq!(f.push(b"data: b\r"), vec![]);
        assert_eq!(f.push(b""), vec![]); // empty pushes keep the CR state
        assert_eq!(f.push(b"\ndata: c\r"), vec![]);
        assert_eq!(f.push(b"\r"), vec![ev("a\nb\nc")]);
        assert_eq!(f.push(b"\n"), vec![]);
        assert_eq!(f.finish(), clean());

        // CR then CR across pushes: two line endings.
        assert_eq!(chunked(&[b"data: x\r", b"\r"]), (vec![ev("x")], clean()));
        // CR LF LF across pushes: a line ending and a blank line.
        assert_eq!(
            chunked(&[b"data: x\r", b"\n", b"\n"]),
            (vec![ev("x")], clean())
        );
    }

    #[test]
    fn lone_cr_terminates_lines() {
        assert_eq!(
            all(b"event: e\rdata: 1\rdata: 2\r\r"),
            (
                vec![SseEvent {
                    event: Some("e".into()),
                    data: "1\n2".into(),
                    id: None
                }],
                clean()
            )
        );
    }

    #[test]
    fn comments_and_keep_alives_are_ignored() {
        let input = b": ping\n\n:\n\ndata: a\n: inside an event\ndata: b\n\n: ping\n\n";
        assert_eq!(all(input), (vec![ev("a\nb")], clean()));
        // Trailing terminated comment is not a partial event.
        assert_eq!(all(b"data: a\n\n: keep-alive\n"), (vec![ev("a")], clean()));
        // A colon later in the line is not a comment.
        assert_eq!(all(b"data: :x\n\n"), (vec![ev(":x")], clean()));
    }

    #[test]
    fn multi_line_data_is_joined_with_lf() {
        assert_eq!(
            all(b"data: one\ndata: two\ndata:three\ndata:  four\n\n"),
            (vec![ev("one\ntwo\nthree\n four")], clean())
        );
    }

    #[test]
    fn event_and_id_fields() {
        let input = b"event: delta\nid: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid: bad\0id\nevent:\ndata: d\n\n";
        let expected = vec![
            SseEvent {
                event: Some("delta".into()),
                data: "a".into(),
                id: Some("7".into()),
            },
            // Event type resets on dispatch; last event ID persists.
            SseEvent {
                event: None,
                data: "b".into(),
                id: Some("7".into()),
            },
            // A bare `id` line resets the ID to empty.
            ev("c"),
            // An ID containing NUL is ignored; `event:` empty is the default type.
            ev("d"),
        ];
        assert_eq!(all(input), (expected.clone(), clean()));
        assert_eq!(bytewise(input), (expected, clean()));
    }

    #[test]
    fn field_parsing_details() {
        // Only one leading space is stripped; trailing spaces kept; no colon
        // means an empty value; unknown fields and `retry` are ignored;
        // field names are case-sensitive.
        let input = b"retry: 1000\nfoo: bar\nDATA: nope\ndata\ndata:  x \ndata\n\n";
        assert_eq!(all(input), (vec![ev("\n x \n")], clean()));
    }

    #[test]
    fn empty_data_line_dispatches_empty_event() {
        assert_eq!(all(b"data:\n\n"), (vec![ev("")], clean()));
        assert_eq!(all(b"data\n\n"), (vec![ev("")], clean()));
        assert_eq!(all(b"data: \n\n"), (vec![ev("")], clean()));
        assert_eq!(all(b"data:\ndata:\n\n"), (vec![ev("\n")], clean()));
    }

    #[test]
    fn events_without_data_are_not_dispatched() {
        assert_eq!(all(b"event: x\n\nid: 1\n\n\n\n"), (vec![], clean()));
        // The discarded event type does not leak into the next event.
        let (events, _) = all(b"event: x\n\ndata: y\n\n");
        assert_eq!(events, vec![ev("y")]);
    }

    #[test]
    fn bom_at_stream_start_is_ignored() {
        let input = b"\xEF\xBB\xBFdata: a\n\n";
        assert_eq!(all(input), (vec![ev("a")], clean()));
        assert_eq!(bytewise(input), (vec![ev("a")], clean()));
        // Without the BOM being stripped, the first field would be unknown.
        assert_eq!(all(b"\xEF\xBB\xBFdata\n\n"), (vec![ev("")], clean()));
        // Only one BOM, only at the start.
        let (events, _) = all(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: \xEF\xBB\xBFb\n\n");
        assert_eq!(events, vec![ev("\u{FEFF}b")]);
        // A BOM prefix that is not a BOM is kept as data.
        assert_eq!(
            chunked(&[b"\xEF", b"\xBBdata: a\n\n"]),
            (vec![], clean()) // field name "\u{FFFD}data" is unknown
        );
        assert_eq!(all(b"\n\xEF\xBB\xBFdata: a\n\n").0, vec![]);
    }

    #[test]
    fn early_eof_with_partial_event_is_reported() {
        // Mid-line.
        let mut f = SseFramer::new();
        assert_eq!(f.push(b"data: [DONE]\n\ndata: {\"choi"), vec![ev("[DONE]")]);
        assert_eq!(
            f.finish(),
            Finish {
                pending_partial: true,
                partial_data: Some("{\"choi".into()),
            }
        );
        // After complete data lines but before the blank line.
        assert_eq!(
            all(b"data: a\ndata: b\n"),
            (
                vec![],
                Finish {
                    pending_partial: true,
                    partial_data: Some("a\nb".into()),
                }
            )
        );
        // Partial event with no data yet.
        assert_eq!(
            all(b"event: x\n"),
            (
                vec![],
                Finish {
                    pending_partial: true,
                    partial_data: None,
                }
            )
        );
        assert_eq!(
            all(b"da"),
            (
                vec![],
                Finish {
                    pending_partial: true,
                    partial_data: None,
                }
            )
        );
        // Truncated inside a possible BOM.
        assert!(all(b"\xEF\xBB").1.pending_partial);
        // Nothing at all.
        assert_eq!(SseFramer::new().finish(), clean());
        assert_eq!(all(b"\xEF\xBB\xBF"), (vec![], clean()));
    }

    #[test]
    fn no_trailing_blank_line_at_eof() {
        // A final event without its blank line is not dispatched (per spec)
        // but is reported by finish().
        let input = b"data: a\n\ndata: [DONE]\n";
        let expected = (
            vec![ev("a")],
            Finish {
                pending_partial: true,
                partial_data: Some("[DONE]".into()),
            },
        );
        assert_eq!(all(input), expected);
        assert_eq!(bytewise(input), expected);
        // Same without even the final newline, and with a CR ending.
        assert_eq!(all(b"data: a\n\ndata: [DONE]"), expected);
        assert_eq!(all(b"data: a\n\ndata: [DONE]\r"), expected);
    }

    #[test]
    fn invalid_utf8_is_replaced_lossily() {
        let input = b"data: \xFF\xFEok\xC3\n\nevent: \x80\ndata: \xF0\x9F\x91\n\n";
        let expected = vec![
            ev("\u{FFFD}\u{FFFD}ok\u{FFFD}"),
            SseEvent {
                event: Some("\u{FFFD}".into()),
                data: "\u{FFFD}".into(),
                id: None,
            },
        ];
        assert_eq!(all(input), (expected.clone(), clean()));
        assert_eq!(bytewise(input), (expected, clean()));
        // A valid multi-byte character split across pushes is reassembled.
        let s = "data: 👋é\n\n".as_bytes();
        for i in 0..=s.len() {
            let (a, b) = s.split_at(i);
            assert_eq!(chunked(&[a, b]), (vec![ev("👋é")], clean()), "split {i}");
        }
        let partial = all(b"data: \xE2\x82").1;
        assert_eq!(partial.partial_data.as_deref(), Some("\u{FFFD}"));
    }

    #[test]
    fn is_done_is_exact() {
        assert!(ev("[DONE]").is_done());
        assert!(!ev(" [DONE]").is_done());
        assert!(!ev("[DONE]\n").is_done());
        assert!(!ev("").is_done());
    }

    #[test]
    fn scan_offset_keeps_long_lines_linear() {
        // A long line arriving in small pieces: each push scans only new bytes.
        let mut f = SseFramer::new();
        let mut expected = String::new();
        assert!(f.push(b"data: ").is_empty());
        for _ in 0..20_000 {
            assert!(f.push(b"abcdefgh").is_empty());
            expected.push_str("abcdefgh");
        }
        assert_eq!(f.scan, f.buf.len());
        assert_eq!(f.push(b"\n\n"), vec![ev(&expected)]);
        assert!(f.buf.is_empty());
        assert_eq!(f.finish(), clean());
    }

    /// Deterministic xorshift PRNG so the fuzz tests need no dependencies.
    struct Rng(u64);
    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next_u64() % n as u64) as usize
        }
    }

    fn random_stream(rng: &mut Rng) -> Vec<u8> {
        const PIECES: &[&[u8]] = &[
            b"\n",
            b"\r",
            b"\r\n",
            b":",
            b" ",
            b"data",
            b"data: ",
            b"event:",
            b"id:",
            b"x",
            b"\xEF\xBB\xBF",
            b"\xEF",
            b"\xFF",
            b"\xC3\xA9",
            b"\0",
            b"[DONE]",
            b"retry: 1",
        ];
        let mut out = Vec::new();
        let len = rng.below(60);
        for _ in 0..len {
            if rng.below(10) == 0 {
                out.push(rng.next_u64() as u8);
            } else {
                out.extend_from_slice(PIECES[rng.below(PIECES.len())]);
            }
        }
        out
    }

    #[test]
    fn fuzz_any_chunking_gives_identical_results_and_never_panics() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..3_000 {
            let input = random_stream(&mut rng);
            let expected = all(&input);
            assert_eq!(bytewise(&input), expected, "bytewise {input:?}");
            let mut chunks = Vec::new();
            let mut rest = input.as_slice();
            while !rest.is_empty() {
                let (a, b) = rest.split_at(rng.below(rest.len() + 1));
                chunks.push(a);
                rest = b;
            }
            assert_eq!(chunked(&chunks), expected, "chunks {chunks:?}");
        }
    }

    /// Breaking at each event in turn, with the stream cut anywhere: the
    /// events after the break come out of the next push, as without one.
    #[test]
    fn a_sink_that_breaks_leaves_the_rest_for_the_next_push() {
        for eol in ["\n", "\r\n", "\r"] {
            let input = openai_stream(eol);
            let mut rng = Rng(7);
            for stop in 1..=5 {
                let mut f = SseFramer::new();
                let mut seen: Vec<SseEvent> = Vec::new();
                let mut breaks = 0;
                let mut rest = input.as_slice();
                while !rest.is_empty() {
                    let (a, b) = rest.split_at(rng.below(rest.len()) + 1);
                    rest = b;
                    let flow = f.push_with(a, |e| {
                        seen.push(e.to_owned());
                        if seen.len() == stop {
                            ControlFlow::Break(())
                        } else {
                            ControlFlow::Continue(())
                        }
                    });
                    breaks += usize::from(flow.is_break());
                }
                // Lines a break left unscanned wait for more bytes.
                let _ = f.push_with(b"\n", |e| {
                    seen.push(e.to_owned());
                    ControlFlow::<()>::Continue(())
                });
                assert_eq!(breaks, 1, "eol {eol:?}, break at event {stop}");
                assert_eq!(
                    seen,
                    openai_expected(),
                    "eol {eol:?}, break at event {stop}"
                );
            }
        }
    }
}
