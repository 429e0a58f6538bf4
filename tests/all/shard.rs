//! Runs spread over machines: `--shard I/N` parts merged with `dyno merge`
//! hold exactly the cells of the unsharded run, in its order, whatever the
//! order of the inputs; merges of different suites or with a part missing
//! are refused with what is wrong; `--fleet` gives a row per machine.
//! Against the real engine.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dyno::results::Results;

use crate::engine::{ENGINE, quickstart_variant};
use crate::{Tree, load_results};

fn dyno(args: &[&str], paths: &[&Path]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dyno"));
    cmd.args(args).args(paths);
    cmd.output().unwrap()
}

/// `dyno run SUITE --prompts rag --quiet --out OUT` with `extra` arguments;
/// panics with its output unless it exits 0.
fn run(suite: &Path, out: &Path, extra: &[&str]) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dyno"));
    cmd.arg("run")
        .arg(suite)
        .args(["--prompts", "rag", "--quiet", "--out"])
        .arg(out)
        .args(extra);
    let done = cmd.output().unwrap();
    assert_eq!(
        done.status.code(),
        Some(0),
        "dyno run {extra:?}: {}\n{}",
        String::from_utf8_lossy(&done.stdout),
        String::from_utf8_lossy(&done.stderr)
    );
}

/// Every sample as (index, key, round).
fn cells(doc: &Results) -> Vec<(usize, String, String)> {
    doc.samples
        .iter()
        .map(|s| {
            (
                s.index,
                s.key.clone(),
                serde_json::to_value(s.round).unwrap().to_string(),
            )
        })
        .collect()
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shards_merge_into_the_unsharded_run() {
    let _engine = ENGINE.lock().await;
    let tree = Tree::new(&[]);
    let suite = quickstart_variant(
        tree.dir.path(),
        "s.yaml",
        &[("max_tokens: 96", "max_tokens: 8")],
    );
    let whole = tree.path("whole");
    run(&suite, &whole, &["--machine", "laptop"]);
    let shards: Vec<PathBuf> = (1..=3).map(|i| tree.path(&format!("shard{i}"))).collect();
    for (i, out) in shards.iter().enumerate() {
        run(
            &suite,
            out,
            &["--shard", &format!("{}/3", i + 1), "--machine", "ci"],
        );
    }
    let whole_doc = load_results(&whole);
    let parts: Vec<Results> = shards.iter().map(|d| load_results(d)).collect();
    let sizes: Vec<usize> = parts.iter().map(|d| d.samples.len()).collect();
    // Four launches (two models on one and two threads) over three parts.
    assert!(sizes.iter().all(|&n| n > 0), "{sizes:?}");
    assert_eq!(
        sizes.iter().sum::<usize>(),
        whole_doc.samples.len(),
        "{sizes:?}"
    );

    let merged = tree.path("merged");
    let forward = dyno(
        &["merge", "--out"],
        &[&merged, &shards[0], &shards[1], &shards[2]],
    );
    assert_eq!(forward.status.code(), Some(0), "{}", text(&forward));
    let reversed = tree.path("reversed");
    let backward = dyno(
        &["merge", "--out"],
        &[&reversed, &shards[2], &shards[1], &shards[0]],
    );
    assert_eq!(backward.status.code(), Some(0), "{}", text(&backward));
    let doc = load_results(&merged);
    assert_eq!(cells(&doc), cells(&whole_doc));
    assert_eq!(doc.shard, None);
    assert_eq!(
        doc.summaries.len(),
        whole_doc.summaries.len(),
        "{:?}",
        doc.summaries
    );
    assert_eq!(
        std::fs::read(merged.join("results.json")).unwrap(),
        std::fs::read(reversed.join("results.json")).unwrap(),
        "the order of the inputs changed the merge"
    );
    // The machine during the whole run: every part's readings and requests.
    let readings = |d: &Results| d.environment.noise.as_ref().map_or(0, |n| n.readings);
    let part_readings: usize = parts.iter().map(readings).sum();
    assert!(part_readings > 0, "{:?}", parts[0].environment.noise);
    assert_eq!(readings(&doc), part_readings, "{:?}", doc.environment.noise);
    let part_max = parts
        .iter()
        .filter_map(|d| d.environment.noise.as_ref()?.host_busy_cores_max)
        .reduce(f64::max);
    assert_eq!(
        doc.environment
            .noise
            .as_ref()
            .and_then(|n| n.host_busy_cores_max),
        part_max,
        "{:?}",
        doc.environment.noise
    );
    let part_report = std::fs::read_to_string(shards[1].join("report.md")).unwrap();
    assert!(
        part_report.contains("> **Shard 2 of 3:**"),
        "a part's report says it is one: {}",
        &part_report[..part_report.len().min(1500)]
    );
    let report = std::fs::read_to_string(merged.join("report.md")).unwrap();
    assert!(!report.contains("**Shard "), "the merged report is whole");

    // A part missing: the merge names the cells it held.
    let missing = dyno(
        &["merge", "--out"],
        &[&tree.path("m2"), &shards[0], &shards[2]],
    );
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
    let said = text(&missing);
    assert!(said.contains("shards 2 of 3 are missing"), "{said}");
    for key in parts[1].samples.iter().map(|s| &s.key) {
        assert!(said.contains(key.as_str()), "{key} not named: {said}");
    }
    // A part given twice.
    let twice = dyno(
        &["merge", "--out"],
        &[&tree.path("m3"), &shards[0], &shards[0], &shards[1]],
    );
    assert_eq!(twice.status.code(), Some(2), "{}", text(&twice));
    assert!(text(&twice).contains("given twice"), "{}", text(&twice));

    // A part of an edited suite.
    let edited = quickstart_variant(
        tree.dir.path(),
        "s.yaml",
        &[("max_tokens: 96", "max_tokens: 9")],
    );
    let other = tree.path("other3");
    run(&edited, &other, &["--shard", "3/3"]);
    let refused = dyno(
        &["merge", "--out"],
        &[&tree.path("m4"), &shards[0], &shards[1], &other],
    );
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        text(&refused).contains("different suites"),
        "{}",
        text(&refused)
    );

    // The whole run and the merged one side by side: a row per machine.
    let fleet = tree.path("fleet");
    let side = dyno(&["merge", "--fleet", "--out"], &[&fleet, &whole, &merged]);
    assert_eq!(side.status.code(), Some(0), "{}", text(&side));
    let doc = load_results(&fleet);
    assert_eq!(
        doc.summaries.len(),
        2 * whole_doc.summaries.len(),
        "{:?}",
        doc.summaries
    );
    for machine in ["machine=laptop", "machine=ci"] {
        let rows = doc
            .samples
            .iter()
            .filter(|s| s.key.contains(machine))
            .count();
        assert_eq!(rows, whole_doc.samples.len(), "{machine}");
    }
    let fleet_info = doc
        .fleet
        .as_ref()
        .expect("a fleet merge records its machines");
    let names: Vec<&str> = fleet_info
        .machines
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(names, ["ci", "laptop"]);
    for machine in &fleet_info.machines {
        let models: Vec<&str> = machine.rows.iter().map(|r| r.model.as_str()).collect();
        let expected: Vec<&str> = whole_doc
            .summaries
            .iter()
            .map(|m| m.label.as_str())
            .collect();
        assert_eq!(models, expected, "{}", machine.name);
        assert!(!machine.highlights.is_empty(), "{machine:?}");
    }
    let report = std::fs::read_to_string(fleet.join("report.md")).unwrap();
    for heading in ["## Machines", "### ci", "### laptop"] {
        assert!(report.contains(heading), "{heading} missing:\n{report}");
    }
    // The page puts the machines side by side too.
    let page = std::fs::read_to_string(fleet.join("report.html")).unwrap();
    for heading in [
        "<h2 id=\"machines\">Machines</h2>",
        "<h3>ci</h3>",
        "<h3>laptop</h3>",
    ] {
        assert!(page.contains(heading), "{heading} missing from report.html");
    }
    for chart in ["fleet-ttft.svg", "fleet-e2e.svg", "fleet-decode-tps.svg"] {
        let svg = std::fs::read_to_string(fleet.join("charts").join(chart)).unwrap();
        assert!(
            svg.contains("laptop") && svg.contains("ci"),
            "{chart}: {svg}"
        );
    }
}
