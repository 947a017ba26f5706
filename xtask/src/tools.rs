//! Installs the tools hark's build and tests need, only when missing.
//!
//! Quiet when everything is present; says what it installs and why when not;
//! names the package when it cannot install it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

pub const TRUNK_VERSION: &str = "0.21.14";
/// binaryen from the npm registry (a wasm build run by Node.js). Debian
/// bookworm's binaryen 108 emits wasm that Chromium rejects; see Trunk.toml.
pub const BINARYEN_VERSION: &str = "132";
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// Debian packages: (file that proves it is installed, package).
const DEBIAN_PACKAGES: &[(&str, &str)] = &[
    (CHROMIUM, "chromium"),
    (CHROMEDRIVER, "chromium-driver"),
    ("/usr/bin/node", "nodejs"),
    ("/usr/bin/npm", "npm"),
    // `hark data synth --preset smoke` runs in the tests.
    ("/usr/bin/espeak-ng", "espeak-ng"),
    ("/usr/bin/flite", "flite"),
    // `hark lexicon` and the phone-model tests read festival's CMU
    // dictionary (festlex-cmu) through its default voice.
    ("/usr/bin/festival", "festival"),
    ("/usr/share/festival/dicts/cmu/cmudict-0.4.out", "festlex-cmu"),
    ("/usr/share/festival/voices/english/kal_diphone", "festvox-kallpc16k"),
    // The collector's PostgreSQL backend is tested against a real server.
    ("/usr/lib/postgresql", "postgresql"),
];

/// The synthesizers of the standard corpus, beyond espeak-ng and flite. The
/// MBROLA voices and SVOX Pico are in Debian's `contrib`/`non-free` components.
const SYNTH_PACKAGES: &[(&str, &str)] = &[
    ("/usr/bin/espeak-ng", "espeak-ng"),
    ("/usr/bin/flite", "flite"),
    ("/usr/bin/text2wave", "festival"),
    ("/usr/share/festival/voices/english/kal_diphone", "festvox-kallpc16k"),
    ("/usr/share/festival/voices/english/rab_diphone", "festvox-rablpc16k"),
    ("/usr/bin/mbrola", "mbrola"),
    ("/usr/share/mbrola/us1/us1", "mbrola-us1"),
    ("/usr/share/mbrola/us2/us2", "mbrola-us2"),
    ("/usr/share/mbrola/us3/us3", "mbrola-us3"),
    ("/usr/share/mbrola/en1/en1", "mbrola-en1"),
    // The second data release's voices (`hark_cli::voices::added_voices`).
    ("/usr/share/festival/voices/english/ked_diphone", "festvox-kdlpc16k"),
    ("/usr/share/festival/voices/english/us1_mbrola", "festvox-us1"),
    ("/usr/share/festival/voices/english/us2_mbrola", "festvox-us2"),
    ("/usr/share/festival/voices/english/us3_mbrola", "festvox-us3"),
    ("/usr/share/festival/voices/english/en1_mbrola", "festvox-en1"),
    ("/usr/bin/pico2wave", "libttspico-utils"),
    ("/usr/bin/RHVoice-test", "rhvoice"),
    ("/usr/share/RHVoice/voices/bdl", "rhvoice-english"),
    // The third (vocabulary) release's voices (`hark_cli::voices::vocabulary_voices`).
    ("/usr/share/festival/voices/english/don_diphone", "festvox-don"),
    ("/usr/share/mbrola/af1/af1", "mbrola-af1"),
    ("/usr/share/mbrola/de1/de1", "mbrola-de1"),
    ("/usr/share/mbrola/de2/de2", "mbrola-de2"),
    ("/usr/share/mbrola/de3/de3", "mbrola-de3"),
    ("/usr/share/mbrola/de4/de4", "mbrola-de4"),
    ("/usr/share/mbrola/de5/de5", "mbrola-de5"),
    ("/usr/share/mbrola/de6/de6", "mbrola-de6"),
    ("/usr/share/mbrola/fr1/fr1", "mbrola-fr1"),
    ("/usr/share/mbrola/fr4/fr4", "mbrola-fr4"),
    ("/usr/share/mbrola/gr2/gr2", "mbrola-gr2"),
    ("/usr/share/mbrola/hu1/hu1", "mbrola-hu1"),
    ("/usr/share/mbrola/nl2/nl2", "mbrola-nl2"),
    ("/usr/share/mbrola/pl1/pl1", "mbrola-pl1"),
    ("/usr/share/mbrola/ro1/ro1", "mbrola-ro1"),
    ("/usr/share/mbrola/sw1/sw1", "mbrola-sw1"),
    ("/usr/share/mbrola/sw2/sw2", "mbrola-sw2"),
];

/// A Python virtual environment with PyTorch (CPU) under
/// `~/.cache/hark/torchenv`, the measuring stick of the training benchmark.
/// Not part of the product; PyPI's torch wheel is large (~1 GB with its
/// CUDA libraries, which stay unused).
pub fn ensure_torch() -> anyhow::Result<()> {
    ensure_venv("torchenv", "torch", &["torch", "numpy"]).map(|_| ())
}

/// A Python virtual environment `~/.cache/hark/NAME` in which `module`
/// imports, made with `pip install PACKAGES` when it does not; its python.
fn ensure_venv(name: &str, module: &str, packages: &[&str]) -> anyhow::Result<PathBuf> {
    let venv = crate::cache_dir().join(name);
    let python = venv.join("bin/python");
    let has = |p: &Path| Command::new(p).args(["-c", &format!("import {module}")]).status().is_ok_and(|s| s.success());
    if has(&python) {
        return Ok(python);
    }
    eprintln!("installing {} into {} (once)", packages.join(", "), venv.display());
    let ok = Command::new("python3").arg("-m").arg("venv").arg(&venv).status()?.success()
        && Command::new(&python).args(["-m", "pip", "install", "-q"]).args(packages).status()?.success();
    anyhow::ensure!(ok && has(&python), "could not install {module} with pip into {}", venv.display());
    Ok(python)
}

/// cargo-fuzz, which `cargo xtask fuzz` drives.
pub fn ensure_cargo_fuzz() -> anyhow::Result<()> {
    ensure_cargo_tool("cargo-fuzz", "cargo-fuzz", "0.13.2", true, true)
}

/// Debian's `wrk`, the collector benchmark's load generator.
pub fn ensure_bench_packages() -> anyhow::Result<()> {
    ensure_debian_packages(&[("/usr/bin/wrk", "wrk")], true)
}

/// The Debian packages `cargo xtask text` reads its English text from.
pub fn ensure_text_packages() -> anyhow::Result<()> {
    ensure_debian_packages(
        &[
            ("/usr/share/games/fortunes/wisdom", "fortunes"),
            ("/usr/share/wordnet/data.noun", "wordnet-base"),
            ("/usr/share/dict/american-english", "wamerican"),
        ],
        true,
    )
}

/// A Python virtual environment with PyPI's `pocketsphinx` (which ships its
/// US English acoustic model, dictionary and LM) under
/// `~/.cache/hark/psenv`: the recognition benchmark's measuring stick, not
/// part of the product, and the source of `cargo xtask lm`'s general LM
/// (with numpy, which reads its trie). Returns its python.
pub fn ensure_pocketsphinx() -> anyhow::Result<PathBuf> {
    ensure_venv("psenv", "pocketsphinx, numpy", &["pocketsphinx==5.1.1", "numpy"])
}

/// Installs every synthesizer `hark data synth --preset standard` uses,
/// enabling Debian's contrib and non-free components when MBROLA or Pico is missing.
pub fn ensure_synthesizers(install: bool) -> anyhow::Result<()> {
    let non_free_missing = SYNTH_PACKAGES.iter().any(|(file, pkg)| is_non_free(pkg) && !Path::new(file).exists());
    if non_free_missing && install && is_root() {
        enable_contrib_non_free()?;
    }
    ensure_debian_packages(SYNTH_PACKAGES, install)
}

/// MBROLA's voices and SVOX Pico are in Debian's non-free component.
fn is_non_free(package: &str) -> bool {
    package.starts_with("mbrola") || package == "libttspico-utils"
}

/// Adds `contrib non-free` to the `main` component lines of Debian's apt
/// sources (deb822 `debian.sources` or the classic `sources.list`).
fn enable_contrib_non_free() -> anyhow::Result<()> {
    for path in ["/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"] {
        let Ok(text) = std::fs::read_to_string(path) else { continue };
        let edited = with_contrib_non_free(&text);
        if edited != text {
            eprintln!("xtask: enabling Debian's contrib and non-free components in {path} (MBROLA voices live there)");
            std::fs::write(path, edited).with_context(|| format!("editing {path}"))?;
        }
    }
    Ok(())
}

fn with_contrib_non_free(sources: &str) -> String {
    let lines: Vec<String> = sources
        .lines()
        .map(|line| {
            let is_components = line.starts_with("Components:") || line.starts_with("deb ");
            if is_components && line.split_whitespace().any(|w| w == "main") && !line.contains("non-free") {
                format!("{line} contrib non-free")
            } else {
                line.to_owned()
            }
        })
        .collect();
    lines.join("\n") + "\n"
}

/// Installs what is missing. Returns the folder of npm-installed tools, which
/// the caller puts first on `PATH` (trunk finds wasm-opt there).
pub fn ensure(root: &Path, tools_dir: &Path, install: bool) -> anyhow::Result<PathBuf> {
    ensure_debian_packages(DEBIAN_PACKAGES, install)?;
    let npm_bin = ensure_binaryen(tools_dir, install)?;
    ensure_wasm_target(install)?;
    ensure_cargo_tool("trunk", "trunk", TRUNK_VERSION, true, install)?;
    let bindgen = wasm_bindgen_version(root)?;
    ensure_cargo_tool("wasm-bindgen", "wasm-bindgen-cli", &bindgen, false, install)?;
    Ok(npm_bin)
}

/// binaryen's wasm-opt at exactly [`BINARYEN_VERSION`], in `tools_dir`.
fn ensure_binaryen(tools_dir: &Path, install: bool) -> anyhow::Result<PathBuf> {
    let bin = tools_dir.join("node_modules/.bin");
    let wasm_opt = bin.join("wasm-opt");
    let version =
        Command::new(&wasm_opt).arg("--version").output().ok().map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    if version.as_deref().is_some_and(|v| v.starts_with(&format!("wasm-opt version {BINARYEN_VERSION} "))) {
        return Ok(bin);
    }
    let spec = format!("binaryen@{BINARYEN_VERSION}.0.0");
    if !install {
        bail!("wasm-opt {BINARYEN_VERSION} is missing; run `npm install --prefix {} {spec}`", tools_dir.display());
    }
    eprintln!("xtask: installing wasm-opt (npm package {spec}) into {}", tools_dir.display());
    std::fs::create_dir_all(tools_dir)?;
    crate::run(
        Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
            .arg(tools_dir)
            .arg(&spec),
    )
    .with_context(|| format!("could not install the npm package {spec}"))?;
    Ok(bin)
}

/// Installs the packages of `(file that proves it is installed, package)`
/// pairs whose file is missing.
fn ensure_debian_packages(packages: &[(&str, &str)], install: bool) -> anyhow::Result<()> {
    let missing: Vec<&str> =
        packages.iter().filter(|(file, _)| !Path::new(file).exists()).map(|(_, pkg)| *pkg).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    if !install {
        bail!("missing Debian packages: {list}; install them with `apt-get install {list}`");
    }
    if !is_root() {
        bail!("missing Debian packages: {list}; run `sudo apt-get install {list}` (installing needs root)");
    }
    eprintln!("xtask: installing Debian packages {list}");
    crate::run(Command::new("apt-get").args(["update", "-qq"]))
        .context("apt-get update failed; check the network or the apt sources")?;
    crate::run(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .with_context(|| format!("could not install Debian packages {list}"))
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

fn ensure_wasm_target(install: bool) -> anyhow::Result<()> {
    let out = Command::new("rustup").args(["target", "list", "--installed"]).output();
    let installed = match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == WASM_TARGET),
        // No rustup: trust the toolchain; cargo will say if the target is missing.
        Err(_) => return Ok(()),
    };
    if installed {
        return Ok(());
    }
    if !install {
        bail!("the Rust target {WASM_TARGET} is missing; run `rustup target add {WASM_TARGET}`");
    }
    eprintln!("xtask: adding the Rust target {WASM_TARGET}");
    crate::run(Command::new("rustup").args(["target", "add", WASM_TARGET]))
}

/// Installs `crate_name` at exactly `version` unless `bin --version` reports it.
fn ensure_cargo_tool(bin: &str, crate_name: &str, version: &str, locked: bool, install: bool) -> anyhow::Result<()> {
    let found = Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().nth(1).unwrap_or_default().to_owned());
    if found.as_deref() == Some(version) {
        return Ok(());
    }
    let what = match &found {
        Some(v) => format!("{bin} {v} is installed but hark needs {version}"),
        None => format!("{bin} is not installed"),
    };
    if !install {
        bail!("{what}; run `cargo install {crate_name} --version {version}{}`", if locked { " --locked" } else { "" });
    }
    eprintln!("xtask: {what}; installing {crate_name} {version} (cargo install, several minutes, once)");
    let mut cmd = Command::new("cargo");
    cmd.args(["install", crate_name, "--version", version]);
    if locked {
        cmd.arg("--locked");
    }
    // Tools get their own target dir: they must not thrash the project's.
    cmd.env_remove("CARGO_TARGET_DIR");
    crate::run(&mut cmd).with_context(|| format!("could not install {crate_name} {version}"))
}

/// The wasm-bindgen version in Cargo.lock: the CLI must match it exactly.
pub fn wasm_bindgen_version(root: &Path) -> anyhow::Result<String> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).context("reading Cargo.lock")?;
    locked_version(&lock, "wasm-bindgen")
        .context("Cargo.lock has no wasm-bindgen package; is hark-web in the workspace?")
}

fn locked_version(lock: &str, package: &str) -> Option<String> {
    let needle = format!("name = \"{package}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == needle {
            let version = lines.next()?.trim().strip_prefix("version = \"")?.strip_suffix('"')?;
            return Some(version.to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_locked_version_of_exactly_that_package() {
        let lock = "[[package]]\nname = \"wasm-bindgen-futures\"\nversion = \"0.4.1\"\n\n[[package]]\nname = \"wasm-bindgen\"\nversion = \"0.2.130\"\n";
        assert_eq!(locked_version(lock, "wasm-bindgen").as_deref(), Some("0.2.130"));
        assert_eq!(locked_version(lock, "leptos"), None);
    }

    #[test]
    fn enables_contrib_and_non_free_once() {
        let deb822 = "Types: deb\nURIs: http://deb.debian.org/debian\nComponents: main\n";
        let once = with_contrib_non_free(deb822);
        assert!(once.contains("Components: main contrib non-free\n"), "{once}");
        assert_eq!(with_contrib_non_free(&once), once);
        let classic = "deb http://deb.debian.org/debian bookworm main\n# deb-src x main\n";
        assert_eq!(
            with_contrib_non_free(classic),
            "deb http://deb.debian.org/debian bookworm main contrib non-free\n# deb-src x main\n"
        );
    }

    #[test]
    fn trunk_toml_pins_the_locked_wasm_bindgen() {
        let root = crate::project_root();
        let locked = wasm_bindgen_version(&root).unwrap();
        let trunk = std::fs::read_to_string(root.join("Trunk.toml")).unwrap();
        assert!(
            trunk.contains(&format!("wasm_bindgen = \"{locked}\"")),
            "Trunk.toml [tools] must pin wasm_bindgen = \"{locked}\" (Cargo.lock's version), or trunk would try to download it"
        );
    }
}
