//! The middleware stack every route runs behind: trace id, request span, HTTP metrics, access
//! log, body limit, panic guard, authenticator, and JSON fallbacks for unknown routes.

use crate::{ApiError, Authenticator, RequestContext};
use axum::Router;
use axum::body::HttpBody as _;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use dartwing_core::Error;
use dartwing_core::access::OrganizationDirectory;
use dartwing_core::ids::TraceId;
use dartwing_observe::Metrics;
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::Instant;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

/// Response header carrying the trace id.
pub const TRACE_ID_HEADER: &str = "x-trace-id";

/// What the per-request middleware needs.
#[derive(Clone)]
pub struct StackConfig {
    /// The node's metrics.
    pub metrics: Arc<Metrics>,
    /// Log one line per request.
    pub access_log: bool,
    /// Largest request body in bytes.
    pub body_limit_bytes: usize,
    /// The authenticator handed to [`crate::Auth`].
    pub authenticator: Arc<Authenticator>,
    /// Checks organizations that only administrator rights vouched for before they are recorded.
    pub organizations: Arc<dyn OrganizationDirectory>,
}

/// Wraps `routes` in the standard stack. Route-level layers see the matched route template.
pub fn apply(routes: Router, config: StackConfig) -> Router {
    let observe = Arc::new(config.clone());
    routes
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(config.body_limit_bytes))
        .layer(axum::Extension(config.authenticator))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!(error_type = "Panic", "request handler panicked");
            ApiError(Error::internal()).into_response()
        }))
        .layer(middleware::from_fn_with_state(observe, observe_request))
}

async fn unknown_route(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError(Error::not_found(format!("No route for {method} {}", uri.path())))
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> Response {
    let error = Error::new(
        dartwing_core::ErrorKind::BadRequest,
        format!("{method} is not allowed on {}", uri.path()),
    )
    .with_exc_type("MethodNotAllowed");
    let mut response = ApiError(error).into_response();
    *response.status_mut() = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    response
}

/// The trace id of a request: `X-Trace-ID` if valid, else the W3C `traceparent` trace id, else new.
pub fn trace_id_of(headers: &axum::http::HeaderMap) -> TraceId {
    headers
        .get(TRACE_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceId::from_header)
        .or_else(|| {
            headers
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .and_then(TraceId::from_traceparent)
        })
        .unwrap_or_else(TraceId::generate)
}

async fn observe_request(State(config): State<Arc<StackConfig>>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let trace_id = trace_id_of(request.headers());
    let method = request.method().clone();
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let span = tracing::info_span!(
        "request",
        trace_id = trace_id.as_str(),
        user = tracing::field::Empty,
        organization = tracing::field::Empty,
    );
    let context = RequestContext::new(trace_id.clone(), span.clone());
    request.extensions_mut().insert(context.clone());
    let metrics = config.metrics.enabled().then_some(&config.metrics);
    if let Some(metrics) = metrics {
        metrics.http.active_requests.inc();
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<f64>().ok())
            .unwrap_or(0.0);
        metrics
            .http
            .request_size
            .with_label_values(&[method.as_str(), &endpoint])
            .observe(declared);
    }

    let mut response = next.run(request).instrument(span.clone()).await;

    let status = response.status();
    if let Ok(value) = HeaderValue::from_str(trace_id.as_str()) {
        response.headers_mut().insert(TRACE_ID_HEADER, value);
    }
    if let Some(traceparent) = trace_id.traceparent().and_then(|tp| HeaderValue::from_str(&tp).ok()) {
        response.headers_mut().insert("traceparent", traceparent);
    }
    let elapsed = started.elapsed();
    if let Some(metrics) = metrics {
        let org = org_label(&config, metrics, &context, &span).await;
        let labels = [method.as_str(), endpoint.as_str()];
        metrics.http.active_requests.dec();
        metrics
            .http
            .requests_total
            .with_label_values(&[method.as_str(), &endpoint, status.as_str(), &org])
            .inc();
        metrics
            .http
            .request_duration
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
        if let Some(size) = response.body().size_hint().exact() {
            metrics
                .http
                .response_size
                .with_label_values(&labels)
                .observe(size as f64);
        }
    }
    if config.access_log {
        let _entered = span.enter();
        let duration_ms = elapsed.as_secs_f64() * 1000.0;
        if status.is_server_error() {
            tracing::error!(
                method = method.as_str(),
                endpoint,
                status = status.as_u16(),
                duration_ms,
                "request failed"
            );
        } else {
            tracing::info!(
                method = method.as_str(),
                endpoint,
                status = status.as_u16(),
                duration_ms,
                "request completed"
            );
        }
    }
    response
}

/// The `org` label of a finished request: the organization its principal was authorized to act
/// on, never a value taken from the request. A name only administrator rights vouched for is
/// recorded only if the organization exists (and then also goes to the request's log fields).
async fn org_label(config: &StackConfig, metrics: &Metrics, context: &RequestContext, span: &tracing::Span) -> String {
    let Some(organization) = context.organization() else {
        return String::new();
    };
    let name = organization.name.as_str();
    // Already a label value (it existed when it became one), or the budget is spent (`other`).
    if organization.by_membership || metrics.org_label_settled(name) {
        return metrics.org_label(name).into_owned();
    }
    match config.organizations.exists(name).await {
        Ok(true) => {
            span.record("organization", name);
            metrics.org_label(name).into_owned()
        }
        Ok(false) => String::new(),
        Err(error) => {
            tracing::debug!(error = %error, "organization lookup for the org label failed");
            String::new()
        }
    }
}

/// Reads a whole response body (for tests and tools).
pub async fn body_bytes(response: Response) -> Result<axum::body::Bytes, axum::Error> {
    Ok(response.into_body().collect().await?.to_bytes())
}
