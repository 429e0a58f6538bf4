//! `scripts/setup-engine.sh`: every engine is smoke-tested before it is
//! installed, a crashing one is caught (a stand-in that crashes as an
//! engine built for another CPU does), and a crashing engine left in the
//! cache is rebuilt. The real engine passes the same test.

use crate::engine::{ENGINE, engine_cache};
use crate::repo_root;

/// `scripts/setup-engine.sh ARGS` with `DYNO_CACHE=cache`: its exit code and
/// what it wrote to stderr.
fn setup_engine(cache: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new("bash")
        .arg(repo_root().join("scripts/setup-engine.sh"))
        .args(args)
        .env("DYNO_CACHE", cache)
        .env_remove("DYNO_ENGINE_PORTABLE")
        .env_remove("DYNO_ENGINE_FAIL_SMOKE")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A stand-in engine that answers `--version` as build 11434 does and
/// crashes with SIGSEGV when it loads a model, as an engine built for
/// another CPU (AMX) does.
fn crashing_engine(path: &std::path::Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        path,
        "#!/bin/sh\n\
         if [ \"$1\" = --version ]; then\n\
           echo 'version: 11434 (0a1b2c3) (build 11434, commit 0a1b2c3)' >&2; exit 0\n\
         fi\n\
         kill -SEGV $$\n",
    )
    .unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

#[test]
fn issue_22_the_smoke_test_catches_a_crashing_engine() {
    let _engine = ENGINE.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("llama-server");
    crashing_engine(&fake);
    let (code, stderr) = setup_engine(&engine_cache(), &["--smoke-test", fake.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr
            .contains("failed its smoke test: killed by signal 11 (SIGSEGV) while loading SmolLM2"),
        "{stderr}"
    );
    // The engine setup installed passes the same test.
    let real = engine_cache().join("engine/bin/llama-server");
    let (code, stderr) = setup_engine(&engine_cache(), &["--smoke-test", real.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = setup_engine(&engine_cache(), &["--check"]);
    assert_eq!(code, Some(0), "{stderr}");
}

/// A cache holding the real models and `engine/` as given.
fn cache_with_engine(dir: &std::path::Path) -> std::path::PathBuf {
    let cache = dir.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::os::unix::fs::symlink(engine_cache().join("models"), cache.join("models")).unwrap();
    crashing_engine(&cache.join("engine/bin/llama-server"));
    cache
}

#[test]
fn issue_22_a_crashing_engine_left_in_the_cache_is_rebuilt() {
    let _engine = ENGINE.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    // An engine cached by an earlier setup: its marker is VERSION alone.
    let cache = cache_with_engine(dir.path());
    std::fs::write(cache.join("engine/VERSION"), "11434.0.0\n").unwrap();
    let (code, stderr) = setup_engine(&cache, &["--check"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("smoke-testing the cached native engine"),
        "{stderr}"
    );
    assert!(
        stderr.contains("failed its smoke test: killed by signal 11 (SIGSEGV) while loading SmolLM2; it will be rebuilt"),
        "{stderr}"
    );
    // A marker that says it passed, but on another machine: tested again.
    let mut marker: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(engine_cache().join("engine/build.json")).unwrap(),
    )
    .unwrap();
    marker["machine"] = "Linux x86_64, another CPU, flags 1".into();
    let written = cache.join("engine/build.json");
    std::fs::write(&written, marker.to_string()).unwrap();
    let (code, stderr) = setup_engine(&cache, &["--check"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("it will be rebuilt"), "{stderr}");
    // A marker that says it passed on this machine is trusted as it is.
    std::fs::copy(engine_cache().join("engine/build.json"), &written).unwrap();
    let (code, stderr) = setup_engine(&cache, &["--check"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("already built and smoke-tested"),
        "{stderr}"
    );
}
