//! The OpenAPI 3.1 document served at `/api/openapi.json`: common parts here, one operation per
//! served route from the capabilities' route lists ([`crate::capability::Routes`]).

use crate::capability::RouteDoc;
use serde_json::{Map, Value, json};

/// Builds the document from the descriptions of every served route.
pub fn document(version: &str, routes: &[RouteDoc]) -> Value {
    let mut all = Map::new();
    for route in routes {
        let item = all
            .entry(route.path.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(item) = item {
            item.insert(route.method.as_str().to_ascii_lowercase(), route.operation.clone());
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Dartwing Core runtime",
            "version": version,
            "description": "Frappe-style API: procedures under /api/method, documents under /api/resource. \
                            Success bodies are {\"message\": …}; errors are {\"exc_type\", \"message\"}."
        },
        "servers": [{ "url": "/" }],
        "security": [{ "bearer": [] }, { "apiKey": [] }],
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" },
                "apiKey": {
                    "type": "apiKey", "in": "header", "name": "Authorization",
                    "description": "token <api_key>:<api_secret>"
                }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["exc_type", "message"],
                    "properties": { "exc_type": { "type": "string" }, "message": { "type": "string" } }
                }
            },
            "responses": error_responses()
        },
        "paths": all
    })
}

fn error_responses() -> Value {
    let error = |description: &str| {
        json!({
            "description": description,
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
        })
    };
    json!({
        "BadRequest": error("Malformed request"),
        "Unauthenticated": error("Missing or invalid credentials"),
        "Forbidden": error("Not permitted"),
        "NotFound": error("No such document or route"),
        "Conflict": error("Duplicate or linked document"),
        "TooLarge": error("Body exceeds the size limit"),
        "Invalid": error("Validation failed"),
        "Unavailable": error("A dependency is unavailable")
    })
}

/// A reference to one of the shared error responses, for operation fragments.
pub fn error_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/responses/{name}") })
}

/// An operation object: `summary` under `tag`, answering 200 with `{"message": …}` or the named
/// shared error responses (e.g. `["BadRequest", "Forbidden"]`).
pub fn operation(tag: &str, summary: &str, errors: &[(u16, &str)]) -> Value {
    let mut responses = Map::new();
    responses.insert("200".into(), json!({ "description": "{\"message\": …}" }));
    for (status, name) in errors {
        responses.insert(status.to_string(), error_ref(name));
    }
    json!({ "summary": summary, "tags": [tag], "responses": responses })
}

/// The errors most procedures can answer: 400, 401, 403, 404, 422.
pub const COMMON_ERRORS: &[(u16, &str)] = &[
    (400, "BadRequest"),
    (401, "Unauthenticated"),
    (403, "Forbidden"),
    (404, "NotFound"),
    (422, "Invalid"),
];
