//! Nothing lost: an interrupted run writes what it measured and leaves no
//! child behind, `--resume` finishes it, and two runs never share an output
//! directory. Against the real engine (SIGINT mid-run) and the scripted
//! fixture (the lock: a slow answer a real server cannot be made to give on
//! demand).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use dyno::results::Results;

use crate::engine::{ENGINE, quickstart_variant};
use crate::{Tree, fixture, load_results};

fn dyno() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dyno"))
}

/// Samples in the journal of `out` so far.
fn journaled(out: &Path) -> usize {
    dyno::run::journal::read(&out.join("journal.jsonl")).map_or(0, |c| c.samples.len())
}

/// The pids whose parent is `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let rest = stat[stat.rfind(')')? + 1..].to_string();
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

/// Whether `pid` is gone (or a zombie nobody reaped yet).
fn gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rfind(')')
            .and_then(|at| stat[at + 1..].split_whitespace().next().map(str::to_string))
            .is_some_and(|state| state == "Z" || state == "X")
    })
}

/// `dyno run SUITE --quiet --out OUT`, its output captured.
fn quiet_run(suite: &Path, out: &Path) -> Command {
    let mut cmd = dyno();
    cmd.arg("run")
        .arg(suite)
        .args(["--quiet", "--out"])
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// [`quiet_run`] of SmolLM2 on the `rag` prompt; with `resume`, `--resume`.
fn smollm2_rag(suite: &Path, out: &Path, resume: bool) -> Command {
    let mut cmd = quiet_run(suite, out);
    cmd.args(["--models", "smollm2*", "--prompts", "rag"]);
    if resume {
        cmd.arg("--resume");
    }
    cmd
}

/// A run that SIGINT stopped: it exited with 130, none of `servers`
/// outlived it, and `out` holds its partial results, which it returns.
fn stopped_by_sigint(
    output: &Output,
    servers: &[u32],
    out: &Path,
) -> (Results, dyno::results::Partial) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stdout}\n{stderr}");
    for server in servers {
        assert!(
            gone(*server),
            "server {server} outlived the interrupted run"
        );
    }
    let partial: Results = load_results(out);
    let info = partial
        .partial
        .clone()
        .unwrap_or_else(|| panic!("not partial: {stdout}\n{stderr}"));
    assert!(info.reason.contains("SIGINT"), "{info:?}");
    (partial, info)
}

fn waited(child: std::process::Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    let mut child = child;
    loop {
        if child.try_wait().ok().flatten().is_some() || Instant::now() > deadline {
            let _ = child.kill();
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_mid_run_leaves_no_child_and_resume_finishes_it() {
    let _engine = ENGINE.lock().await;
    let tree = Tree::new(&[]);
    let suite = quickstart_variant(tree.dir.path(), "s.yaml", &[]);
    let out = tree.path("out");
    let args = |resume: bool| smollm2_rag(&suite, &out, resume);
    let child = args(false).spawn().unwrap();
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(120);
    while journaled(&out) < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(journaled(&out) >= 3, "the run measured nothing in 120 s");
    let servers = children_of(pid);
    assert!(!servers.is_empty(), "no llama-server under dyno ({pid})");
    // SAFETY: kill(2) with a pid this test spawned and a signal number.
    assert_eq!(
        unsafe { libc::kill(i32::try_from(pid).unwrap(), libc::SIGINT) },
        0
    );
    let first = waited(child, Duration::from_secs(60));
    let (partial, info) = stopped_by_sigint(&first, &servers, &out);
    assert!(info.sent < info.planned, "{info:?}");
    assert_eq!(partial.samples.len(), info.sent);
    assert!(
        out.join("journal.jsonl").exists(),
        "the journal is kept for --resume"
    );

    let second = waited(args(true).spawn().unwrap(), Duration::from_secs(240));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(0), "{stderr}");
    let done = load_results(&out);
    assert_eq!(done.partial, None);
    assert!(
        !out.join("results.previous.json").exists(),
        "the partial results the resumed run completed are not kept as the previous run's"
    );
    let indices: Vec<usize> = done.samples.iter().map(|s| s.index).collect();
    assert_eq!(indices, (1..=info.planned).collect::<Vec<_>>(), "{stderr}");
    // The same cells as the plan: every key, every round once.
    let plan = dyno()
        .arg("plan")
        .arg(&suite)
        .args(["--models", "smollm2*", "--prompts", "rag", "--json"])
        .output()
        .unwrap();
    let cells: Vec<serde_json::Value> = serde_json::from_slice(&plan.stdout).unwrap();
    let planned: Vec<(String, String)> = cells
        .iter()
        .map(|c| {
            (
                c["key"].as_str().unwrap().to_string(),
                c["round"].to_string(),
            )
        })
        .collect();
    let measured: Vec<(String, String)> = done
        .samples
        .iter()
        .map(|s| {
            (
                s.key.clone(),
                serde_json::to_value(s.round).unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(measured, planned);
    assert!(
        !out.join("journal.jsonl").exists(),
        "a finished run leaves no journal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_into_the_same_directory_is_refused() {
    let base_url = fixture::start().await;
    let tree = Tree::new(&[(
        "s.yaml",
        &format!(
            "name: slow\nendpoints:\n  fx: {{ base_url: \"{base_url}\" }}\nmodels:\n  - {{ id: m, endpoint: fx, model: slow }}\nprompts:\n  - {{ id: p, text: hi }}\ndefaults: {{ rounds: 1, warmup: 0, max_tokens: 4 }}\n"
        ),
    )]);
    let out = tree.path("out");
    let run = || quiet_run(&tree.path("s.yaml"), &out).spawn().unwrap();
    let first = run();
    // The first run holds the lock while its slow request (3 s) runs.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !out.join(".dyno.lock").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let second = waited(run(), Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("another dyno run is writing to"),
        "{stderr}"
    );
    let first = waited(first, Duration::from_secs(30));
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let doc = load_results(&out);
    assert_eq!(doc.samples.len(), 1);
}

/// A server that never becomes ready: Ctrl-C while dyno waits for it stops
/// the run at once (not when the startup timeout ends it), ends the server
/// and writes what the run has. A server that loads slowly is a real
/// server's case; this one never answers, which no real server does on
/// demand.
#[test]
fn issue_23_ctrl_c_while_a_server_starts_is_honoured() {
    let tree = Tree::new(&[(
        "s.yaml",
        "name: slow-start\n\
         servers:\n  \
           slow:\n    \
             command: [sh, -c, 'echo loading; sleep 60', '{port}']\n    \
             ready: /health\n    \
             startup_timeout_s: 40\n\
         models:\n  - { id: m, server: slow }\n\
         prompts:\n  - { id: p, text: hello }\n\
         defaults: { rounds: 2, warmup: 0 }\n",
    )]);
    let out = tree.path("out");
    let child = quiet_run(&tree.path("s.yaml"), &out).spawn().unwrap();
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut servers = Vec::new();
    while servers.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        servers = children_of(pid);
    }
    assert!(!servers.is_empty(), "no server under dyno ({pid})");
    std::thread::sleep(Duration::from_millis(500));
    let interrupted = Instant::now();
    // SAFETY: kill(2) with a pid this test spawned and a signal number.
    assert_eq!(
        unsafe { libc::kill(i32::try_from(pid).unwrap(), libc::SIGINT) },
        0
    );
    let output = waited(child, Duration::from_secs(60));
    let took = interrupted.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // 40 s before; 1 s is the aim, 10 s leaves room for a busy machine.
    assert!(
        took < Duration::from_secs(10),
        "exited {took:?} after SIGINT: {stderr}"
    );
    let (_, info) = stopped_by_sigint(&output, &servers, &out);
    assert_eq!(info.sent, 0, "{info:?}");
}

/// `kill -9` of a run leaves no server behind: the kernel ends the managed
/// server with dyno (Linux), and the run's record of its servers lets the
/// next run end any that survive elsewhere. `--resume` then finishes the
/// run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_23_kill_9_leaves_no_server_behind() {
    let _engine = ENGINE.lock().await;
    let tree = Tree::new(&[]);
    let suite = quickstart_variant(tree.dir.path(), "s.yaml", &[("rounds: 5", "rounds: 3")]);
    let out = tree.path("out");
    let args = |resume: bool| smollm2_rag(&suite, &out, resume);
    let mut child = args(false).spawn().unwrap();
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(120);
    while journaled(&out) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let servers = children_of(pid);
    assert!(!servers.is_empty(), "no llama-server under dyno ({pid})");
    let record = std::fs::read_to_string(out.join("logs/servers.jsonl")).unwrap_or_default();
    assert!(
        servers
            .iter()
            .all(|s| record.contains(&format!("\"pid\":{s}"))),
        "servers {servers:?} not written down: {record}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !servers.iter().all(|s| gone(*s)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for server in &servers {
        assert!(gone(*server), "server {server} outlived `kill -9` of dyno");
    }
    let second = waited(args(true).spawn().unwrap(), Duration::from_secs(240));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(0), "{stderr}");
    let done = load_results(&out);
    let indices: Vec<usize> = done.samples.iter().map(|s| s.index).collect();
    assert_eq!(indices, (1..=indices.len()).collect::<Vec<_>>(), "{stderr}");
    assert_eq!(done.partial, None);
}

/// A full disk: the output directory on a 256 KiB tmpfs (in a mount
/// namespace of the test's own, so no privilege is needed). A short run
/// fits; a long one fills the disk with its journal. The long run stops
/// at once with exit 3 and says what to do, the last complete results
/// stay `results.json` (so `dyno report` works once space is freed), and what the
/// journal holds is resumable. The fixture serves the requests: the fault
/// is the disk's, and the fixture answers fast enough to fill it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_23_a_full_disk_never_costs_the_last_good_results() {
    let base_url = fixture::start().await;
    let suite = |rounds: u32| {
        format!(
            "name: disk\nendpoints:\n  fx: {{ base_url: \"{base_url}\" }}\nmodels:\n  - {{ id: m, endpoint: fx, model: timetable }}\n\
             prompts:\n  - {{ id: p, text: hi }}\ndefaults: {{ rounds: {rounds}, warmup: 0, max_tokens: 4, stream: false }}\n"
        )
    };
    let tree = Tree::new(&[("short.yaml", &suite(3)), ("long.yaml", &suite(600))]);
    let (mnt, kept) = (tree.path("mnt"), tree.path("kept"));
    std::fs::create_dir_all(&mnt).unwrap();
    std::fs::create_dir_all(&kept).unwrap();
    let script = r#"
        set -u
        mount -t tmpfs -o size=256k tmpfs "$MNT" || exit 90
        "$DYNO" run "$DIR/short.yaml" --quiet --out "$MNT/out" >/dev/null 2>"$KEPT/first.err"
        echo "first=$?" >>"$KEPT/codes"
        cp "$MNT/out/results.json" "$KEPT/first.json"
        head -c 98304 /dev/zero >"$MNT/other-files"
        "$DYNO" run "$DIR/long.yaml" --quiet --out "$MNT/out" >/dev/null 2>"$KEPT/second.err"
        echo "second=$?" >>"$KEPT/codes"
        cp -R "$MNT/out" "$KEPT/after"
        rm "$MNT/other-files"
        "$DYNO" report "$MNT/out" >/dev/null 2>"$KEPT/report.err"
        echo "report=$?" >>"$KEPT/codes"
    "#;
    let status = tokio::task::spawn_blocking({
        let (dir, mnt, kept) = (tree.dir.path().to_path_buf(), mnt.clone(), kept.clone());
        move || {
            Command::new("unshare")
                .args(["--user", "--map-root-user", "--mount", "sh", "-c", script])
                .env("DYNO", env!("CARGO_BIN_EXE_dyno"))
                .env("DIR", dir)
                .env("MNT", mnt)
                .env("KEPT", kept)
                .status()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let read = |name: &str| std::fs::read_to_string(kept.join(name)).unwrap_or_default();
    assert_eq!(status.code(), Some(0), "mount failed: {}", read("codes"));
    let codes = read("codes");
    let second = read("second.err");
    assert!(codes.contains("first=0"), "{codes}\n{}", read("first.err"));
    assert!(codes.contains("second=3"), "{codes}\n{second}");
    assert!(second.contains("No space left on device"), "{second}");
    assert!(second.contains("--resume --out"), "{second}");
    // The last complete results are still `results.json`, byte for byte.
    let first = read("first.json");
    assert!(!first.is_empty(), "{codes}");
    assert_eq!(read("after/results.json"), first, "{second}");
    // Once some space is freed, the reports are made from them again.
    assert!(
        codes.contains("report=0"),
        "{codes}\n{}",
        read("report.err")
    );
    // The long run stopped at once: far fewer than its 600 requests were
    // sent, and the journal holds them for --resume.
    let journal = dyno::run::journal::read(&kept.join("after/journal.jsonl")).unwrap();
    assert!(
        !journal.samples.is_empty() && journal.samples.len() < 600,
        "{} samples journalled: {second}",
        journal.samples.len()
    );
}
