//! Reading the deployment files under `deploy/`: every PromQL query of the Prometheus rules and
//! the Grafana dashboards, the metric names a query selects, and the alert rules with their unit
//! tests. Shared by the `deploy` test (catalog, promtool) and the end-to-end observability suite
//! (live scrape), each including it with `#[path]`.

use dartwing_observe::catalog::{MetricKind, MetricSpec};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Series Prometheus records itself for every scrape target; rules may use them.
pub const SCRAPE_SERIES: &[&str] = &["up"];

/// Suffixes of the series a histogram family exports.
const HISTOGRAM_SUFFIXES: &[&str] = &["_bucket", "_sum", "_count"];

/// PromQL words that look like names but are operators, modifiers or literals.
const PROMQL_KEYWORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
];

/// Keywords followed by a parenthesised list of label names, not of expressions.
const LABEL_LIST_KEYWORDS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Names of the series one PromQL query selects (e.g. `http_request_duration_seconds_bucket`),
/// leaving out functions, aggregation operators, label names, label values, durations,
/// numbers and Grafana variables (`$instance`, `${DS_PROMETHEUS}`, `$__rate_interval`).
pub fn metric_names(promql: &str) -> BTreeSet<String> {
    let chars: Vec<char> = promql.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => i = skip_string(&chars, i),
            '{' => i = skip_group(&chars, i, '{', '}'),
            '[' => i = skip_group(&chars, i, '[', ']'),
            '$' => {
                i += 1;
                if chars.get(i) == Some(&'{') {
                    i = skip_group(&chars, i, '{', '}');
                } else {
                    while i < chars.len() && is_name_char(chars[i]) {
                        i += 1;
                    }
                }
            }
            c if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) => {
                // Numbers and durations: 0.95, 5m, 1e3, 0x1f.
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if is_name_start(c) => {
                let start = i;
                while i < chars.len() && is_name_char(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut next = i;
                while next < chars.len() && chars[next].is_whitespace() {
                    next += 1;
                }
                let opens_paren = chars.get(next) == Some(&'(');
                if LABEL_LIST_KEYWORDS.contains(&word.as_str()) {
                    if opens_paren {
                        i = skip_group(&chars, next, '(', ')');
                    }
                } else if !opens_paren && !PROMQL_KEYWORDS.contains(&word.to_ascii_lowercase().as_str()) {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

pub fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Index after the string literal starting at `start`.
fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() && chars[i] != quote {
        if chars[i] == '\\' && quote != '`' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

/// Index after the bracketed group opening at `start`, skipping string literals inside it.
fn skip_group(chars: &[char], start: usize, open: char, close: char) -> usize {
    let mut depth = 0;
    let mut i = start;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => {
                i = skip_string(chars, i);
                continue;
            }
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// The catalog family a series belongs to: its own name, or a histogram's `_bucket`, `_sum`
/// or `_count` series.
pub fn catalog_family<'a>(series: &str, families: &'a [MetricSpec]) -> Option<&'a MetricSpec> {
    families.iter().find(|spec| {
        spec.name == series
            || (spec.kind == MetricKind::Histogram
                && HISTOGRAM_SUFFIXES
                    .iter()
                    .any(|suffix| series.strip_suffix(suffix) == Some(spec.name)))
    })
}

/// One alerting rule of `alerts.yml`.
#[derive(Debug, Default)]
pub struct AlertRule {
    /// `alert:` name.
    pub name: String,
    /// PromQL expression.
    pub expr: String,
    /// `labels:` of the rule.
    pub labels: BTreeMap<String, String>,
    /// `annotations:` of the rule.
    pub annotations: BTreeMap<String, String>,
}

fn unquote(value: &str) -> String {
    let value = value.trim();
    for quote in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(quote) && value.ends_with(quote) {
            return value[1..value.len() - 1].to_string();
        }
    }
    value.to_string()
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The alerting rules of a Prometheus rules file. Reads the YAML subset rule files use (one
/// `key: value` per line, block scalars for long expressions); `promtool check rules` checks
/// the full syntax.
pub fn alert_rules(yaml: &str) -> Vec<AlertRule> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut rules: Vec<AlertRule> = Vec::new();
    let mut rule_indent = 0;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        i += 1;
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(name) = trimmed.strip_prefix("- alert:") {
            rule_indent = indent(line) + 2;
            rules.push(AlertRule {
                name: unquote(name),
                ..AlertRule::default()
            });
            continue;
        }
        if trimmed.starts_with("- ") && indent(line) + 2 <= rule_indent {
            // Next rule that is not an alert (a recording rule) or next group.
            rule_indent = usize::MAX;
            continue;
        }
        let Some(rule) = rules.last_mut() else { continue };
        if indent(line) != rule_indent {
            continue;
        }
        let (key, value) = trimmed.split_once(':').unwrap_or((trimmed, ""));
        // The lines below a key, more indented than it.
        let mut block = Vec::new();
        while i < lines.len() && (lines[i].trim().is_empty() || indent(lines[i]) > rule_indent) {
            if !lines[i].trim_start().starts_with('#') {
                block.push(lines[i].trim());
            }
            i += 1;
        }
        match key {
            "expr" if value.trim().starts_with(['|', '>']) => rule.expr = block.join(" ").trim().to_string(),
            "expr" => rule.expr = unquote(value),
            "labels" | "annotations" => {
                let map = if key == "labels" {
                    &mut rule.labels
                } else {
                    &mut rule.annotations
                };
                for entry in block.iter().filter(|l| !l.is_empty()) {
                    let (k, v) = entry.split_once(':').unwrap_or((entry, ""));
                    map.insert(k.trim().to_string(), unquote(v));
                }
            }
            _ => {}
        }
    }
    rules
}

/// For each alert name in a `promtool test rules` file, whether it has a case expecting it to
/// fire (`exp_alerts` with entries) and a case expecting silence (`exp_alerts: []`).
pub fn alert_test_cases(yaml: &str) -> BTreeMap<String, (bool, bool)> {
    let lines: Vec<&str> = yaml
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let mut cases: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = line.strip_prefix("alertname:") else {
            continue;
        };
        let name = unquote(name.split('#').next().unwrap_or_default());
        let Some(offset) = lines[i + 1..].iter().position(|l| l.starts_with("exp_alerts:")) else {
            continue;
        };
        let at = i + 1 + offset;
        let entry = cases.entry(name).or_default();
        if lines[at].trim_end_matches(|c: char| c.is_whitespace()).ends_with("[]") {
            entry.1 = true;
        } else if lines.get(at + 1).is_some_and(|l| l.starts_with("- exp_labels:")) {
            entry.0 = true;
        }
    }
    cases
}

fn collect_exprs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child) {
                    ("expr", Value::String(expr)) => out.push(expr.clone()),
                    _ => collect_exprs(child, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_exprs(item, out)),
        _ => {}
    }
}

/// The selector of a Grafana `label_values(<selector>, <label>)` variable query.
fn label_values_selector(definition: &str) -> Option<&str> {
    let inner = definition.trim().strip_prefix("label_values(")?.strip_suffix(')')?;
    Some(inner.rsplit_once(',').map_or(inner, |(selector, _label)| selector))
}

/// Every PromQL query of the deployment files, as (file and location, query): the alert
/// expressions of `deploy/prometheus/alerts.yml`, the panel `expr`s and `label_values`
/// variable selectors of `deploy/grafana/*.json`.
pub fn deploy_queries(root: &Path) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    let rules = std::fs::read_to_string(root.join("deploy/prometheus/alerts.yml")).unwrap();
    for rule in alert_rules(&rules) {
        queries.push((format!("alerts.yml {}", rule.name), rule.expr));
    }
    for path in dashboard_paths(root) {
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut exprs = Vec::new();
        collect_exprs(&dashboard["panels"], &mut exprs);
        for expr in exprs {
            queries.push((file.clone(), expr));
        }
        for variable in dashboard["templating"]["list"].as_array().into_iter().flatten() {
            if let Some(selector) = variable["definition"].as_str().and_then(label_values_selector) {
                queries.push((format!("{file} variable {}", variable["name"]), selector.to_string()));
            }
        }
    }
    queries
}

pub fn dashboard_paths(root: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(root.join("deploy/grafana"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    paths
}
