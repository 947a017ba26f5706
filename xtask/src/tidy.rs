//! The tidy test (rust-analyzer's `xtask/src/tidy.rs` is the model): rules
//! about the repository as a whole that no compiler checks, run by `cargo
//! test --workspace` and so by `cargo xtask test`.
//!
//! - the code is formatted (`cargo fmt --check`);
//! - every Rust file under a `src/` opens with a `//!` line saying what it is for;
//! - every path written in backticks in `ARCHITECTURE.md` exists;
//! - every `cargo xtask <command>` named in docs, comments and `Trunk.toml` exists;
//! - the `hark` CLI prints an error only through `report::chain` (anyhow's
//!   `{:#}` repeats every cause that hark's messages already say).

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use clap::CommandFactory;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask/ lives in the repository root").to_path_buf()
    }

    /// Files under `dir` (skipping build outputs and hidden folders) for which `keep` holds.
    fn files(dir: &Path, keep: &dyn Fn(&Path) -> bool, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name == "target" || name == "dist" || name == "node_modules" {
                continue;
            }
            if path.is_dir() {
                files(&path, keep, out);
            } else if keep(&path) {
                out.push(path);
            }
        }
    }

    fn repo_files(keep: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
        let mut out = Vec::new();
        files(&root(), keep, &mut out);
        out.sort();
        out
    }

    fn relative(path: &Path) -> String {
        path.strip_prefix(root()).unwrap_or(path).display().to_string()
    }

    #[test]
    fn code_is_formatted() {
        let out = Command::new("cargo")
            .args(["fmt", "--all", "--", "--check"])
            .current_dir(root())
            .output()
            .expect("cargo fmt runs (rustfmt is a component in rust-toolchain.toml)");
        assert!(
            out.status.success(),
            "run `cargo fmt --all`; these files are not formatted:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    #[test]
    fn every_source_file_says_what_it_is_for() {
        let sources =
            repo_files(&|p| p.extension().is_some_and(|e| e == "rs") && p.components().any(|c| c.as_os_str() == "src"));
        assert!(sources.len() > 20, "found only {} source files; is the walk right?", sources.len());
        let undocumented: Vec<String> = sources
            .iter()
            .filter(|p| !std::fs::read_to_string(p).is_ok_and(|t| t.starts_with("//!")))
            .map(|p| relative(p))
            .collect();
        assert!(
            undocumented.is_empty(),
            "start these files with a `//!` line saying what they are for: {undocumented:?}"
        );
    }

    #[test]
    fn the_cli_words_errors_through_its_report() {
        let cli = root().join("crates/hark-cli/src");
        let mut sources = Vec::new();
        files(&cli, &|p| p.extension().is_some_and(|e| e == "rs") && !p.ends_with("report.rs"), &mut sources);
        assert!(sources.len() > 10, "found only {} hark-cli sources; is the walk right?", sources.len());
        let offenders: Vec<String> = sources
            .iter()
            .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains(":#}")))
            .map(|p| relative(p))
            .collect();
        assert!(
            offenders.is_empty(),
            "print errors with `crate::report::eprint(&e)` or `report::chain`, not `{{e:#}}` (which says each cause twice): {offenders:?}"
        );
    }

    /// Where a path written in ARCHITECTURE.md may be relative to: the
    /// repository, or the crate (or folder) its section describes.
    fn bases() -> Vec<PathBuf> {
        let root = root();
        let mut bases = vec![root.clone(), root.join("tests"), root.join("web"), root.join("xtask")];
        for entry in std::fs::read_dir(root.join("crates")).expect("crates/ exists").flatten() {
            bases.push(entry.path().join("src"));
            bases.push(entry.path());
        }
        bases
    }

    /// A backticked word that names a file or folder of the repository (not
    /// a placeholder, a glob, a URL path or a file a command writes).
    fn is_repository_path(word: &str) -> bool {
        let placeholder = word.contains(['<', '*', '~', ' ', '{', '=']) || word.contains("NAME");
        let url = word.starts_with('/') || word.contains("://");
        let path = word.contains('/') || word.ends_with(".rs");
        path && !placeholder && !url && word != "dist/"
    }

    #[test]
    fn paths_in_the_architecture_document_exist() {
        let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md is readable");
        let bases = bases();
        let mut missing = Vec::new();
        let mut checked = 0;
        for word in text.split('`').skip(1).step_by(2) {
            if !is_repository_path(word) {
                continue;
            }
            checked += 1;
            let exists = if word.contains('/') {
                bases.iter().any(|b| b.join(word.trim_end_matches('/')).exists())
            } else {
                // A bare file name: some file of that name.
                !repo_files(&|p| p.file_name().is_some_and(|n| n == word)).is_empty()
            };
            if !exists {
                missing.push(word.to_owned());
            }
        }
        assert!(checked > 20, "checked only {checked} paths; is the backtick parsing right?");
        assert!(missing.is_empty(), "ARCHITECTURE.md names paths that do not exist: {missing:?}");
    }

    #[test]
    fn every_xtask_command_named_exists() {
        let commands: Vec<String> = crate::Cli::command().get_subcommands().map(|c| c.get_name().to_owned()).collect();
        let texts = repo_files(&|p| {
            p.extension().is_some_and(|e| e == "rs" || e == "md" || e == "toml") && !p.ends_with("xtask/src/tidy.rs")
        });
        let mut unknown = Vec::new();
        for path in &texts {
            let Ok(text) = std::fs::read_to_string(path) else { continue };
            for (i, _) in text.match_indices("cargo xtask ") {
                let word: String = text[i + "cargo xtask ".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect();
                if !word.is_empty() && !word.starts_with('-') && !commands.contains(&word) {
                    unknown.push(format!("{}: cargo xtask {word}", relative(path)));
                }
            }
        }
        assert!(unknown.is_empty(), "these name xtask commands that do not exist ({commands:?}): {unknown:?}");
    }
}
