//! Load points against the timetable fixture (a scripted server, known
//! truth): an open loop's arrivals are a Poisson process, and connections
//! are kept alive within a point, or between sequential requests when a
//! model asks for `reuse_connections`, with every sample saying whether
//! its request opened one.

use dyno::plan::Filter;
use dyno::results::{Results, Sample, Status};

use crate::timetable::Fixture;
use crate::{Tree, run_and_load};

/// A suite of one model on the fixture (answering at once, three tokens
/// 1 ms apart), one prompt, and `extra` YAML at the end.
fn suite(fixture: &Fixture, extra: &str) -> Tree {
    suite_of(fixture, "tt-0-1-3", extra)
}

/// [`suite`] with the fixture model `model`.
fn suite_of(fixture: &Fixture, model: &str, extra: &str) -> Tree {
    let yaml = format!(
        "name: conn\nendpoints:\n  tt: {{ base_url: \"{}\" }}\nmodels:\n  - {{ id: fast, endpoint: tt, model: {model} }}\nprompts:\n  - {{ id: p, text: Count. }}\n{extra}outputs: {{ dir: out }}\n",
        fixture.base_url
    );
    Tree::new(&[("s.yaml", &yaml)])
}

async fn run(tree: &Tree) -> Results {
    let (_, doc) = run_and_load(&tree.path("s.yaml"), &Filter::default(), &tree.path("out")).await;
    doc
}

fn failed(doc: &Results) -> Vec<&Sample> {
    doc.samples
        .iter()
        .filter(|s| s.status != Status::Ok)
        .collect()
}

/// The smallest and largest counts that a Poisson variable of mean `mean`
/// takes with probability 1 − `alpha` (`alpha`/2 cut off each tail).
fn poisson_interval(mean: f64, alpha: f64) -> (u64, u64) {
    let (mut cdf, mut pmf) = (0.0, (-mean).exp());
    let mut lo = None;
    for k in 0u64.. {
        cdf += pmf;
        if lo.is_none() && cdf > alpha / 2.0 {
            lo = Some(k);
        }
        if cdf >= 1.0 - alpha / 2.0 {
            return (lo.unwrap_or(k), k);
        }
        pmf *= mean / (k + 1) as f64;
    }
    unreachable!()
}

/// The Kolmogorov–Smirnov statistic of `sample` against the exponential
/// distribution with mean `mean`.
fn ks_exponential(sample: &[f64], mean: f64) -> f64 {
    let mut sorted = sample.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len() as f64;
    sorted
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let cdf = 1.0 - (-x / mean).exp();
            (cdf - i as f64 / n).max((i + 1) as f64 / n - cdf)
        })
        .fold(0.0, f64::max)
}

#[test]
fn the_poisson_interval_of_200_is_the_textbook_one() {
    // Near 200 ± 3.29·√200 (153.5 to 246.5, the normal approximation),
    // shifted right by the Poisson's skew.
    assert_eq!(poisson_interval(200.0, 0.001), (155, 248));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_20_poisson_for_10_s_starts_a_poisson_count_with_exponential_gaps() {
    let fixture = Fixture::start();
    let tree = suite(
        &fixture,
        "load: { rate: [20], arrival: poisson, duration_s: 10, seed: 7 }\n",
    );
    let doc = run(&tree).await;
    assert!(failed(&doc).is_empty(), "{:?}", failed(&doc));
    let point = doc.load.first().expect("one load point");
    assert_eq!(point.rate, Some(20.0), "{point:?}");
    let counted: Vec<&Sample> = doc.samples.iter().filter(|s| !s.warmup).collect();
    let started = counted.len() as u64;
    let (lo, hi) = poisson_interval(200.0, 0.001);
    assert!(
        (lo..=hi).contains(&started),
        "{started} requests started in 10 s at 20/s; the Poisson 99.9% interval is {lo}..={hi}; {point:?}"
    );
    let mut due: Vec<f64> = counted.iter().map(|s| s.scheduled_ms.unwrap()).collect();
    due.sort_by(f64::total_cmp);
    let gaps: Vec<f64> = due.windows(2).map(|w| w[1] - w[0]).collect();
    let d = ks_exponential(&gaps, 50.0);
    let critical = 1.95 / (gaps.len() as f64).sqrt();
    eprintln!(
        "rate 20/s, poisson, 10 s: {started} started; KS D = {d:.4} (0.1% critical {critical:.4}); schedule lag p99 {:?} ms",
        point.schedule_lag_ms.as_ref().map(|d| d.summary.p99)
    );
    assert!(
        d < critical,
        "inter-arrival times are not exponential with mean 50 ms: D = {d:.4} ≥ {critical:.4} (n = {}): {gaps:?}",
        gaps.len()
    );
    // Kept alive within the point: far fewer connections than requests.
    let new = doc.samples.iter().filter(|s| s.new_connection).count();
    assert!(
        new < doc.samples.len() / 2,
        "{new} of {} requests opened a connection",
        doc.samples.len()
    );
}

/// Each sample's `new_connection` against the fixture's own record of
/// whether the request came on a fresh connection, request by request.
fn assert_connections_as_served(doc: &Results, fixture: &Fixture) {
    let mut served = fixture.take();
    served.sort_by_key(|s| s.received);
    let server: Vec<bool> = served.iter().map(|s| !s.reused).collect();
    let mut samples: Vec<&Sample> = doc.samples.iter().collect();
    samples.sort_by(|a, b| {
        let sent = |s: &Sample| s.scheduled_ms.unwrap_or(s.index as f64);
        sent(a).total_cmp(&sent(b))
    });
    let client: Vec<bool> = samples.iter().map(|s| s.new_connection).collect();
    assert_eq!(client, server, "new_connection per request, as sent");
}

/// One thread, as `dyno run` has it (see the closed loop below).
#[tokio::test]
async fn sequential_requests_open_a_connection_each_unless_they_reuse_one() {
    let fixture = Fixture::start();
    let doc = run(&suite(&fixture, "defaults: { rounds: 4, warmup: 1 }\n")).await;
    let flags: Vec<bool> = doc.samples.iter().map(|s| s.new_connection).collect();
    assert_eq!(flags, vec![true; 5], "{:?}", doc.samples);
    assert_connections_as_served(&doc, &fixture);

    let fixture = Fixture::start();
    let doc = run(&suite(
        &fixture,
        "defaults: { rounds: 4, warmup: 1, reuse_connections: true }\n",
    ))
    .await;
    assert_connections_as_served(&doc, &fixture);
    // One connection, opened for the first request (or for the version
    // probe before it), serves them all.
    let flags: Vec<bool> = doc.samples.iter().map(|s| s.new_connection).collect();
    assert_eq!(flags[1..], [false; 4], "{:?}", doc.samples);
    assert!(
        fixture.connections() <= 3,
        "{} connections",
        fixture.connections()
    );
    assert!(
        doc.samples.iter().all(|s| s.ttft_ms.is_some()),
        "{:?}",
        doc.samples
    );
}

/// One thread, as `dyno run` has it: a stream's connection is back in the
/// pool before the stream's next request asks for one.
#[tokio::test]
async fn a_closed_loop_keeps_one_connection_per_stream() {
    let fixture = Fixture::start();
    let doc = run(&suite(
        &fixture,
        "load: { concurrency: [3], requests: 30 }\n",
    ))
    .await;
    assert!(failed(&doc).is_empty(), "{:?}", failed(&doc));
    let new = doc.samples.iter().filter(|s| s.new_connection).count();
    let served = fixture.take();
    let fresh = served.iter().filter(|s| !s.reused).count();
    assert_eq!(
        (new, fresh),
        (3, 3),
        "{} requests, {} connections (with the version probe's): {:?}",
        doc.samples.len(),
        fixture.connections(),
        doc.samples
            .iter()
            .map(|s| (s.scheduled_ms, s.new_connection))
            .collect::<Vec<_>>()
    );
}

/// A server that closes each connection a moment after a streamed
/// response, while advertising keep-alive (llama-server does): a request
/// that meets such a connection goes out again on a new one, timed
/// afresh, and nothing fails.
#[tokio::test]
async fn a_server_closing_kept_alive_connections_fails_no_request() {
    let fixture = Fixture::start();
    let doc = run(&suite_of(
        &fixture,
        "tt-0-1-3-close",
        "defaults: { rounds: 6, warmup: 0, reuse_connections: true }\n",
    ))
    .await;
    assert!(failed(&doc).is_empty(), "{:?}", failed(&doc));
    // Only the first request, after the version probe, may find its
    // connection open.
    let kept = doc.samples.iter().filter(|s| !s.new_connection).count();
    assert!(kept <= 1, "{kept} requests went over a kept connection");
    assert_connections_as_served(&doc, &fixture);

    let fixture = Fixture::start();
    let doc = run(&suite_of(
        &fixture,
        "tt-0-1-3-close",
        "load: { concurrency: [2], requests: 20 }\n",
    ))
    .await;
    assert!(failed(&doc).is_empty(), "{:?}", failed(&doc));
}
