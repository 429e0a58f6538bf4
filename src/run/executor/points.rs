//! Load cells: a model driven at a load point (or swept from one stream to
//! saturation), every request recorded as a sample of the point's cell,
//! and the point's throughput, goodput and client cost computed once it
//! ends.

use std::sync::Arc;

use super::{Runner, Sent as Outcome, Slot, sample};
use crate::plan::{Cell, LoadTarget, Round};
use crate::provider::{Concurrent, Request};
use crate::results::{ClientCost, LoadStats, PointLabel, Sample, SweepResult, load_stats};
use crate::run::driver::{self, Phase, PointRun};
use crate::run::filler::{self, WORDS, mix};
use crate::suite::Suite;
use crate::suite::workload::{Drive, Point, Sweep, Synthetic, Workload};

impl Runner<'_> {
    /// Runs a load cell on `slot`'s running launch.
    pub(super) async fn load_cell(&mut self, slot: &mut Slot<'_>, cell: &Cell) -> Outcome {
        let Some(sender) = slot
            .launch
            .as_ref()
            .and(slot.provider.as_ref())
            .and_then(|p| p.sender())
        else {
            return Outcome::Died(format!(
                "model `{}` takes one request at a time; load points need an HTTP model",
                cell.model()
            ));
        };
        let Some(workload) = slot.model.load.clone() else {
            return Outcome::Done;
        };
        let prompts = Prompts::new(self.suite, cell, &workload, sender.as_ref()).await;
        let outcome = match cell.load() {
            Some(LoadTarget::Point(point)) => {
                let key = cell.key.to_string();
                let label = PointLabel::point(&point.drive.label());
                self.point(cell, (&key, &label), point, &workload, &prompts, &sender)
                    .await
                    .1
            }
            Some(LoadTarget::Sweep(sweep)) => {
                self.sweep(cell, sweep, &workload, &prompts, &sender).await
            }
            None => Outcome::Done,
        };
        match outcome {
            Outcome::Done => slot
                .provider
                .as_mut()
                .and_then(|p| p.died())
                .map_or(Outcome::Done, |e| Outcome::Died(e.to_string())),
            other => other,
        }
    }

    /// Drives one point and records it under `key`; returns its stats.
    async fn point(
        &mut self,
        cell: &Cell,
        (key, label): (&str, &PointLabel),
        point: &Point,
        workload: &Workload,
        prompts: &Prompts,
        sender: &Arc<dyn Concurrent>,
    ) -> (Option<LoadStats>, Outcome) {
        self.progress
            .set_message(format!("{key}: driving {}", point.drive.label()));
        let make = |n: u64| prompts.request(n);
        let run: PointRun =
            driver::drive(point, Arc::clone(sender), &make, self.interrupt.clone()).await;
        let samples: Vec<Sample> = run
            .sent
            .iter()
            .map(|sent| {
                let mut s = sample(cell, sent.measured.clone());
                s.key = key.to_string();
                s.prompt = prompts.name(sent.prompt);
                s.round = match sent.phase {
                    Phase::Counted => Round::Measured(seq(sent.n)),
                    Phase::Warmup | Phase::Cooldown => Round::Warmup(seq(sent.n)),
                };
                s.warmup = sent.phase != Phase::Counted;
                s.scheduled_ms = Some(sent.scheduled_ms);
                s.schedule_lag_ms = Some(sent.lag_ms);
                s
            })
            .collect();
        let stats = load_stats(
            key,
            label,
            (point.drive.concurrency(), point.drive.rate()),
            &samples.iter().collect::<Vec<_>>(),
            ClientCost {
                window_s: run.window_s,
                wall_s: run.wall_s,
                cpu_s: run.client_cpu_s,
                loop_lag_p99_ms: run.loop_lag_p99_ms,
            },
            workload.slo.as_ref(),
        );
        for s in samples {
            self.show_error(&s);
            self.record(s);
        }
        // An interrupted point's figures cover what it did, marked so; they
        // are not journalled, and `--resume` drives the point again.
        if let Some(reason) = run.interrupted {
            self.load.push(LoadStats {
                interrupted: Some(reason.clone()),
                ..stats
            });
            return (None, Outcome::Interrupted(reason));
        }
        self.journal.load(&stats);
        self.load.push(stats.clone());
        (Some(stats), Outcome::Done)
    }

    /// From one stream, doubling, until throughput stops rising by
    /// `min_gain` or the SLO breaks; then rates bisected between the last
    /// point that met the SLO and the first that did not.
    async fn sweep(
        &mut self,
        cell: &Cell,
        sweep: &Sweep,
        workload: &Workload,
        prompts: &Prompts,
        sender: &Arc<dyn Concurrent>,
    ) -> Outcome {
        let mut result = SweepResult {
            key: cell.key.to_string(),
            model: cell.model().to_string(),
            points: Vec::new(),
            saturation_throughput: None,
            max_rate_meeting_slo: None,
        };
        let outcome = self
            .sweep_points((cell, sweep, workload), prompts, sender, &mut result)
            .await;
        if matches!(outcome, Outcome::Done) {
            self.journal.sweep(&result);
        }
        self.sweeps.push(result);
        outcome
    }

    /// The points of a sweep, each added to `result` as it is driven.
    async fn sweep_points(
        &mut self,
        (cell, sweep, workload): (&Cell, &Sweep, &Workload),
        prompts: &Prompts,
        sender: &Arc<dyn Concurrent>,
        result: &mut SweepResult,
    ) -> Outcome {
        let (mut good, mut bad): (Option<f64>, Option<f64>) = (None, None);
        let mut streams = 1;
        loop {
            let drive = Drive::Concurrency(streams);
            let stats = match self
                .sweep_point(cell, result, drive, workload, prompts, sender)
                .await
            {
                Ok(stats) => stats,
                Err(outcome) => return outcome,
            };
            let throughput = stats.request_throughput;
            let best = result.saturation_throughput.unwrap_or(0.0);
            result.saturation_throughput = Some(best.max(throughput));
            if stats.slo_met == Some(false) {
                bad = Some(throughput);
                break;
            }
            good = Some(throughput);
            if throughput < best * (1.0 + sweep.min_gain) || streams >= sweep.max_concurrency {
                break;
            }
            streams = (streams * 2).min(sweep.max_concurrency);
        }
        if let (Some(mut low), Some(mut high)) = (good, bad) {
            for _ in 0..sweep.refine {
                let rate = f64::midpoint(low, high);
                let drive = Drive::Rate {
                    per_s: (rate * 1000.0).round() / 1000.0,
                    arrival: driver::Arrival::Poisson,
                };
                let stats = match self
                    .sweep_point(cell, result, drive, workload, prompts, sender)
                    .await
                {
                    Ok(stats) => stats,
                    Err(outcome) => return outcome,
                };
                if stats.slo_met == Some(false) {
                    high = rate;
                } else {
                    low = rate;
                }
            }
            result.max_rate_meeting_slo = Some(low);
        } else if workload.slo.is_some() {
            result.max_rate_meeting_slo = good;
        }
        Outcome::Done
    }

    /// Drives one point of a sweep at `drive` (its key the sweep's with the
    /// drive's label) and adds it to `result`: its figures, or the outcome
    /// that ends the sweep (an interrupt).
    async fn sweep_point(
        &mut self,
        cell: &Cell,
        result: &mut SweepResult,
        drive: Drive,
        workload: &Workload,
        prompts: &Prompts,
        sender: &Arc<dyn Concurrent>,
    ) -> Result<LoadStats, Outcome> {
        let point = Point {
            drive,
            ..workload.template.clone()
        };
        let base = cell.key.trim_end_matches(']').trim_end_matches("sweep");
        let label = PointLabel::in_sweep(&point.drive.label());
        let key = format!("{base}{label}]");
        let (stats, outcome) = self
            .point(cell, (&key, &label), &point, workload, prompts, sender)
            .await;
        result.points.push(key);
        match (stats, outcome) {
            (Some(stats), Outcome::Done) => Ok(stats),
            (_, outcome) => Err(outcome),
        }
    }
}

/// 1-based sequence number of the `n`th request of a point.
fn seq(n: u64) -> u32 {
    u32::try_from(n + 1).unwrap_or(u32::MAX)
}

/// What a load cell sends: the suite's prompts drawn in a seeded order, or
/// synthetic prompts of controlled lengths.
pub(super) struct Prompts {
    /// (prompt id, request) of each suite prompt.
    suite: Vec<(String, Request)>,
    /// The request without a prompt.
    fallback: Request,
    synthetic: Option<(Synthetic, Request, f64)>,
    seed: u64,
    /// Filler tokens before each prompt, and words per token.
    context: (u32, f64),
}

impl Prompts {
    async fn new(
        suite: &Suite,
        cell: &Cell,
        workload: &Workload,
        sender: &dyn Concurrent,
    ) -> Prompts {
        // The cell's request (its prompt `*` holds no messages), with the
        // messages of each prompt drawn.
        let base = |messages| Request {
            messages,
            ..super::request(suite, cell)
        };
        // Words per token, from the server's tokenizer where it has one.
        let calibrate = workload.synthetic.is_some() || cell.params().context_tokens > 0;
        let words_per_token = if calibrate {
            filler::words_per_token(sender).await
        } else {
            1.0
        };
        let synthetic = workload
            .synthetic
            .map(|shape| (shape, base(Vec::new()), words_per_token));
        Prompts {
            suite: suite
                .prompts
                .iter()
                .map(|p| {
                    let format = p.format(cell.params().response_format);
                    let request = Request {
                        response_format: format.map(|f| f.body()),
                        ..base(p.messages.clone())
                    };
                    (p.id.clone(), request)
                })
                .collect(),
            synthetic,
            seed: workload.template.seed,
            fallback: base(Vec::new()),
            context: (cell.params().context_tokens, words_per_token),
        }
    }

    /// The `n`th request, and the index of its prompt, with the cell's
    /// filler context (drawn for `n`) before it.
    fn request(&self, n: u64) -> (usize, Request) {
        let (i, mut request) = self.prompt(n);
        let (tokens, words_per_token) = self.context;
        filler::with_context(&mut request, tokens, words_per_token, self.seed ^ mix(n));
        (i, request)
    }

    /// The `n`th request's prompt, and its index.
    fn prompt(&self, n: u64) -> (usize, Request) {
        if let Some((shape, base, words_per_token)) = &self.synthetic {
            let input = draw(
                shape.input_tokens.mean,
                shape.input_tokens.stddev,
                shape.seed,
                2 * n,
            );
            let output = draw(
                shape.output_tokens.mean,
                shape.output_tokens.stddev,
                shape.seed,
                2 * n + 1,
            );
            let words = ((input as f64) * words_per_token).round().max(1.0) as usize;
            let start = usize::try_from(n % WORDS.len() as u64).unwrap_or(0);
            let text: Vec<&str> = WORDS
                .iter()
                .cycle()
                .skip(start)
                .take(words)
                .copied()
                .collect();
            let mut request = base.clone();
            request.messages = vec![crate::suite::Message {
                role: crate::suite::Role::User,
                content: text.join(" "),
            }];
            request.max_tokens = u32::try_from(output).unwrap_or(u32::MAX);
            request.ignore_eos = true;
            return (0, request);
        }
        let count = self.suite.len().max(1) as u64;
        let i = usize::try_from(mix(self.seed ^ n) % count).unwrap_or(0);
        let request = self
            .suite
            .get(i)
            .map_or_else(|| self.fallback.clone(), |(_, r)| r.clone());
        (i, request)
    }

    fn name(&self, i: usize) -> String {
        if self.synthetic.is_some() {
            return "synthetic".to_string();
        }
        self.suite
            .get(i)
            .map_or_else(String::new, |(id, _)| id.clone())
    }
}

/// A length from N(mean, stddev), rounded, at least 1 (seeded per `n`).
fn draw(mean: f64, stddev: f64, seed: u64, n: u64) -> u64 {
    if stddev <= 0.0 {
        return mean.round().max(1.0) as u64;
    }
    // Box–Muller from two seeded uniforms in (0, 1].
    let uniform = |k: u64| ((mix(seed ^ (n << 1 | k)) >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    let z = (-2.0 * uniform(0).ln()).sqrt() * (std::f64::consts::TAU * uniform(1)).cos();
    (mean + stddev * z).round().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_lengths_are_exact_and_spread_lengths_average_the_mean() {
        assert_eq!(draw(512.0, 0.0, 1, 7), 512);
        let n = 5000;
        let mean = (0..n).map(|i| draw(100.0, 20.0, 3, i) as f64).sum::<f64>() / n as f64;
        assert!((mean - 100.0).abs() < 1.5, "{mean}");
    }
}
