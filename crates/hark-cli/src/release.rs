//! The published model folder's manifest, signed: the one place `hark`
//! reads and writes `manifest.json` (publish, profile, sign, rollback all
//! come through [`write_manifest`]), and the commands that only touch the
//! manifest — `hark keygen`, `hark sign`, `hark rollback`.
//!
//! Every manifest `hark` writes is signed (`hark_registry::signing`): the
//! browser refuses any other. The key comes from `--signing-key FILE`, else
//! the file named by `HARK_SIGNING_KEY`, else the repository's public
//! development key (`keys/development.key`), with a note saying so.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use hark_registry::Manifest;
use hark_registry::signing::SigningKey;

/// `--signing-key`, shared by every command that writes a manifest.
#[derive(Debug, Clone, clap::Args)]
pub struct KeyArg {
    /// The ed25519 key that signs the manifest (a `hark keygen` file)
    /// [default: $HARK_SIGNING_KEY, else the repository's development key].
    #[arg(long, value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
}

/// The repository's development key (public on purpose; see its file).
fn development_key() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../keys/development.key")
}

impl KeyArg {
    pub fn load(&self) -> anyhow::Result<SigningKey> {
        let (path, development) = match (&self.signing_key, std::env::var_os("HARK_SIGNING_KEY")) {
            (Some(path), _) => (path.clone(), false),
            (None, Some(path)) => (PathBuf::from(path), false),
            (None, None) => (development_key(), true),
        };
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!("reading the signing key {} (make one with `hark keygen --out FILE`)", path.display())
        })?;
        let key = SigningKey::from_hex(&text).with_context(|| format!("in the signing key {}", path.display()))?;
        if development {
            eprintln!(
                "note: signed with the development key (keys/development.key, key id {}); apps built with their own \
                 HARK_MANIFEST_KEYS refuse it: pass --signing-key for a real deployment",
                key.public().id()
            );
        }
        Ok(key)
    }
}

/// `models/manifest.json`, or an empty manifest when there is none yet.
pub fn read_manifest(models: &Path) -> anyhow::Result<Manifest> {
    let path = models.join("manifest.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => Manifest::parse(&text).with_context(|| format!("in {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::empty()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Signs `manifest` and replaces `models/manifest.json` with it in one
/// rename: a browser reads the old list or the new one, never a mix.
pub fn write_manifest(models: &Path, manifest: &Manifest, key: &SigningKey) -> anyhow::Result<()> {
    let text = manifest.to_signed_json(key)?;
    crate::files::write_atomic(&models.join("manifest.json"), text.as_bytes())
}

/// Removes an entry's files from `models` (weights, profile, names, general
/// LM) once the manifest no longer lists it, except those an entry still
/// listed (`kept`) shares; one that cannot be removed is a warning.
pub fn remove_files(models: &Path, entry: &hark_registry::ModelEntry, kept: &[hark_registry::ModelEntry]) {
    let shared: std::collections::HashSet<&str> = kept.iter().flat_map(|e| e.files()).collect();
    for file in entry.files().filter(|f| !shared.contains(f)) {
        let path = models.join(file);
        if let Err(e) = std::fs::remove_file(&path) {
            eprintln!("warning: could not remove {}: {e}", path.display());
        }
    }
}

/// `hark keygen`'s arguments.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Where to write the new secret key (refuses to overwrite one).
    #[arg(long)]
    pub out: PathBuf,
}

/// A new signing key from the operating system's random source; prints the
/// public key the app must be built to trust.
pub fn keygen(args: &KeygenArgs) -> anyhow::Result<()> {
    if args.out.exists() {
        bail!("{} exists; refusing to overwrite a key (move it away first)", args.out.display());
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("the operating system's random source failed: {e}"))?;
    let key = SigningKey::from_seed(seed);
    let public = key.public();
    let text = format!(
        "# hark manifest signing key (ed25519 seed). Keep it secret.\n# public key {} (id {})\n{}\n",
        public.to_hex(),
        public.id(),
        key.to_hex()
    );
    write_private(&args.out, text.as_bytes())?;
    eprintln!("wrote the secret key to {}; build the app to trust it with", args.out.display());
    println!("HARK_MANIFEST_KEYS={}", public.to_hex());
    Ok(())
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes).with_context(|| format!("writing {}", path.display()))
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// `hark sign`'s arguments.
#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// Model folder holding manifest.json.
    #[arg(long, default_value = "web/models")]
    pub models: PathBuf,
    #[command(flatten)]
    pub key: KeyArg,
}

/// Signs the manifest as it stands (after a hand edit, or to move it to a
/// new key), checking every entry's weights against their sha256 first.
pub fn sign(args: &SignArgs) -> anyhow::Result<()> {
    let manifest = read_manifest(&args.models)?;
    if manifest.models.is_empty() {
        bail!("{} lists no model; nothing to sign", args.models.join("manifest.json").display());
    }
    for entry in &manifest.models {
        let path = args.models.join(&entry.file);
        let bytes =
            std::fs::read(&path).with_context(|| format!("model {}: reading {}", entry.version, path.display()))?;
        hark_registry::verify_sha256(entry, &bytes)?;
    }
    let key = args.key.load()?;
    write_manifest(&args.models, &manifest, &key)?;
    eprintln!(
        "signed {} ({} models) with key {}",
        args.models.join("manifest.json").display(),
        manifest.models.len(),
        key.public().id()
    );
    Ok(())
}

/// `hark rollback`'s arguments.
#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// Model folder holding manifest.json.
    #[arg(long, default_value = "web/models")]
    pub models: PathBuf,
    #[command(flatten)]
    pub key: KeyArg,
}

/// Withdraws the newest model: the manifest is re-signed without it (open
/// browsers swap back to the one before at their next check), then its
/// weights and profile are removed.
pub fn rollback(args: &RollbackArgs) -> anyhow::Result<()> {
    let mut manifest = read_manifest(&args.models)?;
    manifest.models.sort_by(|a, b| a.version.cmp(&b.version));
    if manifest.models.len() < 2 {
        bail!(
            "{} lists {} model(s); a rollback needs the newest and one before it to go back to",
            args.models.join("manifest.json").display(),
            manifest.models.len()
        );
    }
    let key = args.key.load()?;
    let withdrawn = manifest.models.pop().expect("two or more");
    let back_to = manifest.models.last().expect("one or more").version;
    write_manifest(&args.models, &manifest, &key)?;
    remove_files(&args.models, &withdrawn, &manifest.models);
    println!("rolled back from {} to {back_to}", withdrawn.version);
    Ok(())
}
