//! Bad input end to end: every malformed, oversized, unauthenticated or forbidden request is
//! refused with the right status and `exc_type`, leaks nothing private, and changes nothing in
//! the database. Each scenario runs on SQLite and, when configured, PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use dartwing_core::Principal;
use dartwing_e2e::scenario::{ALICE, Scene, assert_private, assert_refused};
use dartwing_e2e::tokens::{base64url, hs256_signed_with, unix_now};
use dartwing_e2e::{Reply, TEST_JWT_SECRET, TestServer};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::json;

// ------------------------------------------------------------------------------------ helpers

/// Sends `body` as is, with an optional Content-Type and a bearer token.
async fn send_raw(
    server: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> Reply {
    let mut request = server
        .client
        .request(method, server.url(path))
        .header(AUTHORIZATION, format!("Bearer {token}"));
    if let Some(content_type) = content_type {
        request = request.header(CONTENT_TYPE, content_type);
    }
    let response = request.body(body).send().await.expect("request sent");
    let status = response.status();
    let headers = response.headers().clone();
    Reply {
        status,
        headers,
        text: response.text().await.expect("body"),
    }
}

/// Sends a GET with exactly this `Authorization` header value (any bytes).
async fn get_with_authorization(server: &TestServer, path: &str, value: HeaderValue) -> Reply {
    let response = server
        .client
        .get(server.url(path))
        .header(AUTHORIZATION, value)
        .send()
        .await
        .expect("request sent");
    let status = response.status();
    let headers = response.headers().clone();
    Reply {
        status,
        headers,
        text: response.text().await.expect("body"),
    }
}

fn system() -> Principal {
    Principal::system("test")
}

// ------------------------------------------------------------------------ malformed requests

dartwing_e2e::backend_tests! {
    async fn malformed_json_is_400_and_changes_nothing(db) {
        let s = Scene::new(db).await;
        let alice = s.token(ALICE);
        let org_path = format!("/api/resource/Organization/{}", s.alpha);
        let before = s.snapshot().await;
        let bodies = [
            r#"{"org_name": "Gamma", "org_type": "Company""#,
            r#"{"org_name": "Gamma", "org_type": "Company",}"#,
            "not json at all",
            "{'org_name': 'Gamma'}",
            "",
            // Valid JSON, but not a document.
            "[]",
            r#""Gamma""#,
            "null",
        ];
        for body in bodies {
            for (method, path) in [
                (Method::POST, "/api/resource/Organization"),
                (Method::PUT, org_path.as_str()),
            ] {
                let reply = send_raw(&s.server, method.clone(), path, &alice, Some("application/json"), body).await;
                assert_refused(&reply, StatusCode::BAD_REQUEST, "BadRequestError", &[&alice]);
            }
        }
        assert_eq!(s.snapshot().await, before);
        s.stop().await;
    }

    async fn wrong_field_types_are_400_and_change_nothing(db) {
        let s = Scene::new(db).await;
        let alice = s.token(ALICE);
        let org_path = format!("/api/resource/Organization/{}", s.alpha);
        let before = s.snapshot().await;
        let bodies = [
            json!({ "org_name": "Gamma", "org_type": 5 }),
            json!({ "org_name": [], "org_type": "Company" }),
            json!({ "org_name": { "text": "Gamma" }, "org_type": "Company" }),
            json!({ "org_name": "Gamma", "org_type": "Spaceship" }),
            json!({ "org_name": "Gamma", "org_type": "Company", "status": true }),
            json!({ "org_name": null, "org_type": ["Company"] }),
        ];
        for body in &bodies {
            let reply = s.server.post("/api/resource/Organization", &alice, body).await;
            assert_refused(&reply, StatusCode::BAD_REQUEST, "BadRequestError", &[&alice]);
            let reply = s.server.put(&org_path, &alice, body).await;
            assert_refused(&reply, StatusCode::BAD_REQUEST, "BadRequestError", &[&alice]);
        }
        let reply = s
            .server
            .post(
                "/api/resource/Org%20Member",
                &s.admin,
                &json!({ "person": 1, "organization": s.alpha, "role": "Member" }),
            )
            .await;
        assert_refused(&reply, StatusCode::BAD_REQUEST, "BadRequestError", &[]);
        let reply = s
            .server
            .post(
                "/api/resource/Person",
                &s.admin,
                &json!({ "primary_email": ["x@example.com"] }),
            )
            .await;
        assert_refused(&reply, StatusCode::BAD_REQUEST, "BadRequestError", &[]);
        assert_eq!(s.snapshot().await, before);
        s.stop().await;
    }

    async fn unknown_fields_are_400_and_change_nothing(db) {
        let s = Scene::new(db).await;
        let alice = s.token(ALICE);
        let before = s.snapshot().await;
        let body = json!({ "org_name": "x", "org_type": "Company", "colour": "red" });
        let reply = s.server.post("/api/resource/Organization", &alice, &body).await;
        assert_refused(&reply, StatusCode::BAD_REQUEST, "BadRequestError", &[&alice]);
        let reply = s
            .server
            .put(
                &format!("/api/resource/Organization/{}", s.alpha),
                &alice,
                &json!({ "colour": "red" }),
            )
            .await;
        assert_refused(&reply, StatusCode::BAD_REQUEST, "BadRequestError", &[&alice]);
        let reply = s
            .server
            .post(
                "/api/resource/Person",
                &s.admin,
                &json!({ "primary_email": "new@example.com", "password": "x" }),
            )
            .await;
        assert_refused(&reply, StatusCode::BAD_REQUEST, "BadRequestError", &[]);
        assert_eq!(s.snapshot().await, before);
        assert_eq!(s.read("Organization", &s.alpha).await["org_name"], "Alpha");
        s.stop().await;
    }

    async fn body_without_json_content_type_is_400_and_changes_nothing(db) {
        let s = Scene::new(db).await;
        let alice = s.token(ALICE);
        let org_path = format!("/api/resource/Organization/{}", s.alpha);
        let before = s.snapshot().await;
        let body = r#"{"org_name": "Gamma", "org_type": "Company"}"#;
        for content_type in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("application/xml"),
        ] {
            let reply = send_raw(
                &s.server,
                Method::POST,
                "/api/resource/Organization",
                &alice,
                content_type,
                body,
            )
            .await;
            assert_refused(&reply, StatusCode::BAD_REQUEST, "BadRequestError", &[&alice]);
            let reply = send_raw(
                &s.server,
                Method::PUT,
                &org_path,
                &alice,
                content_type,
                r#"{"org_name": "Renamed"}"#,
            )
            .await;
            assert_refused(&reply, StatusCode::BAD_REQUEST, "BadRequestError", &[&alice]);
        }
        assert_eq!(s.snapshot().await, before);
        s.stop().await;
    }

    async fn oversized_body_is_413_and_changes_nothing(db) {
        let server = TestServer::start_with(db, |c| c.http.body_limit_bytes = 4096).await;
        let s = Scene::on(server).await;
        let alice = s.token(ALICE);
        let before = s.snapshot().await;
        let big = json!({ "org_name": "G".repeat(10 * 1024), "org_type": "Company" });
        let reply = s.server.post("/api/resource/Organization", &alice, &big).await;
        assert_refused(
            &reply,
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            &[&alice],
        );
        let reply = s
            .server
            .put(&format!("/api/resource/Organization/{}", s.alpha), &alice, &big)
            .await;
        assert_refused(
            &reply,
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            &[&alice],
        );
        // Just under the limit is still parsed (and refused only for its content).
        let fits = json!({ "org_name": "G".repeat(3000), "org_type": "Company" });
        let reply = s.server.post("/api/resource/Organization", &alice, &fits).await;
        assert_refused(&reply, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError", &[&alice]);
        assert_eq!(s.snapshot().await, before);
        s.stop().await;
    }
}

// ---------------------------------------------------------------------------- unknown things

dartwing_e2e::backend_tests! {
    async fn unknown_doctype_is_404_and_changes_nothing(db) {
        let s = Scene::new(db).await;
        let alice = s.token(ALICE);
        let before = s.snapshot().await;
        let body = json!({ "name": "Enterprise", "warp": 9 });
        let replies = [
            s.server.get("/api/resource/Spaceship", &alice).await,
            s.server.get("/api/resource/Spaceship/Enterprise", &alice).await,
            s.server.post("/api/resource/Spaceship", &alice, &body).await,
            s.server.put("/api/resource/Spaceship/Enterprise", &alice, &body).await,
            s.server.delete("/api/resource/Spaceship/Enterprise", &s.admin).await,
            s.server.get("/api/resource/organization", &alice).await,
        ];
        for reply in &replies {
            assert_refused(reply, StatusCode::NOT_FOUND, "DoesNotExistError", &[&alice]);
        }
        assert_eq!(s.snapshot().await, before);
        s.stop().await;
    }

    async fn unknown_route_is_404_json(db) {
        let s = Scene::new(db).await;
        let alice = s.token(ALICE);
        let before = s.snapshot().await;
        for path in [
            "/nope",
            "/api/resource",
            "/api/resource/Organization/x/y",
            "/api/method/frappe.auth.get_logged_user",
        ] {
            let reply = s.server.get(path, &alice).await;
            assert_refused(&reply, StatusCode::NOT_FOUND, "DoesNotExistError", &[&alice]);
            let reply = s.server.send(Method::GET, path, None, None).await;
            assert_refused(&reply, StatusCode::NOT_FOUND, "DoesNotExistError", &[]);
        }
        let reply = s
            .server
            .post("/api/v2/document/Organization", &alice, &json!({ "org_name": "x" }))
            .await;
        assert_refused(&reply, StatusCode::NOT_FOUND, "DoesNotExistError", &[&alice]);
        assert_eq!(s.snapshot().await, before);
        s.stop().await;
    }
}

// --------------------------------------------------------------------------- authentication

dartwing_e2e::backend_tests! {
    async fn expired_jwt_is_401_and_provisions_nobody(db) {
        let s = Scene::new(db).await;
        let before = s.snapshot().await;
        for email in ["newcomer@example.com", ALICE] {
            // Expired two minutes ago: well beyond the 30 s leeway.
            let token = hs256_signed_with(
                &json!({ "email": email, "iat": unix_now() - 900, "exp": unix_now() - 120 }),
                TEST_JWT_SECRET,
            );
            let reply = s.server.get("/api/resource/Organization", &token).await;
            assert_refused(&reply, StatusCode::UNAUTHORIZED, "AuthenticationError", &[&token]);
            let reply = s
                .server
                .post(
                    "/api/resource/Organization",
                    &token,
                    &json!({ "org_name": "x", "org_type": "Company" }),
                )
                .await;
            assert_refused(&reply, StatusCode::UNAUTHORIZED, "AuthenticationError", &[&token]);
        }
        assert_eq!(s.snapshot().await, before);
        assert!(
            s.server
                .app
                .tenancy
                .person_by_email("newcomer@example.com")
                .await
                .unwrap()
                .is_none()
        );
        s.stop().await;
    }

    async fn forged_jwt_is_401(db) {
        let s = Scene::new(db).await;
        let before = s.snapshot().await;
        let claims = json!({ "email": "mallory@example.com", "exp": unix_now() + 600,
                             "realm_access": { "roles": ["System Manager"] } });
        let other_secret = "another-secret-0123456789abcdef0123456789abcdef";
        let forged = hs256_signed_with(&claims, other_secret);
        // A genuine token whose payload is swapped for one claiming the administrator role.
        let genuine = s.token("mallory@example.com");
        let parts: Vec<&str> = genuine.split('.').collect();
        let tampered = format!("{}.{}.{}", parts[0], base64url(claims.to_string().as_bytes()), parts[2]);
        // A genuine token with its signature removed.
        let unsigned = format!("{}.{}.", parts[0], parts[1]);
        for token in [&forged, &tampered, &unsigned] {
            let reply = s.server.get("/api/resource/Organization", token).await;
            assert_refused(
                &reply,
                StatusCode::UNAUTHORIZED,
                "AuthenticationError",
                &[token, other_secret],
            );
            let reply = s
                .server
                .get(&format!("/api/resource/Organization/{}", s.beta), token)
                .await;
            assert_refused(
                &reply,
                StatusCode::UNAUTHORIZED,
                "AuthenticationError",
                &[token, other_secret],
            );
        }
        assert_eq!(s.snapshot().await, before);
        s.stop().await;
    }

    async fn alg_none_jwt_is_401(db) {
        let s = Scene::new(db).await;
        let before = s.snapshot().await;
        let claims = json!({ "email": ALICE, "iat": unix_now(), "exp": unix_now() + 600,
                             "realm_access": { "roles": ["System Manager"] } });
        let payload = base64url(claims.to_string().as_bytes());
        for header in [
            json!({ "alg": "none", "typ": "JWT" }),
            json!({ "alg": "None" }),
            json!({ "alg": "NONE", "typ": "JWT" }),
        ] {
            let token = format!("{}.{payload}.", base64url(header.to_string().as_bytes()));
            let reply = s
                .server
                .get(&format!("/api/resource/Organization/{}", s.beta), &token)
                .await;
            assert_refused(&reply, StatusCode::UNAUTHORIZED, "AuthenticationError", &[&token]);
            let reply = s
                .server
                .put(
                    &format!("/api/resource/Organization/{}", s.alpha),
                    &token,
                    &json!({ "org_name": "Owned" }),
                )
                .await;
            assert_refused(&reply, StatusCode::UNAUTHORIZED, "AuthenticationError", &[&token]);
        }
        assert_eq!(s.snapshot().await, before);
        s.stop().await;
    }

    async fn jwt_without_email_claim_is_401(db) {
        let s = Scene::new(db).await;
        let before = s.snapshot().await;
        let exp = unix_now() + 600;
        let claim_sets = [
            json!({ "sub": "1234", "exp": exp }),
            json!({ "email": "", "exp": exp }),
            json!({ "email": null, "exp": exp }),
            json!({ "email": 42, "exp": exp }),
            json!({ "email": "not-an-email", "exp": exp }),
            json!({ "preferred_username": ALICE, "exp": exp }),
        ];
        for claims in &claim_sets {
            let token = hs256_signed_with(claims, TEST_JWT_SECRET);
            let reply = s.server.get("/api/resource/Organization", &token).await;
            assert_refused(&reply, StatusCode::UNAUTHORIZED, "AuthenticationError", &[&token]);
        }
        // Without `exp` the token is refused too.
        let token = hs256_signed_with(&json!({ "email": ALICE }), TEST_JWT_SECRET);
        let reply = s.server.get("/api/resource/Organization", &token).await;
        assert_refused(&reply, StatusCode::UNAUTHORIZED, "AuthenticationError", &[&token]);
        assert_eq!(s.snapshot().await, before);
        s.stop().await;
    }

    async fn garbage_authorization_schemes_are_401(db) {
        let s = Scene::new(db).await;
        let valid = s.token(ALICE);
        let before = s.snapshot().await;
        let values = [
            format!("Basic {}", base64url(b"alice:password")),
            "Bearer".to_string(),
            "Bearer ".to_string(),
            "Bearer not.a.jwt".to_string(),
            "Bearer a.b".to_string(),
            format!("Bearer {valid} trailing"),
            format!("Bearer{valid}"),
            format!("Token{valid}"),
            format!("Digest {valid}"),
            valid.clone(),
            "token".to_string(),
            "token nocolon".to_string(),
            "token :".to_string(),
            "token key:".to_string(),
            "token :secret".to_string(),
            format!("token {}:{}", "k".repeat(100), "s".repeat(300)),
            "token ' OR '1'='1:' OR '1'='1".to_string(),
        ];
        for value in &values {
            let reply = s
                .server
                .send(Method::GET, "/api/resource/Organization", Some(value), None)
                .await;
            assert_refused(&reply, StatusCode::UNAUTHORIZED, "AuthenticationError", &[&valid]);
        }
        // No header at all, and a header that is not text.
        let reply = s
            .server
            .send(Method::GET, "/api/resource/Organization", None, None)
            .await;
        assert_refused(&reply, StatusCode::UNAUTHORIZED, "AuthenticationError", &[]);
        let binary = HeaderValue::from_bytes(b"Bearer \xff\xfe\xfd").expect("obs-text header");
        let reply = get_with_authorization(&s.server, "/api/resource/Organization", binary).await;
        assert_refused(&reply, StatusCode::UNAUTHORIZED, "AuthenticationError", &[]);
        // Writes are refused the same way.
        let reply = s
            .server
            .send(
                Method::POST,
                "/api/resource/Organization",
                Some("Basic Zm9vOmJhcg=="),
                Some(&json!({ "org_name": "x", "org_type": "Company" })),
            )
            .await;
        assert_refused(&reply, StatusCode::UNAUTHORIZED, "AuthenticationError", &[]);
        assert_eq!(s.snapshot().await, before);
        s.stop().await;
    }

    async fn wrong_api_secret_is_401(db) {
        let s = Scene::new(db).await;
        let key = s.server.app.tenancy.create_api_key(&system(), None, "t").await.unwrap();
        let good = format!("token {}:{}", key.api_key, key.api_secret);
        let reply = s
            .server
            .send(Method::GET, "/api/resource/Organization", Some(&good), None)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_private(&reply.text, &[&key.api_secret]);
        let before = s.snapshot().await;
        let wrong_secret = format!("{}x", key.api_secret);
        let values = [
            format!("token {}:{wrong_secret}", key.api_key),
            format!("token {}:{}", key.api_key, &key.api_secret[..key.api_secret.len() - 1]),
            format!("token {}:{}", key.api_key, key.api_secret.to_uppercase()),
            format!("token {}:{}", key.api_secret, key.api_key),
            format!("token unknownkey:{}", key.api_secret),
            format!("Bearer {}:{}", key.api_key, key.api_secret),
        ];
        for value in &values {
            let reply = s
                .server
                .send(Method::GET, "/api/resource/Organization", Some(value), None)
                .await;
            assert_refused(
                &reply,
                StatusCode::UNAUTHORIZED,
                "AuthenticationError",
                &[&key.api_secret, &wrong_secret],
            );
            let body = json!({ "org_name": "x", "org_type": "Company" });
            let reply = s
                .server
                .send(Method::POST, "/api/resource/Organization", Some(value), Some(&body))
                .await;
            assert_refused(
                &reply,
                StatusCode::UNAUTHORIZED,
                "AuthenticationError",
                &[&key.api_secret, &wrong_secret],
            );
        }
        assert_eq!(s.snapshot().await, before);
        s.stop().await;
    }

    async fn revoked_api_key_is_401(db) {
        let s = Scene::new(db).await;
        let key = s
            .server
            .app
            .tenancy
            .create_api_key(&system(), Some(&s.alpha), "t")
            .await
            .unwrap();
        let header = format!("token {}:{}", key.api_key, key.api_secret);
        let path = format!("/api/resource/Organization/{}", s.alpha);
        let reply = s.server.send(Method::GET, &path, Some(&header), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        s.server
            .app
            .tenancy
            .revoke_api_key(&system(), &key.api_key)
            .await
            .unwrap();
        let before = s.snapshot().await;
        let reply = s.server.send(Method::GET, &path, Some(&header), None).await;
        assert_refused(
            &reply,
            StatusCode::UNAUTHORIZED,
            "AuthenticationError",
            &[&key.api_secret],
        );
        let reply = s
            .server
            .send(
                Method::PUT,
                &path,
                Some(&header),
                Some(&json!({ "org_name": "Revoked" })),
            )
            .await;
        assert_refused(
            &reply,
            StatusCode::UNAUTHORIZED,
            "AuthenticationError",
            &[&key.api_secret],
        );
        assert_eq!(s.snapshot().await, before);
        s.stop().await;
    }
}

// ------------------------------------------------------------------------------ permissions

dartwing_e2e::backend_tests! {
    async fn member_of_one_org_cannot_read_another_org_403(db) {
        let s = Scene::new(db).await;
        s.server.add_member(&s.alpha, "carol@example.com", "Member").await;
        let before = s.snapshot().await;
        for email in [ALICE, "carol@example.com"] {
            let token = s.token(email);
            let reply = s
                .server
                .get(&format!("/api/resource/Organization/{}", s.beta), &token)
                .await;
            assert_refused(&reply, StatusCode::FORBIDDEN, "PermissionError", &[&token]);
            // The list shows only the caller's own organization.
            let reply = s.server.get("/api/resource/Organization", &token).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
            assert_eq!(reply.json()["data"], json!([{ "name": s.alpha }]));
        }
        assert_eq!(s.snapshot().await, before);
        s.stop().await;
    }

    async fn member_of_one_org_cannot_rename_another_org_403_and_it_is_unchanged(db) {
        let s = Scene::new(db).await;
        let alice = s.token(ALICE);
        let beta_before = s.read("Organization", &s.beta).await;
        let before = s.snapshot().await;
        let path = format!("/api/resource/Organization/{}", s.beta);
        let reply = s.server.put(&path, &alice, &json!({ "org_name": "Hijacked" })).await;
        assert_refused(&reply, StatusCode::FORBIDDEN, "PermissionError", &[&alice]);
        let reply = s
            .server
            .put(
                &path,
                &alice,
                &json!({ "name": s.beta, "org_name": "Hijacked", "status": "Suspended" }),
            )
            .await;
        assert_refused(&reply, StatusCode::FORBIDDEN, "PermissionError", &[&alice]);
        let reply = s.server.delete(&path, &alice).await;
        assert_refused(&reply, StatusCode::FORBIDDEN, "PermissionError", &[&alice]);
        assert_eq!(s.read("Organization", &s.beta).await, beta_before);
        assert_eq!(s.snapshot().await, before);
        s.stop().await;
    }

    async fn member_of_one_org_cannot_add_members_to_another_org_403(db) {
        let s = Scene::new(db).await;
        let alice = s.token(ALICE);
        let alice_person = s.server.app.tenancy.person_by_email(ALICE).await.unwrap().unwrap().name;
        let before = s.snapshot().await;
        for role in ["Guest", "Member", "Admin", "Owner"] {
            let body = json!({ "person": alice_person, "organization": s.beta, "role": role });
            let reply = s.server.post("/api/resource/Org%20Member", &alice, &body).await;
            assert_refused(&reply, StatusCode::FORBIDDEN, "PermissionError", &[&alice]);
        }
        assert_eq!(s.snapshot().await, before);
        s.stop().await;
    }

    async fn guest_cannot_change_org_settings_403(db) {
        let s = Scene::new(db).await;
        s.server.add_member(&s.alpha, "guest@example.com", "Guest").await;
        let guest = s.token("guest@example.com");
        let alpha_before = s.read("Organization", &s.alpha).await;
        let before = s.snapshot().await;
        let path = format!("/api/resource/Organization/{}", s.alpha);
        let reply = s.server.get(&path, &guest).await;
        assert_eq!(reply.status, StatusCode::OK, "a Guest can read: {}", reply.text);
        let reply = s.server.put(&path, &guest, &json!({ "org_name": "Guest House" })).await;
        assert_refused(&reply, StatusCode::FORBIDDEN, "PermissionError", &[&guest]);
        assert_eq!(s.read("Organization", &s.alpha).await, alpha_before);
        assert_eq!(s.snapshot().await, before);
        s.stop().await;
    }

    async fn admin_cannot_grant_owner_403(db) {
        let s = Scene::new(db).await;
        s.server.add_member(&s.alpha, "carol@example.com", "Admin").await;
        let dave_membership = s.server.add_member(&s.alpha, "dave@example.com", "Member").await;
        // Erin exists but is not a member yet.
        let reply = s
            .server
            .get("/api/resource/Organization", &s.token("erin@example.com"))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let erin = s
            .server
            .app
            .tenancy
            .person_by_email("erin@example.com")
            .await
            .unwrap()
            .unwrap()
            .name;
        let carol = s.token("carol@example.com");
        let before = s.snapshot().await;
        let body = json!({ "person": erin, "organization": s.alpha, "role": "Owner" });
        let reply = s.server.post("/api/resource/Org%20Member", &carol, &body).await;
        assert_refused(&reply, StatusCode::FORBIDDEN, "PermissionError", &[&carol]);
        let path = format!("/api/resource/Org%20Member/{dave_membership}");
        let reply = s.server.put(&path, &carol, &json!({ "role": "Owner" })).await;
        assert_refused(&reply, StatusCode::FORBIDDEN, "PermissionError", &[&carol]);
        assert_eq!(s.read("Org%20Member", &dave_membership).await["role"], "Member");
        assert_eq!(s.snapshot().await, before);
        s.stop().await;
    }

    async fn last_owner_cannot_be_demoted_422(db) {
        let s = Scene::new(db).await;
        let alice = s.token(ALICE);
        let membership = s.membership(&s.alpha, ALICE).await;
        let before = s.snapshot().await;
        let path = format!("/api/resource/Org%20Member/{membership}");
        for change in [
            json!({ "role": "Admin" }),
            json!({ "role": "Guest" }),
            json!({ "status": "Inactive" }),
        ] {
            let reply = s.server.put(&path, &alice, &change).await;
            assert_refused(&reply, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError", &[&alice]);
            // Not even a platform administrator may leave the organization without an Owner.
            let reply = s.server.put(&path, &s.admin, &change).await;
            assert_refused(&reply, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError", &[]);
        }
        let reply = s.server.delete(&path, &alice).await;
        assert_refused(&reply, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError", &[&alice]);
        let member = s.read("Org%20Member", &membership).await;
        assert_eq!(
            (&member["role"], &member["status"]),
            (&json!("Owner"), &json!("Active"))
        );
        assert_eq!(s.snapshot().await, before);
        s.stop().await;
    }
}

// -------------------------------------------------------------------------- business rules

dartwing_e2e::backend_tests! {
    async fn changing_org_type_is_422_and_changes_nothing(db) {
        let s = Scene::new(db).await;
        let alice = s.token(ALICE);
        let alpha_before = s.read("Organization", &s.alpha).await;
        let before = s.snapshot().await;
        let path = format!("/api/resource/Organization/{}", s.alpha);
        let reply = s.server.put(&path, &alice, &json!({ "org_type": "Family" })).await;
        assert_refused(&reply, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError", &[&alice]);
        // Together with an allowed change, nothing of it is applied.
        let reply = s
            .server
            .put(
                &path,
                &alice,
                &json!({ "org_name": "Alpha Family", "org_type": "Family" }),
            )
            .await;
        assert_refused(&reply, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError", &[&alice]);
        let reply = s.server.put(&path, &s.admin, &json!({ "org_type": "Nonprofit" })).await;
        assert_refused(&reply, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError", &[]);
        assert_eq!(s.read("Organization", &s.alpha).await, alpha_before);
        assert_eq!(s.snapshot().await, before);
        s.stop().await;
    }

    async fn duplicate_member_is_409_and_changes_nothing(db) {
        let s = Scene::new(db).await;
        s.server.add_member(&s.alpha, "carol@example.com", "Member").await;
        let carol = s
            .server
            .app
            .tenancy
            .person_by_email("carol@example.com")
            .await
            .unwrap()
            .unwrap()
            .name;
        let alice_person = s.server.app.tenancy.person_by_email(ALICE).await.unwrap().unwrap().name;
        let before = s.snapshot().await;
        for (person, role) in [(&carol, "Member"), (&carol, "Admin"), (&alice_person, "Member")] {
            let body = json!({ "person": person, "organization": s.alpha, "role": role });
            let reply = s.server.post("/api/resource/Org%20Member", &s.admin, &body).await;
            assert_refused(&reply, StatusCode::CONFLICT, "DuplicateEntryError", &[]);
            let reply = s
                .server
                .post("/api/resource/Org%20Member", &s.token(ALICE), &body)
                .await;
            assert_refused(&reply, StatusCode::CONFLICT, "DuplicateEntryError", &[]);
        }
        assert_eq!(s.snapshot().await, before);
        s.stop().await;
    }

    async fn duplicate_person_email_differing_in_case_is_409(db) {
        let s = Scene::new(db).await;
        let reply = s
            .server
            .post(
                "/api/resource/Person",
                &s.admin,
                &json!({ "primary_email": "frank@example.com" }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let before = s.snapshot().await;
        for email in [
            "Frank@Example.com",
            "FRANK@EXAMPLE.COM",
            " frank@example.com ",
            "ALICE@example.com",
        ] {
            let reply = s
                .server
                .post("/api/resource/Person", &s.admin, &json!({ "primary_email": email }))
                .await;
            assert_refused(&reply, StatusCode::CONFLICT, "DuplicateEntryError", &[]);
        }
        assert_eq!(s.snapshot().await, before);
        s.stop().await;
    }

    async fn invalid_filters_are_4xx_and_change_nothing(db) {
        let s = Scene::new(db).await;
        let alice = s.token(ALICE);
        let before = s.snapshot().await;
        // Unparsable or mis-shaped parameters are 400; well-formed ones naming an unknown field
        // or operator break a rule of the DocType and are 422.
        let encoded = |text: &str| urlencoding::encode(text).into_owned();
        let bad_request = (StatusCode::BAD_REQUEST, "BadRequestError");
        let invalid = (StatusCode::UNPROCESSABLE_ENTITY, "ValidationError");
        let cases = [
            ("filters=not-json".to_string(), bad_request),
            (format!("filters={}", encoded(r#"[["org_name"]]"#)), bad_request),
            ("filters=42".to_string(), bad_request),
            ("fields=not-json".to_string(), bad_request),
            (
                format!("order_by={}", encoded("name; drop table organization")),
                bad_request,
            ),
            (format!("filters={}", encoded(r#"[["colour","=","red"]]"#)), invalid),
            (format!("filters={}", encoded(r#"{"password":"x"}"#)), invalid),
            (format!("filters={}", encoded(r#"[["name","~~","x"]]"#)), invalid),
            (
                format!(
                    "filters={}",
                    encoded(r#"[["name","; drop table organization; --","x"]]"#)
                ),
                invalid,
            ),
            (format!("fields={}", encoded(r#"["secret_sha256"]"#)), invalid),
            ("order_by=colour".to_string(), invalid),
        ];
        for (query, (status, exc_type)) in &cases {
            for doctype in ["Organization", "Person", "Org%20Member"] {
                let reply = s.server.get(&format!("/api/resource/{doctype}?{query}"), &alice).await;
                assert!(reply.status.is_client_error(), "{doctype}?{query}: {}", reply.status);
                assert_refused(&reply, *status, exc_type, &[&alice]);
            }
        }
        assert_eq!(s.snapshot().await, before);
        s.stop().await;
    }

    async fn negative_limit_start_is_400(db) {
        let s = Scene::new(db).await;
        let alice = s.token(ALICE);
        let before = s.snapshot().await;
        for query in [
            "limit_start=-1",
            "limit_start=-9223372036854775808",
            "limit_page_length=-5",
            "limit=-1",
            "limit_start=abc",
        ] {
            let reply = s
                .server
                .get(&format!("/api/resource/Organization?{query}"), &alice)
                .await;
            assert_refused(&reply, StatusCode::BAD_REQUEST, "BadRequestError", &[&alice]);
        }
        assert_eq!(s.snapshot().await, before);
        s.stop().await;
    }

    async fn put_that_renames_is_422_and_changes_nothing(db) {
        let s = Scene::new(db).await;
        let alice = s.token(ALICE);
        let membership = s.membership(&s.alpha, ALICE).await;
        let alice_person = s.server.app.tenancy.person_by_email(ALICE).await.unwrap().unwrap().name;
        let before = s.snapshot().await;
        let renames = [
            (
                format!("Organization/{}", s.alpha),
                json!({ "name": "ORG-RENAMED", "org_name": "Renamed" }),
            ),
            (format!("Organization/{}", s.alpha), json!({ "name": s.beta })),
            (
                format!("Person/{alice_person}"),
                json!({ "name": "PERS-RENAMED", "full_name": "Alice" }),
            ),
            (
                format!("Org%20Member/{membership}"),
                json!({ "name": "MEM-RENAMED", "role": "Owner" }),
            ),
        ];
        for (path, body) in &renames {
            let reply = s.server.put(&format!("/api/resource/{path}"), &alice, body).await;
            assert_refused(&reply, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError", &[&alice]);
        }
        assert_eq!(s.read("Organization", &s.alpha).await["org_name"], "Alpha");
        assert_eq!(s.snapshot().await, before);
        s.stop().await;
    }

    async fn deleting_an_organization_with_members_is_409_link_exists(db) {
        let s = Scene::new(db).await;
        let alpha_before = s.read("Organization", &s.alpha).await;
        let before = s.snapshot().await;
        let reply = s
            .server
            .delete(&format!("/api/resource/Organization/{}", s.alpha), &s.admin)
            .await;
        assert_refused(&reply, StatusCode::CONFLICT, "LinkExistsError", &[]);
        assert_eq!(s.read("Organization", &s.alpha).await, alpha_before);
        assert_eq!(s.snapshot().await, before);
        s.stop().await;
    }
}
