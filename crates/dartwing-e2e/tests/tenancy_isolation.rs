//! Tenant isolation of People, names and identities: each scenario is an attack by one tenant (or
//! one token) on what belongs to others, asserting the refusal and that nothing changed. Each runs
//! on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use dartwing_e2e::Reply;
use dartwing_e2e::scenario::{ALICE, Scene, assert_refused};
use reqwest::StatusCode;
use serde_json::{Value, json};

// ------------------------------------------------------------------------------------ helpers

/// The `data` of a successful reply.
fn data(reply: &Reply) -> Value {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json()["data"].clone()
}

// ------------------------------------------------------------------- finding 4: list sizes

dartwing_e2e::backend_tests! {
    /// `?fields=` with 2,100 columns (and other oversized list parameters) answers 400 with a
    /// clear message instead of a database error.
    async fn two_thousand_fields_is_400(db) {
        let s = Scene::new(db).await;
        let alice = s.token(ALICE);
        let before = s.snapshot().await;
        let encode = |value: &Value| urlencoding::encode(&value.to_string()).into_owned();
        let many_fields = encode(&json!(vec!["name"; 2100]));
        let long_value = "%".repeat(5000);
        for doctype in ["Organization", "Person", "Org%20Member"] {
            for query in [
                format!("fields={many_fields}"),
                format!("fields={}", encode(&json!(vec!["name"; 101]))),
                format!("filters={}", encode(&json!(vec![["name", "=", "x"]; 51]))),
                format!("filters={}", encode(&json!([["name", "in", vec!["x"; 501]]]))),
                format!("filters={}", encode(&json!([["name", "like", long_value]]))),
                format!("filters={}", encode(&json!([["name", "=", "a\u{0}b"]]))),
                format!("order_by={}", "name%20".repeat(60)),
            ] {
                let reply = s.server.get(&format!("/api/resource/{doctype}?{query}"), &alice).await;
                assert_refused(&reply, StatusCode::BAD_REQUEST, "BadRequestError", &[]);
                assert!(reply.text.len() < 1000, "the message stays short: {}", reply.text);
            }
            // At the caps, duplicates folded: fine.
            let reply = s
                .server
                .get(
                    &format!("/api/resource/{doctype}?fields={}", encode(&json!(vec!["name"; 100]))),
                    &alice,
                )
                .await;
            let rows = data(&reply);
            assert!(
                rows.as_array()
                    .unwrap()
                    .iter()
                    .all(|r| r.as_object().unwrap().len() == 1),
                "{rows}"
            );
        }
        before.assert_unchanged(&s.server, "oversized list parameters").await;
        s.stop().await;
    }
}
