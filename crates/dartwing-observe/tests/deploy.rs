//! The deployment files under `deploy/` stay true to the runtime: the Prometheus rules pass
//! `promtool check rules` and their unit tests, every alert is tested firing and silent and links
//! its runbook, every metric the rules and Grafana dashboards query is a catalog family, and the
//! Alertmanager example passes `amtool check-config` and routes every severity the rules use.
//!
//! The file reading lives in `support/deploy_files.rs`, which the end-to-end suite shares to
//! compare the same names with a live `/metrics` scrape.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/deploy_files.rs"]
mod deploy_files;

use dartwing_observe::catalog;
use deploy_files::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// Runs `tool` (from the Debian package `package`) with `args` in the workspace root. `None`
/// when it is not installed outside CI; in CI (`CI=true`) a missing tool fails the test.
fn run_tool(tool: &str, package: &str, args: &[&str]) -> Option<std::process::Output> {
    match Command::new(tool).args(args).current_dir(workspace_root()).output() {
        Ok(output) => Some(output),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "{tool} is not installed (apt-get install {package}); CI must run the checks"
            );
            eprintln!("{tool} not installed: its checks not run (they fail in CI)");
            None
        }
        Err(e) => panic!("{tool} could not run: {e}"),
    }
}

fn promtool(args: &[&str]) -> Option<std::process::Output> {
    run_tool("promtool", "prometheus", args)
}

fn assert_success(output: &std::process::Output) {
    assert!(
        output.status.success(),
        "the check failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn alertmanager_example_is_valid_and_routes_critical_to_the_pager_and_warnings_to_chat() {
    const CONFIG: &str = "deploy/alertmanager/alertmanager.yml";
    let Some(output) = run_tool("amtool", "prometheus-alertmanager", &["check-config", CONFIG]) else {
        return;
    };
    assert_success(&output);
    let severities: BTreeSet<String> = alerts()
        .iter()
        .map(|rule| rule.labels.get("severity").cloned().unwrap_or_default())
        .collect();
    assert_eq!(
        severities,
        BTreeSet::from(["critical".to_string(), "warning".to_string()])
    );
    for (severity, receivers) in [("critical", "chat,pager"), ("warning", "chat")] {
        let output = run_tool(
            "amtool",
            "prometheus-alertmanager",
            &[
                "config",
                "routes",
                "test",
                "--config.file",
                CONFIG,
                &format!("severity={severity}"),
                "alertname=Example",
            ],
        )
        .unwrap();
        assert_success(&output);
        let mut routed: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .trim()
            .split(',')
            .map(str::to_string)
            .collect();
        routed.sort();
        assert_eq!(routed.join(","), receivers, "{severity}");
    }
}

fn alerts() -> Vec<AlertRule> {
    alert_rules(&std::fs::read_to_string(workspace_root().join("deploy/prometheus/alerts.yml")).unwrap())
}

fn uncatalogued(queries: &[(String, String)], allowed: &[&str]) -> BTreeSet<String> {
    let mut missing = BTreeSet::new();
    for (source, query) in queries {
        for name in metric_names(query) {
            if catalog_family(&name, catalog::ALL).is_none() && !allowed.contains(&name.as_str()) {
                missing.insert(format!("{source}: {name}"));
            }
        }
    }
    missing
}

#[test]
fn metric_names_are_the_selected_series_only() {
    let names = metric_names(
        r#"histogram_quantile(0.95, sum by (job, le) (rate(http_request_duration_seconds_bucket{endpoint!="unmatched", instance=~"$instance"}[$__rate_interval]))) > 5"#,
    );
    assert_eq!(
        names,
        BTreeSet::from(["http_request_duration_seconds_bucket".to_string()])
    );

    let names = metric_names(
        "db_connections_active / on (instance) group_left (job) db_connections_pool_size > 0.9 and max_over_time(up[10m] offset 5m) >= 1e3",
    );
    let expected = ["db_connections_active", "db_connections_pool_size", "up"];
    assert_eq!(names, expected.iter().map(|s| s.to_string()).collect());

    let names =
        metric_names(r#"sum without (reason) (increase(socketio_messages_dropped{reason="queue_full"}[5m])) > 0"#);
    assert_eq!(names, BTreeSet::from(["socketio_messages_dropped".to_string()]));
}

#[test]
fn histogram_series_belong_to_their_family_and_other_suffixes_do_not() {
    assert_eq!(
        catalog_family("http_request_duration_seconds_bucket", catalog::ALL).map(|s| s.name),
        Some("http_request_duration_seconds")
    );
    assert_eq!(
        catalog_family("dlq_depth", catalog::ALL).map(|s| s.name),
        Some("dlq_depth")
    );
    assert!(
        catalog_family("dlq_depth_count", catalog::ALL).is_none(),
        "gauges have no _count series"
    );
    assert!(catalog_family("http_request_duration", catalog::ALL).is_none());
}

#[test]
fn alert_rules_pass_promtool_check() {
    if let Some(output) = promtool(&["check", "rules", "deploy/prometheus/alerts.yml"]) {
        assert_success(&output);
    }
}

#[test]
fn alert_rules_pass_their_promtool_unit_tests() {
    if let Some(output) = promtool(&["test", "rules", "deploy/prometheus/alerts_test.yml"]) {
        assert_success(&output);
    }
}

#[test]
fn example_scrape_configuration_is_valid_and_loads_the_rules() {
    if let Some(output) = promtool(&["check", "config", "deploy/prometheus/prometheus.yml"]) {
        assert_success(&output);
        let report = String::from_utf8_lossy(&output.stdout);
        assert!(
            report.contains("alerts.yml"),
            "rule_files does not load alerts.yml:\n{report}"
        );
    }
}

#[test]
fn dashboard_queries_are_valid_promql() {
    // Each panel query becomes a recording rule, with Grafana's variables replaced by values,
    // so promtool parses it.
    let mut rules = String::from("groups:\n  - name: dashboards\n    rules:\n");
    let queries: Vec<(String, String)> = deploy_queries(&workspace_root())
        .into_iter()
        .filter(|(source, _)| source.ends_with(".json"))
        .collect();
    for (n, (_, query)) in queries.iter().enumerate() {
        let query = query.replace("$__rate_interval", "5m").replace("$instance", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:query:{n}\n        expr: {}\n",
            serde_json::to_string(&query).unwrap()
        ));
    }
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard_queries.yml");
    std::fs::write(&path, rules).unwrap();
    if let Some(output) = promtool(&["check", "rules", path.to_str().unwrap()]) {
        assert_success(&output);
        let report = String::from_utf8_lossy(&output.stdout);
        assert!(report.contains(&format!("{} rules found", queries.len())), "{report}");
    }
}

#[test]
fn alert_rules_use_only_catalog_metrics() {
    let queries: Vec<(String, String)> = deploy_queries(&workspace_root())
        .into_iter()
        .filter(|(source, _)| source.starts_with("alerts.yml"))
        .collect();
    assert!(queries.len() >= 20, "{queries:?}");
    let missing = uncatalogued(&queries, SCRAPE_SERIES);
    assert!(missing.is_empty(), "not in the metric catalog: {missing:#?}");
}

#[test]
fn dashboards_use_only_catalog_metrics() {
    let queries: Vec<(String, String)> = deploy_queries(&workspace_root())
        .into_iter()
        .filter(|(source, _)| !source.starts_with("alerts.yml"))
        .collect();
    assert!(queries.len() >= 50, "{queries:?}");
    let missing = uncatalogued(&queries, &[]);
    assert!(missing.is_empty(), "not in the metric catalog: {missing:#?}");
}

#[test]
fn every_alert_has_a_firing_and_a_silent_unit_test() {
    let tests = std::fs::read_to_string(workspace_root().join("deploy/prometheus/alerts_test.yml")).unwrap();
    let cases = alert_test_cases(&tests);
    let rules = alerts();
    let mut untested = Vec::new();
    for rule in &rules {
        match cases.get(&rule.name) {
            Some((true, true)) => {}
            Some((fires, silent)) => untested.push(format!("{}: fires {fires}, silent {silent}", rule.name)),
            None => untested.push(format!("{}: no test", rule.name)),
        }
    }
    assert!(
        untested.is_empty(),
        "alerts without both unit test cases: {untested:#?}"
    );
    let names: BTreeSet<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    let unknown: Vec<&String> = cases.keys().filter(|name| !names.contains(name.as_str())).collect();
    assert!(unknown.is_empty(), "tests of alerts that do not exist: {unknown:?}");
}

#[test]
fn every_alert_has_severity_summary_description_and_runbook() {
    let rules = alerts();
    for rule in &rules {
        assert!(!rule.expr.is_empty(), "{} has no expression", rule.name);
        let severity = rule.labels.get("severity").map(String::as_str);
        assert!(
            matches!(severity, Some("critical" | "warning")),
            "{}: severity {severity:?}",
            rule.name
        );
        for annotation in ["summary", "description"] {
            assert!(
                rule.annotations.get(annotation).is_some_and(|text| !text.is_empty()),
                "{} has no {annotation}",
                rule.name
            );
        }
        assert_eq!(
            rule.annotations.get("runbook").map(String::as_str),
            Some(format!("docs/operations.md#{}", rule.name.to_lowercase()).as_str()),
            "{}",
            rule.name
        );
    }
    let unique: BTreeSet<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(unique.len(), rules.len(), "alert names repeat");
    let runbooks = std::fs::read_to_string(workspace_root().join("docs/operations.md")).unwrap();
    for rule in &rules {
        assert!(
            runbooks.lines().any(|l| l == format!("### {}", rule.name)),
            "docs/operations.md has no runbook section `### {}`",
            rule.name
        );
    }
}

#[test]
fn dashboards_are_importable_with_a_prometheus_data_source_input() {
    let paths = dashboard_paths(&workspace_root());
    let files: BTreeSet<String> = paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    for expected in [
        "overview.json",
        "jobs.json",
        "integrations.json",
        "sync.json",
        "realtime.json",
    ] {
        assert!(files.contains(expected), "deploy/grafana/{expected} is missing");
    }
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        let dashboard: Value = serde_json::from_str(&text).unwrap();
        let name = path.display();
        assert!(
            dashboard["schemaVersion"].as_u64().unwrap_or(0) >= 36,
            "{name}: schemaVersion"
        );
        assert_eq!(dashboard["__inputs"][0]["name"], "DS_PROMETHEUS", "{name}");
        let panels = dashboard["panels"].as_array().unwrap();
        let mut ids = BTreeSet::new();
        for panel in panels {
            assert!(ids.insert(panel["id"].as_u64().unwrap()), "{name}: panel id repeats");
            if panel["type"] == "row" {
                continue;
            }
            assert_eq!(
                panel["datasource"]["uid"], "${DS_PROMETHEUS}",
                "{name}: {}",
                panel["title"]
            );
            let targets = panel["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{name}: {} has no query", panel["title"]);
            for target in targets {
                assert_eq!(
                    target["datasource"]["uid"], "${DS_PROMETHEUS}",
                    "{name}: {}",
                    panel["title"]
                );
            }
        }
    }
}
