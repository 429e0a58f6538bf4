//! A fuzz corpus for the suite loader: a seeded generator of mutated suites
//! (byte flips, truncations, duplicated and swapped lines, huge numbers,
//! deep interpolation and nesting, alias bombs, includes of symlink loops,
//! FIFOs, devices and links out of the tree, bad UTF-8, huge plans), and a
//! test that validates every one with the built binary under a 2 GB
//! address-space limit and a 10 s timeout each, asserting no panic, no hang
//! and no abort (issue 15).
//!
//! The timeout counts CPU seconds (`ulimit -t`: the kernel stops a suite
//! that computes for 10 s), so a machine busy with other work cannot make
//! a slow suite look hung; a suite blocked without computing (a read that
//! never returns) is stopped after six times as long on the wall clock.
//!
//! The corpus is the same on every run (seed 15). `DYNO_FUZZ_CASES=N`
//! changes its size, `DYNO_FUZZ_SEED=S` its seed, and `DYNO_FUZZ_KEEP=DIR`
//! writes it to DIR (kept) for a closer look: `dyno validate DIR/*.yaml`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::repo_root;

/// Suites in the default corpus (besides the special files).
const CASES: usize = 1200;
/// How many CPU seconds one suite may take to validate.
const TIMEOUT_S: u64 = 10;
/// Wall-clock time per CPU second allowed, for a suite blocked on a read.
const WALL_PER_CPU: u32 = 6;
/// Suites validated by one `dyno validate` process.
const BATCH: usize = 40;
/// The address-space limit of every validation, in KiB (2 GB).
const ADDRESS_SPACE_KIB: u64 = 2 * 1024 * 1024;
/// A fake secret some mutations interpolate.
const FUZZ_KEY: &str = "sk-fuzz-0123456789";

/// splitmix64: small, seeded, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Hand-written seeds that touch every part of the format, beside the
/// shipped suites.
const SEEDS: &[&str] = &[
    "name: endpoints\nendpoints:\n  local: { base_url: \"http://127.0.0.1:9/v1?api-version=1\", api_key_env: DYNO_FUZZ_API_KEY, headers: { X-Api-Key: \"${DYNO_FUZZ_API_KEY}\" } }\n  cmd: { kind: command, command: [python3, adapter.py], weights: w.bin, load_timeout_s: 30 }\nmodels:\n  - { id: a, endpoint: local, params: { rounds: 2, max_tokens: 16, timeout_s: 5 } }\n  - { id: b, endpoint: cmd, judge: a }\nprompts:\n  - id: p\n    text: hello\n    checks: [{ contains: x }, { max_words: 5, weight: 2 }]\n  - include: prompts/*.yaml\ndefaults: { rounds: 3, warmup: 1, temperature: 0.5, seed: 7 }\nmatrix: { stream: [true, false], temperature: [0, 1], max_tokens: [8, 16] }\nquality: { judge: { model: a, scale: \"1-10\", max_tokens: 20 } }\ncompare: { alpha: 0.01, noise: { ttft: 5%, e2e: 5% }, floor_ms: { ttft: 1 } }\nenergy: { watts: 65, price_per_kwh: 0.3, currency: EUR }\noutputs: { dir: out/endpoints, templates: [report.md, results.csv] }\norder: interleaved\n",
    "name: servers\nservers:\n  s:\n    command: [llama-server, -m, model.gguf, --port, \"{port}\", --threads, \"{threads}\", --api-key, \"${DYNO_FUZZ_API_KEY}\"]\n    variants: { threads: [1, 2, 4] }\n    env: { TOKEN: \"${DYNO_FUZZ_API_KEY:-none}\" }\n    startup_timeout_s: 60\n    cold_start: true\nmodels:\n  - { id: m, server: s, files: [model.gguf], size_mb: 100 }\nprompts:\n  - { id: chat, messages: [{ role: system, content: be brief }, { role: user, content: hi }] }\n",
    "name: foundry\nendpoints:\n  f: { kind: foundry, base_url: \"${FOUNDRY_LOCAL_ENDPOINT:-http://localhost:5273/v1}\" }\nmodels:\n  - { id: qwen2.5-0.5b, endpoint: f, variants: [cpu, gpu], download: false }\nprompts:\n  - { id: p, text: \"$$5 and ${HOME}\", rubric: r, checks: [{ regex: \"^a+$\" }, { json_schema: { type: object } }] }\n",
];

/// Byte strings a mutation inserts: YAML syntax, interpolation, control
/// and multi-byte characters.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ": ",
    "- ",
    "\n",
    "\n  ",
    "\"",
    "'",
    "&a ",
    "*a",
    "!!binary ",
    "!!str ",
    "${",
    "$${X}",
    "${DYNO_FUZZ_API_KEY}",
    "${NOT_SET}",
    "${1BAD}",
    "${U:-",
    "%YAML 1.2\n",
    "\t",
    "\0",
    "\u{feff}",
    "#",
    "|\n",
    ">-\n",
    "? ",
    "---\n",
    "...\n",
    "<<: *a\n",
    "\r\n",
    "é",
    "🚀",
    "\u{202e}",
    "~",
    "null",
    "true",
    "include: ",
    "{port}",
    "{threads}",
];

/// What a huge-number mutation puts in place of a number.
const NUMBERS: &[&str] = &[
    "1e20",
    "1e19",
    "-1",
    "18446744073709551615",
    "340282366920938463463374607431768211456",
    "1e308",
    "-1e308",
    ".inf",
    "-.inf",
    ".nan",
    "0",
    "4294967296",
    "9223372036854775808",
    "0x7fffffff",
    "1_000",
    "0o777",
    "1e-320",
];

/// What an include mutation includes: loops, FIFOs, devices, links out of
/// the tree, bad globs.
const INCLUDES: &[&str] = &[
    "special/**/*.yaml",
    "special/fifo.yaml",
    "special/dev-zero.yaml",
    "special/self.yaml",
    "special/dir.yaml",
    "special/root/etc/*",
    "special/proc/self/*",
    "special/a/b/a/b/**",
    "/dev/zero",
    "../../../../../../etc/passwd",
    "[",
    "{a,b",
    "prompts/*.yaml",
    "prompts/**",
];

/// One mutation of `text`.
fn mutate(rng: &mut Rng, text: &mut Vec<u8>) {
    let at = |rng: &mut Rng, text: &Vec<u8>| rng.below(text.len() + 1);
    match rng.below(16) {
        0 if !text.is_empty() => {
            let i = rng.below(text.len());
            text[i] ^= 1 << rng.below(8);
        }
        1 => {
            let i = at(rng, text);
            let token = rng.pick(TOKENS).as_bytes().to_vec();
            text.splice(i..i, token);
        }
        2 => text.truncate(at(rng, text)),
        3..=5 => lines(rng, text),
        6 | 7 => huge_number(rng, text),
        8 => {
            let deep = deep_interpolation(rng);
            replace_value(rng, text, &deep);
        }
        9 => {
            let depth = 1 + rng.below(100_000);
            let nested = format!("x: {}{}\n", "[".repeat(depth), "]".repeat(depth));
            text.extend_from_slice(nested.as_bytes());
        }
        10 => {
            let alias = b"\nanchor: &a [1, 2]\nalias: *a\nmerge: { <<: *a }\n";
            text.extend_from_slice(alias);
        }
        11 => {
            let entry = format!("prompts:\n  - include: \"{}\"\n", rng.pick(INCLUDES));
            replace_first(text, "prompts:\n", &entry);
        }
        12 => {
            let file = rng.pick(&[
                "special/fifo.json",
                "special/dev-zero.yaml",
                "nope.json",
                "special/dir.yaml",
            ]);
            let entry = format!(
                "prompts:\n  - {{ id: fz, text: x, checks: [{{ json_schema: {{ file: {file} }} }}] }}\n"
            );
            replace_first(text, "prompts:\n", &entry);
        }
        13 => replace_value(rng, text, &format!("\"{}\"", "long ".repeat(200_000))),
        14 => text.extend_from_slice(rng.pick(BIG_PLANS).as_bytes()),
        _ => {
            let i = at(rng, text);
            let bytes: Vec<u8> = (0..=rng.below(8)).map(|_| rng.next() as u8).collect();
            text.splice(i..i, bytes);
        }
    }
}

/// Plans, outputs and variants far beyond what a run allows; appended, so
/// some duplicate a key and some do not.
const BIG_PLANS: &[&str] = &[
    "defaults: { rounds: 100000, warmup: 1000 }\nmatrix: { temperature: [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.1], max_tokens: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], stream: [true, false] }\n",
    "outputs: { dir: /dev/null, templates: [nope.md, ../../etc/passwd, report.md] }\n",
    "outputs: { dir: special/fifo.yaml }\n",
    "servers:\n  v:\n    command: [x, \"{port}\", \"{a}\", \"{b}\", \"{c}\", \"{d}\"]\n    variants: { a: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], b: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], c: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], d: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] }\n",
];

/// The billion laughs: 9^8 strings from a few lines of aliases (a few
/// cases, not a mutation: the parser's node budget stops it, after
/// seconds in a debug build).
const ALIAS_BOMB: &str = "\nbomb_a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\nbomb_b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nbomb_c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nbomb_d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\nbomb_e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nbomb_f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\nbomb_g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nbomb_h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n";

/// `${U:-${U:-…x…}}`, up to 50,000 deep.
fn deep_interpolation(rng: &mut Rng) -> String {
    let depth = *rng.pick(&[17, 100, 1000, 50_000]);
    format!("\"{}x{}\"", "${U:-".repeat(depth), "}".repeat(depth))
}

/// Duplicates (a duplicate key, mostly), deletes or swaps lines.
fn lines(rng: &mut Rng, text: &mut Vec<u8>) {
    let mut lines: Vec<Vec<u8>> = text.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    let i = rng.below(lines.len());
    let j = rng.below(lines.len());
    match rng.below(3) {
        0 => {
            let line = lines[i].clone();
            lines.insert(j, line);
        }
        1 => {
            lines.remove(i);
        }
        _ => lines.swap(i, j),
    }
    *text = lines.join(&b'\n');
}

/// Replaces one run of digits by a huge or odd number.
fn huge_number(rng: &mut Rng, text: &mut Vec<u8>) {
    let starts: Vec<usize> = (0..text.len())
        .filter(|&i| text[i].is_ascii_digit() && (i == 0 || !text[i - 1].is_ascii_digit()))
        .collect();
    if starts.is_empty() {
        return;
    }
    let start = *rng.pick(&starts);
    let end = (start..text.len())
        .find(|&i| !text[i].is_ascii_digit() && text[i] != b'.')
        .unwrap_or(text.len());
    text.splice(start..end, rng.pick(NUMBERS).bytes());
}

/// Replaces what follows `: ` on a random line by `value`.
fn replace_value(rng: &mut Rng, text: &mut Vec<u8>, value: &str) {
    let spots: Vec<usize> = text
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w == b": ")
        .map(|(i, _)| i + 2)
        .collect();
    if spots.is_empty() {
        return;
    }
    let start = *rng.pick(&spots);
    let end = (start..text.len())
        .find(|&i| text[i] == b'\n')
        .unwrap_or(text.len());
    text.splice(start..end, value.bytes());
}

fn replace_first(text: &mut Vec<u8>, from: &str, to: &str) {
    let from = from.as_bytes();
    if let Some(i) = text.windows(from.len()).position(|w| w == from) {
        text.splice(i..i + from.len(), to.bytes());
    }
}

/// The files the special includes point at: symlink loops, links out of
/// the tree, a FIFO, a device, a self-link and a directory named `.yaml`.
#[cfg(unix)]
fn special_files(dir: &Path) {
    use std::os::unix::fs::symlink;
    let special = dir.join("special");
    std::fs::create_dir_all(special.join("dir.yaml")).unwrap();
    for (link, target) in [
        ("a", "."),
        ("b", "."),
        ("root", "/"),
        ("proc", "/proc/self"),
        ("dev-zero.yaml", "/dev/zero"),
        ("self.yaml", "self.yaml"),
    ] {
        symlink(target, special.join(link)).unwrap();
    }
    for fifo in ["fifo.yaml", "fifo.json"] {
        let status = Command::new("mkfifo")
            .arg(special.join(fifo))
            .status()
            .unwrap();
        assert!(status.success(), "mkfifo {fifo}: {status}");
    }
}

/// Writes the corpus into `dir`: the prompt files the seeds include, the
/// special files, and `cases` mutated suites; returns every path to
/// validate (the special files among them).
#[cfg(unix)]
pub(crate) fn generate(dir: &Path, seed: u64, cases: usize) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir.join("prompts")).unwrap();
    std::fs::copy(
        repo_root().join("suites/prompts/workshop.yaml"),
        dir.join("prompts/workshop.yaml"),
    )
    .unwrap();
    special_files(dir);
    let mut seeds: Vec<Vec<u8>> = SEEDS.iter().map(|s| s.as_bytes().to_vec()).collect();
    for shipped in ["quickstart.yaml", "foundry-workshop.yaml"] {
        seeds.push(std::fs::read(repo_root().join("suites").join(shipped)).unwrap());
    }
    let mut rng = Rng(seed);
    let mut paths: Vec<PathBuf> = [
        "special/fifo.yaml",
        "special/dev-zero.yaml",
        "special/self.yaml",
        "special/dir.yaml",
        "missing.yaml",
    ]
    .iter()
    .map(|p| dir.join(p))
    .collect();
    for (i, seed) in seeds.iter().enumerate() {
        let path = dir.join(format!("seed-{i}.yaml"));
        std::fs::write(&path, seed).unwrap();
        paths.push(path);
    }
    for i in 0..cases {
        let mut text = rng.pick(&seeds).clone();
        for _ in 0..=rng.below(4) {
            mutate(&mut rng, &mut text);
        }
        let path = dir.join(format!("case-{i:04}.yaml"));
        std::fs::write(&path, text).unwrap();
        paths.push(path);
    }
    for (i, seed) in seeds.iter().take(2).enumerate() {
        let path = dir.join(format!("alias-bomb-{i}.yaml"));
        std::fs::write(&path, [seed.as_slice(), ALIAS_BOMB.as_bytes()].concat()).unwrap();
        paths.push(path);
    }
    let big = dir.join("over-16-mib.yaml");
    std::fs::write(&big, format!("name: big\n# {}\n", "x".repeat(17 << 20))).unwrap();
    paths.push(big);
    paths
}

/// How one validation ended: fine (exit 0 or 2), or what went wrong.
enum Outcome {
    Fine,
    Bad(String),
}

/// Validates `suites` in one process under the address-space limit and
/// `cpu_s` CPU seconds for the whole batch.
#[cfg(unix)]
fn validate(dir: &Path, suites: &[PathBuf], cpu_s: u64) -> Outcome {
    use std::os::unix::process::ExitStatusExt as _;
    let stderr_path = dir.join(format!("stderr-{}.txt", std::process::id()));
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let memory = if cfg!(target_os = "linux") {
        format!("ulimit -v {ADDRESS_SPACE_KIB} && ")
    } else {
        String::new()
    };
    let script = format!("{memory}ulimit -S -t {cpu_s} && exec \"$0\" \"$@\"");
    let limit = Duration::from_secs(cpu_s) * WALL_PER_CPU;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_dyno"))
        .arg("validate")
        .args(suites)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", "/home/fuzz")
        .env("DYNO_FUZZ_API_KEY", FUZZ_KEY)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Outcome::Bad(format!("hung: blocked, no exit within {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let text = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let tail = |text: &str| -> String {
        let skip = text.chars().count().saturating_sub(600);
        text.chars().skip(skip).collect()
    };
    if text.contains("panicked at") || status.code() == Some(101) {
        Outcome::Bad(format!("panicked: {}", tail(&text)))
    } else if status.signal() == Some(libc::SIGXCPU) {
        Outcome::Bad(format!("hung: computed for over {cpu_s} s"))
    } else if let Some(signal) = status.signal() {
        Outcome::Bad(format!("aborted by signal {signal}: {}", tail(&text)))
    } else if !matches!(status.code(), Some(0 | 2)) {
        Outcome::Bad(format!("unexpected {status}: {}", tail(&text)))
    } else if text.contains(FUZZ_KEY) {
        Outcome::Bad("a diagnostic shows the interpolated key".into())
    } else {
        Outcome::Fine
    }
}

#[cfg(unix)]
#[test]
fn loader_survives_the_mutated_corpus_without_panic_hang_or_abort() {
    // Both cores validating suites would slow the real-engine tests past
    // their request timeouts: take turns with them.
    let _engine = crate::engine::ENGINE.blocking_lock();
    let env_number = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    let cases = env_number("DYNO_FUZZ_CASES").map_or(CASES, |n: u64| n as usize);
    let seed = env_number("DYNO_FUZZ_SEED").unwrap_or(15);
    let temp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("DYNO_FUZZ_KEEP")
        .map_or_else(|| temp.path().join("corpus"), PathBuf::from);
    let suites = generate(&dir, seed, cases);
    assert!(suites.len() >= 1000, "{} suites", suites.len());

    let started = Instant::now();
    let mut failures = Vec::new();
    for batch in suites.chunks(BATCH) {
        let cpu_s = TIMEOUT_S.max(batch.len() as u64 / 2);
        if matches!(validate(&dir, batch, cpu_s), Outcome::Fine) {
            continue;
        }
        // Find the culprits one by one.
        for suite in batch {
            if let Outcome::Bad(why) = validate(&dir, std::slice::from_ref(suite), TIMEOUT_S) {
                failures.push(format!("{}: {why}", suite.display()));
            }
        }
    }
    let took = started.elapsed();
    let count = |kind: &str| {
        failures
            .iter()
            .filter(|f| f.contains(&format!(": {kind}")))
            .count()
    };
    eprintln!(
        "fuzz: {} suites (seed {seed}) validated in {:.1} s: {} panics, {} hangs, {} aborts, {} other failures",
        suites.len(),
        took.as_secs_f64(),
        count("panicked"),
        count("hung"),
        count("aborted"),
        count("unexpected"),
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
