//! Loading the configuration: defaults, then a TOML file, then `DARTWING_*` environment
//! variables (nested keys with `__`, e.g. `DARTWING_DATABASE__MAX_CONNECTIONS`), then flags.

use dartwing_core::config::Config;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use std::path::{Path, PathBuf};

/// Name of the configuration file looked for in the working directory when none is given.
pub const DEFAULT_CONFIG_FILE: &str = "dartwing.toml";

/// Environment variable holding the integration token vault's current key (`integrations.key`).
pub const INTEGRATION_KEY_ENV: &str = "DARTWING_INTEGRATION_KEY";

/// Overrides given as command-line flags (highest precedence).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FlagOverrides {
    /// `--listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// `--database-url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// `--redis-url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// `--data-dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `--node-id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// `--roles`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<String>,
}

/// Whether `key` (lower-cased, nested parts joined by `.` or `__`) belongs to a top-level
/// configuration key. Other `DARTWING_*` variables (for example `DARTWING_CONFIG` or test
/// settings) belong to other programs and are not configuration keys.
fn is_config_key(key: &str, top_level: &[String]) -> bool {
    let top = key
        .split("__")
        .next()
        .unwrap_or_default()
        .split('.')
        .next()
        .unwrap_or_default();
    top_level.iter().any(|k| k == top)
}

/// The top-level keys of [`Config`], read from the struct itself.
fn top_level_keys() -> Vec<String> {
    match serde_json::to_value(Config::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// Loads and validates the configuration. `file` defaults to `dartwing.toml` when it exists.
/// Errors name the offending key.
pub fn load(file: Option<&Path>, flags: &FlagOverrides) -> Result<Config, String> {
    let top_level = top_level_keys();
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    match file {
        Some(path) if !path.exists() => {
            return Err(format!("configuration file {} does not exist", path.display()));
        }
        Some(path) => figment = figment.merge(Toml::file_exact(path)),
        None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
            figment = figment.merge(Toml::file_exact(DEFAULT_CONFIG_FILE))
        }
        None => {}
    }
    figment = figment
        .merge(
            Env::prefixed("DARTWING_")
                .split("__")
                .filter(move |key| is_config_key(&key.as_str().to_ascii_lowercase(), &top_level)),
        )
        // SPEC §10 names this variable without the section; it sets `integrations.key`.
        .merge(
            Env::raw()
                .only(&[INTEGRATION_KEY_ENV])
                .map(|_| "integrations.key".into()),
        )
        .merge(Serialized::defaults(flags));
    let config: Config = figment.extract().map_err(|error| {
        let mut messages = Vec::new();
        for e in error {
            let key = e.path.join(".");
            let source = e.metadata.as_ref().map(|m| m.name.to_string()).unwrap_or_default();
            // Secret settings accept any scalar, so their values never reach an error message.
            let kind = e.kind.to_string();
            messages.push(if key.is_empty() {
                format!("invalid configuration ({source}): {kind}")
            } else {
                format!("invalid configuration key `{key}` ({source}): {kind}")
            });
        }
        messages.join("; ")
    })?;
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}
