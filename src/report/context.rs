//! A results document as a template context. Templates see every field of
//! `results.json`; each cell also carries `sample_text`, the output of its
//! first successful measured request (what the reports print), found in one
//! pass here rather than by a template filtering every sample for every
//! cell, and `judge_signal` says whether the judge's scores can rank models
//! (`results::judge_signal`), and `page` is the data the HTML page's
//! charts draw (`report::page`). `samples` is turned into template values only when a template
//! reads it, so the built-in templates cost the same for 100 samples or
//! 100,000.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use minijinja::value::{Enumerator, Object, Serde, Value};
use serde::Serialize;

use crate::results::{CellStats, Results, Sample, Status};

/// The template context of `doc`.
pub fn of_results(mut doc: Results) -> Value {
    let page = Value::from(Serde(super::page::of_results(&doc)));
    let samples = std::mem::take(&mut doc.samples);
    let judge_signal = Value::from(Serde(crate::results::judge_signal(&samples)));
    let texts = first_outputs(&samples);
    let cells: Vec<CellView<'_>> = doc
        .cells
        .iter()
        .map(|stats| CellView {
            stats,
            sample_text: texts.get(stats.key.as_str()).copied(),
        })
        .collect();
    let cells = Value::from(Serde(&cells));
    let head = Value::from(Serde(&doc));
    let mut keys: Vec<Value> = head.try_iter().map(Iterator::collect).unwrap_or_default();
    keys.extend([Value::from("judge_signal"), Value::from("page")]);
    Value::from_object(ResultsContext {
        head,
        keys,
        cells,
        judge_signal,
        page,
        samples,
        samples_value: OnceLock::new(),
    })
}

/// A cell as templates see it.
#[derive(Serialize)]
struct CellView<'a> {
    #[serde(flatten)]
    stats: &'a CellStats,
    /// The output of the cell's first successful measured request.
    sample_text: Option<&'a str>,
}

/// Each cell key's first successful measured output, in sample order.
fn first_outputs(samples: &[Sample]) -> HashMap<&str, &str> {
    let mut texts = HashMap::new();
    for s in samples
        .iter()
        .filter(|s| !s.warmup && s.status == Status::Ok)
    {
        texts.entry(s.key.as_str()).or_insert(s.text.as_str());
    }
    texts
}

#[derive(Debug)]
struct ResultsContext {
    /// Every field of the document; its `samples` are empty.
    head: Value,
    /// The names of the document's fields.
    keys: Vec<Value>,
    /// The cells, with their sample text.
    cells: Value,
    /// What the judge's scores show (`results::JudgeSignal`), or none.
    judge_signal: Value,
    /// What the HTML page's charts draw (`report::page`).
    page: Value,
    samples: Vec<Sample>,
    /// `samples` as template values, made on first use.
    samples_value: OnceLock<Value>,
}

impl Object for ResultsContext {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "samples" => Some(
                self.samples_value
                    .get_or_init(|| Value::from(Serde(&self.samples)))
                    .clone(),
            ),
            "cells" => Some(self.cells.clone()),
            "judge_signal" => Some(self.judge_signal.clone()),
            "page" => Some(self.page.clone()),
            name => self.head.get_attr(name).ok().filter(|v| !v.is_undefined()),
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.keys.clone())
    }
}
