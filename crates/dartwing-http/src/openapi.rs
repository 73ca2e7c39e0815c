//! The OpenAPI 3.1 document served at `/api/openapi.json`: common parts here, paths contributed
//! by each capability as JSON fragments.

use serde_json::{Value, json};

/// Builds the document from `(path, item)` fragments, where an item maps methods to operations.
pub fn document(version: &str, paths: impl IntoIterator<Item = (String, Value)>) -> Value {
    let mut all = serde_json::Map::new();
    for (path, item) in paths {
        match (all.get_mut(&path), item) {
            (Some(Value::Object(existing)), Value::Object(more)) => existing.extend(more),
            (_, item) => {
                all.insert(path, item);
            }
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
