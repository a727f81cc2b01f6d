//! `/api/v1/…` and `/metrics`: bearer tokens and roles, an order's state at each destination,
//! exceptions and their retry, a SKU mapping that releases blocked orders (audited as the
//! token), the OpenAPI document, and the Prometheus text.

use std::time::Duration;

use app::model::Role;
use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use syncdesk::audit::Actor;
use syncdesk::simulate::shopify::OrderFactory;
use syncdesk::store::{AttemptRecord, ClaimedTask, NewException};

use crate::harness::TestApp;
use crate::webhooks::{Post, later, order_id};

on_both_backends! {
    requests_without_a_live_token_or_the_right_role_are_refused_in_json => requests_without_a_live_token_or_the_right_role_are_refused_in_json_sqlite, requests_without_a_live_token_or_the_right_role_are_refused_in_json_postgres;
    a_sku_mapping_put_by_a_token_releases_the_blocked_order_and_is_audited => a_sku_mapping_put_by_a_token_releases_the_blocked_order_and_is_audited_sqlite, a_sku_mapping_put_by_a_token_releases_the_blocked_order_and_is_audited_postgres;
    an_order_shows_both_destinations_and_a_retry_queues_once_then_reports_applied => an_order_shows_both_destinations_and_a_retry_queues_once_then_reports_applied_sqlite, an_order_shows_both_destinations_and_a_retry_queues_once_then_reports_applied_postgres;
    the_openapi_document_and_metrics_are_served_without_a_token => the_openapi_document_and_metrics_are_served_without_a_token_sqlite, the_openapi_document_and_metrics_are_served_without_a_token_postgres;
    the_metrics_count_attempts_and_webhooks_as_they_are_written => the_metrics_count_attempts_and_webhooks_as_they_are_written_sqlite, the_metrics_count_attempts_and_webhooks_as_they_are_written_postgres;
    the_metric_counters_of_open_and_closed_connections_stay_exact => the_metric_counters_of_open_and_closed_connections_stay_exact_sqlite, the_metric_counters_of_open_and_closed_connections_stay_exact_postgres;
}

const UNMAPPED: &str = "NEW-GIZMO";

/// A new token with `roles`; its secret.
async fn token(app: &TestApp, name: &str, roles: &[Role]) -> String {
    let (secret, hash) = syncdesk::accounts::new_token();
    app.store
        .create_token(name, &hash, roles, &Actor::System)
        .await
        .expect("create a token");
    secret
}

/// One API request; the status and the JSON body (`Null` when there is none).
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new().request(method, format!("{}{path}", app.base));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
    let status = res.status();
    let text = res.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn get(app: &TestApp, path: &str, token: &str) -> (StatusCode, Value) {
    call(app, Method::GET, path, Some(token), None).await
}

fn attempt(task: &ClaimedTask, outcome: &'static str, status: i32) -> AttemptRecord {
    AttemptRecord {
        version: task.target_version,
        started_at: Utc::now(),
        duration_ms: 12,
        outcome,
        status: Some(status),
        message: None,
        request_id: Some(format!("req-{}", task.id)),
    }
}

fn missing_sku() -> NewException {
    NewException {
        code: "missing_sku".into(),
        kind: "needs_action",
        fingerprint: format!("missing_sku:erp:{UNMAPPED}"),
        message: format!("SKU {UNMAPPED} has no ERP item code."),
        action: "Map the SKU to an ERP item code.".into(),
        fields: vec!["line_items[0].sku".into()],
    }
}

/// An order synced to the CRM and blocked at the ERP on an unmapped SKU, recorded through the
/// same store calls the worker makes (no simulators, so nothing races the assertions).
async fn blocked_order(app: &TestApp) -> i64 {
    let order = OrderFactory::new(7).order();
    let (status, body) = Post::new("orders/create", &order).send(app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let tasks = app
        .store
        .claim_tasks(10, Duration::from_secs(30))
        .await
        .expect("claim");
    assert_eq!(tasks.len(), 2);
    for task in &tasks {
        let done = if task.destination == "crm" {
            app.store
                .complete_synced(task, "crm-1", &attempt(task, "synced", 201))
                .await
        } else {
            app.store
                .complete_blocked(task, &attempt(task, "needs_action", 422), &missing_sku())
                .await
        };
        assert!(done.expect("complete"), "lease held");
    }
    order_id(&order)
}

async fn requests_without_a_live_token_or_the_right_role_are_refused_in_json(app: TestApp) {
    let (status, body) = call(&app, Method::GET, "/api/v1/exceptions", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthenticated", "{body}");
    let (status, body) = get(&app, "/api/v1/exceptions", "sdk_not-a-real-token").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthenticated", "{body}");

    let manager = token(&app, "dashboards", &[Role::Manager]).await;
    let (status, body) = get(&app, "/api/v1/exceptions", &manager).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["exceptions"], json!([]));
    // The scheme's name is case-insensitive; another scheme, or none, is no token.
    for (header, expected) in [
        (format!("BEARER {manager}"), StatusCode::OK),
        (format!("bearer  {manager}"), StatusCode::OK),
        (format!("Basic {manager}"), StatusCode::UNAUTHORIZED),
        (manager.clone(), StatusCode::UNAUTHORIZED),
    ] {
        let status = reqwest::Client::new()
            .get(format!("{}/api/v1/exceptions", app.base))
            .header(reqwest::header::AUTHORIZATION, &header)
            .send()
            .await
            .expect("request")
            .status();
        assert_eq!(status, expected, "{}", header.replace(&manager, "<token>"));
    }
    let put = json!({ "item_code": "ERP-1" });
    let (status, body) = call(
        &app,
        Method::PUT,
        "/api/v1/sku-mappings/ABC",
        Some(&manager),
        Some(put),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "forbidden");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("operator"),
        "{body}"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sku_mappings").await,
        0,
        "nothing saved"
    );

    // What axum answers itself is in the envelope too: a method the route does not take, a
    // CSV body that is not text.
    let (status, body) = call(
        &app,
        Method::DELETE,
        "/api/v1/exceptions",
        Some(&manager),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
    let operator = token(&app, "imports", &[Role::Operator]).await;
    let res = reqwest::Client::new()
        .post(format!("{}/api/v1/sku-mappings.csv", app.base))
        .bearer_auth(&operator)
        .header(reqwest::header::CONTENT_TYPE, "text/csv")
        .body(vec![0xff_u8, 0xfe, b's', b'k', b'u'])
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.expect("a JSON answer");
    assert_eq!(body["error"]["code"], "invalid", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("UTF-8"),
        "{body}"
    );

    let refused = app.audit_of("access.denied").await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(
        (refused[0].actor_label.as_str(), refused[0].target.as_str()),
        ("token:dashboards", "PUT /api/v1/sku-mappings/ABC"),
        "a refused role check is audited, naming the request"
    );
    assert_eq!(
        refused[0].after.as_ref().map(|a| a.0.clone()),
        Some(json!({ "needs_one_of": ["operator"] }))
    );

    let steward = token(&app, "merges", &[Role::Steward]).await;
    let (status, body) = get(&app, "/api/v1/orders/1", &steward).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("operator or manager"),
        "{body}"
    );
}

async fn a_sku_mapping_put_by_a_token_releases_the_blocked_order_and_is_audited(app: TestApp) {
    let id = blocked_order(&app).await;
    let ops = token(&app, "ci-bot", &[Role::Operator]).await;

    let (status, body) = get(&app, "/api/v1/exceptions?code=missing_sku", &ops).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let list = body["exceptions"].as_array().expect("list");
    assert_eq!(list.len(), 1, "{body}");
    assert_eq!(list[0]["store_order_id"], id);
    assert_eq!(
        list[0]["fingerprint"],
        format!("missing_sku:erp:{UNMAPPED}")
    );
    assert_eq!(list[0]["fields"], json!(["line_items[0].sku"]));
    assert_eq!(body["next_before_id"], Value::Null);
    let (_, groups) = get(&app, "/api/v1/exception-groups", &ops).await;
    assert_eq!(groups["groups"][0]["open"], 1, "{groups}");

    let path = format!("/api/v1/sku-mappings/{UNMAPPED}");
    let (status, _) = get(&app, &path, &ops).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for bad in ["", "ERP NEW", &"X".repeat(65)] {
        let (status, body) = call(
            &app,
            Method::PUT,
            &path,
            Some(&ops),
            Some(json!({ "item_code": bad })),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}: {body}");
        assert_eq!(body["error"]["code"], "invalid");
    }
    let (status, body) = call(
        &app,
        Method::PUT,
        &path,
        Some(&ops),
        Some(json!({ "wrong": 1 })),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sku_mappings").await,
        0,
        "bad input changes nothing"
    );

    let put = json!({ "item_code": "ERP-NEW-GIZMO" });
    let (status, body) = call(&app, Method::PUT, &path, Some(&ops), Some(put)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["item_code"], "ERP-NEW-GIZMO");
    assert_eq!(body["released_tasks"], 1);
    assert_eq!(body["resolved_exceptions"], 1);
    assert_eq!(
        app.text(&format!(
            "SELECT state FROM sync_tasks WHERE store_order_id = {id} AND destination = 'erp'"
        ))
        .await,
        "pending",
        "the ERP task is back in the queue"
    );
    let (_, body) = get(&app, "/api/v1/exceptions", &ops).await;
    assert_eq!(body["exceptions"], json!([]), "nothing left open");
    let (status, body) = get(&app, &path, &ops).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["updated_by"], "token:ci-bot");

    let audit = app.audit_of("sku_mapping.saved").await;
    let by_token = audit.first().expect("audited");
    assert_eq!(by_token.actor_label, "token:ci-bot");
    assert_eq!(by_token.actor_kind, "token");
    assert_eq!(by_token.target, format!("sku:{UNMAPPED}"));
}

async fn an_order_shows_both_destinations_and_a_retry_queues_once_then_reports_applied(
    app: TestApp,
) {
    let id = blocked_order(&app).await;
    let ops = token(&app, "ci-bot", &[Role::Operator]).await;

    let (status, order) = get(&app, &format!("/api/v1/orders/{id}"), &ops).await;
    assert_eq!(status, StatusCode::OK, "{order}");
    assert_eq!(order["version"], 1);
    let dests = order["destinations"].as_array().expect("destinations");
    assert_eq!(dests.len(), 2, "{order}");
    assert_eq!(dests[0]["destination"], "crm");
    assert_eq!(dests[0]["state"], "synced");
    assert_eq!(dests[0]["external_id"], "crm-1");
    assert_eq!(dests[0]["attempts"][0]["outcome"], "synced");
    assert_eq!(dests[1]["destination"], "erp");
    assert_eq!(dests[1]["state"], "blocked");
    assert_eq!(dests[1]["attempts"][0]["status"], 422);
    let (status, body) = get(&app, "/api/v1/orders/424242", &ops).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");

    let (_, body) = get(&app, "/api/v1/exceptions", &ops).await;
    let exception = body["exceptions"][0]["id"].as_i64().expect("exception id");
    let retry = format!("/api/v1/exceptions/{exception}/retry");
    let (status, body) = call(&app, Method::POST, &retry, Some(&ops), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outcome"], "queued");

    // The worker delivers it; a retry after that has nothing to do.
    let tasks = app
        .store
        .claim_tasks(10, Duration::from_secs(30))
        .await
        .expect("claim");
    assert_eq!(tasks.len(), 1);
    assert!(
        app.store
            .complete_synced(&tasks[0], "erp-1", &attempt(&tasks[0], "synced", 200))
            .await
            .expect("sync")
    );
    let (status, body) = call(&app, Method::POST, &retry, Some(&ops), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outcome"], "already_applied");
    let retried = app.audit_of("exception.retried").await;
    assert_eq!(retried.len(), 2);
    assert!(retried.iter().all(|r| r.actor_label == "token:ci-bot"));

    let (status, body) = call(
        &app,
        Method::POST,
        "/api/v1/exceptions/999999/retry",
        Some(&ops),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let wide = app
        .count(
            "INSERT INTO exceptions (task_id, store_order_id, destination, code, kind, fingerprint, message, action,
                 fields, status, created_at, updated_at)
             VALUES (NULL, NULL, 'crm', 'auth', 'needs_action', 'auth:crm', 'Rejected credentials', 'Renew them',
                 '[]', 'open', '2024-10-01T12:00:00Z', '2024-10-01T12:00:00Z')
             RETURNING id",
        )
        .await;
    let (status, body) = call(
        &app,
        Method::POST,
        &format!("/api/v1/exceptions/{wide}/retry"),
        Some(&ops),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "conflict");

    // The destination itself is resumed, by an admin only.
    app.execute("UPDATE destinations SET paused = TRUE, paused_reason = 'Rejected credentials' WHERE name = 'crm'")
        .await;
    let resume = "/api/v1/destinations/crm/resume";
    let (status, _) = call(&app, Method::POST, resume, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = call(&app, Method::POST, resume, Some(&ops), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(app.store.paused_destinations().await.unwrap(), ["crm"]);
    let admin = token(&app, "ops-admin", &[Role::Admin]).await;
    let (status, body) = call(
        &app,
        Method::POST,
        "/api/v1/destinations/pos/resume",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = call(&app, Method::POST, resume, Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({ "destination": "crm", "was_paused": true, "paused": false })
    );
    assert!(app.store.paused_destinations().await.unwrap().is_empty());
    assert_eq!(
        app.text(&format!("SELECT status FROM exceptions WHERE id = {wide}"))
            .await,
        "resolved"
    );
    let resumed = app.audit_of("destination.resumed").await;
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].actor_label, "token:ops-admin");
}

async fn the_openapi_document_and_metrics_are_served_without_a_token(app: TestApp) {
    let (status, doc) = call(&app, Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/orders/{store_order_id}",
        "/exceptions",
        "/exception-groups",
        "/exceptions/{id}/retry",
        "/sku-mappings/{sku}",
        "/destinations/{name}/resume",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    assert!(doc["paths"]["/sku-mappings/{sku}"]["put"].is_object());

    blocked_order(&app).await;
    let res = reqwest::get(format!("{}/metrics", app.base))
        .await
        .expect("metrics");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/plain")
    );
    let text = res.text().await.expect("text");
    // Done tasks are not queue depth (and counting them read every task).
    assert!(!text.contains("state=\"synced\""), "{text}");
    for line in [
        "syncdesk_queue_depth{destination=\"erp\",state=\"blocked\"} 1",
        "syncdesk_queue_depth{destination=\"crm\",state=\"pending\"} 0",
        "syncdesk_exceptions_open{code=\"missing_sku\"} 1",
        "syncdesk_attempts_total{destination=\"crm\",outcome=\"synced\"} 1",
        "syncdesk_attempts_total{destination=\"erp\",outcome=\"needs_action\"} 1",
        "syncdesk_sync_lag_seconds_bucket{destination=\"crm\",le=\"+Inf\"} 1",
        "syncdesk_sync_lag_seconds_count{destination=\"crm\"} 1",
        "syncdesk_sync_lag_seconds_count{destination=\"erp\"} 0",
        "syncdesk_exceptions_open{code=\"dead_letter\"} 0",
        "syncdesk_webhooks_total{outcome=\"applied\"} 1",
        "syncdesk_destination_paused{destination=\"erp\"} 0",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    // The CRM's synced delivery, written by PostgreSQL's completion writer; the order's
    // webhook, by its ingest writer.
    let batched = [
        "syncdesk_pg_completion_statements_total 1",
        "syncdesk_pg_completions_total 1",
        "syncdesk_pg_ingest_calls_total 1",
        "syncdesk_pg_ingested_total 1",
    ];
    for line in batched {
        let postgres = app.store.backend() == syncdesk::store::Backend::Postgres;
        assert_eq!(text.contains(line), postgres, "{line:?} in\n{text}");
    }
    // SQLite's one writer: the transactions it committed and the time it spent writing.
    for name in [
        "syncdesk_sqlite_commits_total",
        "syncdesk_sqlite_writer_busy_seconds_total",
    ] {
        let value: Option<f64> = text
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok());
        let sqlite = app.store.backend() == syncdesk::store::Backend::Sqlite;
        assert_eq!(value.is_some_and(|v| v > 0.0), sqlite, "{name} in\n{text}");
    }
}

/// The counters behind `/metrics` follow every write of what they count: attempts written one
/// statement at a time and many in one statement, lags on each side of the histogram's bounds,
/// and webhooks whose outcome the ingest rewrote (a duplicate, a superseded state).
async fn the_metrics_count_attempts_and_webhooks_as_they_are_written(app: TestApp) {
    let id = blocked_order(&app).await;
    app.assert_metric_counters_match_the_rows().await;
    app.assert_every_row_has_its_parent().await;

    // (outcome, lag in ms), at the CRM's task: the bounds of the first and last buckets and
    // just past them; a synced attempt without a lag; a failure, which has no lag to count.
    app.execute(
        "INSERT INTO sync_attempts (task_id, store_order_id, destination, version, attempt, started_at,
             duration_ms, outcome, lag_ms)
         SELECT t.id, t.store_order_id, t.destination, 1, 1, t.updated_at, 5, v.column1, v.column2
         FROM sync_tasks t,
              (VALUES ('synced', 0), ('synced', 50), ('synced', 51), ('synced', 2500), ('synced', 60000),
                      ('synced', 60001), ('synced', NULL), ('transient', 70)) v
         WHERE t.destination = 'crm'",
    )
    .await;
    let order = OrderFactory::new(7).order();
    for (body, expected) in [
        (order.clone(), "duplicate"),
        (later(&order, -30), "superseded"),
        (later(&order, 30), "applied"),
    ] {
        let (status, reply) = Post::new("orders/updated", &body).send(&app).await;
        assert_eq!(status, StatusCode::OK, "{reply}");
        assert_eq!(
            app.text(&format!(
                "SELECT outcome FROM webhook_events WHERE store_order_id = {id} ORDER BY id DESC LIMIT 1"
            ))
            .await,
            expected
        );
    }
    app.assert_metric_counters_match_the_rows().await;
    app.assert_every_row_has_its_parent().await;

    let text = reqwest::get(format!("{}/metrics", app.base))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    // Seven synced attempts with a lag besides the first delivery's; one of them past a minute.
    for line in [
        "syncdesk_sync_lag_seconds_count{destination=\"crm\"} 7",
        "syncdesk_sync_lag_seconds_bucket{destination=\"crm\",le=\"+Inf\"} 7",
        "syncdesk_sync_lag_seconds_bucket{destination=\"crm\",le=\"60\"} 6",
        "syncdesk_attempts_total{destination=\"crm\",outcome=\"transient\"} 1",
        "syncdesk_attempts_total{destination=\"crm\",outcome=\"synced\"} 8",
        "syncdesk_webhooks_total{outcome=\"applied\"} 2",
        "syncdesk_webhooks_total{outcome=\"duplicate\"} 1",
        "syncdesk_webhooks_total{outcome=\"superseded\"} 1",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

/// Each PostgreSQL connection counts into rows of its own: two transactions writing webhooks at
/// once never wait for each other's counters (an ingest transaction holds its counter rows
/// until it commits, while it locks orders and tasks too), and once a connection has closed its
/// rows are folded into one without changing a count. SQLite has one writer and one row per
/// count: the fold leaves it as it is.
async fn the_metric_counters_of_open_and_closed_connections_stay_exact(app: TestApp) {
    blocked_order(&app).await;
    if app.store.backend() == syncdesk::store::Backend::Postgres {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&app.database_url())
            .await
            .expect("a pool of two");
        let event = |n: u8| {
            format!(
                "INSERT INTO webhook_events (webhook_id, topic, received_at, body, outcome)
                 VALUES ('held-{n}', 'orders/create', now(), '\\x7b7d'::bytea, 'applied')"
            )
        };
        let mut first = pool.begin().await.expect("begin");
        sqlx::query(&event(1))
            .execute(&mut *first)
            .await
            .expect("first insert");
        let mut second = pool.begin().await.expect("begin");
        tokio::time::timeout(
            Duration::from_secs(5),
            sqlx::query(&event(2)).execute(&mut *second),
        )
        .await
        .expect("the second writer does not wait for the first one's counters")
        .expect("second insert");
        let mut pids = Vec::new();
        for tx in [&mut first, &mut second] {
            let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&mut **tx)
                .await
                .expect("pid");
            pids.push(pid.to_string());
        }
        second.commit().await.expect("commit");
        first.commit().await.expect("commit");
        let pids = pids.join(", ");
        assert_eq!(
            app.count(&format!(
                "SELECT COUNT(*) FROM webhook_counts WHERE slot IN ({pids})"
            ))
            .await,
            2,
            "a row for each connection"
        );
        app.assert_metric_counters_match_the_rows().await;
        app.assert_every_row_has_its_parent().await;

        pool.close().await;
        let gone = format!("SELECT COUNT(*) FROM pg_stat_activity WHERE pid IN ({pids})");
        for _ in 0..100 {
            if app.count(&gone).await == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        app.store.fold_metric_counts().await.expect("fold");
        assert_eq!(
            app.count(&format!(
                "SELECT COUNT(*) FROM webhook_counts WHERE slot IN ({pids})"
            ))
            .await,
            0,
            "the closed connections' rows are folded"
        );
    }
    app.store.fold_metric_counts().await.expect("fold");
    app.store.fold_metric_counts().await.expect("a second fold");
    app.assert_metric_counters_match_the_rows().await;
    app.assert_every_row_has_its_parent().await;
}
