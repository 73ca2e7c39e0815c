//! Authentication end to end: RS256/ES256 tokens verified against a real JWKS endpoint (served
//! by the test over HTTP, with test-only keys from `tests/fixtures`), key rotation, issuer,
//! audience and time checks, the administrator role claim, just-in-time provisioning, inactive
//! people, and API keys. Each scenario runs on SQLite and, when configured, PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use dartwing_core::Principal;
use dartwing_core::config::Config;
use dartwing_e2e::tokens::{hs256, unix_now, with_claim};
use dartwing_e2e::{Reply, TEST_JWT_SECRET, TestDatabase, TestServer, scenario};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// ------------------------------------------------------------------------------------ helpers

const RSA_PRIVATE_PEM: &str = include_str!("fixtures/rsa-private.pem");
const EC_PRIVATE_PEM: &str = include_str!("fixtures/ec-private.pem");
const JWKS: &str = include_str!("fixtures/jwks.json");
const RSA_KID: &str = "test-rsa-1";
const EC_KID: &str = "test-ec-1";

const ISSUER: &str = "https://idp.example.com/realms/dartwing";
const AUDIENCE: &str = "dartwing-core";

/// How long the server waits before it refetches the JWKS for an unknown key id
/// (`JwksCache::MIN_REFETCH` in dartwing-http), plus a margin.
const REFETCH_WAIT: Duration = Duration::from_millis(5_500);

/// The fixture key set: both keys.
fn fixture_jwks() -> Value {
    serde_json::from_str(JWKS).expect("fixture JWKS")
}

/// The fixture key set with only the key `kid`.
fn jwks_with_only(kid: &str) -> Value {
    let keys: Vec<Value> = fixture_jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["kid"] == kid)
        .cloned()
        .collect();
    assert_eq!(keys.len(), 1);
    json!({ "keys": keys })
}

/// A JWKS endpoint on 127.0.0.1 whose key set the test can change, counting fetches.
struct JwksServer {
    url: String,
    keys: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct JwksState {
    keys: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
}

async fn serve_jwks(keys: Value) -> JwksServer {
    async fn certs(State(state): State<JwksState>) -> Json<Value> {
        state.fetches.fetch_add(1, Ordering::SeqCst);
        Json(state.keys.lock().unwrap().clone())
    }
    let state = JwksState {
        keys: Arc::new(Mutex::new(keys)),
        fetches: Arc::new(AtomicUsize::new(0)),
    };
    let app = axum::Router::new()
        .route("/protocol/openid-connect/certs", get(certs))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind JWKS server");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    JwksServer {
        url: format!("http://{addr}/protocol/openid-connect/certs"),
        keys: state.keys,
        fetches: state.fetches,
    }
}

impl JwksServer {
    fn set(&self, keys: Value) {
        *self.keys.lock().unwrap() = keys;
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// A JWKS endpoint serving `keys` and a server using it, with further configuration by `adjust`.
async fn start_with_jwks(db: &TestDatabase, keys: Value, adjust: impl FnOnce(&mut Config)) -> (TestServer, JwksServer) {
    let jwks = serve_jwks(keys).await;
    let url = jwks.url.clone();
    let server = TestServer::start_with(db, move |c| {
        c.auth.jwks_url = Some(url);
        adjust(c);
    })
    .await;
    (server, jwks)
}

/// Claims of a token for `email`, valid for ten minutes.
fn claims(email: &str) -> Value {
    json!({ "email": email, "iat": unix_now(), "exp": unix_now() + 600 })
}

fn sign(alg: Algorithm, kid: &str, claims: &Value, key: &EncodingKey) -> String {
    let header = Header {
        kid: Some(kid.to_string()),
        ..Header::new(alg)
    };
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}

/// An RS256 token with the fixture RSA key, named `kid`.
fn rs256(kid: &str, claims: &Value) -> String {
    sign(
        Algorithm::RS256,
        kid,
        claims,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM.as_bytes()).expect("RSA key"),
    )
}

/// An ES256 token with the fixture P-256 key, named `kid`.
fn es256(kid: &str, claims: &Value) -> String {
    sign(
        Algorithm::ES256,
        kid,
        claims,
        &EncodingKey::from_ec_pem(EC_PRIVATE_PEM.as_bytes()).expect("EC key"),
    )
}

/// Asserts a refusal: status, `exc_type`, and a body without secrets, key material or internals.
fn assert_refused(reply: &Reply, status: StatusCode, exc_type: &str) {
    scenario::assert_refused(reply, status, exc_type, &["PRIVATE KEY"]);
}

fn assert_ok(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

const LIST: &str = "/api/resource/Organization";

fn org_path(org: &str) -> String {
    format!("/api/resource/Organization/{org}")
}

async fn api_key(server: &TestServer, organization: Option<&str>) -> String {
    let key = server
        .app
        .tenancy
        .create_api_key(&Principal::system("test"), organization, "t")
        .await
        .expect("key");
    format!("token {}:{}", key.api_key, key.api_secret)
}

/// GET with `Authorization` set to `credentials` as given (e.g. `token <key>:<secret>`).
async fn get_as(server: &TestServer, credentials: &str, path: &str) -> Reply {
    server.send(Method::GET, path, Some(credentials), None).await
}

// ------------------------------------------------------------------------------------- JWKS

dartwing_e2e::backend_tests! {
    async fn rs256_token_with_known_kid_is_accepted(db) {
        let (server, jwks) = start_with_jwks(db, fixture_jwks(), |_| {}).await;
        let token = rs256(
            RSA_KID,
            &with_claim(claims("rsa.user@example.com"), "name", json!("Rsa User")),
        );
        let reply = server.get(LIST, &token).await;
        assert_ok(&reply);
        assert_eq!(reply.json()["data"], json!([]));
        let person = server
            .app
            .tenancy
            .person_by_email("rsa.user@example.com")
            .await
            .unwrap()
            .expect("provisioned");
        assert_eq!(person.full_name, "Rsa User");
        // The key set is cached: more requests, no more fetches.
        for _ in 0..3 {
            assert_ok(&server.get(LIST, &token).await);
        }
        assert_eq!(jwks.fetches(), 1);
        server.stop().await;
    }

    async fn es256_token_with_known_kid_is_accepted(db) {
        let (server, _jwks) = start_with_jwks(db, fixture_jwks(), |_| {}).await;
        let token = es256(EC_KID, &claims("ec.user@example.com"));
        assert_ok(&server.get(LIST, &token).await);
        let org = server
            .post(LIST, &token, &json!({ "org_name": "Curve", "org_type": "Company" }))
            .await;
        assert_ok(&org);
        assert_eq!(org.json()["data"]["owner"], "ec.user@example.com");
        server.stop().await;
    }

    async fn unknown_kid_is_401(db) {
        let (server, jwks) = start_with_jwks(db, fixture_jwks(), |_| {}).await;
        let token = rs256("no-such-key", &claims("someone@example.com"));
        assert_refused(
            &server.get(LIST, &token).await,
            StatusCode::UNAUTHORIZED,
            "AuthenticationError",
        );
        assert_eq!(jwks.fetches(), 1, "an empty cache is filled once");
        // Without any kid the token cannot be matched to a key either.
        let header = Header::new(Algorithm::RS256);
        let key = EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM.as_bytes()).unwrap();
        let no_kid = jsonwebtoken::encode(&header, &claims("someone@example.com"), &key).unwrap();
        assert_refused(
            &server.get(LIST, &no_kid).await,
            StatusCode::UNAUTHORIZED,
            "AuthenticationError",
        );
        assert!(
            server
                .app
                .tenancy
                .person_by_email("someone@example.com")
                .await
                .unwrap()
                .is_none()
        );
        server.stop().await;
    }

    async fn unknown_kids_do_not_flood_the_jwks_endpoint(db) {
        let (server, jwks) = start_with_jwks(db, fixture_jwks(), |_| {}).await;
        assert_ok(&server.get(LIST, &rs256(RSA_KID, &claims("user@example.com"))).await);
        assert_eq!(jwks.fetches(), 1);
        for i in 0..20 {
            let token = rs256(&format!("forged-{i}"), &claims("user@example.com"));
            assert_refused(
                &server.get(LIST, &token).await,
                StatusCode::UNAUTHORIZED,
                "AuthenticationError",
            );
        }
        // At most one refetch per interval (one more if this machine is slow enough to cross it).
        assert!(jwks.fetches() <= 2, "{} fetches for 20 unknown key ids", jwks.fetches());
        server.stop().await;
    }

    async fn key_rotation_is_picked_up_by_refetching_on_an_unknown_kid(db) {
        let (server, jwks) = start_with_jwks(db, jwks_with_only(RSA_KID), |_| {}).await;
        assert_ok(&server.get(LIST, &rs256(RSA_KID, &claims("user@example.com"))).await);
        assert_eq!(jwks.fetches(), 1);

        // The identity provider rotates in a new key after the server has cached the first set.
        jwks.set(fixture_jwks());
        // Refetches are rate-limited; let the interval pass so the unknown kid triggers one.
        tokio::time::sleep(REFETCH_WAIT).await;
        let rotated = es256(EC_KID, &claims("user@example.com"));
        assert_ok(&server.get(LIST, &rotated).await);
        assert_eq!(jwks.fetches(), 2, "the unknown kid caused exactly one refetch");
        // Both keys are now cached.
        assert_ok(&server.get(LIST, &rotated).await);
        assert_ok(&server.get(LIST, &rs256(RSA_KID, &claims("user@example.com"))).await);
        assert_eq!(jwks.fetches(), 2);
        server.stop().await;
    }

    async fn rs256_token_without_jwks_url_is_401(db) {
        let server = TestServer::start(db).await;
        assert!(server.app.config.auth.jwks_url.is_none());
        for token in [
            rs256(RSA_KID, &claims("user@example.com")),
            es256(EC_KID, &claims("user@example.com")),
        ] {
            assert_refused(
                &server.get(LIST, &token).await,
                StatusCode::UNAUTHORIZED,
                "AuthenticationError",
            );
        }
        assert!(
            server
                .app
                .tenancy
                .person_by_email("user@example.com")
                .await
                .unwrap()
                .is_none()
        );
        server.stop().await;
    }

    async fn hs256_still_works_next_to_jwks(db) {
        let (server, _jwks) = start_with_jwks(db, fixture_jwks(), |_| {}).await;
        assert_ok(&server.get(LIST, &hs256(&claims("hs.user@example.com"))).await);
        assert_ok(&server.get(LIST, &server.token("hs.user@example.com")).await);
        server.stop().await;
    }

    async fn algorithm_confusion_is_401(db) {
        let (server, _jwks) = start_with_jwks(db, fixture_jwks(), |_| {}).await;
        let user = claims("user@example.com");
        // RSA signature under the EC key's id, and the other way round.
        assert_refused(
            &server.get(LIST, &rs256(EC_KID, &user)).await,
            StatusCode::UNAUTHORIZED,
            "AuthenticationError",
        );
        assert_refused(
            &server.get(LIST, &es256(RSA_KID, &user)).await,
            StatusCode::UNAUTHORIZED,
            "AuthenticationError",
        );
        // HS256 "signed" with the public key as the HMAC secret, naming the RSA key.
        let public_pem = include_str!("fixtures/rsa-public.pem");
        let confused = sign(
            Algorithm::HS256,
            RSA_KID,
            &user,
            &EncodingKey::from_secret(public_pem.as_bytes()),
        );
        assert_refused(
            &server.get(LIST, &confused).await,
            StatusCode::UNAUTHORIZED,
            "AuthenticationError",
        );
        // Algorithms the server does not accept at all.
        let rs512 = sign(
            Algorithm::RS512,
            RSA_KID,
            &user,
            &EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM.as_bytes()).unwrap(),
        );
        assert_refused(
            &server.get(LIST, &rs512).await,
            StatusCode::UNAUTHORIZED,
            "AuthenticationError",
        );
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &user,
            &EncodingKey::from_secret(TEST_JWT_SECRET.as_bytes()),
        )
        .unwrap();
        assert_refused(
            &server.get(LIST, &hs512).await,
            StatusCode::UNAUTHORIZED,
            "AuthenticationError",
        );
        server.stop().await;
    }
}

// ------------------------------------------------------------------- issuer, audience, time

async fn start_with_issuer_and_audience(db: &TestDatabase) -> (TestServer, JwksServer) {
    start_with_jwks(db, fixture_jwks(), |c| {
        c.auth.issuer = Some(ISSUER.into());
        c.auth.audience = Some(AUDIENCE.into());
    })
    .await
}

fn idp_claims(email: &str) -> Value {
    with_claim(with_claim(claims(email), "iss", json!(ISSUER)), "aud", json!(AUDIENCE))
}

dartwing_e2e::backend_tests! {
    async fn wrong_issuer_is_401(db) {
        let (server, _jwks) = start_with_issuer_and_audience(db).await;
        for iss in [
            json!("https://evil.example.com/realms/dartwing"),
            json!(""),
            json!(format!("{ISSUER}/")),
            json!(["https://evil.example.com"]),
        ] {
            let token = rs256(RSA_KID, &with_claim(idp_claims("user@example.com"), "iss", iss));
            assert_refused(
                &server.get(LIST, &token).await,
                StatusCode::UNAUTHORIZED,
                "AuthenticationError",
            );
            let token = hs256(&with_claim(
                idp_claims("user@example.com"),
                "iss",
                json!("https://evil.example.com"),
            ));
            assert_refused(
                &server.get(LIST, &token).await,
                StatusCode::UNAUTHORIZED,
                "AuthenticationError",
            );
        }
        server.stop().await;
    }

    async fn wrong_audience_is_401(db) {
        let (server, _jwks) = start_with_issuer_and_audience(db).await;
        for aud in [json!("account"), json!(""), json!(["account", "broker"])] {
            let token = rs256(RSA_KID, &with_claim(idp_claims("user@example.com"), "aud", aud.clone()));
            assert_refused(
                &server.get(LIST, &token).await,
                StatusCode::UNAUTHORIZED,
                "AuthenticationError",
            );
            let token = es256(EC_KID, &with_claim(idp_claims("user@example.com"), "aud", aud));
            assert_refused(
                &server.get(LIST, &token).await,
                StatusCode::UNAUTHORIZED,
                "AuthenticationError",
            );
        }
        server.stop().await;
    }

    async fn missing_issuer_or_audience_is_401_when_configured(db) {
        let (server, _jwks) = start_with_issuer_and_audience(db).await;
        for missing in ["iss", "aud"] {
            let mut claims = idp_claims("user@example.com");
            claims.as_object_mut().unwrap().remove(missing);
            assert_refused(
                &server.get(LIST, &rs256(RSA_KID, &claims)).await,
                StatusCode::UNAUTHORIZED,
                "AuthenticationError",
            );
            assert_refused(
                &server.get(LIST, &hs256(&claims)).await,
                StatusCode::UNAUTHORIZED,
                "AuthenticationError",
            );
        }
        assert!(
            server
                .app
                .tenancy
                .person_by_email("user@example.com")
                .await
                .unwrap()
                .is_none()
        );
        server.stop().await;
    }

    async fn right_issuer_and_audience_are_accepted(db) {
        let (server, _jwks) = start_with_issuer_and_audience(db).await;
        assert_ok(&server.get(LIST, &rs256(RSA_KID, &idp_claims("user@example.com"))).await);
        assert_ok(&server.get(LIST, &es256(EC_KID, &idp_claims("user@example.com"))).await);
        // An audience list that includes this service is accepted.
        let listed = with_claim(idp_claims("user@example.com"), "aud", json!(["account", AUDIENCE]));
        assert_ok(&server.get(LIST, &rs256(RSA_KID, &listed)).await);
        // Development tokens carry the configured issuer and audience.
        assert_ok(&server.get(LIST, &server.token("user@example.com")).await);
        server.stop().await;
    }

    async fn nbf_in_the_future_is_401(db) {
        let (server, _jwks) = start_with_jwks(db, fixture_jwks(), |_| {}).await;
        // Ten minutes ahead: far beyond the 30 s leeway.
        let future = with_claim(claims("early@example.com"), "nbf", json!(unix_now() + 600));
        for token in [rs256(RSA_KID, &future), es256(EC_KID, &future), hs256(&future)] {
            assert_refused(
                &server.get(LIST, &token).await,
                StatusCode::UNAUTHORIZED,
                "AuthenticationError",
            );
        }
        assert!(
            server
                .app
                .tenancy
                .person_by_email("early@example.com")
                .await
                .unwrap()
                .is_none()
        );
        // Within the leeway a small clock skew is tolerated.
        let skewed = with_claim(claims("early@example.com"), "nbf", json!(unix_now() + 5));
        assert_ok(&server.get(LIST, &rs256(RSA_KID, &skewed)).await);
        server.stop().await;
    }
}

// ------------------------------------------------------------------------ roles and people

dartwing_e2e::backend_tests! {
    async fn admin_role_claim_reads_any_organization_while_the_same_user_without_it_gets_403(db) {
        let (server, _jwks) = start_with_jwks(db, fixture_jwks(), |_| {}).await;
        let org = server.create_org("owner@example.com", "Private").await;
        let operator = "operator@example.com";
        let admin = rs256(
            RSA_KID,
            &with_claim(
                claims(operator),
                "realm_access",
                json!({ "roles": ["offline_access", "System Manager"] }),
            ),
        );
        assert_ok(&server.get(&org_path(&org), &admin).await);
        let list = server.get(LIST, &admin).await;
        assert_ok(&list);
        assert_eq!(list.json()["data"], json!([{ "name": org }]));

        let plain = [
            rs256(RSA_KID, &claims(operator)),
            rs256(
                RSA_KID,
                &with_claim(claims(operator), "realm_access", json!({ "roles": ["offline_access"] })),
            ),
            // The role elsewhere than the configured claim path, or spelled differently.
            rs256(RSA_KID, &with_claim(claims(operator), "roles", json!(["System Manager"]))),
            rs256(
                RSA_KID,
                &with_claim(claims(operator), "realm_access", json!({ "roles": "System Manager" })),
            ),
            rs256(
                RSA_KID,
                &with_claim(claims(operator), "realm_access", json!({ "roles": ["system manager"] })),
            ),
        ];
        for token in &plain {
            assert_refused(
                &server.get(&org_path(&org), token).await,
                StatusCode::FORBIDDEN,
                "PermissionError",
            );
            let list = server.get(LIST, token).await;
            assert_ok(&list);
            assert_eq!(list.json()["data"], json!([]));
        }
        server.stop().await;
    }

    async fn twenty_concurrent_first_requests_provision_exactly_one_person(db) runtime(flavor = "multi_thread", worker_threads = 4) {
        let (server, _jwks) = start_with_jwks(db, fixture_jwks(), |_| {}).await;
        let email = "newcomer@example.com";
        // The same person, with the email in varying case, by RS256, ES256 and HS256 tokens.
        let tokens: Vec<String> = (0..20)
            .map(|i| {
                let spelled = if i % 2 == 0 {
                    email.to_string()
                } else {
                    email.to_uppercase()
                };
                match i % 3 {
                    0 => rs256(RSA_KID, &claims(&spelled)),
                    1 => es256(EC_KID, &claims(&spelled)),
                    _ => hs256(&claims(&spelled)),
                }
            })
            .collect();
        let replies = futures::future::join_all(
            tokens
                .iter()
                .map(|t| server.get("/api/resource/Person?fields=[\"name\"]", t)),
        )
        .await;
        for reply in &replies {
            assert_ok(reply);
        }
        let person = server
            .app
            .tenancy
            .person_by_email(email)
            .await
            .unwrap()
            .expect("provisioned");
        // Every request saw the same, single Person.
        for reply in &replies {
            assert_eq!(reply.json()["data"], json!([{ "name": person.name }]));
        }
        let filters = urlencoding::encode(r#"[["primary_email","like","%newcomer%"]]"#).into_owned();
        let people = server
            .get(
                &format!("/api/resource/Person?filters={filters}&fields=[\"name\",\"primary_email\"]"),
                &server.admin_token("root@example.com"),
            )
            .await;
        assert_ok(&people);
        assert_eq!(
            people.json()["data"],
            json!([{ "name": person.name, "primary_email": email }])
        );
        server.stop().await;
    }

    async fn inactive_person_is_403(db) {
        let (server, _jwks) = start_with_jwks(db, fixture_jwks(), |_| {}).await;
        let org = server.create_org("leaver@example.com", "Leaving").await;
        let person = server
            .app
            .tenancy
            .person_by_email("leaver@example.com")
            .await
            .unwrap()
            .unwrap()
            .name;
        let admin = server.admin_token("root@example.com");
        let reply = server
            .put(
                &format!("/api/resource/Person/{person}"),
                &admin,
                &json!({ "status": "Inactive" }),
            )
            .await;
        assert_ok(&reply);
        assert_eq!(reply.json()["data"]["status"], "Inactive");

        for token in [
            server.token("leaver@example.com"),
            rs256(RSA_KID, &claims("leaver@example.com")),
        ] {
            assert_refused(
                &server.get(LIST, &token).await,
                StatusCode::FORBIDDEN,
                "PermissionError",
            );
            assert_refused(
                &server.get(&org_path(&org), &token).await,
                StatusCode::FORBIDDEN,
                "PermissionError",
            );
            let reply = server
                .put(&org_path(&org), &token, &json!({ "org_name": "Still mine" }))
                .await;
            assert_refused(&reply, StatusCode::FORBIDDEN, "PermissionError");
            let reply = server
                .post(LIST, &token, &json!({ "org_name": "New", "org_type": "Company" }))
                .await;
            assert_refused(&reply, StatusCode::FORBIDDEN, "PermissionError");
        }
        assert_eq!(
            server.get(&org_path(&org), &admin).await.json()["data"]["org_name"],
            "Leaving"
        );
        server.stop().await;
    }
}

// ------------------------------------------------------------------------------- API keys

dartwing_e2e::backend_tests! {
    async fn org_scoped_api_key_reads_only_its_org_and_a_system_key_reads_all(db) {
        let server = TestServer::start(db).await;
        let a = server.create_org("a@example.com", "A").await;
        let b = server.create_org("b@example.com", "B").await;
        let scoped = api_key(&server, Some(&a)).await;
        let system = api_key(&server, None).await;
        assert_ok(&get_as(&server, &scoped, &org_path(&a)).await);
        assert_refused(
            &get_as(&server, &scoped, &org_path(&b)).await,
            StatusCode::FORBIDDEN,
            "PermissionError",
        );
        let list = get_as(&server, &scoped, LIST).await;
        assert_ok(&list);
        assert_eq!(list.json()["data"], json!([{ "name": a }]));
        let reply = server
            .send(
                Method::PUT,
                &org_path(&b),
                Some(&scoped),
                Some(&json!({ "org_name": "Taken" })),
            )
            .await;
        assert_refused(&reply, StatusCode::FORBIDDEN, "PermissionError");

        assert_ok(&get_as(&server, &system, &org_path(&a)).await);
        assert_ok(&get_as(&server, &system, &org_path(&b)).await);
        let list = get_as(&server, &system, &format!("{LIST}?order_by=name%20asc")).await;
        assert_ok(&list);
        let mut expected = [a.clone(), b.clone()];
        expected.sort();
        assert_eq!(
            list.json()["data"],
            json!([{ "name": expected[0] }, { "name": expected[1] }])
        );
        let admin = server.admin_token("root@example.com");
        assert_eq!(server.get(&org_path(&b), &admin).await.json()["data"]["org_name"], "B");
        server.stop().await;
    }

    async fn org_scoped_api_key_cannot_create_organizations(db) {
        let server = TestServer::start(db).await;
        let a = server.create_org("a@example.com", "A").await;
        let scoped = api_key(&server, Some(&a)).await;
        let body = json!({ "org_name": "Spawned", "org_type": "Company" });
        let reply = server.send(Method::POST, LIST, Some(&scoped), Some(&body)).await;
        assert_refused(&reply, StatusCode::FORBIDDEN, "PermissionError");
        let system = api_key(&server, None).await;
        let list = server.send(Method::GET, LIST, Some(&system), None).await;
        assert_eq!(list.json()["data"], json!([{ "name": a }]), "nothing was created");
        // A system key may create one (and, not being a person, owns no membership of it).
        let reply = server.send(Method::POST, LIST, Some(&system), Some(&body)).await;
        assert_ok(&reply);
        server.stop().await;
    }
}
