//! The one grammar of document names (Organization, Person, Org Member, and the organization part
//! of `org:`/`sync:` realtime rooms): what a client may choose and what the server generates.
//!
//! Names travel in URL paths and in room names such as `org:{organization}`, so they contain no `/`,
//! `\` or `:`; they are printed in lists and logs, so they contain no control characters and no
//! surrounding white space; and they are in Unicode NFKC form, so two names that look the same are
//! the same name.

use crate::{Error, Result};
use unicode_normalization::UnicodeNormalization;

/// Longest document name, in characters.
pub const MAX_NAME_CHARS: usize = 140;

/// Characters a name never contains (besides control characters).
pub const FORBIDDEN_NAME_CHARS: [char; 3] = ['/', '\\', ':'];

/// Why `name` is not a document name, or `None` when it is one.
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("a name cannot be empty".into());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Some(format!("a name has at most {MAX_NAME_CHARS} characters"));
    }
    if name.chars().any(char::is_control) {
        return Some("a name cannot contain control characters".into());
    }
    if name.trim() != name {
        return Some("a name cannot start or end with white space".into());
    }
    if name.chars().any(|c| c.is_whitespace() && c != ' ') {
        return Some("the only white space a name may contain is the plain space".into());
    }
    if let Some(c) = name.chars().find(|c| FORBIDDEN_NAME_CHARS.contains(c)) {
        return Some(format!("a name cannot contain '{c}'"));
    }
    if !name.nfkc().eq(name.chars()) {
        return Some("a name must be in Unicode NFKC form (no look-alike compatibility characters)".into());
    }
    None
}

/// Checks a document name against the grammar; 422 naming the rule it breaks.
pub fn validate_name(name: &str) -> Result<()> {
    match name_problem(name) {
        None => Ok(()),
        Some(problem) => Err(Error::validation(format!(
            "'{}' is not a valid document name: {problem}",
            quoted(name)
        ))),
    }
}

/// `name` for an error message: escaped, and cut short when it is too long to be a name.
fn quoted(name: &str) -> String {
    let shown: String = name.chars().take(MAX_NAME_CHARS).collect();
    let ellipsis = if shown.len() < name.len() { "…" } else { "" };
    format!("{}{ellipsis}", shown.escape_debug())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::NamingSeries;

    #[test]
    fn generated_and_ordinary_names_are_valid() {
        let series = NamingSeries {
            prefix: "ORG",
            digits: 5,
        };
        for name in [
            series.name(2026, 1).as_str(),
            "ACME-HQ",
            "Müller & Söhne GmbH",
            "a.b_c-d@e",
            "x",
        ] {
            assert_eq!(name_problem(name), None, "{name}");
        }
        assert!(validate_name(&"n".repeat(MAX_NAME_CHARS)).is_ok());
    }

    #[test]
    fn names_outside_the_grammar_are_refused() {
        for name in [
            "",
            "Acme:HQ",
            "a/b",
            "a\\b",
            " lead",
            "trail ",
            "tab\there",
            "new\nline",
            "nul\0",
            "nbsp\u{a0}inside",
            "ＡＣＭＥ",
            "\u{212A}elvin",
        ] {
            let error = validate_name(name).expect_err(name);
            assert_eq!(error.kind(), crate::ErrorKind::Validation);
        }
        assert!(validate_name(&"n".repeat(MAX_NAME_CHARS + 1)).is_err());
    }
}
