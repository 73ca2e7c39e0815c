//! Documentation stays true to the code: every configuration key is documented with its default.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use dartwing_core::config::Config;
use serde_json::Value;

fn keys(prefix: &str, value: &Value, out: &mut Vec<String>) {
    if let Value::Object(map) = value {
        for (key, child) in map {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            if child.is_object() {
                keys(&path, child, out);
            } else {
                out.push(path);
            }
        }
    }
}

#[test]
fn every_configuration_key_is_documented() {
    let doc = include_str!("../../../docs/configuration.md");
    let mut all = Vec::new();
    keys("", &serde_json::to_value(Config::default()).unwrap(), &mut all);
    assert!(all.len() > 20, "{all:?}");
    for key in all {
        assert!(
            doc.contains(&format!("| `{key}` |")),
            "docs/configuration.md lacks a row for `{key}`"
        );
    }
}

/// `docs/operations.md` carries the metrics reference generated from the catalog between two
/// markers. Run with `DARTWING_UPDATE_DOCS=1` to regenerate it after changing the catalog.
#[test]
fn metrics_reference_is_generated_from_the_catalog() {
    const BEGIN: &str = "<!-- metrics-reference:begin (generated from the metric catalog) -->\n";
    const END: &str = "<!-- metrics-reference:end -->";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/operations.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let start = doc.find(BEGIN).expect("begin marker") + BEGIN.len();
    let end = doc.find(END).expect("end marker");
    let generated = dartwing_observe::catalog::markdown_reference();
    if std::env::var("DARTWING_UPDATE_DOCS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, format!("{}{generated}{}", &doc[..start], &doc[end..])).unwrap();
        return;
    }
    assert_eq!(
        &doc[start..end],
        generated,
        "docs/operations.md is out of date: run DARTWING_UPDATE_DOCS=1 cargo test -p dartwing --test docs"
    );
}
