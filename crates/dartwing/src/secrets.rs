//! Secrets of the embedded default: generated once into the data directory with owner-only
//! permissions, so that `dartwing serve` and `dartwing token issue` agree without setup.

use dartwing_core::config::{Config, Secret};
use dartwing_core::ids::random_hex;
use std::io::Write;
use std::path::Path;

/// File in the data directory holding the generated HS256 secret.
pub const JWT_SECRET_FILE: &str = "jwt-secret";

/// The HS256 secret: configured, else (outside production mode) read from or generated into
/// `<data_dir>/jwt-secret`. `None` in production mode without a secret (JWKS-only).
pub fn jwt_secret(config: &Config) -> Result<Option<Secret>, String> {
    if let Some(secret) = &config.jwt_secret {
        return Ok(Some(secret.clone()));
    }
    if config.production {
        return Ok(None);
    }
    let path = config.data_dir.join(JWT_SECRET_FILE);
    read_or_create(&path).map(|secret| Some(Secret::new(secret)))
}

fn read_or_create(path: &Path) -> Result<String, String> {
    match std::fs::read_to_string(path) {
        Ok(secret) if secret.trim().len() >= 32 => return Ok(secret.trim().to_string()),
        Ok(_) => {
            return Err(format!(
                "{} holds no usable secret (expected 32+ characters)",
                path.display()
            ));
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!("cannot read {}: {e}", path.display()));
        }
        Err(_) => {}
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let secret = random_hex(32);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(secret.as_bytes())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            tracing::warn!(
                path = %path.display(),
                "generated a development JWT secret; set DARTWING_JWT_SECRET (or auth.jwks_url) in production"
            );
            Ok(secret)
        }
        // Another process created it first.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_or_create(path),
        Err(e) => Err(format!("cannot create {}: {e}", path.display())),
    }
}
