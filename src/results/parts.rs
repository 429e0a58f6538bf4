//! Reading a large `results.json` on every core. The samples, nearly all of
//! a big document, are cut apart where dyno's own layout separates them
//! (see [`super::to_json`]) and parsed side by side; the
//! rest of the document is parsed on its own. JSON strings hold no raw
//! newline, so a newline followed by the layout's indentation is always
//! structure, never text. A document in any other layout, or one that does
//! not parse this way, is read whole as before, which also gives its error.

use memchr::memmem;
use rayon::prelude::*;

use super::{Results, Sample, mode};

/// Where the samples array opens, at the top level of the layout.
const OPEN: &str = "\n  \"samples\": [\n";
/// Where it closes.
const CLOSE: &str = "\n  ]";
/// Between two samples: the end of one, the start of the next.
const BETWEEN: &str = "\n    },\n    {";

/// Below this many bytes of samples, one thread reads them.
const SMALL: usize = 8 << 20;

/// `text` parsed with its samples read side by side, or `None` when the
/// document is small, not in dyno's layout, or does not parse this way.
/// `per_request`: every sample's inter-token gaps are left unread (see
/// `mode`), on whichever thread parses it.
pub(super) fn parse_in_parts(text: &str, per_request: bool) -> Option<Results> {
    let start = memmem::find(text.as_bytes(), OPEN.as_bytes())? + OPEN.len();
    let end = start + memmem::find(&text.as_bytes()[start..], CLOSE.as_bytes())?;
    let samples = &text[start..end];
    if samples.len() < SMALL {
        return None;
    }
    let objects: Vec<&str> = objects(samples).collect();
    let head = [&text[..start], &text[end..]].concat();
    let (head, samples) = rayon::join(
        || serde_json::from_str::<Results>(&head).ok(),
        || {
            objects
                .par_iter()
                .map(|object| {
                    mode::with_per_request(per_request, || {
                        serde_json::from_str::<Sample>(object).ok()
                    })
                })
                .collect::<Option<Vec<Sample>>>()
        },
    );
    let mut doc = head?;
    // A top-level `samples` elsewhere would mean the cut was not the array.
    if !doc.samples.is_empty() {
        return None;
    }
    doc.samples = samples?;
    Some(doc)
}

/// The objects of `samples` (the array's inside), each to be parsed on its
/// own, borrowed (no copy).
fn objects(samples: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(samples);
    std::iter::from_fn(move || {
        let text = rest?;
        let (object, next) = split_between(text).unwrap_or((text, ""));
        rest = (!next.is_empty()).then_some(next);
        Some(object)
    })
}

/// `text` split at the first boundary between two samples: up to the
/// closing brace, and from the next opening one.
fn split_between(text: &str) -> Option<(&str, &str)> {
    let at = memmem::find(text.as_bytes(), BETWEEN.as_bytes())?;
    let end = at + "\n    }".len();
    Some((&text[..end], &text[end + ",\n    ".len()..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed quickstart, its samples repeated until the document is
    /// large enough to be read in parts, one text made of multi-byte
    /// characters so that a cut at a byte offset inside one would show.
    fn large_document() -> String {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/results/quickstart/results.json"
        );
        let (mut doc, _) = super::super::read(std::path::Path::new(path)).expect("quickstart");
        let one = doc.samples.clone();
        while doc.samples.len() < 40 * one.len() {
            doc.samples.extend(one.iter().cloned());
        }
        for (i, s) in doc.samples.iter_mut().enumerate() {
            s.index = i + 1;
        }
        doc.samples[1].text = "é—ü ✓ 日本語 },\n    { ".repeat(2000);
        super::super::to_json(&doc).expect("serializes")
    }

    #[test]
    fn a_document_read_in_parts_equals_it_read_whole() {
        let text = large_document();
        assert!(text.len() > SMALL, "{} bytes", text.len());
        for per_request in [false, true] {
            let parts = parse_in_parts(&text, per_request).expect("read in parts");
            let whole = mode::with_per_request(per_request, || {
                serde_json::from_str::<Results>(&text).expect("read whole")
            });
            assert_eq!(parts.samples.len(), whole.samples.len());
            assert!(
                parts == whole,
                "per_request {per_request}: the documents differ"
            );
            let itl: usize = parts.samples.iter().map(|s| s.itl_ms.len()).sum();
            assert_eq!(itl == 0, per_request, "{itl} gaps read");
        }
    }

    #[test]
    fn other_layouts_and_small_documents_are_read_whole() {
        let text = large_document();
        let compact =
            serde_json::to_string(&serde_json::from_str::<serde_json::Value>(&text).expect("json"))
                .expect("compact");
        assert!(parse_in_parts(&compact, false).is_none());
        let small = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/results/quickstart/results.json"
        ))
        .expect("quickstart");
        assert!(parse_in_parts(&small, false).is_none());
    }

    #[test]
    fn objects_fall_between_samples_and_lose_nothing() {
        let objects: Vec<String> = (0..50)
            .map(|i| format!("    {{\n      \"i\": {i},\n      \"s\": \"}},\\n    {{\"\n    }}"))
            .collect();
        let samples = objects.join(",\n");
        let parts: Vec<&str> = super::objects(&samples).collect();
        assert_eq!(parts.len(), 50, "{parts:?}");
        let values: Vec<serde_json::Value> = parts
            .iter()
            .map(|part| serde_json::from_str(part).expect(part))
            .collect();
        let indices: Vec<i64> = values.iter().filter_map(|v| v["i"].as_i64()).collect();
        assert_eq!(indices, (0..50).collect::<Vec<_>>(), "{parts:?}");
    }
}
