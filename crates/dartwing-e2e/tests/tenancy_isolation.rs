//! Tenant isolation of People, names and identities: each scenario is an attack by one tenant (or
//! one token) on what belongs to others, asserting the refusal and that nothing changed. Each runs
//! on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use dartwing_e2e::scenario::{ALICE, Scene, assert_refused};
use dartwing_e2e::{Reply, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

// ------------------------------------------------------------------------------------ helpers

const CAROL: &str = "carol@example.com";

/// Signs `email` in once (the first request provisions the Person) and returns the Person's name.
async fn person_of(server: &TestServer, email: &str) -> String {
    let reply = server.get("/api/resource/Organization", &server.token(email)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    server
        .app
        .tenancy
        .person_by_email(email)
        .await
        .unwrap()
        .expect("provisioned")
        .name
}

/// The `data` of a successful reply.
fn data(reply: &Reply) -> Value {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json()["data"].clone()
}

// ------------------------------------------------------------------- finding 2: name squatting

dartwing_e2e::backend_tests! {
    /// A tenant names its documents inside the server's generated series (any year, any width,
    /// any case) to make later generated names collide: refused with 422 naming the series.
    async fn explicit_name_inside_generated_series_is_refused(db) {
        let s = Scene::new(db).await;
        let year = dartwing_core::Timestamp::now().year();
        let alice = s.token(ALICE);
        let before = s.snapshot().await;
        for (name, series) in [
            (format!("ORG-{year}-00003"), "ORG-YYYY-#####"),
            ("ORG-1999-7".to_string(), "ORG-YYYY-#####"),
            (format!("org-{year}-000000003"), "ORG-YYYY-#####"),
            (format!("PERS-{year}-00042"), "PERS-YYYY-#####"),
            (format!("MEM-{year}-00042"), "MEM-YYYY-#####"),
        ] {
            let body = json!({ "name": name, "org_name": "Squat", "org_type": "Company" });
            let reply = s.server.post("/api/resource/Organization", &alice, &body).await;
            assert_refused(&reply, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError", &[]);
            assert!(
                reply.json()["message"].as_str().unwrap().contains(series),
                "{}",
                reply.text
            );
            let body = json!({ "name": name, "primary_email": "squat@example.com" });
            let reply = s.server.post("/api/resource/Person", &s.admin, &body).await;
            assert_refused(&reply, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError", &[]);
        }
        before.assert_unchanged(&s.server, "names inside the series").await;
        // Generated names keep coming, and names outside the series are fine.
        assert_eq!(s.server.create_org(ALICE, "Third").await, format!("ORG-{year}-00003"));
        let body = json!({ "name": format!("ORG-{year}-HQ"), "org_name": "HQ", "org_type": "Company" });
        assert_eq!(
            data(&s.server.post("/api/resource/Organization", &alice, &body).await)["name"],
            format!("ORG-{year}-HQ")
        );
        s.stop().await;
    }

    /// Names taken before their series was reserved (legacy rows) are skipped by generation
    /// instead of failing every later create with 409.
    async fn generated_names_skip_taken_names(db) {
        let s = Scene::new(db).await;
        let year = dartwing_core::Timestamp::now().year();
        let pool = s.server.app.db.pool();
        let now = dartwing_core::Timestamp::now().to_string();
        for n in 3..=5 {
            sqlx::query(
                "INSERT INTO organization (name, org_name, org_type, status, creation, modified, owner, modified_by) \
                 VALUES ($1, 'Legacy', 'Company', 'Active', $2, $2, 'legacy', 'legacy')",
            )
            .bind(format!("ORG-{year}-{n:05}"))
            .bind(&now)
            .execute(pool)
            .await
            .unwrap();
        }
        let people: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM person")
            .fetch_one(pool)
            .await
            .unwrap();
        let next_person = people + 1;
        sqlx::query(
            "INSERT INTO person (name, primary_email, full_name, status, creation, modified, owner, modified_by) \
             VALUES ($1, 'legacy@example.com', 'Legacy', 'Active', $2, $2, 'legacy', 'legacy')",
        )
        .bind(format!("PERS-{year}-{next_person:05}"))
        .bind(&now)
        .execute(pool)
        .await
        .unwrap();
        assert_eq!(
            s.server.create_org(ALICE, "After legacy").await,
            format!("ORG-{year}-00006")
        );
        assert_eq!(
            s.server.create_org(ALICE, "And next").await,
            format!("ORG-{year}-00007")
        );
        assert_eq!(
            person_of(&s.server, CAROL).await,
            format!("PERS-{year}-{:05}", next_person + 1)
        );
        s.stop().await;
    }
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

// ------------------------------------------------------------ finding 6: one name grammar

dartwing_e2e::backend_tests! {
    /// An organization named with `:` cannot be a realtime room (`org:{organization}`), so its
    /// events would be dropped: such names, and others outside the grammar, are refused.
    async fn organization_name_with_colon_is_refused(db) {
        let s = Scene::new(db).await;
        let alice = s.token(ALICE);
        let before = s.snapshot().await;
        for name in [
            "Acme:HQ",
            "org:Acme",
            "Acme\\HQ",
            "Acme\u{a0}HQ",
            "\u{FF21}cme",
            " Acme",
            "Acme\tHQ",
        ] {
            let body = json!({ "name": name, "org_name": "Acme", "org_type": "Company" });
            let reply = s.server.post("/api/resource/Organization", &alice, &body).await;
            assert_refused(&reply, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError", &[]);
            let body = json!({ "name": name, "primary_email": "named@example.com" });
            let reply = s.server.post("/api/resource/Person", &s.admin, &body).await;
            assert_refused(&reply, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError", &[]);
        }
        before.assert_unchanged(&s.server, "names outside the grammar").await;
        let body = json!({ "name": "Acme HQ", "org_name": "Acme", "org_type": "Company" });
        assert_eq!(
            data(&s.server.post("/api/resource/Organization", &alice, &body).await)["name"],
            "Acme HQ"
        );
        s.stop().await;
    }
}
