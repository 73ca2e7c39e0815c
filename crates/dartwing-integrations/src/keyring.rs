//! Encryption at rest: AES-256-GCM under a versioned key ring.
//!
//! A ciphertext is written `v1:<key id>:<base64(nonce ‖ ciphertext ‖ tag)>` with a random 96-bit
//! nonce. The key id is the first 8 hex digits of the key's SHA-256, so it names the key without
//! revealing it. The associated data binds a ciphertext to its row and field
//! (`organization`, `integration`, `field`): a value copied to another row or column fails to decrypt.
//! New writes use the ring's current key; ciphertexts of older keys in the ring stay readable.

use crate::error::VaultError;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use dartwing_core::config::Config;
use rand::Rng;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

/// Version tag of the ciphertext format.
const FORMAT: &str = "v1";

/// File in the data directory holding the generated key of the embedded default.
pub const KEY_FILE: &str = "integration-key";

/// One AES-256 key and its id.
#[derive(Clone)]
struct RingKey {
    id: String,
    cipher: Aes256Gcm,
}

/// The keys that can decrypt, the first of which encrypts.
#[derive(Clone)]
pub struct KeyRing {
    keys: Vec<RingKey>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("KeyRing").field("key_ids", &ids).finish()
    }
}

/// Which part of a row a ciphertext belongs to (part of the associated data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The access token.
    AccessToken,
    /// The refresh token.
    RefreshToken,
    /// The PKCE verifier of a pending connect flow.
    PkceVerifier,
}

impl Field {
    /// The field's name, as stored and as RFC 7009 hints name a token.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::AccessToken => "access_token",
            Field::RefreshToken => "refresh_token",
            Field::PkceVerifier => "pkce_verifier",
        }
    }
}

/// Generates a new random key, base64-encoded (what `dartwing keys generate` prints).
pub fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes[..]);
    BASE64.encode(bytes)
}

/// The id of a base64 key (first 8 hex digits of the SHA-256 of its bytes).
pub fn key_id(key: &str) -> Result<String, VaultError> {
    let bytes = decode_key(key)?;
    Ok(id_of(&bytes))
}

fn id_of(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..4])
}

fn decode_key(key: &str) -> Result<Vec<u8>, VaultError> {
    let bytes = BASE64
        .decode(key.trim())
        .map_err(|_| VaultError::KeyConfig("an integration key is not valid base64".into()))?;
    if bytes.len() != 32 {
        return Err(VaultError::KeyConfig(format!(
            "an integration key must be 32 bytes (base64 of 32 random bytes), found {} bytes; create one with `dartwing keys generate`",
            bytes.len()
        )));
    }
    Ok(bytes)
}

fn aad(organization: &str, integration: &str, field: Field) -> Vec<u8> {
    // Length prefixes keep ("a|b", "c") and ("a", "b|c") apart.
    let mut out = Vec::with_capacity(organization.len() + integration.len() + 32);
    for part in [organization, integration, field.as_str()] {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

impl KeyRing {
    /// A ring of base64 keys, current first. Duplicate keys are dropped.
    pub fn new<S: AsRef<str>>(keys: &[S]) -> Result<Self, VaultError> {
        let mut ring = Vec::new();
        for key in keys {
            let bytes = decode_key(key.as_ref())?;
            let id = id_of(&bytes);
            if ring.iter().any(|k: &RingKey| k.id == id) {
                continue;
            }
            let cipher = Aes256Gcm::new_from_slice(&bytes)
                .map_err(|_| VaultError::KeyConfig("an integration key has the wrong length".into()))?;
            ring.push(RingKey { id, cipher });
        }
        if ring.is_empty() {
            return Err(VaultError::KeyConfig("the integration key ring is empty".into()));
        }
        Ok(Self { keys: ring })
    }

    /// The id of the key new ciphertexts use.
    pub fn current_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Ids of every key in the ring, current first.
    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// Encrypts `plaintext` for (`organization`, `integration`, `field`) with the current key.
    pub fn encrypt(
        &self,
        organization: &str,
        integration: &str,
        field: Field,
        plaintext: &str,
    ) -> Result<String, VaultError> {
        let key = &self.keys[0];
        let mut nonce = [0u8; 12];
        rand::rng().fill(&mut nonce[..]);
        let sealed = key
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad(organization, integration, field),
                },
            )
            .map_err(|_| VaultError::Crypto("encryption failed".into()))?;
        let mut blob = Vec::with_capacity(12 + sealed.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        Ok(format!("{FORMAT}:{}:{}", key.id, BASE64.encode(blob)))
    }

    /// The key id a stored ciphertext names.
    pub fn ciphertext_key_id(ciphertext: &str) -> Option<&str> {
        let mut parts = ciphertext.splitn(3, ':');
        (parts.next()? == FORMAT).then_some(())?;
        parts.next()
    }

    /// Decrypts a stored ciphertext of (`organization`, `integration`, `field`). Fails clearly when
    /// its key is not in the ring or when it was tampered with or belongs to another row.
    pub fn decrypt(
        &self,
        organization: &str,
        integration: &str,
        field: Field,
        ciphertext: &str,
    ) -> Result<String, VaultError> {
        let mut parts = ciphertext.splitn(3, ':');
        let (Some(FORMAT), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(VaultError::Crypto(
                "stored token is not in the v1 ciphertext format".into(),
            ));
        };
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| VaultError::UnknownKey(id.to_string()))?;
        let blob = BASE64
            .decode(body)
            .map_err(|_| VaultError::Crypto("stored token is not valid base64".into()))?;
        if blob.len() < 12 + 16 {
            return Err(VaultError::Crypto("stored token is truncated".into()));
        }
        let (nonce, sealed) = blob.split_at(12);
        let nonce: [u8; 12] = nonce
            .try_into()
            .map_err(|_| VaultError::Crypto("stored token is truncated".into()))?;
        let plain = key
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad(organization, integration, field),
                },
            )
            .map_err(|_| {
                VaultError::Crypto(format!(
                    "stored token failed authentication under key {id} (wrong key, tampered, or moved between rows)"
                ))
            })?;
        String::from_utf8(plain).map_err(|_| VaultError::Crypto("stored token is not UTF-8".into()))
    }

    /// Loads the ring from configuration: `integrations.key` (+ `previous_keys`), else the key
    /// file. In production mode a missing key is an error naming the setting; otherwise the key
    /// file in the data directory is created (mode 0600) with a warning.
    pub fn from_config(config: &Config) -> Result<Self, VaultError> {
        let settings = &config.integrations;
        let previous_keys = settings.previous_keys.iter().map(|k| k.expose().to_string());
        if let Some(key) = settings
            .key
            .as_ref()
            .map(|k| k.expose())
            .filter(|k| !k.trim().is_empty())
        {
            let mut keys = vec![key.to_string()];
            keys.extend(previous_keys);
            return Self::new(&keys).map_err(|e| {
                VaultError::KeyConfig(format!(
                    "invalid configuration key `integrations.key` (DARTWING_INTEGRATION_KEY) or `integrations.previous_keys`: {e}"
                ))
            });
        }
        let path = settings
            .key_file
            .clone()
            .unwrap_or_else(|| config.data_dir.join(KEY_FILE));
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mut keys: Vec<String> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_string)
                    .collect();
                keys.extend(previous_keys);
                Self::new(&keys).map_err(|e| VaultError::KeyConfig(format!("{} ({})", e, path.display())))
            }
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(VaultError::KeyConfig(format!(
                "cannot read the integration key file {}: {e}",
                path.display()
            ))),
            Err(_) if config.production || settings.key_file.is_some() => Err(VaultError::KeyConfig(format!(
                "no integration key: set DARTWING_INTEGRATION_KEY (integrations.key) or integrations.key_file \
                 (production mode never generates one; create a key with `dartwing keys generate`); looked for {}",
                path.display()
            ))),
            Err(_) => {
                create_key_file(&path)?;
                Self::from_config(config)
            }
        }
    }
}

fn create_key_file(path: &Path) -> Result<(), VaultError> {
    let fail = |what: &str, e: std::io::Error| VaultError::KeyConfig(format!("cannot {what} {}: {e}", path.display()));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| fail("create the directory of", e))?;
    }
    // Written to a private temporary file and linked into place, so a concurrent reader never
    // sees a partly written key and two processes starting together agree on one key.
    let temporary = path.with_extension(format!("tmp-{}", dartwing_core::ids::random_hex(6)));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temporary).map_err(|e| fail("create", e))?;
    let written = file
        .write_all(format!("{}\n", generate_key()).as_bytes())
        .and_then(|_| file.sync_all());
    let linked = written.and_then(|_| std::fs::hard_link(&temporary, path));
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => {
            tracing::warn!(
                path = %path.display(),
                "generated a development integration key; set DARTWING_INTEGRATION_KEY in production and keep a copy of this key"
            );
            Ok(())
        }
        // Another process created it first.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(fail("create", e)),
    }
}

/// Whether `path` is readable by its owner only (unix), for tests and diagnostics.
pub fn owner_only(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 == 0)
    }
    #[cfg(not(unix))]
    {
        path.exists()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn encryption_round_trip_binds_row_and_field() {
        let ring = KeyRing::new(&[generate_key()]).unwrap();
        let sealed = ring
            .encrypt("ORG-1", "Google", Field::AccessToken, "ya29.secret")
            .unwrap();
        assert!(sealed.starts_with(&format!("v1:{}:", ring.current_id())));
        assert!(!sealed.contains("ya29.secret"));
        assert_eq!(
            ring.decrypt("ORG-1", "Google", Field::AccessToken, &sealed).unwrap(),
            "ya29.secret"
        );
        assert!(ring.decrypt("ORG-2", "Google", Field::AccessToken, &sealed).is_err());
        assert!(ring.decrypt("ORG-1", "Slack", Field::AccessToken, &sealed).is_err());
        assert!(ring.decrypt("ORG-1", "Google", Field::RefreshToken, &sealed).is_err());
        // Two encryptions of one value differ (random nonces).
        assert_ne!(
            sealed,
            ring.encrypt("ORG-1", "Google", Field::AccessToken, "ya29.secret")
                .unwrap()
        );
    }

    #[test]
    fn older_keys_stay_readable_and_unknown_keys_fail_clearly() {
        let (old, new) = (generate_key(), generate_key());
        let old_ring = KeyRing::new(std::slice::from_ref(&old)).unwrap();
        let sealed = old_ring.encrypt("O", "I", Field::RefreshToken, "r1").unwrap();
        let ring = KeyRing::new(&[new.clone(), old]).unwrap();
        assert_eq!(ring.current_id(), key_id(&new).unwrap());
        assert_eq!(ring.decrypt("O", "I", Field::RefreshToken, &sealed).unwrap(), "r1");
        let fresh = KeyRing::new(&[new]).unwrap();
        assert!(matches!(
            fresh.decrypt("O", "I", Field::RefreshToken, &sealed),
            Err(VaultError::UnknownKey(_))
        ));
        assert!(KeyRing::new(&["c2hvcnQ="]).is_err());
    }
}
