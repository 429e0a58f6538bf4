//! The on-disk size of model files, and the model files named in a server
//! command.

use std::path::PathBuf;

/// Size in bytes of each path (symlinks followed); `None` for paths that are
/// missing, unreadable or not regular files.
pub(crate) fn file_bytes(paths: &[PathBuf]) -> Vec<(PathBuf, Option<u64>)> {
    paths
        .iter()
        .map(|p| {
            let size = std::fs::metadata(p)
                .ok()
                .filter(std::fs::Metadata::is_file)
                .map(|m| m.len());
            (p.clone(), size)
        })
        .collect()
}

/// The model paths in a llama-server command line: the values of `-m PATH`,
/// `--model PATH`, `--model=PATH` and `-m=PATH`, in order. Other files
/// (`--mmproj`, `--lora`, draft models) are not models for this purpose.
/// A flag with no value after it is ignored.
pub(crate) fn model_files_in_command(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "-m" | "--model" => {
                if let Some(value) = iter.next() {
                    out.push(value.clone());
                }
            }
            other => {
                if let Some(value) = other
                    .strip_prefix("--model=")
                    .or_else(|| other.strip_prefix("-m="))
                    .filter(|v| !v.is_empty())
                {
                    out.push(value.to_string());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(std::string::ToString::to_string).collect()
    }

    #[test]
    fn model_flags() {
        let args = strings(&[
            "llama-server",
            "-m",
            "/models/a.gguf",
            "--mmproj",
            "/models/proj.gguf",
            "--lora",
            "/models/lora.gguf",
            "--model",
            "b.gguf",
            "--model=c.gguf",
            "-m=d.gguf",
            "--model-draft",
            "draft.gguf",
            "--port",
            "8080",
            "--model=",
            "-m",
        ]);
        assert_eq!(
            model_files_in_command(&args),
            vec!["/models/a.gguf", "b.gguf", "c.gguf", "d.gguf"]
        );
        assert!(model_files_in_command(&[]).is_empty());
        assert!(model_files_in_command(&strings(&["-hf", "org/repo"])).is_empty());
    }

    #[test]
    fn file_sizes() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("m.gguf");
        std::fs::write(&file, vec![0u8; 1234]).unwrap();
        let missing = tmp.path().join("nope.gguf");
        let dir = tmp.path().to_path_buf();
        let got = file_bytes(&[file.clone(), missing.clone(), dir.clone()]);
        assert_eq!(got, vec![(file, Some(1234)), (missing, None), (dir, None)]);
    }
}
