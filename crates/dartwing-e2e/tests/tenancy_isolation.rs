//! Tenant isolation of People, names and identities: each scenario is an attack by one tenant (or
//! one token) on what belongs to others, asserting the refusal and that nothing changed. Each runs
//! on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use dartwing_core::identity::{IdentityStore, VerifiedUser};
use dartwing_e2e::scenario::{ALICE, Scene, assert_refused, hs256, unix_now};
use dartwing_e2e::{Reply, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

// ------------------------------------------------------------------------------------ helpers

const CAROL: &str = "carol@example.com";

/// Creates an organization owned by `owner` (who signs in first).
async fn org_of(server: &TestServer, owner: &str, org_name: &str) -> String {
    server.create_org(owner, org_name).await
}

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

// ------------------------------------------------------------------- finding 3: email identity

/// Claims of a valid token for `email`.
fn claims(email: &str) -> Value {
    let now = unix_now();
    json!({ "email": email, "iat": now, "nbf": now, "exp": now + 600 })
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

dartwing_e2e::backend_tests! {
    /// `\u{212A}ate@a.test` (KELVIN SIGN) lower-cases to `kate@a.test` with Unicode case folding:
    /// it must not sign in as Kate, nor provision anyone. Other look-alikes and white space neither.
    async fn kelvin_sign_email_does_not_authenticate_as_ascii_user(db) {
        let s = Scene::new(db).await;
        let kates = org_of(&s.server, "kate@a.test", "Kate's").await;
        let before = s.snapshot().await;
        for email in [
            "\u{212A}ate@a.test",
            "\u{FF4B}ate@a.test",
            "kate@a.test\u{3000}",
            " kate@a.test",
            "ka te@a.test",
            "kate@a.test\u{0}",
        ] {
            let token = hs256(&claims(email));
            let reply = s
                .server
                .get(&format!("/api/resource/Organization/{kates}"), &token)
                .await;
            assert_refused(&reply, StatusCode::UNAUTHORIZED, "AuthenticationError", &[&token]);
            let reply = s.server.get("/api/resource/Organization", &token).await;
            assert_refused(&reply, StatusCode::UNAUTHORIZED, "AuthenticationError", &[&token]);
        }
        before.assert_unchanged(&s.server, "look-alike emails").await;
        // ASCII case still folds: the same identity.
        let reply = s
            .server
            .get(
                &format!("/api/resource/Organization/{kates}"),
                &hs256(&claims("KATE@A.test")),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        s.stop().await;
    }

    /// A token whose IdP says the email is not verified proves nothing about the mailbox: 401,
    /// and nobody is provisioned. Without the claim, or with `true`, the token is accepted.
    async fn unverified_email_is_refused(db) {
        let s = Scene::new(db).await;
        let before = s.snapshot().await;
        for unverified in [json!(false), json!("false"), json!("FALSE")] {
            let token = hs256(&with(claims(ALICE), "email_verified", unverified));
            let reply = s
                .server
                .get(&format!("/api/resource/Organization/{}", s.alpha), &token)
                .await;
            assert_refused(&reply, StatusCode::UNAUTHORIZED, "AuthenticationError", &[&token]);
            let token = hs256(&with(claims("newcomer@example.com"), "email_verified", json!(false)));
            let reply = s.server.get("/api/resource/Organization", &token).await;
            assert_refused(&reply, StatusCode::UNAUTHORIZED, "AuthenticationError", &[&token]);
        }
        before.assert_unchanged(&s.server, "unverified emails").await;
        for verified in [json!(true), json!("true")] {
            let token = hs256(&with(claims(ALICE), "email_verified", verified));
            let reply = s
                .server
                .get(&format!("/api/resource/Organization/{}", s.alpha), &token)
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        }
        let reply = s
            .server
            .get(
                &format!("/api/resource/Organization/{}", s.alpha),
                &hs256(&claims(ALICE)),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "no claim: {}", reply.text);
        s.stop().await;

        // An operator may turn the check off.
        let server = TestServer::start_with(db, |config| config.auth.require_verified_email = false).await;
        let token = hs256(&with(claims(ALICE), "email_verified", json!(false)));
        let reply = server.get("/api/resource/Organization", &token).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        server.stop().await;
    }

    /// Once a Person has signed in with an identity provider account (`iss`+`sub`), another
    /// account presenting the same email — another subject, or another issuer — is refused.
    async fn another_account_with_the_same_email_cannot_sign_in(db) {
        let s = Scene::new(db).await;
        let first = hs256(&with(
            with(claims(CAROL), "iss", json!("https://idp.a.test")),
            "sub",
            json!("carol-1"),
        ));
        let alpha = format!("/api/resource/Organization/{}", s.alpha);
        assert_eq!(
            s.server.get("/api/resource/Organization", &first).await.status,
            StatusCode::OK
        );
        s.server.add_member(&s.alpha, CAROL, "Member").await;
        assert_eq!(
            s.server.get(&alpha, &first).await.status,
            StatusCode::OK,
            "the same account again"
        );
        let before = s.snapshot().await;
        for (iss, sub) in [("https://idp.a.test", "carol-2"), ("https://idp.b.test", "carol-1")] {
            let token = hs256(&with(with(claims(CAROL), "iss", json!(iss)), "sub", json!(sub)));
            let reply = s.server.get(&alpha, &token).await;
            assert_refused(&reply, StatusCode::UNAUTHORIZED, "AuthenticationError", &[&token]);
        }
        before.assert_unchanged(&s.server, "other accounts").await;
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

// ------------------------------------------------------------ finding 5: ghost people

dartwing_e2e::backend_tests! {
    /// An administrator changes Carol's email; the realtime access re-check that follows looks
    /// her up by the old email. It must not provision a ghost Person with the old email.
    async fn email_change_does_not_provision_a_ghost_person(db) {
        let s = Scene::new(db).await;
        let carol_person = person_of(&s.server, CAROL).await;
        s.server.add_member(&s.alpha, CAROL, "Member").await;
        let path = format!("/api/resource/Person/{carol_person}");
        let changed = s
            .server
            .put(&path, &s.admin, &json!({ "primary_email": "carol.new@example.com" }))
            .await;
        assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
        let before = s.snapshot().await;
        // The re-check the gateway runs on that change (also started in the background).
        s.server.app.realtime.recheck_user(CAROL).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(
            s.server.app.tenancy.person_by_email(CAROL).await.unwrap().is_none(),
            "ghost Person provisioned"
        );
        let old = VerifiedUser {
            email: CAROL.into(),
            full_name: None,
            system_admin: false,
        };
        let looked_up = s.server.app.tenancy.user_principal(&old).await;
        assert_eq!(
            looked_up.map_err(|e| e.kind()).err(),
            Some(dartwing_core::ErrorKind::PermissionDenied)
        );
        before.assert_unchanged(&s.server, "the access re-check").await;
        // The Person signs in with the new email and keeps the membership.
        let reply = s
            .server
            .get(
                &format!("/api/resource/Organization/{}", s.alpha),
                &s.token("carol.new@example.com"),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
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
