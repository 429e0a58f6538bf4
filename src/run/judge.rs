//! Quality scoring after the timed runs: the prompts' deterministic checks on
//! every output, and a judge model's score of every distinct output, cached
//! by content so unchanged outputs are never judged twice. Runs strictly
//! after the timed cells and never touches a latency figure.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::executor::timeout;
use crate::fsutil::write_atomic;
use crate::plan::Variant;
use crate::provider::{Request, Source};
use crate::quality::{self, JudgeParse, JudgeScale};
use crate::report;
use crate::results::{Judgement, Sample, Status};
use crate::suite::{Message, Role, Suite};
use crate::text::first_line;

/// The judge cache beside `results.json`.
pub(crate) const CACHE_FILE: &str = "judgements.json";

/// Runs the checks of each sample's prompt on its output (successful
/// requests only; a failed request has no output to check).
pub(crate) fn apply_checks(suite: &Suite, samples: &mut [Sample]) {
    for sample in samples.iter_mut() {
        sample.checks.clear();
        if sample.status != Status::Ok {
            continue;
        }
        let Some(prompt) = suite.prompts.iter().find(|p| p.id == sample.prompt) else {
            continue;
        };
        sample.checks = prompt
            .checks
            .iter()
            .filter_map(|spec| spec.compile().ok())
            .map(|check| {
                let text = match check.of() {
                    quality::CheckOf::Answer => sample.text.as_str(),
                    quality::CheckOf::Reasoning => {
                        sample.reasoning.as_ref().map_or("", |r| r.text.as_str())
                    }
                };
                check.evaluate(text)
            })
            .collect();
    }
}

/// One cached verdict, keyed by a hash of the judge model and the exact
/// judge prompt (which holds the output, the rubric and the template).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Cached {
    model: String,
    reply: String,
    parse: JudgeParse,
}

/// What the judge pass did, for the run summary.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct JudgeReport {
    /// Distinct outputs judged by a request now.
    pub asked: usize,
    /// Distinct outputs whose verdict came from the cache.
    pub cached: usize,
    /// Replies without a score inside the scale.
    pub unparseable: usize,
    /// Judges that could not be reached, with the reason.
    pub failures: Vec<String>,
}

/// The judge cache: verdicts by a hash of judge and exact judge prompt.
type Cache = BTreeMap<String, Cached>;

/// (judge model → cache key → judge prompt) for the outputs not in the cache.
type Wanted = BTreeMap<String, BTreeMap<String, String>>;

/// Scores every measured, successful output with its model's judge, asked
/// through providers from `source`. Verdicts are cached in
/// `dir/judgements.json`; a judge that cannot start leaves its outputs
/// unjudged and says why.
pub(crate) async fn judge_samples(
    suite: &Suite,
    samples: &mut [Sample],
    dir: &Path,
    templates: Option<&Path>,
    source: &mut dyn Source,
) -> JudgeReport {
    let mut report = JudgeReport::default();
    if !suite.models.iter().any(|m| m.judge.is_some()) {
        return report;
    }
    // A model may name its judge without a suite-wide one: default scale.
    let settings = suite.judge.clone().unwrap_or_else(|| crate::suite::Judge {
        model: String::new(),
        scale: JudgeScale::default(),
        max_tokens: crate::suite::DEFAULT_JUDGE_MAX_TOKENS,
    });
    let probe = serde_json::json!({
        "question": "", "rubric": null, "output": "",
        "scale": {"min": settings.scale.min, "max": settings.scale.max},
    });
    if let Err(err) = report::render("judge.md", &probe, templates) {
        report.failures.push(err.to_string());
        return report;
    }
    let cache_path = dir.join(CACHE_FILE);
    let mut cache: Cache = std::fs::read_to_string(&cache_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let mut wanted = Wanted::new();
    let mut keys: Vec<Option<(String, String)>> = Vec::with_capacity(samples.len());
    for sample in samples.iter() {
        let job = judge_job(suite, sample, settings.scale, templates);
        if let Some((judge, key, prompt)) = &job
            && !cache.contains_key(key)
        {
            wanted
                .entry(judge.clone())
                .or_default()
                .insert(key.clone(), prompt.clone());
        }
        keys.push(job.map(|(judge, key, _)| (judge, key)));
    }
    // The distinct outputs to judge, by cache key.
    let distinct: std::collections::BTreeSet<&String> =
        keys.iter().flatten().map(|(_, k)| k).collect();
    report.asked = wanted.values().map(BTreeMap::len).sum();
    report.cached = distinct.len() - report.asked;
    for (judge, prompts) in &wanted {
        if let Err(err) = ask(suite, judge, prompts, &settings, source, &mut cache).await {
            report
                .failures
                .push(format!("judge `{judge}`: {}", first_line(&err)));
        }
    }
    for (sample, key) in samples.iter_mut().zip(&keys) {
        sample.judge = key.as_ref().and_then(|(_, key)| {
            let cached = cache.get(key)?;
            Some(Judgement {
                model: cached.model.clone(),
                score: match cached.parse {
                    JudgeParse::Score(s) => Some(s),
                    _ => None,
                },
                parse: cached.parse,
                reply: cached.reply.clone(),
            })
        });
    }
    report.unparseable = distinct
        .iter()
        .filter(|k| {
            cache
                .get(**k)
                .is_some_and(|c| !matches!(c.parse, JudgeParse::Score(_)))
        })
        .count();
    // Keep what this run's outputs use, so the committed cache does not grow
    // with outputs no run produces any more.
    cache.retain(|k, _| distinct.contains(k));
    if !cache.is_empty()
        && let Ok(json) = serde_json::to_string_pretty(&cache)
        && let Err(err) = write_atomic(&cache_path, (json + "\n").as_bytes())
    {
        report.failures.push(format!(
            "cannot write the judge cache {}: {err}",
            cache_path.display()
        ));
    }
    report
}

/// Asks `judge` (started in its first variant) every prompt of `prompts`
/// at temperature 0, and caches each reply; the error says why the judge
/// could not be asked.
async fn ask(
    suite: &Suite,
    judge: &str,
    prompts: &BTreeMap<String, String>,
    settings: &crate::suite::Judge,
    source: &mut dyn Source,
    cache: &mut Cache,
) -> Result<(), String> {
    let model = suite
        .models
        .iter()
        .find(|m| m.id == judge)
        .ok_or_else(|| format!("`{judge}` is not a model of this suite"))?;
    let variant = Variant::of_model(suite, model)
        .into_iter()
        .next()
        .unwrap_or_default();
    let mut provider = source.open(model, &variant).map_err(|e| e.to_string())?;
    provider.start(&|_| {}).await.map_err(|e| e.to_string())?;
    for (i, (key, prompt)) in prompts.iter().enumerate() {
        let request = Request {
            id: i + 1,
            model: model.api_model.clone(),
            messages: vec![Message {
                role: Role::User,
                content: prompt.clone(),
            }],
            temperature: 0.0,
            top_p: None,
            max_tokens: settings.max_tokens,
            seed: 0,
            stream: false,
            ignore_eos: false,
            timeout: timeout(model.params.timeout_s),
            response_format: Some(settings.scale.reply_format()),
            thinking: None,
            cache: true,
        };
        let m = provider.measure(&request).await;
        let (reply, parse) = if let Some((kind, message)) = m.error {
            (
                format!("no reply ({kind:?}): {}", first_line(&message)),
                JudgeParse::Unparseable,
            )
        } else {
            let parse = quality::parse_judge_reply(&m.text, settings.scale.bounds());
            (m.text, parse)
        };
        cache.insert(
            key.clone(),
            Cached {
                model: judge.to_string(),
                reply,
                parse,
            },
        );
    }
    provider.stop().await;
    Ok(())
}

/// The judge, cache key and judge prompt of a sample, when it is to be judged.
fn judge_job(
    suite: &Suite,
    sample: &Sample,
    scale: JudgeScale,
    templates: Option<&Path>,
) -> Option<(String, String, String)> {
    if sample.status != Status::Ok || sample.warmup || sample.text.trim().is_empty() {
        return None;
    }
    let model = suite.models.iter().find(|m| m.id == sample.model)?;
    let judge = model.judge.clone()?;
    let prompt = suite.prompts.iter().find(|p| p.id == sample.prompt)?;
    let question: Vec<&str> = prompt
        .messages
        .iter()
        .filter(|m| m.role == Role::User)
        .map(|m| m.content.as_str())
        .collect();
    let ctx = serde_json::json!({
        "question": question.join("\n\n"),
        "rubric": prompt.rubric,
        "output": sample.text,
        "scale": {"min": scale.min, "max": scale.max},
    });
    let text = report::render("judge.md", &ctx, templates).ok()?;
    let key = crate::text::hex(
        &Sha256::new()
            .chain_update(judge.as_bytes())
            .chain_update([0])
            .chain_update(text.as_bytes())
            .finalize(),
    );
    Some((judge, key, text))
}
