//! What a capability hands the node, as one value: its routes (each with its OpenAPI operation),
//! its job types, its periodic jobs, its health checks and its background tasks. The node builder
//! loops over capabilities; the router and the OpenAPI document are both made from the same route
//! list, so they cannot drift apart.

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::MethodRouter;
use dartwing_core::config::Role;
use dartwing_core::jobs::{CronEntry, JobType};
use dartwing_observe::HealthCheck;
use serde_json::Value;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// One capability of the node.
pub struct Capability {
    /// Name, for logs (`tenancy`, `jobs`, …).
    pub name: &'static str,
    /// Its HTTP routes, served with the `api` role.
    pub routes: Routes,
    /// Its job types.
    pub job_types: Vec<JobType>,
    /// Its periodic jobs (run by the `scheduler` role, once per tick across nodes).
    pub schedules: Vec<CronEntry>,
    /// Its health checks.
    pub health_checks: Vec<Arc<dyn HealthCheck>>,
    /// Its background tasks.
    pub tasks: Vec<BackgroundTask>,
}

impl Capability {
    /// A capability with nothing yet.
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            routes: Routes::default(),
            job_types: Vec::new(),
            schedules: Vec::new(),
            health_checks: Vec::new(),
            tasks: Vec::new(),
        }
    }

    /// With these routes.
    pub fn routes(mut self, routes: Routes) -> Self {
        self.routes = self.routes.merge(routes);
        self
    }

    /// With this job type.
    pub fn job_type(mut self, job_type: JobType) -> Self {
        self.job_types.push(job_type);
        self
    }

    /// With this periodic job.
    pub fn schedule(mut self, entry: CronEntry) -> Self {
        self.schedules.push(entry);
        self
    }

    /// With this health check.
    pub fn health_check(mut self, check: Arc<dyn HealthCheck>) -> Self {
        self.health_checks.push(check);
        self
    }

    /// With this background task.
    pub fn task(mut self, task: BackgroundTask) -> Self {
        self.tasks.push(task);
        self
    }
}

type Start = Box<dyn FnOnce(CancellationToken) -> JoinHandle<()> + Send>;

/// A long-running task of a capability, started when the node starts (only on nodes running
/// `role`, when given) and stopped through the node's shutdown token.
pub struct BackgroundTask {
    /// Name, for logs.
    pub name: &'static str,
    /// The role it belongs to; `None` for every node.
    pub role: Option<Role>,
    start: Start,
}

impl BackgroundTask {
    /// A task for every node.
    pub fn new(name: &'static str, start: impl FnOnce(CancellationToken) -> JoinHandle<()> + Send + 'static) -> Self {
        Self {
            name,
            role: None,
            start: Box::new(start),
        }
    }

    /// A task only for nodes running `role`.
    pub fn for_role(
        name: &'static str,
        role: Role,
        start: impl FnOnce(CancellationToken) -> JoinHandle<()> + Send + 'static,
    ) -> Self {
        Self {
            role: Some(role),
            ..Self::new(name, start)
        }
    }

    /// Starts the task; it stops when `shutdown` is cancelled.
    pub fn start(self, shutdown: CancellationToken) -> JoinHandle<()> {
        (self.start)(shutdown)
    }
}

/// The OpenAPI description of one served route: path, method and operation object.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteDoc {
    /// Path template, e.g. `/api/resource/{doctype}/{name}`.
    pub path: String,
    /// HTTP method.
    pub method: Method,
    /// The OpenAPI operation object (`summary`, `tags`, `parameters`, `responses`, …).
    pub operation: Value,
}

/// Routes with their OpenAPI operations, state already applied.
#[derive(Default)]
pub struct Routes {
    router: Router,
    docs: Vec<RouteDoc>,
}

impl Routes {
    /// Routes over `state`; add them with [`RoutesBuilder::get`] and friends, then
    /// [`RoutesBuilder::with_state`].
    pub fn builder<S: Clone + Send + Sync + 'static>() -> RoutesBuilder<S> {
        RoutesBuilder {
            router: Router::new(),
            docs: Vec::new(),
        }
    }

    /// Both route lists.
    pub fn merge(self, other: Routes) -> Self {
        let mut docs = self.docs;
        docs.extend(other.docs);
        Self {
            router: self.router.merge(other.router),
            docs,
        }
    }

    /// The routes' descriptions.
    pub fn docs(&self) -> &[RouteDoc] {
        &self.docs
    }

    /// The router and the descriptions.
    pub fn into_parts(self) -> (Router, Vec<RouteDoc>) {
        (self.router, self.docs)
    }
}

/// Adds routes with their operations; see [`Routes::builder`].
pub struct RoutesBuilder<S> {
    router: Router<S>,
    docs: Vec<RouteDoc>,
}

impl<S: Clone + Send + Sync + 'static> RoutesBuilder<S> {
    fn add(mut self, path: &str, method: Method, route: MethodRouter<S>, operation: Value) -> Self {
        self.router = self.router.route(path, route);
        self.docs.push(RouteDoc {
            path: path.to_string(),
            method,
            operation,
        });
        self
    }

    /// A `GET` route described by `operation`.
    pub fn get<H: Handler<T, S>, T: 'static>(self, path: &str, handler: H, operation: Value) -> Self {
        self.add(path, Method::GET, axum::routing::get(handler), operation)
    }

    /// A `POST` route described by `operation`.
    pub fn post<H: Handler<T, S>, T: 'static>(self, path: &str, handler: H, operation: Value) -> Self {
        self.add(path, Method::POST, axum::routing::post(handler), operation)
    }

    /// A procedure that changes nothing, served on `GET` (arguments in the query string) and on
    /// `POST` (arguments in the body, as `frappe.call` sends every call); its handler reads them
    /// with [`crate::MethodArgs`].
    pub fn read<H: Handler<T, S> + Clone, T: 'static>(mut self, path: &str, handler: H, operation: Value) -> Self {
        let route = axum::routing::get(handler.clone()).post(handler);
        self.router = self.router.route(path, route);
        for method in [Method::GET, Method::POST] {
            self.docs.push(RouteDoc {
                path: path.to_string(),
                method,
                operation: operation.clone(),
            });
        }
        self
    }

    /// A `PUT` route described by `operation`.
    pub fn put<H: Handler<T, S>, T: 'static>(self, path: &str, handler: H, operation: Value) -> Self {
        self.add(path, Method::PUT, axum::routing::put(handler), operation)
    }

    /// A `DELETE` route described by `operation`.
    pub fn delete<H: Handler<T, S>, T: 'static>(self, path: &str, handler: H, operation: Value) -> Self {
        self.add(path, Method::DELETE, axum::routing::delete(handler), operation)
    }

    /// The routes, serving `state`.
    pub fn with_state(self, state: S) -> Routes {
        Routes {
            router: self.router.with_state(state),
            docs: self.docs,
        }
    }
}
