//! How the CLI reports a failure: one line naming what was wrong, each cause once.

mod support;

use support::hark;

fn stderr_of_failure(args: &[&str]) -> String {
    let out = hark(args);
    assert!(!out.status.success(), "hark {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_missing_manifest_is_named_with_its_cause_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere").join("manifest.jsonl");
    let err = stderr_of_failure(&["data", "stats", missing.to_str().unwrap()]);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(missing.to_str().unwrap()), "names the file: {err}");
    let cause = std::fs::read(&missing).unwrap_err().to_string();
    assert_eq!(err.matches(&cause).count(), 1, "the cause once: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_bad_manifest_line_is_named_with_the_parser_message_once() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("manifest.jsonl");
    std::fs::write(&manifest, "nope\n").unwrap();
    let err = stderr_of_failure(&["data", "stats", manifest.to_str().unwrap()]);
    assert!(err.contains(&format!("{}:1: not a manifest entry", manifest.display())), "{err}");
    let parser = serde_json::from_str::<serde_json::Value>("nope").unwrap_err().to_string();
    assert_eq!(err.matches(&parser).count(), 1, "the parser's message once: {err}");
}

#[test]
fn a_bad_arpa_model_is_named_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let arpa = dir.path().join("bad.arpa");
    std::fs::write(
        &arpa,
        "\\data\\\nngram 1=2\n\n\\1-grams:\n-1.0\t<s>\n-1.0\t</s>\n\n\\2-grams:\n-0.5\t<s> jazz\n\\end\\\n",
    )
    .unwrap();
    let out = dir.path().join("english.lm");
    let err = stderr_of_failure(&["lm", "--arpa", arpa.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(err.contains(arpa.to_str().unwrap()) && err.contains("line 9: 'jazz' has no unigram"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!out.exists(), "nothing written");
    let missing = dir.path().join("none.arpa");
    let err = stderr_of_failure(&["lm", "--arpa", missing.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(err.contains("cargo xtask lm writes one"), "{err}");
}
