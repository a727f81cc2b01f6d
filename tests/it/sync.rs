//! The whole flow against the simulated CRM and ERP over real HTTP: delivery, updates as
//! changes, unmapped SKUs released by a mapping, rejected credentials pausing a destination,
//! commit-then-timeout, expired leases, outages, several workers — with the simulators' ledgers
//! proving nothing is lost and nothing duplicated.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use syncdesk::audit::Actor;
use syncdesk::connectors::{ApiToken, ConnectorConfig, HttpCrm, HttpErp, RateLimit};
use syncdesk::engine::retry::RetryPolicy;
use syncdesk::engine::worker::{Destinations, Worker, WorkerConfig};
use syncdesk::simulate::SimHandle;
use syncdesk::simulate::crm::{CrmSimConfig, spawn_crm};
use syncdesk::simulate::erp::{ErpCatalogue, ErpSimConfig, spawn_erp};
use syncdesk::simulate::faults::OutageMode;
use syncdesk::simulate::ledger::DocumentKind;
use syncdesk::simulate::shopify::{CATALOGUE, OrderFactory};
use syncdesk::store::{AttemptRecord, Db, MappingRow, NewException, Store};

use crate::harness::TestApp;
use crate::webhooks::{Post, later, order_id};

on_both_backends! {
    an_idle_queue_is_polled_without_writes_and_new_work_is_still_claimed => an_idle_queue_is_polled_without_writes_and_new_work_is_still_claimed_sqlite, an_idle_queue_is_polled_without_writes_and_new_work_is_still_claimed_postgres;
    a_claim_on_postgres_reads_what_the_delivery_sends => a_claim_on_postgres_reads_what_the_delivery_sends_sqlite, a_claim_on_postgres_reads_what_the_delivery_sends_postgres;
    an_order_reaches_the_crm_and_the_erp_and_updates_change_the_same_documents => an_order_reaches_the_crm_and_the_erp_and_updates_change_the_same_documents_sqlite, an_order_reaches_the_crm_and_the_erp_and_updates_change_the_same_documents_postgres;
    an_unmapped_sku_is_one_grouped_exception_until_its_mapping_releases_every_order => an_unmapped_sku_is_one_grouped_exception_until_its_mapping_releases_every_order_sqlite, an_unmapped_sku_is_one_grouped_exception_until_its_mapping_releases_every_order_postgres;
    an_order_missing_two_mappings_names_both_and_syncs_once_both_are_mapped => an_order_missing_two_mappings_names_both_and_syncs_once_both_are_mapped_sqlite, an_order_missing_two_mappings_names_both_and_syncs_once_both_are_mapped_postgres;
    rejected_credentials_pause_the_destination_with_one_exception => rejected_credentials_pause_the_destination_with_one_exception_sqlite, rejected_credentials_pause_the_destination_with_one_exception_postgres;
    a_process_started_with_renewed_credentials_resumes_the_destination => a_process_started_with_renewed_credentials_resumes_the_destination_sqlite, a_process_started_with_renewed_credentials_resumes_the_destination_postgres;
    commit_then_timeout_never_creates_a_second_document => commit_then_timeout_never_creates_a_second_document_sqlite, commit_then_timeout_never_creates_a_second_document_postgres;
    a_worker_killed_after_the_destination_committed_duplicates_nothing => a_worker_killed_after_the_destination_committed_duplicates_nothing_sqlite, a_worker_killed_after_the_destination_committed_duplicates_nothing_postgres;
    retries_that_run_out_dead_letter_the_task_with_every_attempt_kept => retries_that_run_out_dead_letter_the_task_with_every_attempt_kept_sqlite, retries_that_run_out_dead_letter_the_task_with_every_attempt_kept_postgres;
    an_outage_holds_the_queue_and_it_drains_without_dead_letters => an_outage_holds_the_queue_and_it_drains_without_dead_letters_sqlite, an_outage_holds_the_queue_and_it_drains_without_dead_letters_postgres;
    several_workers_share_the_queue_without_duplicates => several_workers_share_the_queue_without_duplicates_sqlite, several_workers_share_the_queue_without_duplicates_postgres;
    completions_recorded_together_each_get_their_own_answer => completions_recorded_together_each_get_their_own_answer_sqlite, completions_recorded_together_each_get_their_own_answer_postgres;
    a_completion_the_database_refuses_fails_alone => a_completion_the_database_refuses_fails_alone_sqlite, a_completion_the_database_refuses_fails_alone_postgres;
    a_version_that_arrives_during_a_delivery_is_timed_from_its_arrival => a_version_that_arrives_during_a_delivery_is_timed_from_its_arrival_sqlite, a_version_that_arrives_during_a_delivery_is_timed_from_its_arrival_postgres;
    a_version_armed_during_an_attempt_outlives_its_blocked_or_dead_end => a_version_armed_during_an_attempt_outlives_its_blocked_or_dead_end_sqlite, a_version_armed_during_an_attempt_outlives_its_blocked_or_dead_end_postgres;
    a_wrong_item_code_corrected_in_syncdesk_releases_the_order => a_wrong_item_code_corrected_in_syncdesk_releases_the_order_sqlite, a_wrong_item_code_corrected_in_syncdesk_releases_the_order_postgres;
    a_sku_mapped_while_its_order_is_being_delivered_still_releases_it => a_sku_mapped_while_its_order_is_being_delivered_still_releases_it_sqlite, a_sku_mapped_while_its_order_is_being_delivered_still_releases_it_postgres;
}

/// The simulated CRM and ERP, an ERP catalogue with `ERP-<sku>` for every catalogue SKU, and a
/// worker with quick retries.
pub struct Rig {
    pub crm: SimHandle,
    pub erp: SimHandle,
    destinations: Destinations,
}

pub const UNMAPPED: &str = "NEW-GIZMO";

pub async fn rig(app: &TestApp, timeout: Duration) -> Rig {
    let crm = spawn_crm(CrmSimConfig::default())
        .await
        .expect("CRM simulator");
    let mut codes: Vec<String> = CATALOGUE
        .iter()
        .filter(|p| !p.sku.is_empty())
        .map(|p| format!("ERP-{}", p.sku))
        .collect();
    codes.push(format!("ERP-{UNMAPPED}"));
    let erp = spawn_erp(ErpSimConfig {
        catalogue: ErpCatalogue::from_codes(codes),
        ..Default::default()
    })
    .await
    .expect("ERP simulator");
    // An ERP that does not refuse a second document for the same external id, so that the
    // ledger sees any second create the engine makes (a crash, a timeout, a lease taken over):
    // its 409 would otherwise turn one into an update, and hide it.
    erp.faults().update(|f| f.allow_duplicates = true);
    for product in CATALOGUE
        .iter()
        .filter(|p| !p.sku.is_empty() && !p.sku.starts_with("NEW-"))
    {
        app.store
            .save_sku_mapping(product.sku, &format!("ERP-{}", product.sku), &Actor::System)
            .await
            .expect("mapping");
    }
    let config = |sim: &SimHandle| {
        let mut c = ConnectorConfig::new(sim.base_url().clone(), ApiToken::new(sim.token()));
        c.timeout = timeout;
        c.rate_limit = None;
        c
    };
    let destinations = Destinations {
        crm: Arc::new(HttpCrm::new(&config(&crm)).expect("crm client")),
        erp: Arc::new(HttpErp::new(&config(&erp)).expect("erp client")),
    };
    // The server checks item codes with this ERP, as the demo's does.
    app.connect_erp(destinations.erp.clone());
    Rig {
        crm,
        erp,
        destinations,
    }
}

impl Rig {
    /// The ERP connector the workers use (to read what the ERP holds).
    pub fn erp_api(&self) -> Arc<dyn syncdesk::connectors::ErpApi> {
        self.destinations.erp.clone()
    }

    pub fn worker(&self, store: &Store) -> Worker {
        self.worker_with(store, |_| {})
    }

    /// The simulators as a worker's destinations.
    pub fn destinations(&self) -> Destinations {
        self.destinations.clone()
    }

    /// A worker as [`Rig::worker_with`], whose client of `destination` (`"crm"` or `"erp"`)
    /// holds requests to `limit` and refuses at once any that would wait for its slot.
    pub fn worker_limited(
        &self,
        store: &Store,
        destination: &str,
        limit: RateLimit,
        change: impl FnOnce(&mut WorkerConfig),
    ) -> Worker {
        let sim = if destination == "crm" {
            &self.crm
        } else {
            &self.erp
        };
        let mut limited = ConnectorConfig::new(sim.base_url().clone(), ApiToken::new(sim.token()));
        limited.rate_limit = Some(limit);
        limited.max_local_wait = Duration::ZERO;
        let mut destinations = self.destinations.clone();
        if destination == "crm" {
            destinations.crm = Arc::new(HttpCrm::new(&limited).expect("crm client"));
        } else {
            destinations.erp = Arc::new(HttpErp::new(&limited).expect("erp client"));
        }
        worker_of(store, destinations, change)
    }

    /// A worker as [`Rig::worker`], with `change` made to its configuration.
    pub fn worker_with(&self, store: &Store, change: impl FnOnce(&mut WorkerConfig)) -> Worker {
        worker_of(store, self.destinations.clone(), change)
    }
}

/// A worker for `destinations` with quick retries, and `change` made to its configuration.
fn worker_of(
    store: &Store,
    destinations: Destinations,
    change: impl FnOnce(&mut WorkerConfig),
) -> Worker {
    let mut config = WorkerConfig {
        lease: Duration::from_secs(30),
        retry: RetryPolicy {
            max_attempts: 8,
            base: Duration::from_millis(20),
            factor: 2,
            cap: Duration::from_millis(300),
        },
        ..Default::default()
    };
    change(&mut config);
    Worker::new(
        store.clone(),
        destinations,
        config,
        syncdesk::engine::wake::Wake::local(),
    )
}

/// An order every destination accepts: known SKUs, a short street, a postal code.
pub fn clean_order(seed: u64) -> Value {
    let mut order = OrderFactory::new(seed).order();
    for line in order["line_items"].as_array_mut().expect("lines") {
        line["sku"] = json!("TEE-BLK-M");
    }
    for which in ["shipping_address", "billing_address"] {
        if order[which].is_object() {
            order[which]["address1"] = json!("12 Harbour Street");
            order[which]["zip"] = json!("10001");
        }
    }
    order
}

/// A synced attempt at `version`, as a worker records it.
fn synced(version: i64) -> AttemptRecord {
    AttemptRecord {
        version,
        started_at: chrono::Utc::now(),
        duration_ms: 3,
        outcome: "synced",
        status: Some(201),
        message: None,
        request_id: None,
    }
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    app.count(sql).await
}

/// Works the queue until nothing is due or running (or `limit` passes).
pub async fn drain(worker: &Worker, app: &TestApp, limit: Duration) {
    let started = Instant::now();
    while started.elapsed() < limit {
        let worked = worker.run_once().await.expect("worker batch");
        if worked == 0 {
            let open = count(
                app,
                "SELECT COUNT(*) FROM sync_tasks WHERE state IN ('pending', 'retrying', 'running')",
            )
            .await;
            let paused = count(app, "SELECT COUNT(*) FROM destinations WHERE paused").await;
            if open == 0
                || (paused > 0
                    && count(
                        app,
                        "SELECT COUNT(*) FROM sync_tasks WHERE state IN ('retrying', 'running')",
                    )
                    .await
                        == 0)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn an_order_reaches_the_crm_and_the_erp_and_updates_change_the_same_documents(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(5)).await;
    let worker = rig.worker(&app.store);
    let mut order = clean_order(11);
    // Nothing shipped, refunded or cancelled: the sales order is all the ERP gets.
    order["fulfillments"] = json!([]);
    order["refunds"] = json!([]);
    order["cancelled_at"] = Value::Null;
    let id = order_id(&order);
    let erp_requests = rig.erp.faults().requests_seen();
    Post::new("orders/create", &order).send(&app).await;
    drain(&worker, &app, Duration::from_secs(10)).await;
    assert_eq!(count(&app, &format!("SELECT COUNT(*) FROM sync_tasks WHERE store_order_id = {id} AND state = 'synced' AND synced_version = 1 AND claims = 1")).await, 2);
    assert_eq!(
        rig.erp.faults().requests_seen(),
        erp_requests + 1,
        "a task's first claim creates the sales order without looking for it first"
    );

    let mut paid = later(&order, 5);
    paid["financial_status"] = json!("paid");
    let erp_requests = rig.erp.faults().requests_seen();
    Post::new("orders/paid", &paid).send(&app).await;
    drain(&worker, &app, Duration::from_secs(10)).await;
    assert_eq!(count(&app, &format!("SELECT COUNT(*) FROM sync_tasks WHERE store_order_id = {id} AND state = 'synced' AND synced_version = 2 AND claims = 2")).await, 2);
    assert_eq!(
        rig.erp.faults().requests_seen(),
        erp_requests + 2,
        "a later claim looks for the sales order first, then updates it with the payment"
    );
    let document = rig
        .destinations
        .erp
        .find_sales_order(&id.to_string())
        .await
        .expect("find sales order")
        .expect("sales order exists");
    assert_eq!(
        serde_json::to_value(document.order.payment_status).unwrap(),
        json!("paid"),
        "the sales order says the order is paid"
    );

    // The same state again (a re-sent webhook of a newer timestamp): found, matches, no update.
    let again = later(&paid, 5);
    let erp_requests = rig.erp.faults().requests_seen();
    Post::new("orders/updated", &again).send(&app).await;
    drain(&worker, &app, Duration::from_secs(10)).await;
    assert_eq!(
        rig.erp.faults().requests_seen(),
        erp_requests + 1,
        "a sales order that already says what the order says is left alone"
    );

    let erp = rig.erp.ledger().check();
    assert_eq!(
        erp.count(DocumentKind::SalesOrder, &id.to_string()),
        1,
        "one sales order, updated in place"
    );
    assert_eq!(erp.extra_documents(), 0);
    let crm = rig.crm.ledger().check();
    assert_eq!(crm.count(DocumentKind::Deal, &id.to_string()), 1);
    let deal = rig
        .destinations
        .crm
        .find_deal(&id.to_string())
        .await
        .expect("find deal")
        .expect("deal exists");
    assert_eq!(
        serde_json::to_value(deal.stage).unwrap(),
        json!("paid"),
        "the deal follows the order's life cycle"
    );
    assert_eq!(count(&app, &format!("SELECT COUNT(*) FROM sync_attempts WHERE store_order_id = {id} AND outcome = 'synced'")).await, 6);
}

async fn an_unmapped_sku_is_one_grouped_exception_until_its_mapping_releases_every_order(
    app: TestApp,
) {
    let rig = rig(&app, Duration::from_secs(5)).await;
    let worker = rig.worker(&app.store);
    let mut ids = Vec::new();
    for seed in 20..23 {
        let mut order = clean_order(seed);
        order["line_items"][0]["sku"] = json!(UNMAPPED);
        ids.push(order_id(&order));
        Post::new("orders/create", &order).send(&app).await;
    }
    drain(&worker, &app, Duration::from_secs(10)).await;
    let fingerprint = format!("missing_sku:erp:{UNMAPPED}");
    assert_eq!(count(&app, &format!("SELECT COUNT(*) FROM sync_tasks WHERE destination = 'erp' AND state = 'blocked' AND blocked_on = '{fingerprint}'")).await, 3);
    assert_eq!(count(&app, &format!("SELECT COUNT(*) FROM exceptions WHERE status = 'open' AND fingerprint = '{fingerprint}'")).await, 3, "one exception per order, one cause to group them by");
    let message = app
        .text(&format!(
            "SELECT message FROM exceptions WHERE fingerprint = '{fingerprint}' LIMIT 1"
        ))
        .await;
    assert!(
        message.contains(UNMAPPED) && message.contains("ERP"),
        "{message}"
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM sync_tasks WHERE destination = 'crm' AND state = 'synced'"
        )
        .await,
        3,
        "the CRM does not wait for the ERP"
    );
    assert_eq!(
        rig.erp
            .ledger()
            .check()
            .count(DocumentKind::SalesOrder, &ids[0].to_string()),
        0,
        "an unmapped SKU is never guessed"
    );

    let (_, released) = app
        .store
        .save_sku_mapping(UNMAPPED, &format!("ERP-{UNMAPPED}"), &Actor::System)
        .await
        .expect("save mapping");
    assert_eq!((released.tasks, released.exceptions), (3, 3));
    drain(&worker, &app, Duration::from_secs(10)).await;
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM sync_tasks WHERE destination = 'erp' AND state = 'synced'"
        )
        .await,
        3
    );
    let resolution = app
        .text(&format!(
            "SELECT resolution FROM exceptions WHERE fingerprint = '{fingerprint}' LIMIT 1"
        ))
        .await;
    assert!(
        resolution.contains("mapped to ERP item"),
        "the exception says what resolved it: {resolution}"
    );
    let erp = rig.erp.ledger().check();
    for id in &ids {
        assert_eq!(erp.count(DocumentKind::SalesOrder, &id.to_string()), 1);
    }
    app.assert_every_row_has_its_parent().await;
}

/// An order with two unmapped SKUs says so in its one exception, under the first SKU's cause;
/// mapping that SKU releases it to wait on the second, and mapping both sends it once.
async fn an_order_missing_two_mappings_names_both_and_syncs_once_both_are_mapped(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(5)).await;
    let worker = rig.worker(&app.store);
    let mut order = clean_order(24);
    let mut second = order["line_items"][0].clone();
    second["id"] = json!(order["line_items"][0]["id"].as_i64().expect("line id") + 1_000_000);
    second["sku"] = json!("NEW-WIDGET");
    order["line_items"][0]["sku"] = json!(UNMAPPED);
    order["line_items"]
        .as_array_mut()
        .expect("lines")
        .push(second);
    let id = order_id(&order);
    Post::new("orders/create", &order).send(&app).await;
    drain(&worker, &app, Duration::from_secs(10)).await;
    let open = |fingerprint: String| {
        let app = &app;
        async move {
            app.text(&format!(
                "SELECT message FROM exceptions WHERE status = 'open' AND store_order_id = {id} AND fingerprint = '{fingerprint}'"
            ))
            .await
        }
    };
    let message = open(format!("missing_sku:erp:{UNMAPPED}")).await;
    assert!(
        message.starts_with(&format!("SKU {UNMAPPED} has no ERP item code"))
            && message.contains("SKU NEW-WIDGET on the same order has none either"),
        "{message}"
    );

    app.store
        .save_sku_mapping(UNMAPPED, &format!("ERP-{UNMAPPED}"), &Actor::System)
        .await
        .expect("save mapping");
    drain(&worker, &app, Duration::from_secs(10)).await;
    let message = open("missing_sku:erp:NEW-WIDGET".to_string()).await;
    assert!(
        message.starts_with("SKU NEW-WIDGET has no ERP item code"),
        "{message}"
    );
    assert_eq!(
        rig.erp
            .ledger()
            .check()
            .count(DocumentKind::SalesOrder, &id.to_string()),
        0,
        "nothing is sent while one SKU is still unmapped"
    );

    app.store
        .save_sku_mapping("NEW-WIDGET", &format!("ERP-{UNMAPPED}"), &Actor::System)
        .await
        .expect("save mapping");
    drain(&worker, &app, Duration::from_secs(10)).await;
    assert_eq!(
        count(&app, &format!("SELECT COUNT(*) FROM sync_tasks WHERE store_order_id = {id} AND destination = 'erp' AND state = 'synced'")).await,
        1
    );
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT COUNT(*) FROM exceptions WHERE store_order_id = {id} AND status = 'open'"
            )
        )
        .await,
        0
    );
    assert_eq!(
        rig.erp
            .ledger()
            .check()
            .count(DocumentKind::SalesOrder, &id.to_string()),
        1
    );
}

async fn rejected_credentials_pause_the_destination_with_one_exception(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(5)).await;
    let worker = rig.worker(&app.store);
    rig.erp.faults().revoke_credentials();
    for seed in 30..35 {
        Post::new("orders/create", &clean_order(seed))
            .send(&app)
            .await;
    }
    drain(&worker, &app, Duration::from_secs(5)).await;
    assert_eq!(
        app.store.paused_destinations().await.unwrap(),
        vec!["erp".to_string()]
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM exceptions WHERE status = 'open'"
        )
        .await,
        1,
        "one exception for the destination, not one per order"
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM exceptions WHERE status = 'open' AND fingerprint = 'auth:erp' AND code = 'auth_expired'").await, 1);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM sync_tasks WHERE destination = 'erp' AND state = 'pending'"
        )
        .await,
        5,
        "the orders wait; none is dead"
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM sync_tasks WHERE destination = 'crm' AND state = 'synced'"
        )
        .await,
        5
    );
    let requests = rig.erp.faults().requests_seen();
    drain(&worker, &app, Duration::from_millis(300)).await;
    assert_eq!(
        rig.erp.faults().requests_seen(),
        requests,
        "nothing is sent to a paused destination"
    );

    rig.erp.faults().restore_credentials();
    assert!(
        app.store
            .resume_destination("erp", &Actor::System)
            .await
            .unwrap()
    );
    drain(&worker, &app, Duration::from_secs(10)).await;
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM sync_tasks WHERE destination = 'erp' AND state = 'synced'"
        )
        .await,
        5
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM exceptions WHERE status = 'open'"
        )
        .await,
        0
    );
    assert_eq!(rig.erp.ledger().check().extra_documents(), 0);
}

/// Renewing credentials is giving the processes new ones and restarting them: a process that
/// starts with the credentials the destination refused leaves it paused; one that starts with
/// others resumes it, resolves its exception, and the waiting orders go out.
async fn a_process_started_with_renewed_credentials_resumes_the_destination(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(5)).await;
    let with_erp_token = |token: &str| {
        let mut config = ConnectorConfig::new(rig.erp.base_url().clone(), ApiToken::new(token));
        config.rate_limit = None;
        Destinations {
            crm: rig.destinations().crm,
            erp: Arc::new(HttpErp::new(&config).expect("erp client")),
        }
    };
    let stale = with_erp_token("an-expired-token");
    let worker = Worker::new(
        app.store.clone(),
        stale.clone(),
        WorkerConfig::default(),
        syncdesk::engine::wake::Wake::local(),
    );
    for seed in 50..54 {
        Post::new("orders/create", &clean_order(seed))
            .send(&app)
            .await;
    }
    drain(&worker, &app, Duration::from_secs(5)).await;
    assert_eq!(app.store.paused_destinations().await.unwrap(), ["erp"]);
    let rejected = app
        .text("SELECT rejected_credentials FROM destinations WHERE name = 'erp'")
        .await;
    assert_eq!(
        rejected,
        syncdesk::connectors::credentials_fingerprint(&ApiToken::new("an-expired-token"))
    );
    assert_eq!(rejected.len(), 16);
    assert!(
        !rejected.contains("expired"),
        "a fingerprint, never the token"
    );

    // Restarted with the same credentials: nothing changes.
    assert!(stale.resume_renewed(&app.store).await.unwrap().is_empty());
    assert_eq!(app.store.paused_destinations().await.unwrap(), ["erp"]);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM exceptions WHERE status = 'open' AND fingerprint = 'auth:erp'"
        )
        .await,
        1
    );

    // Restarted with the token the ERP accepts: resumed, by SyncDesk itself, and audited.
    let renewed = rig.destinations();
    assert_eq!(
        renewed.resume_renewed(&app.store).await.unwrap(),
        [syncdesk::engine::exception::Destination::Erp]
    );
    assert!(app.store.paused_destinations().await.unwrap().is_empty());
    assert_eq!(
        app.text("SELECT resolution FROM exceptions WHERE fingerprint = 'auth:erp'")
            .await,
        "Credentials renewed: SyncDesk started with new ones"
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM audit_log WHERE action = 'destination.resumed' AND actor_kind = 'system' AND target = 'destination:erp'").await, 1);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM destinations WHERE rejected_credentials IS NOT NULL"
        )
        .await,
        0
    );
    // A second process starting with them finds nothing to resume.
    assert!(renewed.resume_renewed(&app.store).await.unwrap().is_empty());

    drain(&rig.worker(&app.store), &app, Duration::from_secs(10)).await;
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM sync_tasks WHERE destination = 'erp' AND state = 'synced'"
        )
        .await,
        4
    );
    assert_eq!(rig.erp.ledger().check().extra_documents(), 0);
}

async fn commit_then_timeout_never_creates_a_second_document(app: TestApp) {
    let rig = rig(&app, Duration::from_millis(400)).await;
    let worker = rig.worker(&app.store);
    rig.erp.faults().update(|f| {
        f.commit_then_timeout_rate = 1.0;
        f.hang_ms = 1_500;
    });
    let order = clean_order(40);
    let id = order_id(&order);
    Post::new("orders/create", &order).send(&app).await;
    // The create times out after the ERP committed it; the connector looks the order up by its
    // external id (here or on the retry) instead of creating it again.
    worker.run_once().await.unwrap();
    assert_eq!(
        rig.erp
            .ledger()
            .check()
            .count(DocumentKind::SalesOrder, &id.to_string()),
        1,
        "the ERP committed once"
    );
    rig.erp.faults().reset();
    drain(&worker, &app, Duration::from_secs(10)).await;
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT COUNT(*) FROM sync_tasks WHERE store_order_id = {id} AND state = 'synced'"
            )
        )
        .await,
        2
    );
    let erp = rig.erp.ledger().check();
    assert_eq!(
        erp.count(DocumentKind::SalesOrder, &id.to_string()),
        1,
        "the retry found the document instead of creating another"
    );
    assert_eq!(erp.extra_documents(), 0);
}

async fn a_worker_killed_after_the_destination_committed_duplicates_nothing(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(5)).await;
    let order = clean_order(50);
    let id = order_id(&order);
    Post::new("orders/create", &order).send(&app).await;

    // Worker A claims with a short lease, gets the ERP to commit, and dies before recording it.
    let claimed = app
        .store
        .claim_tasks(10, Duration::from_millis(200))
        .await
        .unwrap();
    let erp_task = claimed
        .iter()
        .find(|t| t.destination == "erp")
        .expect("erp task claimed")
        .clone();
    let (canonical, _) = app.store.order_snapshot(id).await.unwrap().unwrap();
    let lookup = |sku: &syncdesk::domain::Sku| Some(format!("ERP-{}", sku.as_str()));
    let sales_order = syncdesk::engine::map::erp_sales_order(&canonical, &lookup).expect("maps");
    // The task's first claim: A creates without looking first, as a worker does.
    assert_eq!(erp_task.claims, 1);
    rig.destinations
        .erp
        .create_unsent_sales_order(&sales_order, "worker-a")
        .await
        .expect("ERP commits");

    // Its lease expires; worker B takes the task over (its second claim: B looks first) and
    // delivers it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let worker_b = rig.worker(&app.store);
    drain(&worker_b, &app, Duration::from_secs(10)).await;
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT COUNT(*) FROM sync_tasks WHERE store_order_id = {id} AND state = 'synced'"
            )
        )
        .await,
        2
    );

    // Worker A wakes up and tries to record its stale result: fenced off, nothing changes.
    let rec = synced(1);
    let attempts = format!(
        "SELECT COUNT(*) FROM sync_attempts WHERE task_id = {}",
        erp_task.id
    );
    let recorded = count(&app, &attempts).await;
    assert!(
        !app.store
            .complete_synced(&erp_task, "SO-STALE", &rec)
            .await
            .unwrap(),
        "a stale lease cannot complete"
    );
    assert_eq!(
        count(&app, &attempts).await,
        recorded,
        "nor record an attempt"
    );
    assert_ne!(
        app.text(&format!(
            "SELECT external_id FROM sync_tasks WHERE id = {}",
            erp_task.id
        ))
        .await,
        "SO-STALE"
    );
    let erp = rig.erp.ledger().check();
    assert_eq!(erp.count(DocumentKind::SalesOrder, &id.to_string()), 1);
    assert_eq!(erp.extra_documents(), 0);
}

/// An ERP that keeps failing: after the attempt limit the task is dead-lettered with one
/// exception saying so, every attempt is kept with what the ERP answered, and a retry once the
/// ERP is back delivers it (once).
async fn retries_that_run_out_dead_letter_the_task_with_every_attempt_kept(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(2)).await;
    let worker = rig.worker_with(&app.store, |c| c.retry.max_attempts = 3);
    rig.erp.faults().update(|f| f.error_rate = 1.0);
    let order = clean_order(70);
    let id = order_id(&order);
    Post::new("orders/create", &order).send(&app).await;
    // As if the order had waited long before this run of attempts (on a SKU mapping, say): the
    // message tells how long the tries took, not how long the order waited.
    app.execute(&format!(
        "UPDATE sync_tasks SET armed_at = '2020-01-01T00:00:00+00:00' WHERE store_order_id = {id}"
    ))
    .await;
    drain(&worker, &app, Duration::from_secs(10)).await;

    let task =
        format!("SELECT id FROM sync_tasks WHERE store_order_id = {id} AND destination = 'erp'");
    assert_eq!(
        app.text(&format!("SELECT state FROM sync_tasks WHERE id = ({task})"))
            .await,
        "dead"
    );
    assert_eq!(
        app.text(&format!(
            "SELECT state FROM sync_tasks WHERE store_order_id = {id} AND destination = 'crm'"
        ))
        .await,
        "synced",
        "the CRM is not held back by the ERP"
    );
    // Every attempt, with the ERP's status, its message and its request id.
    assert_eq!(
        count(&app, &format!(
            "SELECT COUNT(*) FROM sync_attempts WHERE task_id = ({task}) AND outcome IN ('transient', 'exhausted')
                 AND status IN (500, 502, 503) AND message IS NOT NULL AND request_id LIKE 'req_%'
                 AND duration_ms >= 0"
        ))
        .await,
        3
    );
    assert_eq!(
        count(&app, &format!("SELECT COUNT(*) FROM sync_attempts WHERE task_id = ({task}) AND outcome = 'exhausted'")).await,
        1,
        "the last of the 3 is the one that gave up"
    );
    let message = app
        .text(&format!(
            "SELECT message FROM exceptions WHERE task_id = ({task}) AND status = 'open'
                 AND code = 'dead_letter' AND fingerprint = 'dead_letter:erp' AND kind = 'exhausted'"
        ))
        .await;
    assert!(message.starts_with("Gave up sending order "), "{message}");
    assert!(
        message.contains(" to the ERP after 3 tries over "),
        "{message}"
    );
    assert!(
        message.contains(" s; last error: "),
        "over seconds, not years: {message}"
    );
    assert!(message.contains("last error: "), "{message}");
    assert_eq!(
        rig.erp
            .ledger()
            .check()
            .count(DocumentKind::SalesOrder, &id.to_string()),
        0
    );

    // The ERP is back; a person retries the dead letter.
    rig.erp.faults().reset();
    let exception = count(
        &app,
        &format!("SELECT id FROM exceptions WHERE task_id = ({task})"),
    )
    .await;
    app.store
        .retry_exception(exception, &Actor::System)
        .await
        .expect("retry");
    drain(&worker, &app, Duration::from_secs(10)).await;
    assert_eq!(
        app.text(&format!("SELECT state FROM sync_tasks WHERE id = ({task})"))
            .await,
        "synced"
    );
    assert_eq!(
        app.text(&format!(
            "SELECT status FROM exceptions WHERE id = {exception}"
        ))
        .await,
        "resolved"
    );
    let erp = rig.erp.ledger().check();
    assert_eq!(erp.count(DocumentKind::SalesOrder, &id.to_string()), 1);
    assert_eq!(erp.extra_documents(), 0);
    app.assert_metric_counters_match_the_rows().await;
}

async fn an_outage_holds_the_queue_and_it_drains_without_dead_letters(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(2)).await;
    let worker = rig.worker(&app.store);
    rig.erp
        .faults()
        .start_outage(Duration::from_millis(600), OutageMode::Unavailable);
    let mut ids = Vec::new();
    for seed in 60..66 {
        let order = clean_order(seed);
        ids.push(order_id(&order).to_string());
        Post::new("orders/create", &order).send(&app).await;
    }
    worker.run_once().await.unwrap();
    assert!(
        count(
            &app,
            "SELECT COUNT(*) FROM sync_tasks WHERE destination = 'erp' AND state = 'retrying'"
        )
        .await
            > 0,
        "the queue holds during the outage"
    );
    drain(&worker, &app, Duration::from_secs(15)).await;
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM sync_tasks WHERE state = 'dead'").await,
        0
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM sync_tasks WHERE destination = 'erp' AND state = 'synced'"
        )
        .await,
        6
    );
    let erp = rig.erp.ledger().check();
    assert!(
        erp.missing(DocumentKind::SalesOrder, ids.iter().map(String::as_str))
            .is_empty()
    );
    assert_eq!(erp.extra_documents(), 0);
    assert!(
        count(
            &app,
            "SELECT COUNT(*) FROM sync_attempts WHERE outcome = 'transient'"
        )
        .await
            > 0,
        "the failed attempts are kept"
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM exceptions WHERE status IN ('open', 'snoozed')"
        )
        .await,
        0,
        "nothing is left for a person once the queue drained"
    );
    // Failed attempts and late successes, with their lags, are in the metrics' counters.
    app.assert_metric_counters_match_the_rows().await;
    app.assert_every_row_has_its_parent().await;
}

/// `syncdesk worker` processes, three of them against one PostgreSQL database: they share the
/// queue, and when one is killed (SIGKILL, mid-delivery) the others take over its deliveries once
/// their leases run out. Every order reaches the CRM and the ERP exactly once.
#[tokio::test]
async fn worker_processes_share_one_postgres_queue_and_take_over_from_a_killed_one() {
    let app = TestApp::start(crate::harness::Backend::Postgres).await;
    let rig = rig(&app, Duration::from_secs(2)).await;
    rig.erp.faults().update(|f| f.latency_ms = 15);
    let url = app.database_url();
    let with_name = |n: usize| {
        let joiner = if url.contains('?') { '&' } else { '?' };
        format!("{url}{joiner}application_name=syncdesk-test-worker-{n}")
    };
    let logs = crate::harness::temp_dir();
    let mut workers: Vec<tokio::process::Child> = (0..3)
        .map(|n| {
            let log =
                std::fs::File::create(logs.join(format!("worker-{n}.log"))).expect("log file");
            tokio::process::Command::new(env!("CARGO_BIN_EXE_syncdesk"))
                .arg("worker")
                .env("DATABASE_URL", with_name(n))
                .env("SYNCDESK_DATABASE_MAX_CONNECTIONS", "4")
                .env("SYNCDESK_CRM_URL", rig.crm.base_url().as_str())
                .env("SYNCDESK_CRM_TOKEN", rig.crm.token())
                .env("SYNCDESK_ERP_URL", rig.erp.base_url().as_str())
                .env("SYNCDESK_ERP_TOKEN", rig.erp.token())
                .env("SYNCDESK_WORKERS", "1")
                .env("SYNCDESK_DELIVERIES_PER_WORKER", "4")
                .env("SYNCDESK_DESTINATION_RATE_LIMIT", "0")
                .env("SYNCDESK_LEASE_SECS", "3")
                .env("SYNCDESK_RECONCILE_EVERY", "0")
                .env("RUST_LOG", "info")
                .stdout(std::process::Stdio::null())
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .expect("start `syncdesk worker`")
        })
        .collect();

    let mut ids = Vec::new();
    for seed in 200..260 {
        let order = clean_order(seed);
        ids.push(order_id(&order).to_string());
        Post::new("orders/create", &order).send(&app).await;
    }
    let synced = "SELECT COUNT(*) FROM sync_tasks WHERE state = 'synced'";
    let started = Instant::now();
    // All three are connected to the one database.
    loop {
        let connected = count(&app, "SELECT COUNT(DISTINCT application_name) FROM pg_stat_activity WHERE application_name LIKE 'syncdesk-test-worker-%'").await;
        if connected == 3 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "only {connected} worker processes connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while count(&app, synced).await < 30 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the workers stalled"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    workers[0].start_kill().expect("kill a worker");
    workers[0].wait().await.expect("killed");
    while count(&app, synced).await < 120 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the other workers did not finish: {} of 120 synced; logs in {}",
            count(&app, synced).await,
            logs.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for worker in &mut workers[1..] {
        assert!(
            worker.try_wait().expect("status").is_none(),
            "a worker process exited"
        );
    }
    for (name, sim) in [("CRM", &rig.crm), ("ERP", &rig.erp)] {
        let ledger = sim.ledger().check();
        assert_eq!(
            ledger.extra_documents(),
            0,
            "nothing duplicated at the {name}"
        );
    }
    let erp = rig.erp.ledger().check();
    assert!(
        erp.missing(DocumentKind::SalesOrder, ids.iter().map(String::as_str))
            .is_empty()
    );
    let crm = rig.crm.ledger().check();
    assert!(
        crm.missing(DocumentKind::Deal, ids.iter().map(String::as_str))
            .is_empty()
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM exceptions WHERE status = 'open'"
        )
        .await,
        0
    );
    drop(workers);
    let _ = std::fs::remove_dir_all(&logs);
}

async fn several_workers_share_the_queue_without_duplicates(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(5)).await;
    let mut ids = Vec::new();
    for seed in 100..140 {
        let order = clean_order(seed);
        ids.push(order_id(&order).to_string());
        Post::new("orders/create", &order).send(&app).await;
    }
    // Four workers, each with its own connection pool, as separate processes would have.
    let url = app.database_url();
    let mut running = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let store = Store::connect_with(&url, 3).await.expect("own pool");
        let worker = rig.worker(&store);
        running.spawn(async move {
            let mut worked = 0;
            for _ in 0..200 {
                let n = worker.run_once().await.expect("batch");
                worked += n;
                if n == 0 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            worked
        });
    }
    let mut total = 0;
    while let Some(worked) = running.join_next().await {
        total += worked.unwrap();
    }
    assert_eq!(
        total, 80,
        "every task worked exactly once across the workers"
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM sync_tasks WHERE state = 'synced'"
        )
        .await,
        80
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM sync_attempts").await,
        80,
        "no task was delivered twice"
    );
    let erp = rig.erp.ledger().check();
    assert!(
        erp.missing(DocumentKind::SalesOrder, ids.iter().map(String::as_str))
            .is_empty()
    );
    assert_eq!(
        erp.extra_documents() + rig.crm.ledger().check().extra_documents(),
        0
    );
    // Each process's completions counted once, whichever slot of the counters it wrote.
    app.assert_metric_counters_match_the_rows().await;
    app.assert_every_row_has_its_parent().await;
}

/// Found by the benchmark: the per-destination request rate was ignored (every destination was
/// held to the connector's default 50 requests/s). No limit means none; a limit is enforced.
#[tokio::test]
async fn the_destination_request_rate_setting_is_honoured() {
    use syncdesk::connectors::{CrmContact, DeliveryError, TransientKind};
    use syncdesk::engine::DestinationSettings;
    use syncdesk::secret::Secret;

    let crm = spawn_crm(CrmSimConfig::default())
        .await
        .expect("CRM simulator");
    let erp = spawn_erp(ErpSimConfig::default())
        .await
        .expect("ERP simulator");
    let settings = |rate: Option<f64>| DestinationSettings {
        crm_url: crm.base_url().clone(),
        crm_token: Secret::new(crm.token()),
        erp_url: erp.base_url().clone(),
        erp_token: Secret::new(erp.token()),
        requests_per_second: rate,
    };
    let contact = |n: usize| -> CrmContact {
        serde_json::from_value(json!({ "email": format!("rate{n}@example.com") })).expect("contact")
    };

    let unlimited = settings(None).connect().expect("connectors");
    for n in 0..120 {
        unlimited
            .crm
            .upsert_contact(&contact(n), &format!("u{n}"))
            .await
            .expect("no client-side limit");
    }

    // One request every 10 s, burst 1: the second request would wait longer than a worker may,
    // so it is refused at once as rate limited instead of being sent.
    let limited = settings(Some(0.1)).connect().expect("connectors");
    limited
        .crm
        .upsert_contact(&contact(1000), "l0")
        .await
        .expect("first request");
    match limited.crm.upsert_contact(&contact(1001), "l1").await {
        Err(DeliveryError::Transient {
            kind: TransientKind::RateLimited { .. },
            ..
        }) => {}
        other => panic!("expected the client-side limit, got {other:?}"),
    }
}

/// Workers poll an idle queue; on SQLite, once a claim has found nothing, the next ones only read
/// (no write transaction, no fsync on the one writer) until work is due, which is then claimed.
async fn an_idle_queue_is_polled_without_writes_and_new_work_is_still_claimed(app: TestApp) {
    let lease = Duration::from_secs(30);
    assert!(app.store.claim_tasks(10, lease).await.unwrap().is_empty());
    let commits = app.store.group_commit_counts().map(|counts| counts.commits);
    for _ in 0..20 {
        assert!(app.store.claim_tasks(10, lease).await.unwrap().is_empty());
    }
    assert_eq!(
        app.store.group_commit_counts().map(|counts| counts.commits),
        commits,
        "idle claims committed"
    );
    let order = clean_order(431);
    Post::new("orders/create", &order).send(&app).await;
    let claimed = app.store.claim_tasks(10, lease).await.unwrap();
    assert_eq!(claimed.len(), 2, "both destinations' tasks are claimed");
    assert!(app.store.claim_tasks(10, lease).await.unwrap().is_empty());
}

/// PostgreSQL's claim reads each task's order snapshot and (ERP) item codes in the same
/// statement, exactly what the separate reads return; SQLite's claim, on the one writer, reads
/// none of it and the worker asks on another connection.
async fn a_claim_on_postgres_reads_what_the_delivery_sends(app: TestApp) {
    app.store
        .save_sku_mapping("TEE-BLK-M", "ERP-TEE-BLK-M", &Actor::System)
        .await
        .unwrap();
    let order = clean_order(432);
    Post::new("orders/create", &order).send(&app).await;
    let claimed = app
        .store
        .claim_tasks(10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    let postgres = app.store.backend() == syncdesk::store::Backend::Postgres;
    for mut task in claimed {
        let read = app
            .store
            .delivery_snapshot(task.store_order_id, &task.destination)
            .await
            .unwrap()
            .expect("the order is there");
        let (snapshot, codes) = (task.take_snapshot(), task.take_item_codes());
        if !postgres {
            assert!(snapshot.is_none() && codes.is_none());
            continue;
        }
        assert_eq!(snapshot, Some(read), "{} snapshot", task.destination);
        let expected = (task.destination == "erp").then(|| {
            std::collections::HashMap::from([(
                "TEE-BLK-M".to_string(),
                "ERP-TEE-BLK-M".to_string(),
            )])
        });
        assert_eq!(codes, expected, "{} item codes", task.destination);
    }
}

/// A connection PostgreSQL closed (a restart, an administrator) fails the one statement that
/// meets it and is then replaced: a pooled connection is checked on its way back to the pool,
/// and on its way out only after sitting idle (checking it every time cost a round trip in
/// three under load).
#[tokio::test]
async fn connections_the_server_closed_are_replaced_postgres() {
    let app = TestApp::start(crate::harness::Backend::Postgres).await;
    let syncdesk::store::Db::Postgres(pool) = app.store.db() else {
        unreachable!("a PostgreSQL store");
    };
    // Several connections, each just used.
    let sleeps: Vec<_> = (0..4)
        .map(|_| sqlx::query("SELECT pg_sleep(0.05)").execute(pool))
        .collect();
    for slept in futures_util::future::join_all(sleeps).await {
        slept.unwrap();
    }
    let killed: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()) k",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(killed >= 3, "{killed} connections closed");
    let mut failures = 0;
    for _ in 0..20 {
        if app.store.ping().await.is_err() {
            failures += 1;
        }
    }
    assert!(
        failures <= killed,
        "{failures} failures for {killed} closed connections"
    );
    for _ in 0..5 {
        app.store
            .ping()
            .await
            .expect("the pool has replaced what was closed");
    }
}

/// This connection's full reads and index scans of `table` not yet sent to the statistics
/// collector. They are sent only between transactions (and only once a second), so the
/// difference of two readings inside one transaction is what that transaction did between them.
async fn table_scans(tx: &mut sqlx::PgConnection, table: &str) -> (i64, i64) {
    sqlx::query_as(
        "SELECT COALESCE(seq_scan, 0), COALESCE(idx_scan, 0) FROM pg_stat_xact_user_tables WHERE relname = $1",
    )
    .bind(table)
    .fetch_one(tx)
    .await
    .unwrap()
}

/// The workers' completions reach each task by its key on a table PostgreSQL has never analyzed
/// (as on a new database, or wherever autovacuum is off): the plan it keeps after a few calls
/// must not read `sync_tasks` whole, as a hash join made while the table looked small did, once
/// per batch, ever longer as the table grew.
#[tokio::test]
async fn completions_reach_their_tasks_by_key_on_a_table_never_analyzed_postgres() {
    let app = TestApp::start(crate::harness::Backend::Postgres).await;
    let syncdesk::store::Db::Postgres(pool) = app.store.db() else {
        unreachable!("a PostgreSQL app")
    };
    for seed in 0..40 {
        Post::new("orders/create", &clean_order(900 + seed))
            .send(&app)
            .await;
    }
    let tasks = app
        .store
        .claim_tasks(100, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(tasks.len(), 80);

    // Eight batches of ten, more than the five calls after which PostgreSQL keeps a generic
    // plan, on one connection, counting what this transaction scanned.
    let mut tx = pool.begin().await.unwrap();
    let before = table_scans(&mut tx, "sync_tasks").await;
    let mut recorded = 0;
    for batch in tasks.chunks(10) {
        let n = batch.len();
        let ids: Vec<i64> = batch.iter().map(|t| t.id).collect();
        let tokens: Vec<&str> = batch.iter().map(|t| t.lease_token.as_str()).collect();
        let versions: Vec<i64> = batch.iter().map(|t| t.target_version).collect();
        let external: Vec<String> = batch.iter().map(|t| format!("EXT-{}", t.id)).collect();
        let done: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, lease_token FROM syncdesk_complete_synced($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&ids)
        .bind(&tokens)
        .bind(&versions)
        .bind(&external)
        .bind(vec![1_i64; n])
        .bind(vec![chrono::Utc::now(); n])
        .bind(vec![5_i64; n])
        .bind(vec!["synced"; n])
        .bind(vec![Some(201_i32); n])
        .bind(vec![None::<String>; n])
        .bind(vec![Some("req-1"); n])
        .bind(vec![Some(10_i64); n])
        .bind(vec![false; n])
        .bind(chrono::Utc::now())
        .fetch_all(&mut *tx)
        .await
        .unwrap();
        assert_eq!(
            done.len(),
            n,
            "every task in the batch is held and recorded"
        );
        recorded += done.len();
    }
    let after = table_scans(&mut tx, "sync_tasks").await;
    tx.commit().await.unwrap();
    let (seq_scans, index_scans) = (after.0 - before.0, after.1 - before.1);
    assert_eq!(recorded, 80);
    assert_eq!(
        seq_scans, 0,
        "completions read sync_tasks whole {seq_scans} times"
    );
    assert!(index_scans >= 160, "{index_scans} index scans");
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM sync_tasks WHERE state = 'synced' AND external_id LIKE 'EXT-%'"
        )
        .await,
        80
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM sync_attempts").await, 80);
}

/// The ingest reads a new order's ERP item codes by probing the SKU mappings' key, on a table
/// PostgreSQL has never analyzed, instead of hashing every mapping once per order (a catalogue
/// of thousands in a shop). Eight calls of twelve new orders each, on one connection.
#[tokio::test]
async fn the_ingest_reads_item_codes_by_key_on_a_table_never_analyzed_postgres() {
    let app = TestApp::start(crate::harness::Backend::Postgres).await;
    let syncdesk::store::Db::Postgres(pool) = app.store.db() else {
        unreachable!("a PostgreSQL app")
    };
    sqlx::query(
        "INSERT INTO sku_mappings (sku, item_code, updated_at, updated_by)
         SELECT 'SKU-' || g, 'ERP-' || g, now(), 'test' FROM generate_series(1, 20) g",
    )
    .execute(pool)
    .await
    .unwrap();
    let mut tx = pool.begin().await.unwrap();
    let before = table_scans(&mut tx, "sku_mappings").await;
    for call in 0..8_i64 {
        let (first, last) = (1_000 + call * 100, 1_011 + call * 100);
        // Twelve new orders of two mapped SKUs each, their tasks leased to this caller.
        let answered: Vec<(Option<serde_json::Value>,)> = sqlx::query_as(
            "WITH g AS (SELECT g FROM generate_series($1::bigint, $2::bigint) g)
             SELECT item_codes FROM syncdesk_ingest_orders(
                 ARRAY(SELECT 'wh-' || g FROM g ORDER BY g), ARRAY(SELECT 'ev-' || g FROM g ORDER BY g),
                 ARRAY(SELECT 'orders/create' FROM g), ARRAY(SELECT 'shop.myshopify.com' FROM g),
                 ARRAY(SELECT '2024-10' FROM g), ARRAY(SELECT now() FROM g), ARRAY(SELECT now() FROM g),
                 ARRAY(SELECT convert_to('{}', 'UTF8') FROM g), ARRAY(SELECT g FROM g ORDER BY g),
                 ARRAY(SELECT now() FROM g), ARRAY(SELECT '#' || g FROM g ORDER BY g),
                 ARRAY(SELECT 'buyer' || g || '@example.com' FROM g ORDER BY g), ARRAY(SELECT 'open' FROM g),
                 ARRAY(SELECT 'EUR' FROM g), ARRAY(SELECT '10.00' FROM g), ARRAY(SELECT '{}'::json FROM g),
                 ARRAY(SELECT jsonb_build_array('SKU-1', 'SKU-' || (g % 19 + 2)) FROM g ORDER BY g),
                 ARRAY(SELECT FALSE FROM g), ARRAY(SELECT NULL::bigint FROM g), ARRAY(SELECT NULL::text FROM g),
                 ARRAY(SELECT NULL::text FROM g), ARRAY(SELECT NULL::text FROM g), ARRAY(SELECT NULL::text FROM g),
                 'lease', now() + interval '1 hour', 100)",
        )
        .bind(first)
        .bind(last)
        .fetch_all(&mut *tx)
        .await
        .unwrap();
        assert_eq!(answered.len(), 12);
        for (codes,) in answered {
            let codes = codes.expect("the ERP's item codes answered with its leased task");
            assert_eq!(codes["SKU-1"], "ERP-1");
            assert_eq!(codes.as_object().map(|c| c.len()), Some(2));
        }
    }
    let after = table_scans(&mut tx, "sku_mappings").await;
    tx.rollback().await.unwrap();
    let (seq_scans, index_scans) = (after.0 - before.0, after.1 - before.1);
    assert_eq!(
        seq_scans, 0,
        "the ingest read every SKU mapping {seq_scans} times"
    );
    assert!(
        index_scans >= 96 * 2,
        "{index_scans} probes for 96 orders of 2 SKUs"
    );
}

/// Many workers finishing at once (written together on PostgreSQL, in one group commit on
/// SQLite): each completion gets its own answer — a stale lease's is refused even beside the
/// new holder's for the same task — every task is synced once with one attempt, and the
/// exceptions of tasks that had one resolve, the per-cause summary staying exact.
async fn completions_recorded_together_each_get_their_own_answer(app: TestApp) {
    for seed in 0..12 {
        Post::new("orders/create", &clean_order(600 + seed))
            .send(&app)
            .await;
    }
    let rec = |version| AttemptRecord {
        request_id: Some("req-1".into()),
        ..synced(version)
    };

    // Every task fails once, a third of them with an exception people can see; all are due
    // again at once.
    let failed = |version| syncdesk::store::AttemptRecord {
        outcome: "transient",
        status: Some(503),
        message: Some("unavailable".into()),
        ..rec(version)
    };
    let first = app
        .store
        .claim_tasks(100, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(first.len(), 24);
    for task in first.iter().step_by(3) {
        let exception = syncdesk::store::NewException {
            code: "destination_unavailable".into(),
            kind: "transient",
            fingerprint: format!("unavailable:{}", task.destination),
            message: "The destination is not answering.".into(),
            action: "Nothing: SyncDesk keeps trying.".into(),
            fields: vec![],
        };
        assert!(
            app.store
                .complete_retry(
                    task,
                    chrono::Utc::now(),
                    &failed(task.target_version),
                    Some(&exception)
                )
                .await
                .unwrap()
        );
    }
    for task in first
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 0)
        .map(|(_, t)| t)
    {
        assert!(
            app.store
                .complete_retry(task, chrono::Utc::now(), &failed(task.target_version), None)
                .await
                .unwrap()
        );
    }
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM exceptions WHERE status = 'open'"
        )
        .await,
        8
    );

    // A worker claims them all with a short lease and stalls; another takes them over.
    let stale = app
        .store
        .claim_tasks(100, Duration::from_millis(150))
        .await
        .unwrap();
    assert_eq!(stale.len(), 24);
    assert_eq!(stale.iter().filter(|t| t.open_exception).count(), 8);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let fresh = app
        .store
        .claim_tasks(100, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(fresh.len(), 24);

    // Both finish at the same moment.
    let store = &app.store;
    let answers = futures_util::future::join_all(
        stale
            .iter()
            .map(|t| (t, "stale"))
            .chain(fresh.iter().map(|t| (t, "fresh")))
            .map(|(task, who)| {
                let rec = rec(task.target_version);
                async move {
                    let external_id = format!("{who}-{}", task.id);
                    let done = store
                        .complete_synced(task, &external_id, &rec)
                        .await
                        .unwrap();
                    (who, done)
                }
            }),
    )
    .await;
    for (who, done) in &answers {
        assert_eq!(*done, *who == "fresh", "{who} completion answered {done}");
    }
    for (sql, expected) in [
        (
            "SELECT COUNT(*) FROM sync_tasks WHERE state = 'synced' AND external_id LIKE 'fresh-%'",
            24,
        ),
        (
            "SELECT COUNT(*) FROM sync_attempts WHERE outcome = 'synced'",
            24,
        ),
        (
            "SELECT COUNT(*) FROM sync_attempts WHERE outcome = 'synced' AND lag_ms IS NOT NULL AND request_id = 'req-1'",
            24,
        ),
        (
            "SELECT COUNT(*) FROM exceptions WHERE status = 'resolved' AND resolved_by = 'engine'",
            8,
        ),
        ("SELECT COUNT(*) FROM exceptions WHERE status = 'open'", 0),
    ] {
        assert_eq!(count(&app, sql).await, expected, "{sql}");
    }
    crate::causes::assert_exact(&app.store, "completions recorded together").await;
}

/// Completions finishing together, one of which carries an id PostgreSQL cannot store (a NUL):
/// on PostgreSQL that one fails alone and every other is recorded (the batch is written again
/// one by one); SQLite stores it. The worker never sends such an id here (`keepable`), so this
/// is the store's own defence.
async fn a_completion_the_database_refuses_fails_alone(app: TestApp) {
    for seed in 0..4 {
        Post::new("orders/create", &clean_order(650 + seed))
            .send(&app)
            .await;
    }
    let tasks = app
        .store
        .claim_tasks(100, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(tasks.len(), 8);
    let store = &app.store;
    let answers = futures_util::future::join_all(tasks.iter().enumerate().map(|(i, task)| {
        let rec = synced(task.target_version);
        async move {
            let id = if i == 0 {
                "bad-\u{0}-id".to_string()
            } else {
                format!("ok-{}", task.id)
            };
            store.complete_synced(task, &id, &rec).await
        }
    }))
    .await;
    let postgres = matches!(app.store.db(), Db::Postgres(_));
    for (i, answer) in answers.iter().enumerate() {
        match (i, answer) {
            (0, Err(_)) if postgres => {}
            (_, Ok(true)) => {}
            _ => panic!("completion {i} answered {answer:?}"),
        }
    }
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM sync_tasks WHERE state = 'synced' AND external_id LIKE 'ok-%'"
        )
        .await,
        7
    );
}

/// Version 2 arrives while version 1 is being delivered and waits for that attempt to end: the
/// lag recorded when it syncs counts that wait (it used to start when the attempt ended, so busy
/// orders pulled the P95 down).
async fn a_version_that_arrives_during_a_delivery_is_timed_from_its_arrival(app: TestApp) {
    let order = clean_order(670);
    let id = order_id(&order);
    Post::new("orders/create", &order).send(&app).await;
    let crm = |tasks: Vec<syncdesk::store::ClaimedTask>| {
        tasks
            .into_iter()
            .find(|t| t.destination == "crm")
            .expect("the CRM task")
    };
    let first = crm(app
        .store
        .claim_tasks(10, Duration::from_secs(30))
        .await
        .unwrap());
    Post::new("orders/updated", &later(&order, 5))
        .send(&app)
        .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let rec = synced;
    assert!(
        app.store
            .complete_synced(&first, "deal-1", &rec(1))
            .await
            .unwrap()
    );
    let second = crm(app
        .store
        .claim_tasks(10, Duration::from_secs(30))
        .await
        .unwrap());
    assert_eq!(second.target_version, 2);
    assert!(
        app.store
            .complete_synced(&second, "deal-1", &rec(2))
            .await
            .unwrap()
    );
    let lag = count(
        &app,
        &format!(
            "SELECT lag_ms FROM sync_attempts WHERE store_order_id = {id} AND destination = 'crm' AND version = 2"
        ),
    )
    .await;
    assert!(
        lag >= 350,
        "version 2 waited 400 ms for version 1's attempt; lag {lag} ms"
    );
}

/// The store sends version 2 while both of version 1's attempts run; they end blocked (ERP) and
/// dead-lettered (CRM). Those ends were earned by version 1 only: both tasks start afresh at
/// version 2, as they would had it arrived a moment later, and syncing it resolves the
/// exceptions version 1 opened.
async fn a_version_armed_during_an_attempt_outlives_its_blocked_or_dead_end(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(5)).await;
    let order = clean_order(61);
    let id = order_id(&order);
    Post::new("orders/create", &order).send(&app).await;
    let tasks = app
        .store
        .claim_tasks(10, Duration::from_secs(30))
        .await
        .expect("claim");
    assert_eq!(tasks.len(), 2);

    let mut paid = later(&order, 5);
    paid["financial_status"] = json!("paid");
    Post::new("orders/paid", &paid).send(&app).await;
    assert_eq!(
        count(&app, &format!("SELECT COUNT(*) FROM sync_tasks WHERE store_order_id = {id} AND state = 'running' AND target_version = 2")).await,
        2,
        "a running task keeps running, aimed at the new version"
    );

    for task in &tasks {
        assert_eq!(task.target_version, 1);
        let (outcome, kind) = if task.destination == "erp" {
            ("needs_action", "needs_action")
        } else {
            ("exhausted", "exhausted")
        };
        let rec = AttemptRecord {
            version: 1,
            started_at: chrono::Utc::now(),
            duration_ms: 3,
            outcome,
            status: Some(422),
            message: Some("refused".into()),
            request_id: None,
        };
        let exception = NewException {
            code: "test_refusal".into(),
            kind,
            fingerprint: format!("test_refusal:{}", task.destination),
            message: "Version 1 was refused.".into(),
            action: "Nothing: version 2 follows.".into(),
            fields: vec![],
        };
        let done = if task.destination == "erp" {
            app.store.complete_blocked(task, &rec, &exception).await
        } else {
            app.store.complete_dead(task, &rec, &exception).await
        };
        assert!(done.expect("complete"), "lease held");
    }
    assert_eq!(
        count(&app, &format!("SELECT COUNT(*) FROM sync_tasks WHERE store_order_id = {id} AND state = 'pending' AND target_version = 2 AND attempt = 0 AND blocked_on IS NULL")).await,
        2,
        "both tasks wait for version 2, blocked on nothing"
    );
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT COUNT(*) FROM exceptions WHERE store_order_id = {id} AND status = 'open'"
            )
        )
        .await,
        2,
        "what happened to version 1 is still there to read"
    );

    let worker = rig.worker(&app.store);
    drain(&worker, &app, Duration::from_secs(10)).await;
    assert_eq!(
        count(&app, &format!("SELECT COUNT(*) FROM sync_tasks WHERE store_order_id = {id} AND state = 'synced' AND synced_version = 2")).await,
        2
    );
    assert_eq!(
        count(&app, &format!("SELECT COUNT(*) FROM exceptions WHERE store_order_id = {id} AND status = 'resolved' AND resolved_by = 'engine'")).await,
        2,
        "version 2 synced, so version 1's exceptions resolved themselves"
    );
}

/// A SKU mapped to an item code the ERP does not have (saved while the ERP could not be asked,
/// or retired there since): the ERP refuses the sales order and the order waits on the SKU.
/// Correcting the mapping releases it, and the corrected sales order is created — not refused
/// as the version's idempotency key "reused with a different body".
async fn a_wrong_item_code_corrected_in_syncdesk_releases_the_order(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(5)).await;
    let worker = rig.worker(&app.store);
    app.store
        .save_sku_mapping(UNMAPPED, "ERP-RETIRED", &Actor::System)
        .await
        .expect("save mapping");
    let mut order = clean_order(62);
    order["line_items"][0]["sku"] = json!(UNMAPPED);
    let id = order_id(&order);
    Post::new("orders/create", &order).send(&app).await;
    drain(&worker, &app, Duration::from_secs(10)).await;
    let fingerprint = format!("missing_sku:erp:{UNMAPPED}");
    assert_eq!(
        count(&app, &format!("SELECT COUNT(*) FROM sync_tasks WHERE store_order_id = {id} AND destination = 'erp' AND state = 'blocked' AND blocked_on = '{fingerprint}'")).await,
        1,
        "the ERP's refusal of the item code waits on the SKU's mapping"
    );

    let (_, released) = app
        .store
        .save_sku_mapping(UNMAPPED, &format!("ERP-{UNMAPPED}"), &Actor::System)
        .await
        .expect("correct mapping");
    assert_eq!((released.tasks, released.exceptions), (1, 1));
    drain(&worker, &app, Duration::from_secs(10)).await;
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT COUNT(*) FROM sync_tasks WHERE store_order_id = {id} AND state = 'synced'"
            )
        )
        .await,
        2
    );
    let erp = rig.erp.ledger().check();
    assert_eq!(erp.count(DocumentKind::SalesOrder, &id.to_string()), 1);
    assert_eq!(erp.extra_documents(), 0);
}

/// The operator maps the SKU while a worker is delivering the order that waits on it: the
/// mapping's release finds the task running and passes it by. When that attempt then ends
/// blocked on the SKU (it read the mappings before the save), the task is not left blocked on a
/// cause already fixed: it is tried again, and syncs.
async fn a_sku_mapped_while_its_order_is_being_delivered_still_releases_it(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(5)).await;
    let mut order = clean_order(63);
    order["line_items"][0]["sku"] = json!(UNMAPPED);
    let id = order_id(&order);
    Post::new("orders/create", &order).send(&app).await;
    let started = chrono::Utc::now();
    let tasks = app
        .store
        .claim_tasks(10, Duration::from_secs(30))
        .await
        .expect("claim");
    let erp_task = tasks
        .iter()
        .find(|t| t.destination == "erp")
        .expect("the ERP task")
        .clone();

    let (_, released) = app
        .store
        .save_sku_mapping(UNMAPPED, &format!("ERP-{UNMAPPED}"), &Actor::System)
        .await
        .expect("save mapping");
    assert_eq!(released.tasks, 0, "the task was running");

    let fingerprint = format!("missing_sku:erp:{UNMAPPED}");
    let rec = AttemptRecord {
        version: 1,
        started_at: started,
        duration_ms: 5,
        outcome: "needs_action",
        status: None,
        message: Some(format!("SKU {UNMAPPED} has no ERP item code.")),
        request_id: None,
    };
    let exception = NewException {
        code: "missing_sku".into(),
        kind: "needs_action",
        fingerprint: fingerprint.clone(),
        message: format!("SKU {UNMAPPED} has no ERP item code."),
        action: "Map the SKU to an ERP item code.".into(),
        fields: vec![],
    };
    assert!(
        app.store
            .complete_blocked(&erp_task, &rec, &exception)
            .await
            .expect("complete")
    );
    assert_eq!(
        app.text(&format!(
            "SELECT state FROM sync_tasks WHERE id = {}",
            erp_task.id
        ))
        .await,
        "pending",
        "not blocked on a SKU mapped meanwhile"
    );

    let crm_task = tasks
        .iter()
        .find(|t| t.destination == "crm")
        .expect("the CRM task");
    let crm_rec = AttemptRecord {
        outcome: "synced",
        status: Some(200),
        message: None,
        ..rec.clone()
    };
    app.store
        .complete_synced(crm_task, "crm-63", &crm_rec)
        .await
        .expect("complete");
    let worker = rig.worker(&app.store);
    drain(&worker, &app, Duration::from_secs(10)).await;
    assert_eq!(
        count(&app, &format!("SELECT COUNT(*) FROM sync_tasks WHERE store_order_id = {id} AND destination = 'erp' AND state = 'synced'")).await,
        1
    );
    assert_eq!(
        rig.erp
            .ledger()
            .check()
            .count(DocumentKind::SalesOrder, &id.to_string()),
        1
    );

    // The same through a CSV import whose row leaves that mapping as it is (the ERP has since
    // added the item it refused): an attempt that started before the file was applied and
    // ends blocked on the SKU after it is tried again too, though the row changed nothing.
    let mut again = clean_order(64);
    again["line_items"][0]["sku"] = json!(UNMAPPED);
    Post::new("orders/create", &again).send(&app).await;
    let started = chrono::Utc::now();
    let tasks = app
        .store
        .claim_tasks(10, Duration::from_secs(30))
        .await
        .expect("claim");
    let erp_task = tasks
        .iter()
        .find(|t| t.destination == "erp")
        .expect("the ERP task")
        .clone();
    let row = MappingRow {
        sku: UNMAPPED.into(),
        item_code: format!("ERP-{UNMAPPED}"),
    };
    let applied = app
        .store
        .import_sku_mappings(&[row], &Actor::System)
        .await
        .expect("import");
    assert_eq!((applied.unchanged, applied.released_tasks), (1, 0));
    let rec = AttemptRecord {
        started_at: started,
        ..rec
    };
    assert!(
        app.store
            .complete_blocked(&erp_task, &rec, &exception)
            .await
            .expect("complete")
    );
    assert_eq!(
        app.text(&format!(
            "SELECT state FROM sync_tasks WHERE id = {}",
            erp_task.id
        ))
        .await,
        "pending",
        "not blocked on a SKU the import confirmed meanwhile"
    );
}
