//! Writing files so that a reader never sees half of one: every report,
//! checkpoint, manifest and model file `hark` writes goes through here.

use std::path::Path;

use anyhow::Context;

/// Writes `bytes` to `path` by way of `path.partial` and a rename: a crash
/// leaves the old file or the new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}
