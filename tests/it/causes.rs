//! The per-cause summary of open exceptions (`exception_causes`): after every kind of change —
//! the worker opening and refreshing exceptions, triage on ids, a group and a filter, a SKU
//! mapping releasing a group, the snooze sweep, renewed credentials — it holds exactly what the
//! exceptions say, and the grouped queue reads the same groups from it as from the exceptions.

use std::time::Duration;

use app::model::Role;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use syncdesk::audit::Actor;
use syncdesk::store::{
    Assignee, Backend as StoreBackend, Db, ExceptionGroup, ExceptionScope, Store, TriageAction,
    UnmappedSku,
};

use crate::harness::{Backend, TestApp, empty_database};
use crate::sync::{UNMAPPED, clean_order, drain, rig};
use crate::webhooks::{Post, later, order_id};

on_both_backends! {
    the_cause_summary_stays_exact_through_every_kind_of_change => the_cause_summary_stays_exact_through_every_kind_of_change_sqlite, the_cause_summary_stays_exact_through_every_kind_of_change_postgres;
    a_bulk_dry_run_counts_what_the_real_run_then_does => a_bulk_dry_run_counts_what_the_real_run_then_does_sqlite, a_bulk_dry_run_counts_what_the_real_run_then_does_postgres;
    the_migration_counts_the_exceptions_already_open => the_migration_counts_the_exceptions_already_open_sqlite, the_migration_counts_the_exceptions_already_open_postgres;
    workers_and_triage_at_once_keep_the_summary_exact => workers_and_triage_at_once_keep_the_summary_exact_sqlite, workers_and_triage_at_once_keep_the_summary_exact_postgres;
}

const SKU_CAUSE: &str = "missing_sku:erp:NEW-GIZMO";
const STREET_CAUSE: &str = "field_too_long:erp:ship_to.street";

/// One summary row, or the same aggregate recounted from the exceptions: status, fingerprint,
/// destination, code, kind, action, slot, how many, oldest created_at, newest id.
type Cause = (
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    DateTime<Utc>,
    i64,
);

/// The summary slot an exception counts in, as SQL over `exceptions`: PostgreSQL spreads each
/// cause over 8 rows by id, SQLite keeps one (a cast, as SQLite reads `GROUP BY 0` as a column
/// number).
fn slot_of(store: &Store) -> &'static str {
    match store.backend() {
        StoreBackend::Sqlite => "CAST(0 AS INTEGER)",
        StoreBackend::Postgres => "id % 8",
    }
}

async fn causes(store: &Store, sql: &str) -> Vec<Cause> {
    match store.db() {
        Db::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await,
        Db::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await,
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// When each open or snoozed exception was opened, oldest first.
async fn causes_at(store: &Store) -> Vec<DateTime<Utc>> {
    let sql =
        "SELECT created_at FROM exceptions WHERE status IN ('open', 'snoozed') ORDER BY created_at";
    match store.db() {
        Db::Sqlite(pool) => sqlx::query_scalar(sql).fetch_all(pool).await,
        Db::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await,
    }
    .expect("exceptions' ages")
}

/// Runs one statement (to stage what the engine reaches rarely, or to let time pass).
async fn exec(store: &Store, sql: &str) {
    match store.db() {
        Db::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
        Db::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Scopes the grouped queue is asked for; each is answered from the summary.
fn summarised_scopes() -> Vec<ExceptionScope> {
    let with = |f: fn(&mut ExceptionScope)| {
        let mut scope = ExceptionScope::default();
        f(&mut scope);
        scope
    };
    vec![
        ExceptionScope::default(),
        with(|s| s.status = Some("open".into())),
        with(|s| s.status = Some("snoozed".into())),
        with(|s| s.destination = Some("erp".into())),
        with(|s| s.code = Some("field_too_long".into())),
        with(|s| s.fingerprint = Some(SKU_CAUSE.into())),
        with(|s| {
            s.status = Some("open".into());
            s.destination = Some("erp".into());
            s.code = Some("missing_sku_mapping".into());
        }),
    ]
}

/// Asserts that the summary equals the aggregate recounted from the exceptions, and that the
/// grouped queue answers every summarised scope exactly as the full aggregate does (an age
/// limit in the future matches every exception but sends the call down the full aggregate).
/// Returns the groups of the open queue, for the caller to check.
pub(crate) async fn assert_exact(store: &Store, after: &str) -> Vec<ExceptionGroup> {
    let summary = causes(
        store,
        "SELECT status, fingerprint, destination, code, kind, action, CAST(slot AS BIGINT), exceptions, oldest, newest_id
         FROM exception_causes
         ORDER BY status, fingerprint, destination, code, kind, action, slot",
    )
    .await;
    let slot = slot_of(store);
    let recount = causes(
        store,
        &format!(
            "SELECT status, fingerprint, destination, code, kind, action, CAST({slot} AS BIGINT) AS slot,
                    COUNT(*), MIN(created_at), MAX(id)
             FROM exceptions
             WHERE status IN ('open', 'snoozed')
             GROUP BY status, fingerprint, destination, code, kind, action, {slot}
             ORDER BY status, fingerprint, destination, code, kind, action, slot"
        ),
    )
    .await;
    assert_eq!(summary, recount, "the summary after {after}");
    // The summarised scopes, and each narrowed to the unassigned, to an age that splits the
    // exceptions in two, or both (the summary less what they leave out), read exactly as the
    // full aggregate counts them.
    let ages: Vec<DateTime<Utc>> = causes_at(store).await;
    let middle = ages.get(ages.len() / 2).copied().unwrap_or_else(Utc::now);
    let mut scopes = Vec::new();
    for scope in summarised_scopes() {
        scopes.push(scope.clone());
        scopes.push(ExceptionScope {
            assignee: Some(Assignee::Nobody),
            ..scope.clone()
        });
        scopes.push(ExceptionScope {
            created_before: Some(middle),
            ..scope.clone()
        });
        scopes.push(ExceptionScope {
            assignee: Some(Assignee::Nobody),
            created_before: Some(middle),
            ..scope
        });
    }
    for created_before in [
        Utc::now() + TimeDelta::days(1),
        Utc::now() - TimeDelta::days(1),
    ] {
        scopes.push(ExceptionScope {
            created_before: Some(created_before),
            ..ExceptionScope::default()
        });
    }
    for scope in scopes {
        for oldest_first in [false, true] {
            let read = store
                .exception_groups(&scope, oldest_first, 200)
                .await
                .expect("groups");
            let counted = store
                .exception_groups_recounted(&scope, oldest_first, 200)
                .await
                .expect("groups, counted");
            assert_eq!(read, counted, "groups of {scope:?} after {after}");
        }
    }
    // The SKU screen and the metrics read the summary too.
    let unmapped = store.unmapped_skus(200).await.expect("unmapped SKUs");
    let sql = "SELECT substr(fingerprint, 17) AS sku, COUNT(*) AS orders, MIN(created_at) AS oldest
               FROM exceptions
               WHERE status IN ('open', 'snoozed') AND code = 'missing_sku_mapping'
                 AND fingerprint LIKE 'missing!_sku:erp:%' ESCAPE '!'
               GROUP BY fingerprint
               ORDER BY orders DESC, oldest, sku";
    let recounted: Vec<UnmappedSku> = match store.db() {
        Db::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await,
        Db::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await,
    }
    .expect("unmapped SKUs, recounted");
    assert_eq!(unmapped, recounted, "unmapped SKUs after {after}");
    let by_code = store
        .metric_counts()
        .await
        .expect("metrics")
        .exceptions_open;
    let sql = "SELECT code, COUNT(*) FROM exceptions WHERE status IN ('open', 'snoozed') GROUP BY code ORDER BY code";
    let recounted: Vec<(String, i64)> = match store.db() {
        Db::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await,
        Db::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await,
    }
    .expect("open by code, recounted");
    assert_eq!(by_code, recounted, "open exceptions by code after {after}");
    store
        .exception_groups(&ExceptionScope::default(), false, 200)
        .await
        .expect("groups")
}

/// The open (or snoozed) count of one cause in `groups`; 0 when it has none.
fn open_in(groups: &[ExceptionGroup], fingerprint: &str) -> i64 {
    groups
        .iter()
        .find(|g| g.fingerprint == fingerprint)
        .map_or(0, |g| g.open)
}

/// A clean order with its own number (`#<7000 + seed>`), so a search finds it alone.
fn numbered(seed: u64) -> Value {
    let mut order = clean_order(seed);
    order["name"] = json!(format!("#{}", 7000 + seed));
    order["order_number"] = json!(7000 + seed);
    order
}

fn with_sku(seed: u64, sku: &str) -> Value {
    let mut order = numbered(seed);
    order["line_items"][0]["sku"] = json!(sku);
    order
}

/// The order shipped to a street longer than the ERP's 60 characters (an order without a
/// shipping address ships to the billing one).
fn with_long_street(mut order: Value) -> Value {
    if !order["shipping_address"].is_object() {
        order["shipping_address"] = order["billing_address"].clone();
    }
    order["shipping_address"]["address1"] =
        json!("1234 Extraordinarily Long Boulevard Name That Goes On And On, Building 7");
    order
}

async fn exception_of(app: &TestApp, order: &Value) -> i64 {
    app.count(&format!(
        "SELECT id FROM exceptions WHERE store_order_id = {} AND destination = 'erp' AND status IN ('open', 'snoozed')",
        order_id(order)
    ))
    .await
}

async fn the_cause_summary_stays_exact_through_every_kind_of_change(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(5)).await;
    let worker = rig.worker(&app.store);
    let operator = app
        .add_user("ola@example.com", "Ola", &[Role::Operator])
        .await;
    let by = Actor::User {
        id: operator.id,
        email: operator.email.clone(),
    };
    let groups = assert_exact(&app.store, "migrating an empty database").await;
    assert!(groups.is_empty());

    // The worker opens exceptions: three orders on an unmapped SKU, three with a street too
    // long for the ERP, one with both (the SKU is found first), one clean.
    let gizmos: Vec<Value> = (700..703).map(|s| with_sku(s, UNMAPPED)).collect();
    let streets: Vec<Value> = (710..713).map(|s| with_long_street(numbered(s))).collect();
    let both = with_long_street(with_sku(720, UNMAPPED));
    for order in gizmos.iter().chain(&streets).chain([&both, &numbered(730)]) {
        Post::new("orders/create", order).send(&app).await;
    }
    drain(&worker, &app, Duration::from_secs(10)).await;
    let groups = assert_exact(&app.store, "the worker opened exceptions").await;
    assert_eq!(open_in(&groups, SKU_CAUSE), 4, "{groups:?}");
    assert_eq!(open_in(&groups, STREET_CAUSE), 3, "{groups:?}");

    // The order with both problems gets its SKU fixed in the store: its exception moves from
    // one cause to the other (the same row, refreshed by the worker).
    let both_exception = exception_of(&app, &both).await;
    let mut fixed = later(&both, 5);
    fixed["line_items"][0]["sku"] = json!("TEE-BLK-M");
    Post::new("orders/updated", &fixed).send(&app).await;
    drain(&worker, &app, Duration::from_secs(10)).await;
    assert_eq!(
        app.text(&format!(
            "SELECT fingerprint FROM exceptions WHERE id = {both_exception}"
        ))
        .await,
        STREET_CAUSE,
        "the open exception now names the street"
    );
    let groups = assert_exact(&app.store, "an exception changed cause").await;
    assert_eq!(open_in(&groups, SKU_CAUSE), 3);
    assert_eq!(open_in(&groups, STREET_CAUSE), 4);

    // Triage on ids: snooze the oldest gizmo (the group's oldest moves to the next one).
    let first_gizmo = exception_of(&app, &gizmos[0]).await;
    let ids = ExceptionScope {
        ids: Some(vec![first_gizmo]),
        ..ExceptionScope::default()
    };
    let until = Utc::now() + TimeDelta::hours(2);
    let done = app
        .store
        .triage(&ids, &TriageAction::Snooze { until }, false, &by)
        .await
        .expect("snooze one");
    assert_eq!(done.changed, 1);
    let groups = assert_exact(&app.store, "snoozing one exception").await;
    assert_eq!(open_in(&groups, SKU_CAUSE), 3, "open and snoozed together");
    let snoozed = app
        .store
        .exception_groups(
            &ExceptionScope {
                status: Some("snoozed".into()),
                ..ExceptionScope::default()
            },
            false,
            200,
        )
        .await
        .expect("snoozed groups");
    assert_eq!(open_in(&snoozed, SKU_CAUSE), 1);

    // Triage on a group: assign the streets (no summary change), then retry the gizmos (the
    // snoozed one opens again; the worker blocks them again and refreshes their exceptions).
    let street_group = ExceptionScope {
        fingerprint: Some(STREET_CAUSE.into()),
        ..ExceptionScope::default()
    };
    let assign = TriageAction::Assign {
        user_id: Some(operator.id),
    };
    let done = app
        .store
        .triage(&street_group, &assign, false, &by)
        .await
        .expect("assign");
    assert_eq!(done.changed, 4);
    assert_exact(&app.store, "assigning a group").await;
    let gizmo_group = ExceptionScope {
        fingerprint: Some(SKU_CAUSE.into()),
        ..ExceptionScope::default()
    };
    let done = app
        .store
        .triage(&gizmo_group, &TriageAction::Retry, false, &by)
        .await
        .expect("retry group");
    assert_eq!((done.matched, done.queued), (3, 3));
    assert_exact(&app.store, "retrying a group").await;
    drain(&worker, &app, Duration::from_secs(10)).await;
    let groups = assert_exact(&app.store, "the retried tasks blocked again").await;
    assert_eq!(open_in(&groups, SKU_CAUSE), 3);

    // Triage on a filter: skip one street order found by its number, resolve another by id.
    let street_name = app
        .text(&format!(
            "SELECT name FROM orders WHERE store_order_id = {}",
            order_id(&streets[1])
        ))
        .await;
    let filter = ExceptionScope {
        code: Some("field_too_long".into()),
        search: Some(street_name),
        ..ExceptionScope::default()
    };
    let skip = TriageAction::Skip {
        reason: "Shipped by hand".into(),
    };
    let done = app
        .store
        .triage(&filter, &skip, false, &by)
        .await
        .expect("skip");
    assert_eq!(done.changed, 1);
    assert_exact(&app.store, "skipping by a filter").await;
    // Resolving the group's newest exception (whose sentence stands for the group) makes the
    // summary find the next newest.
    let newest_street = app
        .count(&format!(
            "SELECT MAX(id) FROM exceptions WHERE status = 'open' AND fingerprint = '{STREET_CAUSE}'"
        ))
        .await;
    let resolve = TriageAction::Resolve {
        note: "Keyed into the ERP by hand".into(),
    };
    let newest = ExceptionScope {
        ids: Some(vec![newest_street]),
        ..ExceptionScope::default()
    };
    let done = app
        .store
        .triage(&newest, &resolve, false, &by)
        .await
        .expect("resolve");
    assert_eq!(done.changed, 1);
    let groups = assert_exact(&app.store, "resolving a group's newest exception").await;
    assert_eq!(open_in(&groups, STREET_CAUSE), 2);

    // The snooze sweep: the whole gizmo group sleeps, its time comes, it wakes.
    let done = app
        .store
        .triage(&gizmo_group, &TriageAction::Snooze { until }, false, &by)
        .await
        .expect("snooze group");
    assert_eq!(done.changed, 3);
    assert_exact(&app.store, "snoozing a group").await;
    exec(
        &app.store,
        "UPDATE exceptions SET snoozed_until = created_at WHERE status = 'snoozed'",
    )
    .await;
    assert_eq!(app.store.wake_snoozed().await.expect("sweep"), 3);
    let groups = assert_exact(&app.store, "the snooze sweep").await;
    assert_eq!(open_in(&groups, SKU_CAUSE), 3);

    // Rejected credentials: one exception for the destination, without a task; renewing them
    // resolves it.
    rig.erp.faults().revoke_credentials();
    Post::new("orders/create", &numbered(740)).send(&app).await;
    drain(&worker, &app, Duration::from_secs(5)).await;
    let groups = assert_exact(&app.store, "the ERP rejected our credentials").await;
    assert_eq!(open_in(&groups, "auth:erp"), 1, "{groups:?}");
    // It is never snoozed out of sight: a paused destination raises nothing else to tell of it.
    let credentials = ExceptionScope {
        fingerprint: Some("auth:erp".into()),
        ..ExceptionScope::default()
    };
    let snoozing = app
        .store
        .triage(&credentials, &TriageAction::Snooze { until }, false, &by)
        .await
        .expect("snooze the cause");
    assert_eq!(
        (
            snoozing.matched,
            snoozing.changed,
            snoozing.destination_wide
        ),
        (1, 0, 1)
    );
    let groups = assert_exact(&app.store, "snoozing beside a paused destination").await;
    assert_eq!(open_in(&groups, "auth:erp"), 1, "{groups:?}");
    rig.erp.faults().restore_credentials();
    app.store
        .resume_destination("erp", &by)
        .await
        .expect("resume");
    drain(&worker, &app, Duration::from_secs(10)).await;
    let groups = assert_exact(&app.store, "renewing the credentials").await;
    assert_eq!(open_in(&groups, "auth:erp"), 0);

    // Mapping the SKU releases the group: its summary row goes with its last exception.
    let (_, released) = app
        .store
        .save_sku_mapping(UNMAPPED, &format!("ERP-{UNMAPPED}"), &by)
        .await
        .expect("map");
    assert_eq!(released.exceptions, 3);
    let groups = assert_exact(&app.store, "a SKU mapping released its group").await;
    assert_eq!(open_in(&groups, SKU_CAUSE), 0);
    drain(&worker, &app, Duration::from_secs(10)).await;
    assert_exact(&app.store, "the released orders synced").await;
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM exception_causes WHERE fingerprint = '{SKU_CAUSE}'"
        ))
        .await,
        0
    );

    // The grouped queue does read the summary: a count changed there (and only there) shows.
    exec(
        &app.store,
        &format!(
            "UPDATE exception_causes SET exceptions = exceptions + 1000
             WHERE fingerprint = '{STREET_CAUSE}'
               AND newest_id = (SELECT MAX(newest_id) FROM exception_causes WHERE fingerprint = '{STREET_CAUSE}')"
        ),
    )
    .await;
    let read = app
        .store
        .exception_groups(&ExceptionScope::default(), false, 200)
        .await
        .expect("groups");
    assert_eq!(open_in(&read, STREET_CAUSE), 1002);
}

async fn a_bulk_dry_run_counts_what_the_real_run_then_does(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(5)).await;
    let worker = rig.worker(&app.store);
    let orders: Vec<Value> = (750..755).map(|s| with_sku(s, UNMAPPED)).collect();
    for order in &orders {
        Post::new("orders/create", order).send(&app).await;
    }
    drain(&worker, &app, Duration::from_secs(10)).await;
    // One order reached the ERP some other way, one is being delivered right now, one is
    // snoozed; two wait.
    let task = |order: &Value| {
        format!(
            "store_order_id = {} AND destination = 'erp'",
            order_id(order)
        )
    };
    exec(
        &app.store,
        &format!(
            "UPDATE sync_tasks SET state = 'synced', synced_version = target_version WHERE {}",
            task(&orders[0])
        ),
    )
    .await;
    exec(
        &app.store,
        &format!(
            "UPDATE sync_tasks SET state = 'running' WHERE {}",
            task(&orders[1])
        ),
    )
    .await;
    let snoozed = exception_of(&app, &orders[2]).await;
    app.store
        .triage(
            &ExceptionScope {
                ids: Some(vec![snoozed]),
                ..ExceptionScope::default()
            },
            &TriageAction::Snooze {
                until: Utc::now() + TimeDelta::hours(1),
            },
            false,
            &Actor::System,
        )
        .await
        .expect("snooze");
    let group = ExceptionScope {
        fingerprint: Some(SKU_CAUSE.into()),
        ..ExceptionScope::default()
    };
    let skip = TriageAction::Skip {
        reason: "Samples".into(),
    };
    let skipping = app
        .store
        .triage(&group, &skip, true, &Actor::System)
        .await
        .expect("skip dry run");
    assert_eq!(
        (skipping.matched, skipping.changed, skipping.in_flight),
        (5, 4, 1),
        "every exception but the one in flight would close"
    );

    let preview = app
        .store
        .triage(&group, &TriageAction::Retry, true, &Actor::System)
        .await
        .expect("retry dry run");
    assert_eq!(
        (
            preview.matched,
            preview.queued,
            preview.already_applied,
            preview.in_flight,
            preview.destination_wide,
        ),
        (5, 3, 1, 1, 0)
    );
    let done = app
        .store
        .triage(&group, &TriageAction::Retry, false, &Actor::System)
        .await
        .expect("retry");
    assert_eq!(
        (
            done.matched,
            done.queued,
            done.already_applied,
            done.in_flight
        ),
        (
            preview.matched,
            preview.queued,
            preview.already_applied,
            preview.in_flight
        ),
        "the dry run said what the retry did"
    );
    assert_exact(&app.store, "a retry with mixed tasks").await;
}

async fn workers_and_triage_at_once_keep_the_summary_exact(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(5)).await;
    for seed in 800..840 {
        Post::new("orders/create", &with_sku(seed, UNMAPPED))
            .send(&app)
            .await;
    }
    // Four workers with their own pools, as separate processes would have, open exceptions of
    // one cause at once (on PostgreSQL, in several summary slots) ...
    let url = app.database_url();
    let mut running = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let store = Store::connect_with(&url, 3).await.expect("own pool");
        let worker = rig.worker(&store);
        running.spawn(async move {
            for _ in 0..100 {
                if worker.run_once().await.expect("batch") == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        });
    }
    // ... while an operator snoozes the group and retries it, again and again.
    let store = Store::connect_with(&url, 2).await.expect("own pool");
    let group = ExceptionScope {
        fingerprint: Some(SKU_CAUSE.into()),
        ..ExceptionScope::default()
    };
    for round in 0..10 {
        let action = if round % 2 == 0 {
            TriageAction::Snooze {
                until: Utc::now() + TimeDelta::hours(1),
            }
        } else {
            TriageAction::Retry
        };
        store
            .triage(&group, &action, false, &Actor::System)
            .await
            .expect("triage while the workers run");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while let Some(done) = running.join_next().await {
        done.expect("worker");
    }
    drain(&rig.worker(&app.store), &app, Duration::from_secs(10)).await;
    let groups = assert_exact(&app.store, "workers and triage at once").await;
    assert_eq!(open_in(&groups, SKU_CAUSE), 40);
}

/// Exceptions as a database migrated before the summary existed may hold them: a cause with
/// open, snoozed, skipped and resolved ones, a transient cause at the CRM, a street too long,
/// and a destination-wide exception without a task. Written for both dialects.
const EXCEPTIONS_BEFORE_THE_SUMMARY: &[&str] = &[
    "INSERT INTO orders (store_order_id, name, store_updated_at, version, email, lifecycle, currency, total, data, first_seen_at, updated_at)
     VALUES (1, '#1', '2026-11-01T00:00:00+00:00', 1, 'a@example.com', 'paid', 'EUR', '10.00', '{}', '2026-11-01T00:00:00+00:00', '2026-11-01T00:00:00+00:00'),
            (2, '#2', '2026-11-01T00:00:00+00:00', 1, 'b@example.com', 'paid', 'EUR', '10.00', '{}', '2026-11-01T00:00:00+00:00', '2026-11-01T00:00:00+00:00'),
            (3, '#3', '2026-11-01T00:00:00+00:00', 1, 'c@example.com', 'paid', 'EUR', '10.00', '{}', '2026-11-01T00:00:00+00:00', '2026-11-01T00:00:00+00:00'),
            (4, '#4', '2026-11-01T00:00:00+00:00', 1, 'd@example.com', 'paid', 'EUR', '10.00', '{}', '2026-11-01T00:00:00+00:00', '2026-11-01T00:00:00+00:00')",
    "INSERT INTO sync_tasks (id, store_order_id, destination, state, target_version, attempt, scheduled_at, armed_at, updated_at)
     SELECT 2 * o.store_order_id - 1 + d.n, o.store_order_id, d.name, 'blocked', 1, 1,
            '2026-11-01T00:00:00+00:00', '2026-11-01T00:00:00+00:00', '2026-11-01T00:00:00+00:00'
     FROM orders o, (SELECT 0 AS n, 'crm' AS name UNION ALL SELECT 1, 'erp') d",
    "INSERT INTO exceptions (id, task_id, store_order_id, destination, code, kind, fingerprint, message, action, fields, status, created_at, updated_at)
     VALUES (1, 2, 1, 'erp', 'missing_sku_mapping', 'needs_action', 'missing_sku:erp:A', 'SKU A (#1)', 'Map SKU', '[]', 'open', '2026-11-01T00:00:03+00:00', '2026-11-01T00:00:03+00:00'),
            (2, 4, 2, 'erp', 'missing_sku_mapping', 'needs_action', 'missing_sku:erp:A', 'SKU A (#2)', 'Map SKU', '[]', 'open', '2026-11-01T00:00:01+00:00', '2026-11-01T00:00:01+00:00'),
            (3, 6, 3, 'erp', 'missing_sku_mapping', 'needs_action', 'missing_sku:erp:A', 'SKU A (#3)', 'Map SKU', '[]', 'snoozed', '2026-11-01T00:00:02+00:00', '2026-11-01T00:00:02+00:00'),
            (4, 8, 4, 'erp', 'missing_sku_mapping', 'needs_action', 'missing_sku:erp:A', 'SKU A (#4)', 'Map SKU', '[]', 'skipped', '2026-11-01T00:00:00+00:00', '2026-11-01T00:00:00+00:00'),
            (5, 1, 1, 'crm', 'destination_down', 'transient', 'destination_down:crm', 'CRM down (#1)', 'none', '[]', 'resolved', '2026-11-01T00:00:00+00:00', '2026-11-01T00:00:00+00:00'),
            (6, 3, 2, 'crm', 'destination_down', 'transient', 'destination_down:crm', 'CRM down (#2)', 'none', '[]', 'open', '2026-11-01T00:00:05+00:00', '2026-11-01T00:00:05+00:00'),
            (7, 8, 4, 'erp', 'field_too_long', 'needs_action', 'field_too_long:erp:ship_to.street', 'Street (#4)', 'Edit address', '[]', 'open', '2026-11-01T00:00:04+00:00', '2026-11-01T00:00:04+00:00'),
            (8, NULL, NULL, 'erp', 'auth_expired', 'needs_action', 'auth:erp', 'Credentials', 'Renew credentials', '[]', 'open', '2026-11-01T00:00:06+00:00', '2026-11-01T00:00:06+00:00')",
];

async fn the_migration_counts_the_exceptions_already_open(app: TestApp) {
    // A database migrated up to the migration before the summary's, from copies of those files.
    let (backend, dialect) = match app.store.backend() {
        StoreBackend::Sqlite => (Backend::Sqlite, "sqlite"),
        StoreBackend::Postgres => (Backend::Postgres, "postgres"),
    };
    let (url, _database) = empty_database(backend).await;
    let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(dialect);
    let earlier = std::env::temp_dir().join(format!(
        "syncdesk-it-migrations-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&earlier).expect("temp dir");
    for entry in std::fs::read_dir(&all).expect("migrations") {
        let path = entry.expect("migration").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if name.as_str() < "0005" {
            std::fs::copy(&path, earlier.join(&name)).expect("copy a migration");
        }
    }
    let before = sqlx::migrate::Migrator::new(earlier.as_path())
        .await
        .expect("earlier migrations");
    let store = Store::connect_with(&url, 2).await.expect("connect");
    match store.db() {
        Db::Sqlite(pool) => before.run(pool).await,
        Db::Postgres(pool) => before.run(pool).await,
    }
    .expect("migrate up to 0004");
    let _ = std::fs::remove_dir_all(&earlier);
    for sql in EXCEPTIONS_BEFORE_THE_SUMMARY {
        exec(&store, sql).await;
    }

    store.migrate().await.expect("the summary's migration");
    let groups = assert_exact(&store, "the migration").await;
    let summary = causes(
        &store,
        "SELECT status, fingerprint, destination, code, kind, action, CAST(0 AS BIGINT),
                CAST(SUM(exceptions) AS BIGINT), MIN(oldest), MAX(newest_id)
         FROM exception_causes WHERE fingerprint = 'missing_sku:erp:A'
         GROUP BY status, fingerprint, destination, code, kind, action
         ORDER BY status",
    )
    .await;
    let at = |s: &str| {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    };
    assert_eq!(
        summary
            .iter()
            .map(|c| (c.0.as_str(), c.7, c.8, c.9))
            .collect::<Vec<_>>(),
        vec![
            ("open", 2, at("2026-11-01T00:00:01+00:00"), 2),
            ("snoozed", 1, at("2026-11-01T00:00:02+00:00"), 3),
        ],
        "the skipped one is not counted"
    );
    let fingerprints: Vec<(&str, i64)> = groups
        .iter()
        .map(|g| (g.fingerprint.as_str(), g.open))
        .collect();
    assert_eq!(
        fingerprints,
        vec![
            ("missing_sku:erp:A", 3),
            ("field_too_long:erp:ship_to.street", 1),
            ("destination_down:crm", 1),
            ("auth:erp", 1),
        ],
        "biggest first, then the one waiting longest"
    );
    assert_eq!(groups[0].message, "SKU A (#3)", "the newest one's sentence");
    store.close().await;
}
