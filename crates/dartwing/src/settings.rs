//! Loading the configuration: defaults, then a TOML file, then `DARTWING_*` environment
//! variables (nested keys with `__`, e.g. `DARTWING_DATABASE__MAX_CONNECTIONS`), then flags.

use dartwing_core::config::{Config, ConfigErrors};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Value};
use figment::{Figment, Provider};
use std::fmt;
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

/// Why the configuration could not be loaded: every problem found, each naming its key.
#[derive(Debug)]
pub enum LoadError {
    /// The configuration file given on the command line does not exist.
    MissingFile(PathBuf),
    /// Values that do not fit their key's type, unknown keys, or a source that cannot be read
    /// (e.g. TOML syntax); one message per problem.
    Extraction(Vec<String>),
    /// Well-typed values that are unusable (reported only once every value has its type).
    Invalid(ConfigErrors),
}

impl LoadError {
    /// One line per problem.
    pub fn lines(&self) -> Vec<String> {
        match self {
            LoadError::MissingFile(path) => vec![format!("configuration file {} does not exist", path.display())],
            LoadError::Extraction(messages) => messages.clone(),
            LoadError::Invalid(errors) => errors.errors().iter().map(ToString::to_string).collect(),
        }
    }
}

/// A single problem shows as one line; several as a count followed by one indented line each.
impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.lines().as_slice() {
            [line] => f.write_str(line),
            lines => {
                write!(f, "{} configuration errors:", lines.len())?;
                lines.iter().try_for_each(|line| write!(f, "\n  {line}"))
            }
        }
    }
}

impl std::error::Error for LoadError {}

/// Loads and validates the configuration. `file` defaults to `dartwing.toml` when it exists.
/// The error lists every problem found, each naming its key: the values that do not fit their
/// type, or, when every value has its type, every value that is unusable.
pub fn load(file: Option<&Path>, flags: &FlagOverrides) -> Result<Config, LoadError> {
    let top_level = top_level_keys();
    let mut sources = Figment::new();
    match file {
        Some(path) if !path.exists() => return Err(LoadError::MissingFile(path.to_path_buf())),
        Some(path) => sources = sources.merge(Toml::file_exact(path)),
        None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
            sources = sources.merge(Toml::file_exact(DEFAULT_CONFIG_FILE))
        }
        None => {}
    }
    sources = sources
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
    let config: Config = over_defaults(&sources)
        .extract()
        .map_err(|error| LoadError::Extraction(type_errors(&sources, error)))?;
    config.validate().map_err(LoadError::Invalid)?;
    Ok(config)
}

/// The built-in defaults with `sources` over them.
fn over_defaults(sources: impl Provider) -> Figment {
    Figment::from(Serialized::defaults(Config::default())).merge(sources)
}

/// A value that does not fit its key's type, or an unknown key.
struct TypeError {
    /// Dotted key; empty when the problem is not tied to one (e.g. a TOML syntax error).
    key: String,
    /// The source that set the value (`TOML file`, `` `DARTWING_` environment variable(s) ``, …).
    source: String,
    /// What is wrong. Secret settings accept any scalar, so their values never reach it.
    kind: String,
}

impl TypeError {
    fn from_figment(error: figment::Error, source: Option<&str>) -> impl Iterator<Item = TypeError> {
        let source = source.map(str::to_string);
        error.into_iter().map(move |e| TypeError {
            key: e.path.join("."),
            source: source
                .clone()
                .or_else(|| e.metadata.as_ref().map(|m| m.name.to_string()))
                .unwrap_or_default(),
            kind: e.kind.to_string(),
        })
    }
}

impl fmt::Display for TypeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let TypeError { key, source, kind } = self;
        if key.is_empty() {
            write!(f, "invalid configuration ({source}): {kind}")
        } else {
            write!(f, "invalid configuration key `{key}` ({source}): {kind}")
        }
    }
}

/// One message per value that does not fit its key's type (or per unknown key). Extraction
/// stops at the first such value, so after a failure each value the sources set is also tried
/// alone over the defaults; every problem is reported once, the first one found first.
fn type_errors(sources: &Figment, error: figment::Error) -> Vec<String> {
    let mut found: Vec<TypeError> = TypeError::from_figment(error, None).collect();
    let mut values = Vec::new();
    // Sources that cannot be read (TOML syntax) have no values to try: their error is the report.
    if let Ok(data) = sources.data() {
        for dict in data.values() {
            set_values(&mut Vec::new(), dict, &mut values);
        }
    }
    for (path, value) in values {
        if let Err(error) = over_defaults(Serialized::defaults(alone(&path, value))).extract::<Config>() {
            let source = sources.find_metadata(&path.join(".")).map(|m| m.name.to_string());
            for problem in TypeError::from_figment(error, source.as_deref()) {
                if !found
                    .iter()
                    .any(|seen| seen.key == problem.key && seen.kind == problem.kind)
                {
                    found.push(problem);
                }
            }
        }
    }
    found.iter().map(ToString::to_string).collect()
}

/// Every value set in `dict`, by path: tables are walked, anything else (text, numbers, lists)
/// is one value.
fn set_values(path: &mut Vec<String>, dict: &Dict, out: &mut Vec<(Vec<String>, Value)>) {
    for (key, value) in dict {
        path.push(key.clone());
        match value {
            Value::Dict(_, inner) if !inner.is_empty() => set_values(path, inner, out),
            _ => out.push((path.clone(), value.clone())),
        }
        path.pop();
    }
}

/// A table holding only `value`, at `path`.
fn alone(path: &[String], value: Value) -> Dict {
    let mut dict = Dict::new();
    if let Some((last, parents)) = path.split_last() {
        dict.insert(last.clone(), value);
        for key in parents.iter().rev() {
            dict = Dict::from([(key.clone(), Value::from(dict))]);
        }
    }
    dict
}
