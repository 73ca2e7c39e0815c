//! Sync API under `/api/method/dartwing_core.sync.*` (SPEC §7 wire shapes).

use crate::model::{ConflictInfo, FeedPage};
use crate::{FeedRequest, OfflineSync};
use axum::Extension;
use axum::extract::State;
use dartwing_http::openapi::error_ref;
use dartwing_http::{ApiResult, Auth, Message, MethodArgs, RequestContext, Routes};
use serde::Deserialize;
use serde_json::{Value, json};

const PREFIX: &str = "/api/method/dartwing_core.sync";

/// The sync routes with their state applied, each with its OpenAPI operation.
pub fn routes(sync: OfflineSync) -> Routes {
    let op = |summary: &str| {
        json!({ "summary": summary, "tags": ["Sync"], "responses": {
            "200": { "description": "{\"message\": …}" },
            "400": error_ref("BadRequest"),
            "401": error_ref("Unauthenticated"),
            "403": error_ref("Forbidden"),
            "404": error_ref("NotFound"),
            "410": { "description": "{\"exc_type\": \"ResyncRequired\"}: the watermark is older than the retained change log" },
            "413": error_ref("TooLarge"),
        } })
    };
    let feed_summary =
        "Change feed (?org=&doctype=&since=&limit=, or the same as a JSON body) → {rows, next_since, has_more}";
    Routes::builder()
        .read(&format!("{PREFIX}.feed"), feed, op(feed_summary))
        .post(
            &format!("{PREFIX}.upsert_batch"),
            upsert_batch,
            op("Apply queued writes {org, items: [{op_id, doctype, name?, data, client_ts, op, base_modified?, force?}]} → \
                one answer per item"),
        )
        .read(
            &format!("{PREFIX}.conflicts"),
            conflicts,
            op("Manual conflicts (?org=&doctype=&status=Open|Resolved&limit=)"),
        )
        .with_state(sync)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedParams {
    org: String,
    #[serde(default)]
    doctype: Option<String>,
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
}

impl From<FeedParams> for FeedRequest {
    fn from(p: FeedParams) -> Self {
        FeedRequest {
            org: p.org,
            doctype: p.doctype.filter(|d| !d.is_empty()),
            since: p.since,
            limit: p.limit,
        }
    }
}

async fn feed(
    State(sync): State<OfflineSync>,
    Auth(actor): Auth,
    MethodArgs(params): MethodArgs<FeedParams>,
) -> ApiResult<Message<FeedPage>> {
    Ok(Message(sync.feed(&actor, &params.into()).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpsertBody {
    org: String,
    items: Vec<Value>,
}

async fn upsert_batch(
    State(sync): State<OfflineSync>,
    Extension(context): Extension<RequestContext>,
    Auth(actor): Auth,
    MethodArgs(body): MethodArgs<UpsertBody>,
) -> ApiResult<Message<Vec<Value>>> {
    let trace_id = context.trace_id().as_str().to_string();
    Ok(Message(
        sync.upsert_batch(&actor, &body.org, body.items, Some(&trace_id))
            .await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConflictParams {
    org: String,
    #[serde(default)]
    doctype: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
}

async fn conflicts(
    State(sync): State<OfflineSync>,
    Auth(actor): Auth,
    MethodArgs(params): MethodArgs<ConflictParams>,
) -> ApiResult<Message<Vec<ConflictInfo>>> {
    Ok(Message(
        sync.conflicts(
            &actor,
            &params.org,
            params.doctype.as_deref(),
            params.status.as_deref(),
            params.limit,
        )
        .await?,
    ))
}
