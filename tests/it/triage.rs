//! Triage: retry, skip, resolve, assign and snooze on one exception, a selection, a cause group
//! or a filter — through the engine, the JSON API and the UI's server function — with dry-run
//! counts, role checks and the audit log, against the simulated ERP over HTTP.

use std::time::Duration;

use app::model::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};
use syncdesk::audit::Actor;
use syncdesk::simulate::ledger::DocumentKind;
use syncdesk::store::{Assignee, ExceptionScope, TriageAction};

use crate::harness::TestApp;
use crate::sync::{UNMAPPED, clean_order, drain, rig};
use crate::webhooks::{Post, later, order_id};

on_both_backends! {
    retrying_a_group_counts_first_then_queues_every_order_once => retrying_a_group_counts_first_then_queues_every_order_once_sqlite, retrying_a_group_counts_first_then_queues_every_order_once_postgres;
    skip_needs_a_reason_and_keeps_the_order_skipped_through_later_changes => skip_needs_a_reason_and_keeps_the_order_skipped_through_later_changes_sqlite, skip_needs_a_reason_and_keeps_the_order_skipped_through_later_changes_postgres;
    resolve_records_a_manual_attempt_and_retry_of_an_applied_order_says_so => resolve_records_a_manual_attempt_and_retry_of_an_applied_order_says_so_sqlite, resolve_records_a_manual_attempt_and_retry_of_an_applied_order_says_so_postgres;
    filters_find_exceptions_by_order_email_sku_and_assignee => filters_find_exceptions_by_order_email_sku_and_assignee_sqlite, filters_find_exceptions_by_order_email_sku_and_assignee_postgres;
    snoozed_exceptions_come_back_when_their_time_comes => snoozed_exceptions_come_back_when_their_time_comes_sqlite, snoozed_exceptions_come_back_when_their_time_comes_postgres;
    triage_through_the_api_and_the_server_function_checks_roles_and_audits => triage_through_the_api_and_the_server_function_checks_roles_and_audits_sqlite, triage_through_the_api_and_the_server_function_checks_roles_and_audits_postgres;
    the_sku_screen_ranks_unmapped_skus_and_mapping_one_releases_its_orders => the_sku_screen_ranks_unmapped_skus_and_mapping_one_releases_its_orders_sqlite, the_sku_screen_ranks_unmapped_skus_and_mapping_one_releases_its_orders_postgres;
    an_order_page_shows_the_timeline_and_payloads_and_an_operator_sends_it_again => an_order_page_shows_the_timeline_and_payloads_and_an_operator_sends_it_again_sqlite, an_order_page_shows_the_timeline_and_payloads_and_an_operator_sends_it_again_postgres;
}

pub(crate) const FINGERPRINT: &str = "missing_sku:erp:NEW-GIZMO";

/// Posts `n` orders with the unmapped SKU (seeds from `seed`), works the queue, and returns
/// their store ids: each order's ERP task is then blocked with one open exception.
pub(crate) async fn blocked_orders(
    app: &TestApp,
    worker: &syncdesk::engine::worker::Worker,
    seed: u64,
    n: u64,
) -> Vec<i64> {
    let mut ids = Vec::new();
    for s in seed..seed + n {
        let mut order = clean_order(s);
        order["line_items"][0]["sku"] = json!(UNMAPPED);
        order["name"] = json!(format!("#{}", 5000 + s));
        order["order_number"] = json!(5000 + s);
        ids.push(order_id(&order));
        Post::new("orders/create", &order).send(app).await;
    }
    drain(worker, app, Duration::from_secs(10)).await;
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM exceptions WHERE status = 'open' AND fingerprint = '{FINGERPRINT}'"
        ))
        .await,
        n as i64
    );
    ids
}

fn group() -> ExceptionScope {
    ExceptionScope {
        fingerprint: Some(FINGERPRINT.into()),
        ..ExceptionScope::default()
    }
}

async fn retrying_a_group_counts_first_then_queues_every_order_once(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(5)).await;
    let worker = rig.worker(&app.store);
    let ids = blocked_orders(&app, &worker, 300, 3).await;
    let operator = app
        .add_user("olga@example.com", "Olga", &[Role::Operator])
        .await;
    let by = Actor::User {
        id: operator.id,
        email: operator.email.clone(),
    };

    // The dry run counts and changes nothing.
    let preview = app
        .store
        .triage(&group(), &TriageAction::Retry, true, &by)
        .await
        .expect("dry run");
    assert_eq!(
        (preview.matched, preview.queued, preview.dry_run),
        (3, 3, true)
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM sync_tasks WHERE destination = 'erp' AND state = 'blocked'"
        )
        .await,
        3,
        "a dry run changes nothing"
    );
    assert!(app.audit_of("exceptions.retried").await.is_empty());

    // Two people retry the group at once: every task is queued, each order is delivered once.
    let scope = group();
    let (a, b) = tokio::join!(
        app.store.triage(&scope, &TriageAction::Retry, false, &by),
        app.store.triage(&scope, &TriageAction::Retry, false, &by),
    );
    let (a, b) = (a.expect("retry a"), b.expect("retry b"));
    assert_eq!(a.matched, 3);
    assert_eq!(b.matched, 3);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sync_tasks WHERE destination = 'erp' AND state = 'pending' AND attempt = 0")
            .await,
        3
    );
    assert_eq!(app.audit_of("exceptions.retried").await.len(), 2);

    // Still unmapped: the retry blocks again, and the exceptions stay one per order.
    drain(&worker, &app, Duration::from_secs(10)).await;
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM exceptions WHERE fingerprint = '{FINGERPRINT}'"
        ))
        .await,
        3,
        "a retry that fails again refreshes the exception rather than adding one"
    );

    // Mapped (through the engine's release), then retried: nothing is sent twice.
    app.store
        .save_sku_mapping(UNMAPPED, &format!("ERP-{UNMAPPED}"), &by)
        .await
        .expect("map");
    drain(&worker, &app, Duration::from_secs(10)).await;
    let again = app
        .store
        .triage(&group(), &TriageAction::Retry, false, &by)
        .await
        .expect("retry after the fix");
    assert_eq!(again.matched, 0, "the mapping resolved the group");
    let ledger = rig.erp.ledger().check();
    for id in &ids {
        assert_eq!(ledger.count(DocumentKind::SalesOrder, &id.to_string()), 1);
    }
}

async fn skip_needs_a_reason_and_keeps_the_order_skipped_through_later_changes(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(5)).await;
    let worker = rig.worker(&app.store);
    let ids = blocked_orders(&app, &worker, 320, 2).await;
    let one = app
        .count(&format!(
            "SELECT id FROM exceptions WHERE store_order_id = {} AND status = 'open'",
            ids[0]
        ))
        .await;
    let scope = ExceptionScope {
        ids: Some(vec![one]),
        ..ExceptionScope::default()
    };

    // A blank reason is refused, and so is a NUL byte (which PostgreSQL refuses in text), each
    // with what to fix.
    for (reason, says) in [("  ", "why"), ("Test\u{0}order", "control character")] {
        let refused = app
            .store
            .triage(
                &scope,
                &TriageAction::Skip {
                    reason: reason.into(),
                },
                false,
                &Actor::System,
            )
            .await;
        assert!(
            matches!(&refused, Err(syncdesk::store::StoreError::Invalid(m)) if m.contains(says)),
            "{refused:?}"
        );
    }

    let done = app
        .store
        .triage(
            &scope,
            &TriageAction::Skip {
                reason: "Test order placed by the shop owner".into(),
            },
            false,
            &Actor::System,
        )
        .await
        .expect("skip");
    assert_eq!((done.matched, done.changed), (1, 1));
    assert_eq!(
        app.text(&format!(
            "SELECT state FROM sync_tasks WHERE store_order_id = {} AND destination = 'erp'",
            ids[0]
        ))
        .await,
        "skipped"
    );
    assert_eq!(
        app.text(&format!(
            "SELECT status || ': ' || resolution FROM exceptions WHERE id = {one}"
        ))
        .await,
        "skipped: Test order placed by the shop owner"
    );
    // The other order of the group is untouched.
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM exceptions WHERE status = 'open' AND store_order_id = {}",
            ids[1]
        ))
        .await,
        1
    );

    // The store changes the skipped order: it stays skipped at the ERP; the CRM still follows.
    let mut order = clean_order(320);
    order["line_items"][0]["sku"] = json!(UNMAPPED);
    order["name"] = json!("#5320");
    order["order_number"] = json!(5320);
    let changed = later(&order, 5);
    Post::new("orders/updated", &changed).send(&app).await;
    drain(&worker, &app, Duration::from_secs(10)).await;
    assert_eq!(
        app.text(&format!(
            "SELECT state FROM sync_tasks WHERE store_order_id = {} AND destination = 'erp'",
            ids[0]
        ))
        .await,
        "skipped"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM exceptions WHERE status = 'open' AND store_order_id = {}",
            ids[0]
        ))
        .await,
        0,
        "no new exception for a skipped order"
    );
    assert_eq!(
        rig.erp
            .ledger()
            .check()
            .count(DocumentKind::SalesOrder, &ids[0].to_string()),
        0
    );
    let audit = app.audit_of("exceptions.skipped").await;
    assert_eq!(audit.len(), 1);
    let after = audit[0].after.as_ref().expect("details").0.clone();
    assert_eq!(after["reason"], "Test order placed by the shop owner");
    assert_eq!(audit[0].target, format!("exception:{one}"));
}

async fn resolve_records_a_manual_attempt_and_retry_of_an_applied_order_says_so(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(5)).await;
    let worker = rig.worker(&app.store);
    let ids = blocked_orders(&app, &worker, 340, 2).await;

    // Resolve by hand: the ERP document was keyed in directly.
    let first = ExceptionScope {
        search: Some(ids[0].to_string()),
        ..ExceptionScope::default()
    };
    let done = app
        .store
        .triage(
            &first,
            &TriageAction::Resolve {
                note: "Keyed into the ERP by hand as SO-7781".into(),
            },
            false,
            &Actor::System,
        )
        .await
        .expect("resolve");
    assert_eq!((done.matched, done.changed), (1, 1));
    assert_eq!(
        app.text(&format!(
            "SELECT state || ' ' || CAST(synced_version AS TEXT) FROM sync_tasks WHERE store_order_id = {} AND destination = 'erp'",
            ids[0]
        ))
        .await,
        "synced 1"
    );
    assert_eq!(
        app.text(&format!(
            "SELECT outcome || ': ' || message FROM sync_attempts WHERE store_order_id = {} AND destination = 'erp' ORDER BY id DESC LIMIT 1",
            ids[0]
        ))
        .await,
        "manual: Resolved by system: Keyed into the ERP by hand as SO-7781"
    );

    // The second order reached the ERP some other way while its exception stayed open: a
    // retry says "already applied", closes the exception and sends nothing.
    sqlx_exec(
        &app,
        &format!(
            "UPDATE sync_tasks SET state = 'synced', synced_version = target_version WHERE store_order_id = {} AND destination = 'erp'",
            ids[1]
        ),
    )
    .await;
    let second = ExceptionScope {
        search: Some(ids[1].to_string()),
        ..ExceptionScope::default()
    };
    let retried = app
        .store
        .triage(&second, &TriageAction::Retry, false, &Actor::System)
        .await
        .expect("retry");
    assert_eq!(
        (retried.matched, retried.already_applied, retried.queued),
        (1, 1, 0)
    );
    assert_eq!(
        app.text(&format!(
            "SELECT resolution FROM exceptions WHERE store_order_id = {}",
            ids[1]
        ))
        .await,
        "Already applied at the destination"
    );
    drain(&worker, &app, Duration::from_secs(5)).await;
    assert_eq!(
        rig.erp
            .ledger()
            .check()
            .count(DocumentKind::SalesOrder, &ids[1].to_string()),
        0
    );
}

async fn filters_find_exceptions_by_order_email_sku_and_assignee(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(5)).await;
    let worker = rig.worker(&app.store);
    let ids = blocked_orders(&app, &worker, 360, 3).await;
    let name = app
        .text(&format!(
            "SELECT name FROM orders WHERE store_order_id = {}",
            ids[0]
        ))
        .await;
    let email = app
        .text(&format!(
            "SELECT email FROM orders WHERE store_order_id = {}",
            ids[0]
        ))
        .await;
    let count = |scope: ExceptionScope| {
        let store = app.store.clone();
        async move { store.count_exceptions(&scope).await.expect("count") }
    };
    let search = |q: &str| ExceptionScope {
        search: Some(q.to_string()),
        status: Some("open".into()),
        ..ExceptionScope::default()
    };
    assert_eq!(count(search(&name)).await, 1, "by order number {name}");
    assert_eq!(
        count(search(name.trim_start_matches('#'))).await,
        1,
        "by number without #"
    );
    assert_eq!(
        count(search(&email.to_uppercase())).await,
        1,
        "by email, any case"
    );
    assert_eq!(count(search(UNMAPPED)).await, 3, "by SKU");
    assert_eq!(count(search("NO-SUCH-THING")).await, 0);
    assert_eq!(
        count(ExceptionScope {
            destination: Some("crm".into()),
            ..ExceptionScope::default()
        })
        .await,
        0
    );

    // Assign two to a person, then filter by assignee.
    let ana = app
        .add_user("ana@example.com", "Ana", &[Role::Operator])
        .await;
    let two = ExceptionScope {
        ids: Some(vec![
            app.count(&format!(
                "SELECT id FROM exceptions WHERE store_order_id = {}",
                ids[0]
            ))
            .await,
            app.count(&format!(
                "SELECT id FROM exceptions WHERE store_order_id = {}",
                ids[1]
            ))
            .await,
        ]),
        ..ExceptionScope::default()
    };
    let assigned = app
        .store
        .triage(
            &two,
            &TriageAction::Assign {
                user_id: Some(ana.id),
            },
            false,
            &Actor::System,
        )
        .await
        .expect("assign");
    assert_eq!(assigned.changed, 2);
    assert_eq!(
        count(ExceptionScope {
            assignee: Some(Assignee::User(ana.id)),
            ..ExceptionScope::default()
        })
        .await,
        2
    );
    assert_eq!(
        count(ExceptionScope {
            assignee: Some(Assignee::Nobody),
            ..ExceptionScope::default()
        })
        .await,
        1
    );
    // Nobody can be assigned to a deactivated account.
    let gone = app
        .add_user("gone@example.com", "Gone", &[Role::Operator])
        .await;
    app.store
        .set_user_active(gone.id, false, &Actor::System)
        .await
        .expect("deactivate");
    let refused = app
        .store
        .triage(
            &two,
            &TriageAction::Assign {
                user_id: Some(gone.id),
            },
            false,
            &Actor::System,
        )
        .await;
    assert!(
        matches!(refused, Err(syncdesk::store::StoreError::Conflict(_))),
        "{refused:?}"
    );
    // Nor to someone who cannot open the queue (the API takes any user id).
    let manager = app
        .add_user("mo@example.com", "Mo", &[Role::Manager, Role::Steward])
        .await;
    let refused = app
        .store
        .triage(
            &two,
            &TriageAction::Assign {
                user_id: Some(manager.id),
            },
            false,
            &Actor::System,
        )
        .await;
    assert!(
        matches!(&refused, Err(syncdesk::store::StoreError::Conflict(m)) if m.contains("not an operator")),
        "{refused:?}"
    );
    assert_eq!(
        count(ExceptionScope {
            assignee: Some(Assignee::User(manager.id)),
            ..ExceptionScope::default()
        })
        .await,
        0
    );
    // Audit entries name no customer: a search by email is recorded as such.
    app.store
        .triage(
            &search(&email),
            &TriageAction::Assign { user_id: None },
            false,
            &Actor::System,
        )
        .await
        .expect("unassign");
    let audit = app.audit_of("exceptions.assigned").await;
    let text = serde_json::to_string(
        &audit
            .iter()
            .map(|a| a.after.as_ref().map(|j| j.0.clone()))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(
        !text.contains(&email),
        "no customer email in the audit log: {text}"
    );
}

async fn snoozed_exceptions_come_back_when_their_time_comes(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(5)).await;
    let worker = rig.worker(&app.store);
    blocked_orders(&app, &worker, 380, 2).await;
    let past = app
        .store
        .triage(
            &group(),
            &TriageAction::Snooze {
                until: chrono::Utc::now() - chrono::TimeDelta::minutes(1),
            },
            false,
            &Actor::System,
        )
        .await;
    assert!(matches!(past, Err(syncdesk::store::StoreError::Invalid(_))));
    let snoozed = app
        .store
        .triage(
            &group(),
            &TriageAction::Snooze {
                until: chrono::Utc::now() + chrono::TimeDelta::hours(1),
            },
            false,
            &Actor::System,
        )
        .await
        .expect("snooze");
    assert_eq!(snoozed.changed, 2);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM exceptions WHERE status = 'snoozed'")
            .await,
        2
    );
    assert_eq!(app.store.wake_snoozed().await.expect("sweep"), 0, "not yet");
    // Time passes.
    sqlx_exec(
        &app,
        "UPDATE exceptions SET snoozed_until = created_at WHERE status = 'snoozed'",
    )
    .await;
    assert_eq!(app.store.wake_snoozed().await.expect("sweep"), 2);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM exceptions WHERE status = 'open'")
            .await,
        2
    );
}

async fn triage_through_the_api_and_the_server_function_checks_roles_and_audits(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(5)).await;
    let worker = rig.worker(&app.store);
    blocked_orders(&app, &worker, 400, 2).await;

    // API: a manager's token may read, not act.
    let (secret, hash) = syncdesk::accounts::new_token();
    app.store
        .create_token("ops-bot", &hash, &[Role::Operator], &Actor::System)
        .await
        .expect("token");
    let (viewer, viewer_hash) = syncdesk::accounts::new_token();
    app.store
        .create_token("dashboards", &viewer_hash, &[Role::Manager], &Actor::System)
        .await
        .expect("token");
    let http = reqwest::Client::new();
    let body = json!({
        "action": "retry",
        "target": { "kind": "group", "fingerprint": FINGERPRINT },
        "dry_run": true
    });
    let res = http
        .post(format!("{}/api/v1/exceptions/actions", app.base))
        .bearer_auth(&viewer)
        .json(&body)
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = http
        .post(format!("{}/api/v1/exceptions/actions", app.base))
        .bearer_auth(&secret)
        .json(&body)
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::OK);
    let preview: Value = res.json().await.expect("json");
    assert_eq!(preview["matched"], 2);
    assert_eq!(preview["dry_run"], true);
    assert_eq!(preview["summary"], "2 orders will be sent again now.");
    // Bad input: a clear message, nothing changed.
    let res = http
        .post(format!("{}/api/v1/exceptions/actions", app.base))
        .bearer_auth(&secret)
        .json(&json!({ "action": "skip", "reason": "", "target": { "kind": "group", "fingerprint": FINGERPRINT } }))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let err: Value = res.json().await.expect("json");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("why"),
        "{err}"
    );
    let res = http
        .post(format!("{}/api/v1/exceptions/actions", app.base))
        .bearer_auth(&secret)
        .json(&json!({ "action": "skip", "reason": "Duplicate test orders", "target": { "kind": "group", "fingerprint": FINGERPRINT } }))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::OK);
    let done: Value = res.json().await.expect("json");
    assert_eq!(done["summary"], "2 orders skipped.");
    let audit = app.audit_of("exceptions.skipped").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor_label, "token:ops-bot");
    assert_eq!(audit[0].target, format!("group:{FINGERPRINT}"));

    // The list and the groups with filters.
    let res = http
        .get(format!(
            "{}/api/v1/exceptions?status=skipped&q={UNMAPPED}",
            app.base
        ))
        .bearer_auth(&viewer)
        .send()
        .await
        .expect("get");
    let list: Value = res.json().await.expect("json");
    assert_eq!(list["exceptions"].as_array().expect("rows").len(), 2);
    assert_eq!(list["exceptions"][0]["resolution"], "Duplicate test orders");
    // A skipped exception is not retried behind the skip's back: the one-exception retry refuses.
    let skipped = list["exceptions"][0]["id"].as_i64().expect("exception id");
    let res = http
        .post(format!("{}/api/v1/exceptions/{skipped}/retry", app.base))
        .bearer_auth(&secret)
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let err: Value = res.json().await.expect("json");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("This exception was skipped already"),
        "{err}"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM sync_tasks WHERE id = (SELECT task_id FROM exceptions WHERE id = {skipped}) AND state = 'skipped'"
        ))
        .await,
        1,
        "still skipped"
    );

    // A search that starts with an order's number but is not one names no order (SQLite would
    // read `<id>-RED` as the number it starts with).
    let id = list["exceptions"][0]["store_order_id"]
        .as_i64()
        .expect("order id");
    for (q, found) in [(format!("{id}"), true), (format!("{id}-RED"), false)] {
        let res = http
            .get(format!(
                "{}/api/v1/exceptions?status=skipped&q={q}",
                app.base
            ))
            .bearer_auth(&viewer)
            .send()
            .await
            .expect("get");
        let list: Value = res.json().await.expect("json");
        assert_eq!(
            !list["exceptions"].as_array().expect("rows").is_empty(),
            found,
            "q={q}: {list}"
        );
    }
    for bad in ["older_than_minutes=-3", "q=%00"] {
        let res = http
            .get(format!("{}/api/v1/exceptions?{bad}", app.base))
            .bearer_auth(&viewer)
            .send()
            .await
            .expect("get");
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    // Elsewhere, a NUL character PostgreSQL cannot search for is the input's fault there too
    // (an invalid request, not a database failure: never a 500); SQLite finds nothing.
    let found = app.store.find_orders(Some("#10\0"), None, 10).await;
    match app.store.backend() {
        syncdesk::store::Backend::Postgres => assert!(
            matches!(found, Err(syncdesk::store::StoreError::Invalid(_))),
            "{found:?}"
        ),
        syncdesk::store::Backend::Sqlite => {
            assert!(found.expect("found nothing").is_empty());
        }
    }

    // The UI's server function: a manager is refused (and it is audited); an operator acts.
    blocked_orders_more(&app, &worker).await;
    app.add_user("mona@example.com", "Mona", &[Role::Manager])
        .await;
    app.add_user("otto@example.com", "Otto", &[Role::Operator])
        .await;
    let manager = app.signed_in("mona@example.com").await;
    let call = json!({
        "target": { "kind": "group", "fingerprint": FINGERPRINT },
        "request": { "action": "retry" },
        "dry_run": false
    });
    let refused = manager.rpc_json("/rpc/exceptions/triage", &call).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        app.audit_of("access.denied")
            .await
            .iter()
            .any(|a| a.target == "act on exceptions")
    );
    let operator = app.signed_in("otto@example.com").await;
    let ok = operator.rpc_json("/rpc/exceptions/triage", &call).await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    let outcome: app::model::TriageOutcome = ok.json();
    assert_eq!((outcome.matched, outcome.queued), (1, 1));
    let page = operator
        .rpc_json(
            "/rpc/exceptions/page",
            &json!({ "query": { "q": UNMAPPED, "status": "all" }, "before": null, "oldest_first": true }),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let page: app::model::ExceptionPage = page.json();
    assert_eq!(page.rows.len(), 3);
    assert_eq!(page.rows[0].status, "skipped", "oldest first");
}

/// One more blocked order (seed 410) on top of the skipped ones.
async fn blocked_orders_more(app: &TestApp, worker: &syncdesk::engine::worker::Worker) {
    let mut order = clean_order(410);
    order["line_items"][0]["sku"] = json!(UNMAPPED);
    Post::new("orders/create", &order).send(app).await;
    drain(worker, app, Duration::from_secs(10)).await;
}

/// Runs one statement on the test database (to stage a state the engine reaches rarely).
async fn sqlx_exec(app: &TestApp, sql: &str) {
    match app.store.db() {
        syncdesk::store::Db::Sqlite(pool) => {
            sqlx::query(sql).execute(pool).await.expect("statement");
        }
        syncdesk::store::Db::Postgres(pool) => {
            sqlx::query(sql).execute(pool).await.expect("statement");
        }
    }
}

async fn the_sku_screen_ranks_unmapped_skus_and_mapping_one_releases_its_orders(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(5)).await;
    let worker = rig.worker(&app.store);
    let ids = blocked_orders(&app, &worker, 420, 2).await;
    app.add_user("otto@example.com", "Otto", &[Role::Operator])
        .await;
    app.add_user("mona@example.com", "Mona", &[Role::Manager])
        .await;
    let operator = app.signed_in("otto@example.com").await;

    let unmapped = operator.rpc("/rpc/sku/unmapped", &[]).await;
    assert_eq!(unmapped.status, StatusCode::OK);
    let unmapped: Vec<app::model::UnmappedSkuView> = unmapped.json();
    assert_eq!(unmapped.len(), 1);
    assert_eq!(
        (unmapped[0].sku.as_str(), unmapped[0].orders),
        (UNMAPPED, 2)
    );

    // A manager may not change mappings; the refusal is audited.
    let manager = app.signed_in("mona@example.com").await;
    let refused = manager
        .rpc(
            "/rpc/sku/save",
            &[("sku", UNMAPPED), ("item_code", "ERP-NEW-GIZMO")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    // A bad item code is refused with the reason, and nothing changes.
    let bad = operator
        .rpc(
            "/rpc/sku/save",
            &[("sku", UNMAPPED), ("item_code", "ERP NEW")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.error().to_string().contains("whitespace"),
        "{:?}",
        bad.body
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sku_mappings WHERE sku = 'NEW-GIZMO'")
            .await,
        0
    );

    let saved = operator
        .rpc(
            "/rpc/sku/save",
            &[("sku", UNMAPPED), ("item_code", "ERP-NEW-GIZMO")],
        )
        .await;
    assert_eq!(saved.status, StatusCode::OK, "{:?}", saved.body);
    let saved: app::model::MappingSaved = saved.json();
    assert_eq!(saved.released, 2);
    assert_eq!(
        saved.summary,
        "SKU NEW-GIZMO now maps to ERP-NEW-GIZMO: 2 orders released and on their way to the ERP."
    );
    drain(&worker, &app, Duration::from_secs(10)).await;
    let ledger = rig.erp.ledger().check();
    for id in &ids {
        assert_eq!(ledger.count(DocumentKind::SalesOrder, &id.to_string()), 1);
    }
    let unmapped: Vec<app::model::UnmappedSkuView> =
        operator.rpc("/rpc/sku/unmapped", &[]).await.json();
    assert!(unmapped.is_empty());
    let listed: Vec<app::model::SkuMappingView> =
        operator.rpc("/rpc/sku/list", &[("q", "NEW-")]).await.json();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].updated_by, "otto@example.com");
    let audit = app.audit_of("sku_mapping.saved").await;
    assert_eq!(audit[0].actor_label, "otto@example.com");

    // Deleting the mapping is refused while its (paid, unfulfilled) orders may still need it.
    let refused = operator.rpc("/rpc/sku/delete", &[("sku", UNMAPPED)]).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{:?}", refused.body);
    assert!(
        refused
            .error()
            .to_string()
            .contains("is on 2 orders that may still need"),
        "{:?}",
        refused.body
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sku_mappings WHERE sku = 'NEW-GIZMO'")
            .await,
        1
    );
    // A mapping no order uses can go; the history shows who did what.
    app.store
        .save_sku_mapping("OLD-THING", "ERP-OLD", &Actor::System)
        .await
        .expect("map");
    let deleted = operator
        .rpc("/rpc/sku/delete", &[("sku", "OLD-THING")])
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{:?}", deleted.body);
    let history: Vec<app::model::AuditRow> = operator.rpc("/rpc/sku/history", &[]).await.json();
    assert_eq!(history[0].action, "sku_mapping.deleted");
    assert_eq!(history[0].target, "sku:OLD-THING");
    assert_eq!(history[0].actor, "otto@example.com");
    let missing = operator
        .rpc("/rpc/sku/delete", &[("sku", "OLD-THING")])
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let manager = app.signed_in("mona@example.com").await;
    assert_eq!(
        manager
            .rpc("/rpc/sku/delete", &[("sku", UNMAPPED)])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

async fn an_order_page_shows_the_timeline_and_payloads_and_an_operator_sends_it_again(
    app: TestApp,
) {
    let rig = rig(&app, Duration::from_secs(5)).await;
    let worker = rig.worker(&app.store);
    let ids = blocked_orders(&app, &worker, 440, 1).await;
    let id = ids[0];
    // A duplicate delivery of the same state shows in the timeline too.
    let mut order = clean_order(440);
    order["line_items"][0]["sku"] = json!(UNMAPPED);
    order["name"] = json!("#5440");
    order["order_number"] = json!(5440);
    Post::new("orders/updated", &order).send(&app).await;
    app.add_user("otto@example.com", "Otto", &[Role::Operator])
        .await;
    app.add_user("mona@example.com", "Mona", &[Role::Manager])
        .await;
    let operator = app.signed_in("otto@example.com").await;

    let found: Vec<app::model::OrderView> = operator
        .rpc("/rpc/orders/recent", &[("q", "5440")])
        .await
        .json();
    assert_eq!(found.len(), 1, "found by its number without #");
    assert_eq!(found[0].store_order_id, id);
    let found: Vec<app::model::OrderView> = operator
        .rpc("/rpc/orders/recent", &[("q", UNMAPPED)])
        .await
        .json();
    assert_eq!(found.len(), 1, "found by SKU");

    let page = operator
        .rpc("/rpc/orders/detail", &[("store_order_id", &id.to_string())])
        .await;
    assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
    let page: app::model::OrderPage = page.json();
    assert_eq!(page.name, "#5440");
    let erp = page
        .destinations
        .iter()
        .find(|d| d.destination == "erp")
        .expect("erp");
    assert_eq!(erp.state, "blocked");
    assert!(erp.payload.is_none(), "an unmapped SKU has no ERP payload");
    assert!(
        erp.problems.iter().any(|p| p.contains(UNMAPPED)),
        "{:?}",
        erp.problems
    );
    let crm = page
        .destinations
        .iter()
        .find(|d| d.destination == "crm")
        .expect("crm");
    assert_eq!(crm.state, "synced");
    assert!(crm.external_id.is_some());
    assert!(
        crm.payload
            .as_deref()
            .is_some_and(|p| p.contains("\"deal\""))
    );
    let kinds: Vec<(&str, &str)> = page
        .timeline
        .iter()
        .map(|e| (e.kind.as_str(), e.label.as_str()))
        .collect();
    assert!(kinds.contains(&("webhook", "orders/create")), "{kinds:?}");
    assert!(
        page.timeline
            .iter()
            .any(|e| e.kind == "webhook" && e.detail.starts_with("duplicate")),
        "{kinds:?}"
    );
    assert!(kinds.contains(&("attempt", "synced")), "{kinds:?}");
    assert!(kinds.contains(&("attempt", "needs action")), "{kinds:?}");
    assert!(
        kinds.contains(&("exception", "exception opened")),
        "{kinds:?}"
    );
    assert!(
        page.timeline.windows(2).all(|w| w[0].at >= w[1].at),
        "newest first"
    );

    // Sending again: the ERP is retried; the CRM already has this state.
    let erp_retry = operator
        .rpc(
            "/rpc/orders/retry",
            &[("store_order_id", &id.to_string()), ("destination", "erp")],
        )
        .await;
    assert_eq!(erp_retry.status, StatusCode::OK);
    assert!(erp_retry.json::<String>().starts_with("Queued"));
    let crm_retry = operator
        .rpc(
            "/rpc/orders/retry",
            &[("store_order_id", &id.to_string()), ("destination", "crm")],
        )
        .await;
    assert!(crm_retry.json::<String>().starts_with("Already applied"));
    assert_eq!(app.audit_of("order.retried").await.len(), 2);
    // A manager reads the page but may not retry.
    let manager = app.signed_in("mona@example.com").await;
    assert_eq!(
        manager
            .rpc("/rpc/orders/detail", &[("store_order_id", &id.to_string())])
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        manager
            .rpc(
                "/rpc/orders/retry",
                &[("store_order_id", &id.to_string()), ("destination", "erp")]
            )
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let missing = operator
        .rpc("/rpc/orders/detail", &[("store_order_id", "999")])
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

/// An operator's transaction and another session lock the same two rows in opposite orders;
/// PostgreSQL undoes the operator's to break the deadlock, and it runs again by itself.
#[tokio::test]
async fn a_skip_undone_to_break_a_deadlock_runs_again_postgres() {
    use sqlx::Connection;
    let app = TestApp::start(crate::harness::Backend::Postgres).await;
    let rig = rig(&app, Duration::from_secs(5)).await;
    let worker = rig.worker(&app.store);
    let ids = blocked_orders(&app, &worker, 900, 1).await;
    let task = app
        .count(&format!(
            "SELECT id FROM sync_tasks WHERE store_order_id = {} AND destination = 'erp'",
            ids[0]
        ))
        .await;
    let exception = app
        .count(&format!("SELECT id FROM exceptions WHERE task_id = {task}"))
        .await;

    // The other session holds the exception's row and will want the task's. It waits 10 s
    // before looking for a deadlock, the skip's session 1 s: PostgreSQL undoes the skip.
    let mut other = sqlx::PgConnection::connect(&app.database_url())
        .await
        .expect("second session");
    for sql in ["SET deadlock_timeout = '10s'", "BEGIN"] {
        sqlx::query(sql).execute(&mut other).await.expect(sql);
    }
    sqlx::query("UPDATE exceptions SET updated_at = updated_at WHERE id = $1")
        .bind(exception)
        .execute(&mut other)
        .await
        .expect("lock the exception");
    let store = app.store.clone();
    let skip = tokio::spawn(async move {
        let skip = TriageAction::Skip {
            reason: "Cancelled by phone".into(),
        };
        store.triage(&group(), &skip, false, &Actor::System).await
    });
    // The skip marks the task skipped (its row locked), then waits for the exception's row.
    let started = std::time::Instant::now();
    while app
        .count("SELECT COUNT(*) FROM pg_locks WHERE NOT granted")
        .await
        == 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the skip never waited"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // This closes the cycle. It goes through only once PostgreSQL has undone the skip (had it
    // undone this session instead, the statement would fail here).
    sqlx::query("UPDATE sync_tasks SET updated_at = updated_at WHERE id = $1")
        .bind(task)
        .execute(&mut other)
        .await
        .expect("the task's row, once the skip is undone");
    sqlx::query("ROLLBACK")
        .execute(&mut other)
        .await
        .expect("rollback");

    let report = skip
        .await
        .expect("joined")
        .expect("the skip ran again after the deadlock");
    assert_eq!(report.changed, 1);
    assert_eq!(
        app.text(&format!(
            "SELECT status FROM exceptions WHERE id = {exception}"
        ))
        .await,
        "skipped"
    );
    assert_eq!(
        app.text(&format!("SELECT state FROM sync_tasks WHERE id = {task}"))
            .await,
        "skipped"
    );
}
