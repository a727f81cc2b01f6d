//! `GET /api/v1/openapi.json`: the API described as OpenAPI 3.1, written by hand so it says
//! exactly what the handlers next door do. Open without a token.

use axum::Json;
use serde_json::{Value, json};

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
    })
}

fn ok(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

fn path_param(name: &str, schema: Value, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": schema, "description": description })
}

fn query_param(name: &str, schema: Value, description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": false, "schema": schema, "description": description })
}

fn schemas() -> Value {
    let text = json!({ "type": "string" });
    let opt_text = json!({ "type": ["string", "null"] });
    let time = json!({ "type": "string", "format": "date-time" });
    json!({
        "Error": {
            "type": "object", "required": ["error"],
            "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": {
                "code": { "type": "string", "enum": ["unauthenticated", "forbidden", "not_found", "conflict", "invalid", "method_not_allowed", "too_large", "internal"] },
                "message": text } } }
        },
        "Attempt": { "type": "object", "properties": {
            "attempt": { "type": "integer" }, "started_at": time, "duration_ms": { "type": "integer" },
            "outcome": { "type": "string", "enum": ["synced", "transient", "needs_action", "auth", "exhausted", "manual"] },
            "status": { "type": ["integer", "null"] }, "message": opt_text, "request_id": opt_text } },
        "DestinationState": { "type": "object", "properties": {
            "destination": { "type": "string", "enum": ["crm", "erp"] },
            "state": { "type": "string", "enum": ["pending", "running", "retrying", "blocked", "synced", "dead", "skipped"] },
            "target_version": { "type": "integer" }, "synced_version": { "type": ["integer", "null"] },
            "external_id": opt_text,
            "attempts": { "type": "array", "maxItems": 20, "items": { "$ref": "#/components/schemas/Attempt" } } } },
        "Order": { "type": "object", "properties": {
            "store_order_id": { "type": "integer" }, "name": text, "lifecycle": text, "currency": text,
            "total": { "type": "string", "description": "Decimal amount in `currency`." },
            "version": { "type": "integer" }, "store_updated_at": time,
            "destinations": { "type": "array", "items": { "$ref": "#/components/schemas/DestinationState" } } } },
        "Exception": { "type": "object", "properties": {
            "id": { "type": "integer" }, "store_order_id": { "type": ["integer", "null"] }, "order_name": opt_text,
            "destination": { "type": "string", "enum": ["crm", "erp", "store"],
                "description": "`store` for an order state the store sent that SyncDesk could not read (code `unreadable_webhook`): it has no task; resyncing the order from the store retries it, and it resolves by itself once SyncDesk holds a state of the order as recent." },
            "code": text, "kind": { "type": "string", "enum": ["needs_action", "transient", "exhausted"] },
            "message": text, "action": text, "fields": {}, "fingerprint": text,
            "status": { "type": "string", "enum": ["open", "snoozed", "resolved", "skipped"] }, "created_at": time,
            "assignee_id": { "type": ["integer", "null"] }, "assignee": opt_text,
            "snoozed_until": { "type": ["string", "null"], "format": "date-time" },
            "resolved_at": { "type": ["string", "null"], "format": "date-time" }, "resolved_by": opt_text,
            "resolution": opt_text } },
        "ExceptionPage": { "type": "object", "properties": {
            "exceptions": { "type": "array", "items": { "$ref": "#/components/schemas/Exception" } },
            "next_before_id": { "type": ["integer", "null"] } } },
        "ExceptionGroup": { "type": "object", "properties": {
            "fingerprint": text, "code": text, "kind": text, "action": text, "message": text,
            "open": { "type": "integer" }, "oldest": time, "destinations": { "type": "array", "items": text } } },
        "SkuMapping": { "type": "object", "properties": {
            "sku": text, "item_code": text, "updated_at": time, "updated_by": text,
            "released_tasks": { "type": "integer", "description": "PUT only." },
            "resolved_exceptions": { "type": "integer", "description": "PUT only." },
            "item_code_checked": { "type": "boolean", "description": "PUT only: whether the ERP confirmed it has the item code (false when it could not be asked)." } } }
    })
}

/// `POST /exceptions/actions` (its own function: one `json!` for the whole document would pass
/// the macro recursion limit).
fn actions_path(write_note: &str) -> Value {
    let unauth = error_response("No token, or an unknown or revoked one.");
    let forbidden = error_response("The token lacks the role this needs.");
    json!({ "post": {
                "summary": "Retry, skip, resolve, assign or snooze exceptions: some, a cause group, or all a filter matches.",
                "description": format!("{write_note} Only open and snoozed exceptions are acted on. With `dry_run` nothing changes: the answer counts what would."),
                "requestBody": { "required": true, "content": { "application/json": { "schema": {
                    "type": "object", "required": ["action", "target"], "properties": {
                        "action": { "type": "string", "enum": ["retry", "skip", "resolve", "assign", "snooze"] },
                        "reason": { "type": "string", "maxLength": 500, "description": "skip: why (required)." },
                        "note": { "type": "string", "maxLength": 500, "description": "resolve: what was done outside SyncDesk (required)." },
                        "assignee": { "type": "string", "description": "assign: `none` or a user id." },
                        "hours": { "type": "integer", "minimum": 1, "maximum": 2160, "description": "snooze: for how long." },
                        "target": { "oneOf": [
                            { "type": "object", "required": ["kind", "ids"], "properties": { "kind": { "const": "ids" }, "ids": { "type": "array", "items": { "type": "integer" }, "maxItems": 1000 } } },
                            { "type": "object", "required": ["kind", "fingerprint"], "properties": { "kind": { "const": "group" }, "fingerprint": text_schema() } },
                            { "type": "object", "required": ["kind", "query"], "properties": { "kind": { "const": "filter" }, "query": { "type": "object",
                                "description": "The list's filters: status, code, destination, fingerprint, assignee, older_than_minutes, q." } } } ] },
                        "dry_run": { "type": "boolean", "default": false } } } } } },
                "responses": { "200": ok("What was done (or would be).", json!({ "type": "object", "properties": {
                                   "matched": { "type": "integer" }, "queued": { "type": "integer" }, "already_applied": { "type": "integer" },
                                   "in_flight": { "type": "integer" }, "destination_wide": { "type": "integer" }, "from_store": { "type": "integer" }, "changed": { "type": "integer" },
                                   "dry_run": { "type": "boolean" }, "summary": text_schema() } })),
                               "401": unauth, "403": forbidden, "409": error_response("Nobody to assign to."),
                               "422": error_response("A missing reason or note, a bad target or filter.") } } })
}

fn text_schema() -> Value {
    json!({ "type": "string" })
}

/// The OpenAPI document.
pub fn spec() -> Value {
    let schema = |name: &str| json!({ "$ref": format!("#/components/schemas/{name}") });
    let unauth = error_response("No token, or an unknown or revoked one.");
    let forbidden = error_response("The token lacks the role this needs.");
    let read_note = "Needs a token with the operator or manager role.";
    let write_note = "Needs a token with the operator role. Audited as `token:<name>`.";
    json!({
        "openapi": "3.1.0",
        "info": { "title": "SyncDesk API", "version": "1",
                  "description": "Orders and their state at each destination, exceptions, SKU mappings." },
        "servers": [{ "url": "/api/v1" }],
        "security": [{ "bearer": [] }],
        "paths": {
            "/orders/{store_order_id}": { "get": {
                "summary": "An order with each destination's state, external id and newest attempts.",
                "description": read_note,
                "parameters": [path_param("store_order_id", json!({ "type": "integer" }), "The store's order id.")],
                "responses": { "200": ok("The order.", schema("Order")), "401": unauth, "403": forbidden,
                               "404": error_response("No such order."), "422": error_response("The id is not a number.") } } },
            "/exceptions": { "get": {
                "summary": "Exceptions, newest first, a page at a time.",
                "description": read_note,
                "parameters": [
                    query_param("status", json!({ "type": "string", "enum": ["open", "snoozed", "resolved", "skipped", "all"], "default": "open" }), "Which status."),
                    query_param("code", json!({ "type": "string" }), "Only this code."),
                    query_param("destination", json!({ "type": "string" }), "Only this destination."),
                    query_param("fingerprint", json!({ "type": "string" }), "Only this cause."),
                    query_param("assignee", json!({ "type": "string" }), "`none`, or a user id."),
                    query_param("older_than_minutes", json!({ "type": "integer", "minimum": 0 }), "Only those waiting at least this long."),
                    query_param("q", json!({ "type": "string", "maxLength": 200 }), "Order number, store order id, customer email or SKU."),
                    query_param("sort", json!({ "type": "string", "enum": ["newest", "oldest"], "default": "newest" }), "Newest or oldest first."),
                    query_param("limit", json!({ "type": "integer", "minimum": 1, "maximum": 200, "default": 50 }), "Page size."),
                    query_param("before_id", json!({ "type": "integer" }), "The previous page's `next_before_id`.")
                ],
                "responses": { "200": ok("A page.", schema("ExceptionPage")), "401": unauth, "403": forbidden,
                               "422": error_response("A bad filter.") } } },
            "/exception-groups": { "get": {
                "summary": "Open exceptions grouped by cause, biggest group first.",
                "description": read_note,
                "parameters": [
                    query_param("status", json!({ "type": "string", "enum": ["open", "snoozed", "resolved", "skipped", "all"] }), "Which status. Without one, and with `all`, the groups count what is still to do: open and snoozed."),
                    query_param("code", json!({ "type": "string" }), "Only this code."),
                    query_param("destination", json!({ "type": "string" }), "Only this destination."),
                    query_param("fingerprint", json!({ "type": "string" }), "Only this cause."),
                    query_param("assignee", json!({ "type": "string" }), "`none`, or a user id."),
                    query_param("older_than_minutes", json!({ "type": "integer", "minimum": 0 }), "Only those waiting at least this long."),
                    query_param("q", json!({ "type": "string" }), "Order number, store order id, customer email or SKU."),
                    query_param("sort", json!({ "type": "string", "enum": ["size", "age"], "default": "size" }), "Biggest or oldest group first.")
                ],
                "responses": { "200": ok("The groups.", json!({ "type": "object", "properties": {
                                   "groups": { "type": "array", "items": schema("ExceptionGroup") } } })),
                               "401": unauth, "403": forbidden, "422": error_response("A bad filter or sort.") } } },
            "/exceptions/{id}/retry": { "post": {
                "summary": "Puts the exception's task back in the queue now.",
                "description": write_note,
                "parameters": [path_param("id", json!({ "type": "integer" }), "Exception id.")],
                "responses": { "200": ok("What the retry found.", json!({ "type": "object", "properties": {
                                   "outcome": { "type": "string", "enum": ["queued", "already_applied", "in_flight"] } } })),
                               "401": unauth, "403": forbidden, "404": error_response("No such exception."),
                               "409": error_response("The exception concerns a whole destination."),
                               "422": error_response("The id is not a number.") } } },
            "/exceptions/actions": actions_path(write_note),
            "/sku-mappings/{sku}": {
                "get": {
                    "summary": "A SKU's ERP item code.",
                    "description": read_note,
                    "parameters": [path_param("sku", json!({ "type": "string" }), "Store SKU.")],
                    "responses": { "200": ok("The mapping.", schema("SkuMapping")), "401": unauth, "403": forbidden,
                                   "404": error_response("The SKU has no mapping.") } },
                "put": {
                    "summary": "Maps a SKU to an ERP item code and releases every order waiting on it.",
                    "description": write_note,
                    "parameters": [path_param("sku", json!({ "type": "string" }), "Store SKU.")],
                    "requestBody": { "required": true, "content": { "application/json": { "schema": {
                        "type": "object", "required": ["item_code"], "properties": {
                            "item_code": { "type": "string", "minLength": 1, "maxLength": 40, "pattern": "^\\S+$" } } } } } },
                    "responses": { "200": ok("The mapping and what it released (`item_code_checked`: whether the ERP confirmed the code).", schema("SkuMapping")),
                                   "401": unauth, "403": forbidden, "422": error_response("A bad item code, or one the ERP says it does not have.") } } },
            "/sku-mappings.csv": {
                "get": {
                    "summary": "Every mapping as CSV: sku,item_code,updated_at,updated_by.",
                    "description": read_note,
                    "responses": { "200": { "description": "The CSV file.", "content": { "text/csv": {} } },
                                   "401": unauth, "403": forbidden } },
                "post": {
                    "summary": "Imports a CSV file of mappings, all or nothing.",
                    "description": "The first line names the columns `sku` and `item_code` (any order, any case; others ignored), at most 10,000 rows and 2 MiB. Every row is checked (SKU, item code, a SKU mapped twice, an item code the ERP does not know); one bad row and nothing is applied. Operator role.",
                    "requestBody": { "required": true, "content": { "text/csv": { "schema": { "type": "string" } } } },
                    "responses": {
                        "200": { "description": "Applied: `rows`, `created`, `changed`, `unchanged`, `released_tasks`, `resolved_exceptions`, `unchecked`, `message`." },
                        "401": unauth, "403": forbidden,
                        "422": { "description": "Nothing applied. Either the file as a whole is unusable (`error`), or `error.code` is `rows_rejected` and `rejected` lists each bad row as `{line, sku, reason}`." } } } },
            "/destinations/{name}/resume": { "post": {
                "summary": "Starts deliveries again to a destination paused because it rejected SyncDesk's credentials, and resolves its `auth:<name>` exception.",
                "description": "For credentials put right on the destination's side. New credentials (`SYNCDESK_CRM_TOKEN`, `SYNCDESK_ERP_TOKEN`) need no call: a process started with them resumes the destination by itself. If the destination still refuses them, the next delivery pauses it again, with one exception. Needs a token with the admin role. Audited as `token:<name>`.",
                "parameters": [path_param("name", json!({ "type": "string", "enum": ["crm", "erp"] }), "The destination.")],
                "responses": { "200": ok("Resumed.", json!({ "type": "object", "properties": {
                                   "destination": { "type": "string" },
                                   "was_paused": { "type": "boolean" },
                                   "paused": { "type": "boolean" } } })),
                               "401": unauth, "403": forbidden, "404": error_response("No such destination.") } } },
            "/openapi.json": { "get": {
                "summary": "This document.", "security": [],
                "responses": { "200": { "description": "OpenAPI 3.1 document." } } } }
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer",
                "description": "An API token (`sdk_…`) from `syncdesk token create`." } },
            "schemas": schemas()
        }
    })
}

/// Serves the document.
pub async fn document() -> Json<Value> {
    Json(spec())
}
