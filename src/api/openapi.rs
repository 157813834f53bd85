//! `GET /openapi.json`: an OpenAPI 3.1 document generated from the same
//! route table as the router (see [`super::routes`]), so it cannot drift
//! from what is served. Security requirements follow each route's access.

use axum::Json;
use serde_json::{Map, Value, json};

use super::keys::Access;
use super::routes;

pub async fn document() -> Json<Value> {
    Json(build())
}

pub fn build() -> Value {
    let mut paths = Map::new();
    for r in routes() {
        let mut params: Vec<Value> = r
            .params
            .iter()
            .map(|p| {
                json!({
                    "name": p.name, "in": p.location, "required": p.location == "path",
                    "description": p.description,
                    "schema": { "type": if p.name == "id" { "integer" } else { "string" } },
                })
            })
            .collect();
        params.sort_by_key(|p| p["name"].as_str().map(str::to_string));
        let mut op = json!({
            "summary": r.summary,
            "operationId": format!("{} {}", r.method, r.path),
            "parameters": params,
            "responses": {
                "200": { "description": "OK", "content": { "application/json": {} } },
                "400": { "$ref": "#/components/responses/Error" },
            },
        });
        if let Some(body) = r.body {
            op["requestBody"] = json!({
                "description": body,
                "required": true,
                "content": {
                    "application/json": {},
                    "application/x-ndjson": {},
                },
            });
        }
        match r.access {
            None => op["security"] = json!([]),
            Some(a) => {
                op["x-secmon-roles"] = json!(roles(a));
                op["responses"]["401"] = json!({ "$ref": "#/components/responses/Error" });
                op["responses"]["403"] = json!({ "$ref": "#/components/responses/Error" });
                op["responses"]["429"] = json!({ "$ref": "#/components/responses/Error" });
            }
        }
        let entry = paths
            .entry(r.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[r.method.as_str().to_ascii_lowercase()] = op;
    }
    if paths.get("/metrics").is_some() {
        paths["/metrics"]["get"]["responses"]["200"] =
            json!({ "description": "Prometheus text format", "content": { "text/plain": {} } });
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "secmon",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "secmon's HTTP API: ingest events, read alerts, incidents and decisions, respond. Authenticate with `Authorization: Bearer <key>` or `X-Api-Key: <key>` (create keys with `secmon keys create --role …`).",
        },
        "paths": paths,
        "security": [ { "bearer": [] }, { "apiKey": [] } ],
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer" },
                "apiKey": { "type": "apiKey", "in": "header", "name": "X-Api-Key" },
            },
            "responses": {
                "Error": {
                    "description": "An error",
                    "content": { "application/json": { "schema": {
                        "type": "object",
                        "properties": { "error": { "type": "string" }, "message": { "type": "string" } },
                        "required": ["error", "message"],
                    } } },
                },
            },
        },
    })
}

fn roles(a: Access) -> Vec<&'static str> {
    use super::keys::Role;
    [
        Role::Admin,
        Role::Responder,
        Role::Viewer,
        Role::Ingest,
        Role::Bouncer,
    ]
    .into_iter()
    .filter(|r| r.allows(a))
    .map(Role::as_str)
    .collect()
}
