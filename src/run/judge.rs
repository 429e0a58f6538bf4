//! Quality scoring after the timed runs: the prompts' deterministic checks on
//! every output, and a judge model's score of every distinct output, cached
//! by content so unchanged outputs are never judged twice. Runs strictly
//! after the timed cells and never touches a latency figure.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fsutil::write_atomic;
use crate::provider::openai::{self as client, ChatRequest};
use crate::quality::{self, JudgeParse, JudgeScale};
use crate::report;
use crate::results::{Judgement, Sample, Status};
use crate::suite::{Message, Role, Suite};

/// The judge cache beside `results.json`.
pub const CACHE_FILE: &str = "judgements.json";

/// Runs the checks of each sample's prompt on its output (successful
/// requests only; a failed request has no output to check).
pub fn apply_checks(suite: &Suite, samples: &mut [Sample]) {
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
            .map(|check| check.evaluate(&sample.text))
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
pub struct JudgeReport {
    /// Distinct outputs judged by a request now.
    pub asked: usize,
    /// Distinct outputs whose verdict came from the cache.
    pub cached: usize,
    /// Replies without a score inside the scale.
    pub unparseable: usize,
    /// Judges that could not be reached, with the reason.
    pub failures: Vec<String>,
}

/// Scores every measured, successful output with its model's judge.
/// Verdicts are cached in `dir/judgements.json`; a judge that cannot start
/// leaves its outputs unjudged and says why.
pub async fn judge_samples(
    suite: &Suite,
    samples: &mut [Sample],
    dir: &Path,
    templates: Option<&Path>,
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
    let mut cache: BTreeMap<String, Cached> = std::fs::read_to_string(&cache_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    // (judge model, key) → judge prompt, for outputs not in the cache.
    let mut wanted: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
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
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap_or_default();
    for (judge, prompts) in &wanted {
        let Some(model) = suite.models.iter().find(|m| &m.id == judge) else {
            continue;
        };
        let (target, server) = match crate::run::executor::connect(suite, model, dir).await {
            Ok(connected) => connected,
            Err(err) => {
                report
                    .failures
                    .push(format!("judge `{judge}`: {}", first_line(&err)));
                continue;
            }
        };
        for (key, prompt) in prompts {
            let request = ChatRequest {
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
                timeout: Duration::from_secs_f64(model.params.timeout_s),
            };
            let m = client::chat(&http, &target, &request).await;
            let (reply, parse) = match m.error {
                Some((kind, message)) => (
                    format!("no reply ({kind:?}): {}", first_line(&message)),
                    JudgeParse::Unparseable,
                ),
                None => {
                    let parse = quality::parse_judge_reply(&m.text, settings.scale.bounds());
                    (m.text, parse)
                }
            };
            cache.insert(
                key.clone(),
                Cached {
                    model: judge.clone(),
                    reply,
                    parse,
                },
            );
        }
        if let Some(server) = server {
            server.stop().await;
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
    let key = crate::suite::hex(
        &Sha256::new()
            .chain_update(judge.as_bytes())
            .chain_update([0])
            .chain_update(text.as_bytes())
            .finalize(),
    );
    Some((judge, key, text))
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}
