//! Checking the values that types alone cannot rule out. Each section adds every problem it
//! finds to one [`ConfigErrors`], so an operator sees all of them at once, each naming its key.

use std::fmt;

/// A configuration value that is well-typed but unusable; names the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidConfig {
    /// Full dotted key, e.g. `database.max_connections` or `jobs.queues.bulk.workers`.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration key `{}`: {}", self.key, self.reason)
    }
}

impl std::error::Error for InvalidConfig {}

/// Every unusable value of a configuration, in the order the keys were checked. Displays one
/// line per value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigErrors {
    errors: Vec<InvalidConfig>,
}

impl ConfigErrors {
    /// No errors yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that the value of `key` (full dotted key) is unusable, and why.
    pub fn push(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(InvalidConfig {
            key: key.into(),
            reason: reason.into(),
        });
    }

    /// Records `reason` under `key` unless `valid` holds.
    pub fn require(&mut self, valid: bool, key: impl Into<String>, reason: impl Into<String>) {
        if !valid {
            self.push(key, reason);
        }
    }

    /// Whether every value checked so far is usable.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// How many unusable values were found.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// The errors, in the order the keys were checked.
    pub fn errors(&self) -> &[InvalidConfig] {
        &self.errors
    }

    /// The keys of the errors, in order (a key appears once per problem with it).
    pub fn keys(&self) -> Vec<&str> {
        self.errors.iter().map(|e| e.key.as_str()).collect()
    }

    /// `Ok` when nothing was found, else every error.
    pub fn into_result(self) -> Result<(), Self> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl IntoIterator for ConfigErrors {
    type Item = InvalidConfig;
    type IntoIter = std::vec::IntoIter<InvalidConfig>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.into_iter()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a InvalidConfig;
    type IntoIter = std::slice::Iter<'a, InvalidConfig>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

/// A configuration section that checks its own values.
pub trait Validate {
    /// Adds to `errors` one entry per unusable value of this section, under its full dotted key
    /// (`jobs.queues.bulk.workers`). Rules that involve other sections belong to
    /// [`Config::validate`](super::Config::validate).
    fn validate(&self, errors: &mut ConfigErrors);
}

/// Whether `url` is an `http://` or `https://` URL (the rule of every URL setting but the
/// database and Redis ones).
pub(super) fn is_http_url(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

/// The keys `section` reports, for the sections' tests.
#[cfg(test)]
pub(super) fn reported_keys(section: &impl Validate) -> Vec<String> {
    let mut errors = ConfigErrors::new();
    section.validate(&mut errors);
    errors.keys().into_iter().map(str::to_string).collect()
}

/// A change that makes one value unusable, and the key that must then be reported.
#[cfg(test)]
pub(super) type Spoiled<T> = (fn(&mut T), &'static str);

/// Asserts that `valid` reports nothing and that each spoiled copy of it reports exactly the
/// key of its case, once.
#[cfg(test)]
pub(super) fn assert_each_reported<T: Clone>(valid: &T, report: fn(&T) -> Vec<String>, cases: &[Spoiled<T>]) {
    assert_eq!(report(valid), Vec::<String>::new(), "the unspoiled value is valid");
    for (spoil, key) in cases {
        let mut spoiled = valid.clone();
        spoil(&mut spoiled);
        assert_eq!(report(&spoiled), [*key]);
    }
}

/// What [`is_channel_name`] requires, as a configuration error says it.
pub(super) const CHANNEL_NAME_RULE: &str = "must be 1-63 characters among letters, digits, '_', '-', ':' and '.'";

/// Whether `name` can name a cluster channel: a PostgreSQL `NOTIFY` channel (an identifier of at
/// most 63 bytes) and a Redis pub/sub channel alike.
pub(super) fn is_channel_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_shows_on_a_line_of_its_own_naming_its_key() {
        let mut errors = ConfigErrors::new();
        errors.require(true, "http.max_connections", "must be at least 1");
        assert_eq!(errors.clone().into_result(), Ok(()));
        errors.require(false, "database.max_connections", "must be at least 1");
        errors.push("jobs.queues.bulk.workers", "must be at least 1");
        assert_eq!(errors.len(), 2);
        assert_eq!(errors.keys(), ["database.max_connections", "jobs.queues.bulk.workers"]);
        assert_eq!(
            errors.to_string(),
            "invalid configuration key `database.max_connections`: must be at least 1\n\
             invalid configuration key `jobs.queues.bulk.workers`: must be at least 1"
        );
        assert_eq!(errors.into_result().map_err(|e| e.len()), Err(2));
    }
}
