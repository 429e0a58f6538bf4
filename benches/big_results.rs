//! Big results: what `dyno report` and `dyno compare` cost on results the
//! size a load test makes. Synthesises two runs of 1,000 cells × 100
//! measured rounds (100,000 samples each, 128 inter-token latencies and a
//! 500-character output per sample, like a streamed run at `max_tokens:
//! 128`, times to the microsecond as dyno records them) from the header of the committed quickstart results, writes them
//! to a temporary directory, and runs the built `dyno` binary on them:
//! wall time (median of 3) and peak resident memory of each command, with
//! the in-process parse time for reference. `cargo bench --bench
//! big_results` (`make bench`); `DYNO_BENCH_DIR=DIR` keeps the results there.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use dyno::plan::Round;
use dyno::results::{self, Results, Sample, Status};

const PROMPTS: usize = 250;
const ROUNDS: u32 = 100;
const TOKENS: usize = 128;
const RUNS: usize = 3;

/// splitmix64: deterministic values in `[0, 1)`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1_u64 << 53) as f64
    }
}

/// One run: the quickstart's header, models and launches, with 250
/// prompts per model run (1,000 cells) × 100 rounds of synthetic samples
/// around the quickstart's own figures, and everything aggregated anew.
fn synthesize(base: &Results, seed: u64) -> Results {
    let mut rng = Rng(seed);
    let template = base
        .samples
        .iter()
        .find(|s| !s.warmup && s.status == Status::Ok)
        .expect("the quickstart has a successful sample");
    let text: String = template.text.chars().cycle().take(500).collect();
    let mut samples = Vec::new();
    for round in 1..=ROUNDS {
        for run in &base.models {
            for p in 0..PROMPTS {
                let prompt = format!("p{p:03}");
                let variant = run.variant.as_deref();
                let key = match variant {
                    Some(v) => format!("{}/{prompt}[{v}]", run.id),
                    None => format!("{}/{prompt}", run.id),
                };
                let mut s = Sample::new(key, &run.id, &prompt, Round::Measured(round));
                s.index = samples.len() + 1;
                s.variant.clone_from(&run.variant);
                s.stream = true;
                s.status = Status::Ok;
                let ttft = results::to_microsecond(20.0 + p as f64 * 0.1 + 2.0 * rng.next());
                s.itl_ms = (0..TOKENS)
                    .map(|_| results::to_microsecond(10.0 + 4.0 * rng.next()))
                    .collect();
                let e2e = results::to_microsecond(ttft + s.itl_ms.iter().sum::<f64>());
                s.ttft_ms = Some(ttft);
                s.e2e_ms = Some(e2e);
                s.output_tokens = Some(TOKENS as u64 + 1);
                s.prompt_tokens = Some(40);
                s.token_source = template.token_source;
                s.finish_reason = Some("length".into());
                s.text.clone_from(&text);
                s.server_timings.clone_from(&template.server_timings);
                s.rss_peak_mb = template.rss_peak_mb;
                s.rss_median_mb = template.rss_median_mb;
                s.cpu_ms = Some(e2e);
                s.checks.clone_from(&template.checks);
                s.derive_rates();
                samples.push(s);
            }
        }
    }
    let mut doc = base.clone();
    doc.cells = results::aggregate(&samples);
    doc.summaries = results::summarize_models(
        &doc.models,
        &samples,
        &dyno::suite::EnergySettings::default(),
    );
    doc.highlights = results::highlights(&doc.summaries, &samples);
    doc.samples = samples;
    doc
}

/// Wall seconds and peak resident MB of `dyno args…`, median of `RUNS`.
#[cfg(unix)]
fn measure(dyno: &Path, args: &[&str]) -> (f64, f64) {
    let mut runs: Vec<(f64, f64)> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            // Reaped by wait4 below, which also reports its resource usage.
            #[allow(clippy::zombie_processes)]
            let child = Command::new(dyno)
                .args(args)
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("dyno starts");
            let pid = i32::try_from(child.id()).expect("a pid fits i32");
            let mut status = 0;
            // SAFETY: `rusage` is plain data that wait4 fills in.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: waits for our own child; the pointers are valid.
            let waited = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
            let wall = start.elapsed().as_secs_f64();
            assert_eq!(waited, pid, "wait4 failed");
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) <= 1,
                "dyno {args:?} failed: {status}"
            );
            (wall, usage.ru_maxrss as f64 / 1024.0)
        })
        .collect();
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    runs[RUNS / 2]
}

/// Wall seconds of `dyno args…`, median of `RUNS` (peak memory is read
/// with `wait4`, where there is one).
#[cfg(not(unix))]
fn measure(dyno: &Path, args: &[&str]) -> (f64, f64) {
    let mut walls: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            let status = Command::new(dyno)
                .args(args)
                .stdout(std::process::Stdio::null())
                .status()
                .expect("dyno runs");
            assert!(
                status.code().is_some_and(|c| c <= 1),
                "dyno {args:?} failed: {status}"
            );
            start.elapsed().as_secs_f64()
        })
        .collect();
    walls.sort_by(f64::total_cmp);
    (walls[RUNS / 2], f64::NAN)
}

/// Where a re-run of this benchmark finds the results to measure.
const MEASURE_DIR: &str = "DYNO_BENCH_MEASURE";

fn main() {
    if let Some(dir) = std::env::var_os(MEASURE_DIR) {
        measure_all(Path::new(&dir));
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (base, _) =
        results::read(&root.join("results/quickstart")).expect("the quickstart results load");
    // `DYNO_BENCH_DIR` keeps the synthesised results there, for profiling.
    let temp = tempfile::tempdir().expect("a temporary directory");
    let dir =
        std::env::var_os("DYNO_BENCH_DIR").map_or_else(|| temp.path().to_path_buf(), Into::into);
    for (side, seed) in [("a", 1), ("b", 2)] {
        let doc = synthesize(&base, seed);
        let json = results::to_json(&doc).expect("results serialize");
        let side_dir = dir.join(side);
        std::fs::create_dir_all(&side_dir).expect("a side directory");
        std::fs::write(side_dir.join(results::RESULTS_FILE), &json).expect("results written");
    }
    // Measured from a fresh process: a child's peak memory as the kernel
    // reports it starts from its parent's, and this one has held both runs.
    let status = Command::new(std::env::current_exe().expect("this benchmark's path"))
        .env(MEASURE_DIR, &dir)
        .status()
        .expect("the benchmark runs again");
    assert!(status.success(), "measuring failed: {status}");
}

/// Runs `dyno report` and `dyno compare` on the results under `dir`, then
/// parses one side in process, and prints the figures.
fn measure_all(dir: &Path) {
    let (a, b) = (dir.join("a"), dir.join("b"));
    let dyno = Path::new(env!("CARGO_BIN_EXE_dyno"));
    let (a_arg, b_arg) = (a.to_string_lossy(), b.to_string_lossy());
    let (report_s, report_mb) = measure(dyno, &["report", &a_arg]);
    let (compare_s, compare_mb) = measure(dyno, &["compare", &a_arg, &b_arg]);
    let text = std::fs::read_to_string(a.join(results::RESULTS_FILE)).expect("results read");
    let start = Instant::now();
    let parsed = results::parse(&text, "a").expect("results parse");
    let parse_s = start.elapsed().as_secs_f64();
    println!(
        "results: {} samples, {} cells, {:.0} MB of JSON a side",
        parsed.samples.len(),
        parsed.cells.len(),
        text.len() as f64 / 1e6
    );
    println!("parse (in process):   {parse_s:6.2} s");
    println!(
        "dyno report A:        {report_s:6.2} s, peak RSS {report_mb:6.0} MB (median of {RUNS})"
    );
    println!(
        "dyno compare A B:     {compare_s:6.2} s, peak RSS {compare_mb:6.0} MB (median of {RUNS})"
    );
}
