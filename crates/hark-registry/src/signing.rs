//! Signed manifests: who may tell browsers which model to run.
//!
//! A browser runs whatever `models/manifest.json` names, so whoever can
//! write that file (a compromised static host, a CDN, a mistyped `rsync`)
//! could otherwise push any weights to every install. The publisher signs
//! the manifest with an ed25519 key; the app carries the public keys it
//! trusts and refuses a manifest that no trusted key signed. (The weights
//! themselves are covered by the sha256 in each signed entry.)
//!
//! **What is signed.** `hark-manifest-v2\n` followed by the manifest's
//! canonical JSON without its `signatures` member: object keys sorted
//! bytewise, no whitespace, strings and numbers as `serde_json` writes them.
//! The check runs on the JSON value the file parses to, not on the typed
//! struct, so fields added by a newer publisher are covered too, and a
//! pretty-printed or re-indented file still verifies. Numbers survive the
//! trip because `serde_json`'s `float_roundtrip` parsing is on (the shortest
//! decimal that names an f64 parses back to that f64). Canonical JSON is a
//! dozen lines here because the crate for it (`olpc-cjson`, as TUF uses)
//! refuses floats, and the manifest's metrics are floats.
//!
//! Keys are written as lower-case hex: a public key is 64 digits, a signing
//! key file holds the 64-digit secret seed. A key's id is the first 16 hex
//! digits of the SHA-256 of its public key.

use ed25519_dalek::{Signer, Verifier};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Prefix of every signed message (domain separation: a manifest signature
/// can never be replayed as a signature over anything else).
const CONTEXT: &[u8] = b"hark-manifest-v2\n";

/// One signature in a manifest's `signatures` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// [`PublicKey::id`] of the key that signed.
    pub key_id: String,
    /// The ed25519 signature, 128 lower-case hex digits.
    pub ed25519: String,
}

/// A public key the app trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

/// A publisher's secret key.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

/// A key that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("{what} must be 64 hex digits, got {found} characters")]
    Length { what: &'static str, found: usize },
    #[error("{what} is not hex: {text:?}")]
    NotHex { what: &'static str, text: String },
    #[error("public key {0} is not a valid ed25519 point")]
    NotAPoint(String),
}

fn hex32(text: &str, what: &'static str) -> Result<[u8; 32], KeyError> {
    let text = text.trim();
    if text.len() != 64 {
        return Err(KeyError::Length { what, found: text.len() });
    }
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text, &mut bytes).map_err(|_| KeyError::NotHex { what, text: text.to_owned() })?;
    Ok(bytes)
}

impl PublicKey {
    /// A public key from its 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let bytes = hex32(text, "a public key")?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|_| KeyError::NotAPoint(text.trim().to_owned()))
    }

    /// Keys from a list: one key per line, `#` starts a comment, blank
    /// lines and commas separate too (so a build-time variable can hold
    /// `KEY1,KEY2`).
    pub fn parse_list(text: &str) -> Result<Vec<Self>, KeyError> {
        text.lines()
            .map(|l| l.split('#').next().unwrap_or(""))
            .flat_map(|l| l.split(','))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(Self::from_hex)
            .collect()
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    /// First 16 hex digits of the SHA-256 of the key.
    pub fn id(&self) -> String {
        hex::encode(&Sha256::digest(self.0.as_bytes())[..8])
    }
}

impl SigningKey {
    /// A key from a 32-byte secret seed (which must come from a secure
    /// random source: `hark keygen` uses the operating system's).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// A key from a key file's text: the seed as 64 hex digits (lines
    /// starting with `#` are comments).
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let body: String = text.lines().filter(|l| !l.trim_start().starts_with('#')).collect();
        Ok(Self::from_seed(hex32(&body, "a signing key")?))
    }

    /// The key file's text.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.to_bytes())
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The signature of `manifest` (a JSON object; its `signatures` member,
    /// if any, is not part of what is signed).
    pub fn sign(&self, manifest: &Value) -> Signature {
        let signature = self.0.sign(&message(manifest));
        Signature { key_id: self.public().id(), ed25519: hex::encode(signature.to_bytes()) }
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey(public {})", self.public().to_hex())
    }
}

/// Why a manifest's signatures were not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("it is not signed; publish it with `hark publish` or sign it with `hark sign`")]
    Unsigned,
    #[error("it is signed only by keys this app does not trust ({0}); sign it with the key the app was built with")]
    UntrustedKey(String),
    #[error("its signature by key {0} does not match its content: the file was changed after signing")]
    Mismatch(String),
    #[error("its `signatures` list is malformed: {0}")]
    Malformed(String),
}

/// Checks that a trusted key signed `manifest` (the parsed JSON value). One
/// valid signature by a trusted key is enough; a signature by a trusted key
/// that does not match is an error even when another one matches, because
/// it means the content changed after someone signed it.
pub fn verify(manifest: &Value, trusted: &[PublicKey]) -> Result<(), SignatureError> {
    let list = match manifest.get("signatures") {
        None => return Err(SignatureError::Unsigned),
        Some(v) => Vec::<Signature>::deserialize(v).map_err(|e| SignatureError::Malformed(e.to_string()))?,
    };
    if list.is_empty() {
        return Err(SignatureError::Unsigned);
    }
    let message = message(manifest);
    let mut verified = false;
    for signature in &list {
        let Some(key) = trusted.iter().find(|k| k.id() == signature.key_id) else { continue };
        let mut bytes = [0u8; 64];
        hex::decode_to_slice(&signature.ed25519, &mut bytes)
            .map_err(|_| SignatureError::Malformed(format!("signature of key {} is not 128 hex digits", key.id())))?;
        key.0
            .verify(&message, &ed25519_dalek::Signature::from_bytes(&bytes))
            .map_err(|_| SignatureError::Mismatch(signature.key_id.clone()))?;
        verified = true;
    }
    if verified {
        Ok(())
    } else {
        let ids: Vec<&str> = list.iter().map(|s| s.key_id.as_str()).collect();
        Err(SignatureError::UntrustedKey(ids.join(", ")))
    }
}

/// What is signed: [`CONTEXT`] and the canonical JSON of `manifest` without
/// its `signatures`.
fn message(manifest: &Value) -> Vec<u8> {
    let mut out = String::from_utf8_lossy(CONTEXT).into_owned();
    match manifest {
        Value::Object(map) => {
            let mut unsigned = map.clone();
            unsigned.remove("signatures");
            canonical(&Value::Object(unsigned), &mut out);
        }
        other => canonical(other, &mut out),
    }
    out.into_bytes()
}

/// Canonical JSON: keys sorted bytewise, no whitespace.
fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_seed([n; 32])
    }

    fn signed(value: &Value, keys: &[&SigningKey]) -> Value {
        let mut v = value.clone();
        let sigs: Vec<Signature> = keys.iter().map(|k| k.sign(value)).collect();
        v["signatures"] = serde_json::to_value(sigs).unwrap();
        v
    }

    fn manifest() -> Value {
        json!({"schema_version": 2, "models": [{"version": "1.0.0", "metrics": {"test_wer": 0.1397, "dev_wer": 0.2074}}]})
    }

    #[test]
    fn a_signed_manifest_verifies_in_any_layout() {
        let k = key(1);
        let v = signed(&manifest(), &[&k]);
        assert_eq!(verify(&v, &[k.public()]), Ok(()));
        // Re-indented and re-parsed (floats included): still the same message.
        let reparsed: Value = serde_json::from_str(&serde_json::to_string_pretty(&v).unwrap()).unwrap();
        assert_eq!(verify(&reparsed, &[k.public()]), Ok(()));
        // Floats that need all 17 digits survive the round trip too.
        let mut awkward = manifest();
        awkward["models"][0]["metrics"]["x"] = json!(0.1 + 0.2);
        awkward["models"][0]["metrics"]["y"] = json!(1.0 / 3.0);
        let v = signed(&awkward, &[&k]);
        let reparsed: Value = serde_json::from_str(&serde_json::to_string_pretty(&v).unwrap()).unwrap();
        assert_eq!(verify(&reparsed, &[k.public()]), Ok(()));
    }

    #[test]
    fn any_change_after_signing_is_refused() {
        let k = key(1);
        let v = signed(&manifest(), &[&k]);
        let mut changed = v.clone();
        changed["models"][0]["version"] = json!("1.0.1");
        assert!(matches!(verify(&changed, &[k.public()]), Err(SignatureError::Mismatch(_))));
        let mut added = v.clone();
        added["models"][0]["extra"] = json!(true);
        assert!(matches!(verify(&added, &[k.public()]), Err(SignatureError::Mismatch(_))));
    }

    #[test]
    fn unsigned_untrusted_and_malformed_are_told_apart() {
        let (k, other) = (key(1), key(2));
        assert_eq!(verify(&manifest(), &[k.public()]), Err(SignatureError::Unsigned));
        let mut empty = manifest();
        empty["signatures"] = json!([]);
        assert_eq!(verify(&empty, &[k.public()]), Err(SignatureError::Unsigned));
        let by_other = signed(&manifest(), &[&other]);
        let err = verify(&by_other, &[k.public()]).unwrap_err();
        assert_eq!(err, SignatureError::UntrustedKey(other.public().id()));
        assert!(err.to_string().contains("does not trust"), "{err}");
        let mut garbled = signed(&manifest(), &[&k]);
        garbled["signatures"][0]["ed25519"] = json!("xyz");
        assert!(matches!(verify(&garbled, &[k.public()]), Err(SignatureError::Malformed(_))));
        let mut wrong_shape = manifest();
        wrong_shape["signatures"] = json!("yes");
        assert!(matches!(verify(&wrong_shape, &[k.public()]), Err(SignatureError::Malformed(_))));
    }

    #[test]
    fn a_second_trusted_key_allows_rotation() {
        let (old, new) = (key(1), key(2));
        let v = signed(&manifest(), &[&new]);
        assert_eq!(verify(&v, &[old.public(), new.public()]), Ok(()));
        let both = signed(&manifest(), &[&old, &new]);
        assert_eq!(verify(&both, &[old.public()]), Ok(()));
    }

    #[test]
    fn keys_round_trip_through_hex_and_bad_keys_are_named() {
        let k = key(7);
        let again = SigningKey::from_hex(&format!("# hark signing key\n{}\n", k.to_hex())).unwrap();
        assert_eq!(again.public(), k.public());
        let list = PublicKey::parse_list(&format!(
            "# trusted\n{}\n\n{}, {}",
            k.public().to_hex(),
            key(8).public().to_hex(),
            key(9).public().to_hex()
        ))
        .unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(PublicKey::from_hex("abc"), Err(KeyError::Length { what: "a public key", found: 3 }));
        assert!(matches!(SigningKey::from_hex(&"zz".repeat(32)), Err(KeyError::NotHex { .. })));
        assert_eq!(k.public().id().len(), 16);
    }
}
