//! Integration token vault (SPEC §6), on SQLite and PostgreSQL, against a real OAuth2 token
//! endpoint and a real SMTP sink served by the test.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use axum::extract::{Form, State};
use axum::http::StatusCode as AxumStatus;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use dartwing_core::Principal;
use dartwing_core::config::{Config, ProviderConfig, Roles};
use dartwing_core::publish::Target;
use dartwing_db::Backend;
use dartwing_e2e::smtp::SmtpSink;
use dartwing_e2e::{RecordingPublisher, TestDatabase, TestServer};
use dartwing_integrations::keyring::{KeyRing, generate_key};
use dartwing_integrations::{TokenGrant, TokenVault};
use dartwing_jobs::HandlerRegistry;
use reqwest::StatusCode;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const GET_TOKEN: &str = "/api/method/dartwing_core.integrations.get_access_token";
const CONNECT: &str = "/api/method/dartwing_core.integrations.connect";
const CALLBACK: &str = "/api/method/dartwing_core.integrations.callback";
const DISCONNECT: &str = "/api/method/dartwing_core.integrations.disconnect";
const STATUS: &str = "/api/method/dartwing_core.integrations.status";
const PROVIDER: &str = "Acme";

// ---------------------------------------------------------------- log capture

/// Every log line of this test binary (installed once), to prove no token is ever logged.
fn captured_logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let _ = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || LogWriter(writer.clone()))
            .try_init();
        buffer
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------- fake OAuth2 provider

/// How the fake provider answers refreshes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// New access token; same refresh token.
    Ok,
    /// New access token and a rotated refresh token.
    Rotate,
    /// `{"error": "invalid_grant"}` (400).
    InvalidGrant,
    /// 503 with an HTML body.
    ServerError,
}

#[derive(Default)]
struct ProviderState {
    mode: Option<Mode>,
    delay_ms: u64,
    refreshes: u32,
    exchanges: Vec<HashMap<String, String>>,
    revocations: Vec<String>,
    refresh_tokens_seen: Vec<String>,
    issued: Vec<String>,
    counter: u32,
}

#[derive(Clone)]
struct FakeProvider {
    base: String,
    state: Arc<Mutex<ProviderState>>,
}

impl FakeProvider {
    async fn start() -> Self {
        let state = Arc::new(Mutex::new(ProviderState {
            mode: Some(Mode::Ok),
            ..Default::default()
        }));
        let app = axum::Router::new()
            .route("/token", post(token_endpoint))
            .route("/revoke", post(revoke_endpoint))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base, state }
    }

    fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = Some(mode);
    }

    fn set_delay(&self, ms: u64) {
        self.state.lock().unwrap().delay_ms = ms;
    }

    fn refreshes(&self) -> u32 {
        self.state.lock().unwrap().refreshes
    }

    /// Every token this provider ever issued (plaintext, to search for elsewhere).
    fn issued(&self) -> Vec<String> {
        self.state.lock().unwrap().issued.clone()
    }

    fn config(&self) -> ProviderConfig {
        ProviderConfig {
            auth_url: Some(format!("{}/authorize", self.base)),
            token_url: Some(format!("{}/token", self.base)),
            revoke_url: Some(format!("{}/revoke", self.base)),
            client_id: "client-1".into(),
            client_secret: Some("client-secret-1".into()),
            scopes: Some(vec!["read".into(), "write".into()]),
            ..Default::default()
        }
    }
}

fn mint(state: &mut ProviderState, kind: &str) -> String {
    state.counter += 1;
    let token = format!("{kind}-{}-{}", state.counter, dartwing_e2e::unique("secret"));
    state.issued.push(token.clone());
    token
}

async fn token_endpoint(
    State(state): State<Arc<Mutex<ProviderState>>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let delay = state.lock().unwrap().delay_ms;
    if delay > 0 && form.get("grant_type").map(String::as_str) == Some("refresh_token") {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let mut s = state.lock().unwrap();
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            s.exchanges.push(form.clone());
            if form.get("code").map(String::as_str) != Some("good-code") || !form.contains_key("code_verifier") {
                return (AxumStatus::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant"}))).into_response();
            }
            let access = mint(&mut s, "access");
            let refresh = mint(&mut s, "refresh");
            axum::Json(json!({
                "access_token": access, "refresh_token": refresh, "token_type": "Bearer",
                "expires_in": 3600, "scope": "read write"
            }))
            .into_response()
        }
        Some("refresh_token") => {
            s.refreshes += 1;
            s.refresh_tokens_seen
                .push(form.get("refresh_token").cloned().unwrap_or_default());
            match s.mode.unwrap_or(Mode::Ok) {
                Mode::Ok => {
                    let access = mint(&mut s, "access");
                    axum::Json(json!({"access_token": access, "token_type": "Bearer", "expires_in": 3600}))
                        .into_response()
                }
                Mode::Rotate => {
                    let access = mint(&mut s, "access");
                    let refresh = mint(&mut s, "refresh");
                    axum::Json(json!({
                        "access_token": access, "refresh_token": refresh, "token_type": "Bearer", "expires_in": 3600
                    }))
                    .into_response()
                }
                Mode::InvalidGrant => (
                    AxumStatus::BAD_REQUEST,
                    axum::Json(
                        json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."}),
                    ),
                )
                    .into_response(),
                Mode::ServerError => (AxumStatus::SERVICE_UNAVAILABLE, "<html>upstream down</html>").into_response(),
            }
        }
        _ => (
            AxumStatus::BAD_REQUEST,
            axum::Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response(),
    }
}

async fn revoke_endpoint(
    State(state): State<Arc<Mutex<ProviderState>>>,
    Form(form): Form<HashMap<String, String>>,
) -> AxumStatus {
    state
        .lock()
        .unwrap()
        .revocations
        .push(form.get("token").cloned().unwrap_or_default());
    AxumStatus::OK
}

// ---------------------------------------------------------------- fixture

struct Fixture {
    server: TestServer,
    provider: FakeProvider,
    smtp: SmtpSink,
    org: String,
    owner: String,
    service: String,
    key: String,
}

const OWNER: &str = "owner@example.com";

fn configure(config: &mut Config, provider: &FakeProvider, smtp: &SmtpSink, key: &str) {
    config.integrations.key = Some(key.to_string().into());
    config.integrations.providers.insert(PROVIDER.into(), provider.config());
    smtp.configure(config);
    config.integrations.http_timeout_ms = 5_000;
    config.jobs.poll_interval_ms = 20;
    // The proactive refresh would race the scenarios that control refreshes themselves; the
    // scheduler scenario turns the role back on.
    config.roles = Roles::parse("api,worker").unwrap();
}

async fn fixture(db: &TestDatabase, adjust: impl FnOnce(&mut Config)) -> Fixture {
    captured_logs();
    let provider = FakeProvider::start().await;
    let smtp = SmtpSink::start().await;
    let key = generate_key();
    let server = TestServer::start_full(
        db,
        |c| {
            configure(c, &provider, &smtp, &key);
            adjust(c);
        },
        HandlerRegistry::new(),
        Arc::new(RecordingPublisher::default()),
    )
    .await;
    let org = server.create_org(OWNER, "Acme Corp").await;
    let issued = server
        .app
        .tenancy
        .create_api_key(&Principal::system("test"), Some(&org), "vault tests")
        .await
        .unwrap();
    let service = format!("token {}:{}", issued.api_key, issued.api_secret);
    Fixture {
        server,
        provider,
        smtp,
        org,
        owner: OWNER.into(),
        service,
        key,
    }
}

impl Fixture {
    fn vault(&self) -> &TokenVault {
        &self.server.app.integrations
    }

    /// Stores tokens issued by the fake provider that expire in `expires_in`.
    async fn connect_expiring_in(&self, expires_in: Duration) -> (String, String) {
        let (access, refresh) = {
            let mut s = self.provider.state.lock().unwrap();
            (mint(&mut s, "access"), mint(&mut s, "refresh"))
        };
        let grant = TokenGrant {
            access_token: access.clone(),
            refresh_token: Some(refresh.clone()),
            expires_in: Some(expires_in),
            scopes: Some(vec!["read".into()]),
        };
        self.vault()
            .store_tokens(&self.org, PROVIDER, &grant, &self.owner)
            .await
            .unwrap();
        (access, refresh)
    }

    async fn get_token(&self) -> dartwing_e2e::Reply {
        self.server
            .send(
                reqwest::Method::POST,
                GET_TOKEN,
                Some(&self.service),
                Some(&json!({"integration": PROVIDER, "organization": self.org})),
            )
            .await
    }

    async fn row(&self) -> dartwing_integrations::store::IntegrationRow {
        self.vault()
            .store()
            .get(&self.org, PROVIDER)
            .await
            .unwrap()
            .expect("row")
    }
}

fn exc_type(reply: &dartwing_e2e::Reply) -> String {
    reply.json()["exc_type"].as_str().unwrap_or_default().to_string()
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Every text value of every row of every table, for the plaintext search.
async fn database_text(db: &TestDatabase) -> String {
    match db.backend {
        Backend::Sqlite => {
            let mut all = Vec::new();
            for entry in std::fs::read_dir(db.dir.path()).unwrap() {
                let path = entry.unwrap().path();
                if path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("dartwing.db"))
                {
                    all.extend(std::fs::read(&path).unwrap_or_default());
                }
            }
            String::from_utf8_lossy(&all).into_owned()
        }
        Backend::Postgres => {
            sqlx::any::install_default_drivers();
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&db.url)
                .await
                .unwrap();
            let tables: Vec<(String,)> = sqlx::query_as(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            let mut text = String::new();
            for (table,) in tables {
                let rows: Vec<(String,)> = sqlx::query_as(&format!("SELECT row_to_json(t)::text FROM \"{table}\" t"))
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
                for (row,) in rows {
                    text.push_str(&row);
                    text.push('\n');
                }
            }
            text
        }
    }
}

// ---------------------------------------------------------------- spec test matrix

dartwing_e2e::backend_tests! {
    async fn valid_token_is_returned(db) {
        let f = fixture(db, |_| {}).await;
        let (access, _) = f.connect_expiring_in(Duration::from_secs(3600)).await;
        let reply = f.get_token().await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(reply.json()["message"]["access_token"], access);
        assert!(reply.json()["message"]["expires_at"].is_string());
        assert_eq!(f.provider.refreshes(), 0, "a valid token is not refreshed");
        f.server.stop().await;
    }

    async fn token_expiring_in_two_minutes_is_refreshed_first(db) {
        let f = fixture(db, |_| {}).await;
        let (old, _) = f.connect_expiring_in(Duration::from_secs(120)).await;
        let reply = f.get_token().await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let new = reply.json()["message"]["access_token"].as_str().unwrap().to_string();
        assert_ne!(new, old);
        assert_eq!(f.provider.refreshes(), 1);
        let row = f.row().await;
        let remaining = row.expires_at_us.unwrap() - dartwing_core::Timestamp::now().as_micros();
        assert!(remaining > 3_500_000_000, "new expiry from expires_in");
        assert!(row.last_refreshed_us.is_some());
        f.server.stop().await;
    }

    async fn invalid_refresh_token_requires_reauth_and_notifies_admins(db) {
        let f = fixture(db, |_| {}).await;
        f.server.add_member(&f.org, "admin@example.com", "Admin").await;
        f.server.add_member(&f.org, "member@example.com", "Member").await;
        f.connect_expiring_in(Duration::from_secs(60)).await;
        f.provider.set_mode(Mode::InvalidGrant);
        let reply = f.get_token().await;
        assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text);
        assert_eq!(exc_type(&reply), "IntegrationReauthRequired");
        let row = f.row().await;
        assert_eq!(row.status.as_str(), "Expired");
        assert_eq!(
            row.error_message.as_deref(),
            Some("Refresh token expired - reconnection required")
        );
        // Later calls answer reauth-required without calling the provider again.
        let again = f.get_token().await;
        assert_eq!(exc_type(&again), "IntegrationReauthRequired");
        assert_eq!(f.provider.refreshes(), 1);
        // Realtime event to every Active Owner/Admin, not to members.
        let notified: Vec<String> = f
            .server
            .publisher
            .events()
            .into_iter()
            .filter(|(event, ..)| event == "integration_expired")
            .map(|(_, message, target)| {
                assert_eq!(message["integration"], PROVIDER);
                match target {
                    Target::User(email) => email,
                    other => panic!("unexpected target {other:?}"),
                }
            })
            .collect();
        assert_eq!(notified, vec!["admin@example.com".to_string(), OWNER.to_string()]);
        // …and a queued email through SMTP to the same people (one message each).
        wait_for("expiry emails", async || f.smtp.messages().len() >= 2).await;
        let mut recipients: Vec<String> = f.smtp.messages().into_iter().flat_map(|(to, _)| to).collect();
        recipients.sort();
        assert_eq!(recipients, vec!["admin@example.com".to_string(), OWNER.to_string()]);
        for (_, data) in f.smtp.messages() {
            assert!(data.contains(PROVIDER) && data.contains(&f.org), "{data}");
        }
        f.server.stop().await;
    }

    async fn ten_parallel_requests_cause_one_refresh(db) {
        let f = fixture(db, |_| {}).await;
        f.connect_expiring_in(Duration::from_secs(30)).await;
        f.provider.set_delay(200);
        let answers = futures::future::join_all((0..10).map(|_| f.get_token())).await;
        let tokens: Vec<String> = answers
            .iter()
            .map(|r| {
                assert_eq!(r.status, StatusCode::OK, "{}", r.text);
                r.json()["message"]["access_token"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(f.provider.refreshes(), 1, "single flight");
        assert!(tokens.iter().all(|t| t == &tokens[0]), "everyone gets the fresh token");
        f.server.stop().await;
    }

    async fn missing_integration_is_not_connected(db) {
        let f = fixture(db, |_| {}).await;
        let reply = f.get_token().await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
        assert_eq!(exc_type(&reply), "IntegrationNotConnected");
        f.server.stop().await;
    }

    async fn token_expiring_in_eight_minutes_is_refreshed_by_the_scheduler(db) {
        // The schedule runs every second here instead of every 5 minutes; the window stays 10 minutes.
        let f = fixture(db, |c| {
            c.integrations.proactive_refresh_interval_secs = 1;
            c.roles = Roles::all();
        })
        .await;
        let (old, _) = f.connect_expiring_in(Duration::from_secs(480)).await;
        wait_for("proactive refresh", async || f.provider.refreshes() >= 1).await;
        wait_for("refreshed row", async || {
            f.row().await.last_refreshed_us != f.row().await.connected_at_us
        })
        .await;
        let reply = f.get_token().await;
        assert_ne!(reply.json()["message"]["access_token"].as_str().unwrap(), old);
        assert!(f.row().await.expires_at_us.unwrap() - dartwing_core::Timestamp::now().as_micros() > 3_000_000_000);
        f.server.stop().await;
    }

    async fn encryption_round_trip(db) {
        let f = fixture(db, |_| {}).await;
        let (access, refresh) = f.connect_expiring_in(Duration::from_secs(3600)).await;
        let row = f.row().await;
        let key_id = dartwing_integrations::keyring::key_id(&f.key).unwrap();
        for sealed in [
            row.access_token.as_deref().unwrap(),
            row.refresh_token.as_deref().unwrap(),
        ] {
            assert!(sealed.starts_with(&format!("v1:{key_id}:")), "{sealed}");
            assert!(!sealed.contains(&access) && !sealed.contains(&refresh));
        }
        assert_eq!(row.key_id.as_deref(), Some(key_id.as_str()));
        let token = f.vault().access_token(PROVIDER, &f.org).await.unwrap();
        assert_eq!(token.access_token, access);
        f.server.stop().await;
    }
}

// ---------------------------------------------------------------- refresh outcomes

dartwing_e2e::backend_tests! {
    async fn rotated_refresh_token_is_persisted_and_used_next_time(db) {
        let f = fixture(db, |_| {}).await;
        let (_, first_refresh) = f.connect_expiring_in(Duration::from_secs(10)).await;
        f.provider.set_mode(Mode::Rotate);
        let window = Duration::from_secs(7200);
        f.vault().refresh(PROVIDER, &f.org, window, "test").await.unwrap();
        let rotated = f.provider.issued().last().unwrap().clone();
        assert!(rotated.starts_with("refresh-"));
        f.vault().refresh(PROVIDER, &f.org, window, "test").await.unwrap();
        let seen = f.provider.state.lock().unwrap().refresh_tokens_seen.clone();
        assert_eq!(
            seen,
            vec![first_refresh, rotated],
            "the rotated refresh token was stored and used"
        );
        f.server.stop().await;
    }

    async fn a_failing_provider_opens_its_circuit_until_a_trial_call_succeeds(db) {
        let f = fixture(db, |c| {
            c.integrations.circuit_breaker_failures = 2;
            c.integrations.circuit_breaker_open_secs = 1;
        })
        .await;
        f.connect_expiring_in(Duration::from_secs(60)).await;
        let circuit = |text: &str| -> Option<f64> {
            text.lines()
                .find(|l| l.starts_with(&format!("integration_circuit_breaker_state{{integration=\"{PROVIDER}\"}}")))
                .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        };
        assert_eq!(circuit(&f.server.metrics().await), Some(0.0));
        f.provider.set_mode(Mode::ServerError);
        for _ in 0..2 {
            let reply = f.get_token().await;
            assert_eq!(exc_type(&reply), "IntegrationRefreshFailed", "{}", reply.text);
        }
        assert_eq!(f.provider.refreshes(), 2);
        // Open: refused at once, the provider is not called, the row is left as it was.
        let reply = f.get_token().await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", reply.text);
        assert_eq!(exc_type(&reply), "IntegrationCircuitOpen");
        assert_eq!(f.provider.refreshes(), 2);
        assert_eq!(circuit(&f.server.metrics().await), Some(2.0));
        // After the open period one trial goes out; the provider is back, so the circuit closes.
        f.provider.set_mode(Mode::Ok);
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let reply = f.get_token().await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(f.provider.refreshes(), 3);
        assert_eq!(circuit(&f.server.metrics().await), Some(0.0));
        f.server.stop().await;
    }

    async fn provider_5xx_sets_error_then_the_next_cycle_recovers(db) {
        let f = fixture(db, |_| {}).await;
        f.connect_expiring_in(Duration::from_secs(60)).await;
        f.provider.set_mode(Mode::ServerError);
        let reply = f.get_token().await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", reply.text);
        assert_eq!(exc_type(&reply), "IntegrationRefreshFailed");
        let row = f.row().await;
        assert_eq!(row.status.as_str(), "Error");
        let message = row.error_message.unwrap();
        assert!(!message.is_empty() && message.chars().count() <= 500, "{message}");
        f.provider.set_mode(Mode::Ok);
        let run = f.vault().refresh_expiring().await.unwrap();
        assert_eq!((run.refreshed, run.failed), (1, 0));
        let row = f.row().await;
        assert_eq!(row.status.as_str(), "Connected");
        assert_eq!(row.error_message, None);
        assert_eq!(f.get_token().await.status, StatusCode::OK);
        f.server.stop().await;
    }
}

// ---------------------------------------------------------------- keys

fn vault_with(f: &Fixture, keys: &[String]) -> TokenVault {
    let app = &f.server.app;
    TokenVault::with_keys(
        &app.config,
        "rotation-test",
        dartwing_integrations::VaultDeps {
            db: app.db.clone(),
            publisher: app.publisher.clone(),
            directory: Arc::new(app.tenancy.clone()),
            enqueuer: Arc::new(app.jobs.clone()),
            metrics: Arc::new(dartwing_observe::Metrics::new(true, 10).unwrap()),
        },
        KeyRing::new(keys).unwrap(),
    )
    .unwrap()
}

dartwing_e2e::backend_tests! {
    async fn key_rotation_keeps_every_row_readable_and_the_old_key_removable(db) {
        let f = fixture(db, |_| {}).await;
        let other_org = f.server.create_org(OWNER, "Beta").await;
        let (access, _) = f.connect_expiring_in(Duration::from_secs(3600)).await;
        let grant = TokenGrant {
            access_token: "beta-access-token-123".into(),
            refresh_token: Some("beta-refresh-token-123".into()),
            expires_in: Some(Duration::from_secs(3600)),
            scopes: None,
        };
        f.vault()
            .store_tokens(&other_org, PROVIDER, &grant, OWNER)
            .await
            .unwrap();
        let new_key = generate_key();
        let both = vault_with(&f, &[new_key.clone(), f.key.clone()]);
        let mut seen = Vec::new();
        let report = dartwing_integrations::rotate::rotate(both.store(), both.keys(), "test", |n| seen.push(n))
            .await
            .unwrap();
        assert_eq!((report.rotated, report.remaining), (2, 0));
        assert!(report.unreadable.is_empty());
        assert_eq!(seen, vec![1, 2], "progress after each row");
        // Running it again finds nothing to do (resumable).
        let again = dartwing_integrations::rotate::rotate(both.store(), both.keys(), "test", |_| {})
            .await
            .unwrap();
        assert_eq!(again.rotated, 0);
        // The old key can go.
        let only_new = vault_with(&f, &[new_key]);
        assert_eq!(
            only_new.access_token(PROVIDER, &f.org).await.unwrap().access_token,
            access
        );
        assert_eq!(
            only_new.access_token(PROVIDER, &other_org).await.unwrap().access_token,
            "beta-access-token-123"
        );
        let audit = f.vault().store().audit_log(&f.org, 10).await.unwrap();
        assert!(audit.iter().any(|e| e.action == "rotated"));
        f.server.stop().await;
    }

    async fn wrong_key_gives_a_clear_error_and_destroys_nothing(db) {
        let f = fixture(db, |_| {}).await;
        let (access, _) = f.connect_expiring_in(Duration::from_secs(60)).await;
        let before = f.row().await;
        let wrong = vault_with(&f, &[generate_key()]);
        let error = wrong.access_token(PROVIDER, &f.org).await.unwrap_err();
        assert_eq!(error.exc_type(), "IntegrationKeyError");
        assert!(
            error.message().contains("not in the configured key ring"),
            "{}",
            error.message()
        );
        let report = dartwing_integrations::rotate::rotate(wrong.store(), wrong.keys(), "test", |_| {})
            .await
            .unwrap();
        assert_eq!(report.unreadable.len(), 1);
        assert_eq!(
            f.provider.refreshes(),
            0,
            "no provider call with an unreadable refresh token"
        );
        let after = f.row().await;
        assert_eq!(after.access_token, before.access_token);
        assert_eq!(after.refresh_token, before.refresh_token);
        assert_eq!(after.status, before.status);
        // The right key still works.
        assert_ne!(f.vault().access_token(PROVIDER, &f.org).await.unwrap().access_token, "");
        let _ = access;
        f.server.stop().await;
    }
}

#[tokio::test]
async fn production_without_a_key_refuses_to_start_and_the_embedded_default_creates_an_owner_only_key_file() {
    let db = TestDatabase::sqlite();
    let mut config = dartwing_e2e::test_config(&db);
    config.production = true;
    let error = dartwing::node::Node::build(config).await.err().expect("refused");
    assert!(error.to_string().contains("DARTWING_INTEGRATION_KEY"), "{error}");
    let config = dartwing_e2e::test_config(&db);
    let app = dartwing::node::Node::build(config).await.unwrap();
    let path = db.dir.path().join(dartwing_integrations::keyring::KEY_FILE);
    assert!(dartwing_integrations::keyring::owner_only(&path));
    assert!(!app.vault().keys().current_id().is_empty());
}

// ---------------------------------------------------------------- connect flow and API

dartwing_e2e::backend_tests! {
    async fn connect_flow_with_state_and_pkce_stores_tokens(db) {
        let f = fixture(db, |_| {}).await;
        let token = f.server.token(OWNER);
        let reply = f
            .server
            .post(
                CONNECT,
                &token,
                &json!({"organization": f.org, "integration": PROVIDER}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let start = reply.json()["message"].clone();
        let url = reqwest::Url::parse(start["authorize_url"].as_str().unwrap()).unwrap();
        let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
        let state = start["state"].as_str().unwrap();
        assert_eq!(query["state"], state);
        assert_eq!(query["code_challenge_method"], "S256");
        assert_eq!(query["client_id"], "client-1");
        assert_eq!(query["scope"], "read write");
        assert!(query["redirect_uri"].ends_with(CALLBACK));
        // A wrong state is refused and stores nothing.
        let bad = f
            .server
            .send(
                reqwest::Method::GET,
                &format!("{CALLBACK}?state=forged&code=good-code"),
                None,
                None,
            )
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
        assert_eq!(exc_type(&bad), "IntegrationStateInvalid");
        assert!(f.vault().store().get(&f.org, PROVIDER).await.unwrap().is_none());
        // The provider redirects the browser back with the code.
        let done = f
            .server
            .send(
                reqwest::Method::GET,
                &format!("{CALLBACK}?state={state}&code=good-code"),
                None,
                None,
            )
            .await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.text);
        assert_eq!(done.json()["message"]["status"], "Connected");
        let exchange = f.provider.state.lock().unwrap().exchanges[0].clone();
        let verifier = exchange["code_verifier"].clone();
        use sha2::Digest;
        let challenge = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            sha2::Sha256::digest(verifier.as_bytes()),
        );
        assert_eq!(
            query["code_challenge"], challenge,
            "PKCE verifier matches the challenge"
        );
        let row = f.row().await;
        assert_eq!(row.connected_by.as_deref(), Some(OWNER));
        assert_eq!(row.scopes.as_deref(), Some("read write"));
        // The state is single use.
        let replay = f
            .server
            .send(
                reqwest::Method::GET,
                &format!("{CALLBACK}?state={state}&code=good-code"),
                None,
                None,
            )
            .await;
        assert_eq!(replay.status, StatusCode::BAD_REQUEST);
        let reply = f.get_token().await;
        assert_eq!(reply.json()["message"]["access_token"], f.provider.issued()[0]);
        f.server.stop().await;
    }

    async fn non_admins_cannot_connect_or_disconnect_and_users_cannot_read_tokens(db) {
        let f = fixture(db, |_| {}).await;
        f.server.add_member(&f.org, "member@example.com", "Member").await;
        f.connect_expiring_in(Duration::from_secs(3600)).await;
        let member = f.server.token("member@example.com");
        let body = json!({"organization": f.org, "integration": PROVIDER});
        for path in [CONNECT, DISCONNECT] {
            let reply = f.server.post(path, &member, &body).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path}: {}", reply.text);
            assert_eq!(exc_type(&reply), "PermissionError");
        }
        let outsider = f.server.token("outsider@example.com");
        assert_eq!(
            f.server.post(CONNECT, &outsider, &body).await.status,
            StatusCode::FORBIDDEN
        );
        // Even an Owner's user token cannot read the token itself: service keys only.
        let owner = f.server.token(OWNER);
        let reply = f.server.post(GET_TOKEN, &owner, &body).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
        assert_eq!(f.row().await.status.as_str(), "Connected", "nothing changed");
        // Bad input is a 4xx.
        let reply = f.server.post(CONNECT, &owner, &json!({"organization": f.org})).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        let reply = f
            .server
            .post(CONNECT, &owner, &json!({"organization": f.org, "integration": "Nope"}))
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.text);
        f.server.stop().await;
    }

    async fn status_never_returns_token_material_and_disconnect_revokes_then_removes(db) {
        let f = fixture(db, |_| {}).await;
        let (access, refresh) = f.connect_expiring_in(Duration::from_secs(3600)).await;
        let member_email = "member@example.com";
        f.server.add_member(&f.org, member_email, "Member").await;
        let reply = f
            .server
            .get(
                &format!("{STATUS}?organization={}", f.org),
                &f.server.token(member_email),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert!(!reply.text.contains(&access) && !reply.text.contains(&refresh) && !reply.text.contains("v1:"));
        let entry = &reply.json()["message"]["integrations"][0];
        assert_eq!(entry["integration"], PROVIDER);
        assert_eq!(entry["status"], "Connected");
        assert!(entry.get("access_token").is_none() && entry.get("refresh_token").is_none());
        let owner = f.server.token(OWNER);
        let reply = f
            .server
            .post(
                DISCONNECT,
                &owner,
                &json!({"organization": f.org, "integration": PROVIDER}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(reply.json()["message"]["revoked"], true);
        assert_eq!(
            f.provider.state.lock().unwrap().revocations,
            vec![refresh, access],
            "both tokens revoked (RFC 7009), the refresh token first"
        );
        let row = f.row().await;
        assert_eq!(row.status.as_str(), "Disconnected");
        assert!(row.access_token.is_none() && row.refresh_token.is_none());
        assert_eq!(exc_type(&f.get_token().await), "IntegrationNotConnected");
        let audit: Vec<(String, String)> = f
            .vault()
            .store()
            .audit_log(&f.org, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.action, e.actor))
            .collect();
        assert!(audit.contains(&("connected".into(), OWNER.into())));
        assert!(audit.contains(&("disconnected".into(), OWNER.into())));
        f.server.stop().await;
    }

    async fn no_plaintext_token_in_the_database_or_the_logs(db) {
        let f = fixture(db, |c| c.database.slow_query_ms = 0).await;
        // Connect through the real flow, refresh with rotation, fail once, rotate keys.
        let owner = f.server.token(OWNER);
        let reply = f
            .server
            .post(
                CONNECT,
                &owner,
                &json!({"organization": f.org, "integration": PROVIDER}),
            )
            .await;
        let state = reply.json()["message"]["state"].as_str().unwrap().to_string();
        let done = f
            .server
            .send(
                reqwest::Method::GET,
                &format!("{CALLBACK}?state={state}&code=good-code"),
                None,
                None,
            )
            .await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.text);
        f.provider.set_mode(Mode::Rotate);
        let window = Duration::from_secs(7200);
        f.vault().refresh(PROVIDER, &f.org, window, "test").await.unwrap();
        f.provider.set_mode(Mode::ServerError);
        let _ = f.vault().refresh(PROVIDER, &f.org, window, "test").await;
        f.provider.set_mode(Mode::Ok);
        f.vault().refresh(PROVIDER, &f.org, window, "test").await.unwrap();
        assert_eq!(f.get_token().await.status, StatusCode::OK);
        let both = vault_with(&f, &[generate_key(), f.key.clone()]);
        dartwing_integrations::rotate::rotate(both.store(), both.keys(), "test", |_| {})
            .await
            .unwrap();
        let issued = f.provider.issued();
        assert!(issued.len() >= 5, "{issued:?}");
        f.server.stop().await;
        let stored = database_text(db).await;
        let logs = String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned();
        assert!(logs.contains("integration token refreshed"), "logs were captured");
        for token in issued {
            assert!(
                !stored.contains(&token),
                "plaintext token in the {:?} database",
                db.backend
            );
            assert!(!logs.contains(&token), "plaintext token in the logs");
        }
        assert!(!logs.contains(&f.key), "the key is never logged");
    }
}
