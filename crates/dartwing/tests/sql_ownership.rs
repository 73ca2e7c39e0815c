//! Each capability owns its tables: its statements live in `.sql` files next to its store, name
//! only tables its own migrations create, and no SQL is written (or assembled) in Rust.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Capability crates: each owns its tables.
const CAPABILITIES: [&str; 5] = [
    "dartwing-integrations",
    "dartwing-jobs",
    "dartwing-realtime",
    "dartwing-sync",
    "dartwing-tenancy",
];

fn workspace() -> &'static Path {
    dartwing_e2e::workspace_root()
}

/// The tables each capability's migrations create.
fn tables_created_by(capability: &str) -> BTreeSet<String> {
    let mut tables = BTreeSet::new();
    let migrations = workspace().join("crates").join(capability).join("migrations");
    for sql in sql_files(&migrations) {
        let text = std::fs::read_to_string(&sql).unwrap().to_ascii_lowercase();
        let mut words = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty());
        while let Some(word) = words.next() {
            if word == "table" {
                let mut next = words.next();
                if next == Some("if") {
                    words.next();
                    words.next();
                    next = words.next();
                }
                if let Some(name) = next {
                    tables.insert(name.to_string());
                }
            }
        }
    }
    tables
}

fn sql_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sql_files(&path));
        } else if path.extension().is_some_and(|e| e == "sql") {
            out.push(path);
        }
    }
    out
}

/// Table names a SQL text reads or writes: the words after FROM, JOIN, INTO, UPDATE, TABLE and
/// REFERENCES.
fn tables_named_in(text: &str) -> BTreeSet<String> {
    let lower = text.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    words
        .windows(2)
        .filter(|pair| matches!(pair[0], "from" | "join" | "into" | "update" | "table" | "references"))
        .map(|pair| pair[1].to_string())
        .collect()
}

/// No capability's SQL — its statements, and the migrations that shape its tables since the
/// capabilities got tables of their own — names another capability's table: each reads and
/// writes only its own, and learns the rest through the traits in `dartwing-core`.
#[test]
fn no_capability_sql_names_another_capabilitys_table() {
    let owned: BTreeMap<&str, BTreeSet<String>> = CAPABILITIES.iter().map(|c| (*c, tables_created_by(c))).collect();
    for (capability, own) in &owned {
        let statements = sql_files(&workspace().join("crates").join(capability).join("src"));
        assert_eq!(
            own.is_empty(),
            statements.is_empty(),
            "{capability}: a capability with tables keeps its statements in .sql files, one without has none"
        );
        for file in statements {
            let named = tables_named_in(&std::fs::read_to_string(&file).unwrap());
            for (other, theirs) in &owned {
                if other == capability {
                    continue;
                }
                let trespass: Vec<&String> = named.intersection(theirs).collect();
                assert!(
                    trespass.is_empty(),
                    "{} names {trespass:?}, tables of {other}",
                    file.display()
                );
            }
        }
    }
}

/// Stores run SQL only from their `.sql` files: no statement text is written in Rust (and none is
/// assembled with `format!`), except the list queries a query builder assembles from catalogued
/// columns.
#[test]
fn no_capability_writes_sql_in_rust() {
    for capability in CAPABILITIES {
        let src = workspace().join("crates").join(capability).join("src");
        let mut rust = Vec::new();
        let mut stack = vec![src];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    rust.push(path);
                }
            }
        }
        for file in rust {
            let text = std::fs::read_to_string(&file).unwrap();
            for needle in [
                "sqlx::query(",
                "sqlx::query_as(",
                "sqlx::query_scalar(",
                "query_as::<_, (",
            ] {
                assert!(
                    !text.contains(needle),
                    "{} runs SQL written in Rust ({needle}); keep statements in .sql files",
                    file.display()
                );
            }
        }
    }
}
