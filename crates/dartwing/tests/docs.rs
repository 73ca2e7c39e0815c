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
