//! An order's actions beyond "send again": an operator's copy-on-write edit of the payload a
//! destination refused, and a resync from the store's Admin API — against the simulated store,
//! CRM and ERP over HTTP.

use std::time::Duration;

use app::model::{OrderPage, Role};
use reqwest::StatusCode;
use serde_json::{Value, json};
use syncdesk::simulate::ledger::DocumentKind;

use crate::harness::TestApp;
use crate::sync::{clean_order, drain, rig};
use crate::webhooks::{Post, later, order_id};

on_both_backends! {
    an_operator_edits_the_refused_payload_and_the_edit_is_sent_once_with_the_original_kept => an_operator_edits_the_refused_payload_and_the_edit_is_sent_once_with_the_original_kept_sqlite, an_operator_edits_the_refused_payload_and_the_edit_is_sent_once_with_the_original_kept_postgres;
    a_resync_reads_the_store_applies_a_newer_state_and_sends_it => a_resync_reads_the_store_applies_a_newer_state_and_sends_it_sqlite, a_resync_reads_the_store_applies_a_newer_state_and_sends_it_postgres;
    the_orders_list_filters_by_state_and_an_operator_skips_from_the_order_page => the_orders_list_filters_by_state_and_an_operator_skips_from_the_order_page_sqlite, the_orders_list_filters_by_state_and_an_operator_skips_from_the_order_page_postgres;
    an_order_state_the_store_sent_unreadable_waits_in_the_queue_until_one_as_recent_is_read => an_order_state_the_store_sent_unreadable_waits_in_the_queue_until_one_as_recent_is_read_sqlite, an_order_state_the_store_sent_unreadable_waits_in_the_queue_until_one_as_recent_is_read_postgres;
}

const LONG_STREET: &str = "Apartment 4B, The Old Harbour Warehouse Building, 12 Harbour Street";

/// An order whose ship-to street is longer than the ERP accepts.
fn refused_order(seed: u64) -> Value {
    let mut order = clean_order(seed);
    order["shipping_address"] = json!({
        "name": "Ana Diaz", "address1": LONG_STREET, "city": "Boston", "province_code": "MA",
        "country_code": "US", "zip": "02110"
    });
    order
}

/// The ERP's card on an order's page.
fn erp_card(page: &OrderPage) -> &app::model::OrderDestination {
    page.destinations
        .iter()
        .find(|d| d.destination == "erp")
        .expect("the page shows the ERP")
}

/// The ERP's sales order for order `id`, which it must hold.
async fn erp_document(rig: &crate::sync::Rig, id: i64) -> syncdesk::connectors::ErpDocument {
    rig.erp_api()
        .find_sales_order(&id.to_string())
        .await
        .expect("ERP answers")
        .expect("the ERP has the order")
}

async fn page(client: &crate::harness::Client, id: i64) -> OrderPage {
    let reply = client
        .rpc("/rpc/orders/detail", &[("store_order_id", &id.to_string())])
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.json()
}

async fn an_operator_edits_the_refused_payload_and_the_edit_is_sent_once_with_the_original_kept(
    app: TestApp,
) {
    let rig = rig(&app, Duration::from_secs(5)).await;
    let worker = rig.worker(&app.store);
    let order = refused_order(700);
    let id = order_id(&order);
    Post::new("orders/create", &order).send(&app).await;
    drain(&worker, &app, Duration::from_secs(10)).await;
    app.add_user("otto@example.com", "Otto", &[Role::Operator])
        .await;
    app.add_user("mona@example.com", "Mona", &[Role::Manager])
        .await;
    let operator = app.signed_in("otto@example.com").await;

    let before = page(&operator, id).await;
    let erp = erp_card(&before);
    assert_eq!(erp.state, "blocked");
    assert!(
        erp.problems.iter().any(|p| p.contains("street")),
        "{:?}",
        erp.problems
    );
    let mut payload: Value = serde_json::from_str(erp.payload.as_deref().expect("payload"))
        .expect("the page's payload is JSON");
    assert_eq!(payload["ship_to"]["street"], LONG_STREET);
    let version = before.version.to_string();
    let id_text = id.to_string();
    let edit = |payload: &Value, version: &str| {
        vec![
            ("store_order_id", id_text.clone()),
            ("destination", "erp".to_string()),
            ("version", version.to_string()),
            ("payload", payload.to_string()),
        ]
    };
    let send = |form: Vec<(&'static str, String)>| {
        let operator = &operator;
        async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            operator.rpc("/rpc/orders/edit", &form).await
        }
    };

    // Refused, with the reason, and nothing saved: another order's id, a misspelt field, an edit
    // still over the limit, a version the order has left; and a manager may not edit at all.
    let mut other = payload.clone();
    other["external_id"] = json!("1");
    let mut typo = payload.clone();
    typo["ship_to"]["stret"] = json!("x");
    for (bad, expected) in [
        (other, "external_id says which order this is in the ERP"),
        (typo, "ship_to.stret is not a field of the ERP payload"),
    ] {
        let reply = send(edit(&bad, &version)).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            reply.body
        );
        assert!(
            reply.error().to_string().contains(expected),
            "{}",
            reply.body
        );
    }
    // The CRM's stamp of which state this is cannot be edited either: the CRM would ignore the
    // order's later states (or the edit itself) as older than what it holds.
    let crm = before
        .destinations
        .iter()
        .find(|d| d.destination == "crm")
        .expect("the page shows the CRM");
    let mut stamped: Value =
        serde_json::from_str(crm.payload.as_deref().expect("the CRM payload")).expect("JSON");
    stamped["deal"]["source_version"] = json!("2999-01-01T00:00:00Z");
    let mut form = edit(&stamped, &version);
    form[1].1 = "crm".to_string();
    let reply = send(form).await;
    assert_eq!(
        (reply.status, reply.error().to_string()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "deal.source_version says which state of the order this is; it cannot be edited."
                .to_string()
        )
    );
    let mut still_long = payload.clone();
    still_long["ship_to"]["street"] = json!(format!("{LONG_STREET}, rear"));
    let reply = send(edit(&still_long, &version)).await;
    assert!(
        reply
            .error()
            .to_string()
            .starts_with("The edited payload still breaks the ERP's rules:"),
        "{}",
        reply.body
    );
    payload["ship_to"]["street"] = json!("12 Harbour Street");
    payload["ship_to"]["street2"] = json!("Apt 4B, Old Harbour Warehouse");
    let stale = send(edit(&payload, &(before.version - 1).to_string())).await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.body);
    let manager = app.signed_in("mona@example.com").await;
    let form = edit(&payload, &version);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        manager.rpc("/rpc/orders/edit", &form).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM payload_edits").await, 0);

    // A page whose payload has changed since it was shown (say a SKU mapped meanwhile) does not
    // save what it showed over it.
    let mut form = edit(&payload, &version);
    form.push(("shown", "0123456789abcdef".to_string()));
    let outdated = send(form).await;
    assert_eq!(outdated.status, StatusCode::CONFLICT, "{}", outdated.body);
    assert!(
        outdated
            .error()
            .to_string()
            .starts_with("What the ERP gets has changed since you opened this order"),
        "{}",
        outdated.body
    );

    // The edit is saved beside the computed payload, audited field by field, and sent.
    let mut form = edit(&payload, &version);
    form.push(("based_on", "0".to_string()));
    form.push(("shown", erp.payload_digest.clone()));
    let saved = send(form).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    let summary: String = saved.json();
    assert_eq!(
        summary,
        "Saved your edit (2 fields changed: ship_to.street, ship_to.street2). The ERP gets the edited payload now; the original is kept."
    );
    let again = send(edit(&payload, &version)).await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        again.error().to_string().starts_with("Nothing changed"),
        "{}",
        again.body
    );
    // A second operator, whose page was opened before that edit (no edit in force then), saves
    // a change of their own: refused, rather than undoing the first edit unseen.
    assert_eq!(erp.edit_id, 0);
    let mut theirs =
        serde_json::from_str::<Value>(erp.payload.as_deref().expect("payload")).expect("JSON");
    theirs["ship_to"]["street"] = json!("Harbour Street 12");
    let mut form = edit(&theirs, &version);
    form.push(("based_on", "0".to_string()));
    let late = send(form).await;
    assert_eq!(late.status, StatusCode::CONFLICT, "{}", late.body);
    assert!(
        late.error()
            .to_string()
            .starts_with("Someone else edited what the ERP gets"),
        "{}",
        late.body
    );
    // Reloaded, the page names the edit in force, which a new edit is then based on.
    let shown = page(&operator, id).await;
    assert!(erp_card(&shown).edit_id > 0);
    let audit = app.audit_of("payload.edited").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor_label, "otto@example.com");
    let changes = &audit[0].after.as_ref().expect("after").0["changes"];
    assert_eq!(changes[0]["path"], "ship_to.street");
    assert_eq!(changes[0]["before"], LONG_STREET);
    assert_eq!(changes[0]["after"], "12 Harbour Street");

    drain(&worker, &app, Duration::from_secs(10)).await;
    let document = erp_document(&rig, id).await;
    let ship_to = document.order.ship_to.expect("ship-to");
    assert_eq!(ship_to.street, "12 Harbour Street");
    assert_eq!(
        ship_to.street2.as_deref(),
        Some("Apt 4B, Old Harbour Warehouse")
    );
    let ledger = rig.erp.ledger();
    assert_eq!(
        ledger
            .check()
            .count(DocumentKind::SalesOrder, &id.to_string()),
        1
    );
    assert!(
        ledger.entries_for(&id.to_string()).iter().any(|e| e
            .idempotency_key
            .as_deref()
            .is_some_and(|k| k.contains("-edit"))),
        "sent under the edit's own idempotency key"
    );
    let after = page(&operator, id).await;
    let erp = erp_card(&after);
    assert_eq!(erp.state, "synced");
    assert!(
        erp.edited
            .as_deref()
            .is_some_and(|e| e.starts_with("by otto@example.com at "))
    );
    assert!(
        erp.original
            .as_deref()
            .is_some_and(|o| o.contains(LONG_STREET))
    );
    assert!(
        erp.payload
            .as_deref()
            .is_some_and(|p| !p.contains(LONG_STREET))
    );
    assert!(
        after
            .timeline
            .iter()
            .any(|e| e.label == "payload edited" && e.detail.contains("ship_to.street"))
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM exceptions WHERE store_order_id = {id} AND status = 'open'"
        ))
        .await,
        0
    );
    // The delivery that succeeded resolved it, saying so.
    assert_eq!(
        app.text(&format!(
            "SELECT resolved_by || ': ' || resolution FROM exceptions WHERE store_order_id = {id}"
        ))
        .await,
        "engine: Synced on a later attempt"
    );

    // A newer state from the store, paid, with the same long street: the edit still stands for
    // the street (the store left it as it was), laid onto the new state, so the ERP gets the
    // payment and keeps the short street, and nobody has to edit again.
    let mut paid_later = later(&order, 5);
    paid_later["financial_status"] = json!("paid");
    Post::new("orders/updated", &paid_later).send(&app).await;
    drain(&worker, &app, Duration::from_secs(10)).await;
    let newer = page(&operator, id).await;
    let erp = erp_card(&newer);
    assert_eq!(
        (erp.state.as_str(), erp.synced_version),
        ("synced", Some(newer.version))
    );
    assert!(
        erp.edited
            .as_deref()
            .is_some_and(|e| e.contains("its changes still stand")),
        "{:?}",
        erp.edited
    );
    assert!(erp.problems.is_empty(), "{:?}", erp.problems);
    let document = erp_document(&rig, id).await;
    assert_eq!(
        document.order.ship_to.expect("ship-to").street,
        "12 Harbour Street"
    );
    assert_eq!(
        serde_json::to_value(document.order.payment_status).expect("status"),
        json!("paid")
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM exceptions WHERE store_order_id = {id} AND status = 'open'"
        ))
        .await,
        0
    );

    // The store changes the street itself: its value stands (the edit was for another one),
    // and the ERP refuses it again, saying so.
    let mut moved = later(&paid_later, 5);
    moved["shipping_address"]["address1"] = json!(format!("{LONG_STREET}, Dock 7"));
    Post::new("orders/updated", &moved).send(&app).await;
    drain(&worker, &app, Duration::from_secs(10)).await;
    let newest = page(&operator, id).await;
    let erp = erp_card(&newest);
    assert_eq!(erp.state, "blocked");
    assert!(
        erp.edited
            .as_deref()
            .is_some_and(|e| e
                .contains("except where the store has changed the field since (ship_to.street)")),
        "{:?}",
        erp.edited
    );
    assert!(
        erp.problems.iter().any(|p| p.contains("street")),
        "{:?}",
        erp.problems
    );
    // An edit saved before edits carried was for its version only, and stays so.
    app.execute("UPDATE payload_edits SET carries = FALSE")
        .await;
    let older_rule = page(&operator, id).await;
    assert_eq!(erp_card(&older_rule).edited, None);
}

async fn a_resync_reads_the_store_applies_a_newer_state_and_sends_it(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(5)).await;
    let worker = rig.worker(&app.store);
    let order = clean_order(720);
    let id = order_id(&order);
    app.shop
        .orders()
        .put(&order)
        .expect("the store has the order");
    Post::new("orders/create", &order).send(&app).await;
    drain(&worker, &app, Duration::from_secs(10)).await;
    app.add_user("otto@example.com", "Otto", &[Role::Operator])
        .await;
    app.add_user("mona@example.com", "Mona", &[Role::Manager])
        .await;
    let operator = app.signed_in("otto@example.com").await;
    let resync = |id: i64| {
        let operator = &operator;
        async move {
            operator
                .rpc("/rpc/orders/resync", &[("store_order_id", &id.to_string())])
                .await
        }
    };

    // Nothing newer in the store: nothing applied, nothing sent.
    let same = resync(id).await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.body);
    assert_eq!(
        same.json::<String>(),
        "SyncDesk already had the store's current state. Then the CRM already has it; the ERP already has it."
    );

    // The store changed and its webhook never came: the resync takes the newer state in and
    // sends it to both destinations.
    let mut cancelled = later(&order, 10);
    cancelled["cancelled_at"] = cancelled["updated_at"].clone();
    cancelled["cancel_reason"] = json!("customer");
    app.shop.orders().put(&cancelled).expect("newer state");
    let newer = resync(id).await;
    assert_eq!(
        newer.json::<String>(),
        "The store had a newer state; it is version 2 now. Then the CRM gets it now; the ERP gets it now."
    );
    drain(&worker, &app, Duration::from_secs(10)).await;
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM sync_tasks WHERE store_order_id = {id} AND state = 'synced' AND synced_version = 2"
        ))
        .await,
        2
    );
    let document = erp_document(&rig, id).await;
    assert_eq!(document.status, syncdesk::connectors::ErpStatus::Cancelled);
    let shown = page(&operator, id).await;
    assert!(shown.can_resync, "the store's Admin API is configured here");
    let timeline = shown.timeline;
    assert!(
        timeline.iter().any(|e| e.kind == "webhook"
            && e.label == "orders/updated"
            && e.detail.starts_with("applied")),
        "{timeline:?}"
    );
    let audit = app.audit_of("order.resynced").await;
    assert_eq!(audit.len(), 2);
    assert_eq!(
        audit[0].after.as_ref().expect("after").0["ingest"],
        "applied"
    );

    // An operator skipped the ERP for this order (keyed in there by hand, say). A resync for a
    // newer state sends it to the CRM and leaves the skip alone: the ERP would otherwise get a
    // second document. Sending to the ERP from the order's page is the explicit undo, and its
    // wait counts from then.
    app.execute(&format!(
        "UPDATE sync_tasks SET state = 'skipped', armed_at = '2020-01-01T00:00:00+00:00' WHERE store_order_id = {id} AND destination = 'erp'"
    ))
    .await;
    let mut noted = later(&cancelled, 10);
    noted["note"] = json!("refund by bank transfer");
    app.shop.orders().put(&noted).expect("newer state");
    let skipped = resync(id).await;
    assert_eq!(
        skipped.json::<String>(),
        "The store had a newer state; it is version 3 now. Then the CRM gets it now; the ERP was skipped for this order, so nothing goes there (its page's \"Send to the ERP again\" undoes the skip)."
    );
    let erp_state =
        format!("SELECT state FROM sync_tasks WHERE store_order_id = {id} AND destination = 'erp'");
    assert_eq!(app.text(&erp_state).await, "skipped");
    let undo = operator
        .rpc(
            "/rpc/orders/retry",
            &[("store_order_id", &id.to_string()), ("destination", "erp")],
        )
        .await;
    assert_eq!(
        undo.json::<String>(),
        "Queued: the order goes to the ERP again now."
    );
    assert_eq!(app.text(&erp_state).await, "pending");
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM sync_tasks WHERE store_order_id = {id} AND destination = 'erp' AND armed_at > '2021-01-01'"
        ))
        .await,
        1,
        "armed when sent again, not when skipped"
    );

    // An order the store does not have, and a manager, are refused.
    let missing = resync(424_242).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing.error().to_string(),
        "The store has no order with id 424242."
    );
    let manager = app.signed_in("mona@example.com").await;
    assert_eq!(
        manager
            .rpc("/rpc/orders/resync", &[("store_order_id", &id.to_string())])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

async fn the_orders_list_filters_by_state_and_an_operator_skips_from_the_order_page(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(5)).await;
    let worker = rig.worker(&app.store);
    let refused = refused_order(740);
    let fine = clean_order(741);
    // A neighbour waiting on an unmapped SKU spelled like the refused order's id: skipping one
    // order must not reach it (a search for the id would match its SKU).
    let mut neighbour = clean_order(742);
    neighbour["line_items"][0]["sku"] = json!(order_id(&refused).to_string());
    Post::new("orders/create", &refused).send(&app).await;
    Post::new("orders/create", &fine).send(&app).await;
    Post::new("orders/create", &neighbour).send(&app).await;
    drain(&worker, &app, Duration::from_secs(10)).await;
    app.add_user("otto@example.com", "Otto", &[Role::Operator])
        .await;
    let operator = app.signed_in("otto@example.com").await;
    let list = |state: &'static str| {
        let operator = &operator;
        async move {
            operator
                .rpc("/rpc/orders/recent", &[("state", state)])
                .await
        }
    };

    // Only the orders that need action, with how long they have waited.
    let blocked: Vec<app::model::OrderView> = list("blocked").await.json();
    let mut ids: Vec<i64> = blocked.iter().map(|o| o.store_order_id).collect();
    ids.sort_unstable();
    assert_eq!(ids, [order_id(&refused), order_id(&neighbour)]);
    assert!(
        blocked
            .iter()
            .all(|o| o.erp == "blocked" && o.waiting.as_deref().is_some_and(|w| w.ends_with(" s")))
    );
    let all: Vec<app::model::OrderView> = list("").await.json();
    let synced = all
        .iter()
        .find(|o| o.store_order_id == order_id(&fine))
        .expect("the synced order is listed");
    assert_eq!(synced.waiting, None);
    assert_eq!(list("lost").await.status, StatusCode::UNPROCESSABLE_ENTITY);
    let ids_in = |state: &'static str| {
        let list = &list;
        async move {
            list(state)
                .await
                .json::<Vec<app::model::OrderView>>()
                .iter()
                .map(|o| o.store_order_id)
                .collect::<Vec<i64>>()
        }
    };
    // Synced at both destinations, the clean order is listed once; the others are synced at
    // the CRM only and listed too.
    let synced = ids_in("synced").await;
    assert_eq!(synced.iter().filter(|&&o| o == order_id(&fine)).count(), 1);
    assert_eq!(synced.len(), 3, "{synced:?}");
    // A task in flight is found too, though PostgreSQL's index of state changes leaves running
    // tasks out.
    let set_crm_state = |state: &str| {
        format!(
            "UPDATE sync_tasks SET state = '{state}' WHERE store_order_id = {} AND destination = 'crm'",
            order_id(&fine)
        )
    };
    assert!(ids_in("running").await.is_empty());
    // The page keeps the state chosen in its menu, and says that nothing is in it (not how to
    // search: there was no search).
    let html = operator.page("/orders?state=running").await.body;
    assert!(
        html.contains(r#"<option value="running" selected"#),
        "{html}"
    );
    assert!(
        html.contains("No order is in this state at the CRM or the ERP right now."),
        "{html}"
    );
    app.execute(&set_crm_state("running")).await;
    assert_eq!(ids_in("running").await, [order_id(&fine)]);
    app.execute(&set_crm_state("synced")).await;
    // A search narrowed by a state: the id names the refused order, and the neighbour by its SKU.
    let refused_id = order_id(&refused).to_string();
    for (state, found) in [("blocked", 2), ("synced", 2), ("dead", 0)] {
        let hits: Vec<app::model::OrderView> = operator
            .rpc(
                "/rpc/orders/recent",
                &[("q", refused_id.as_str()), ("state", state)],
            )
            .await
            .json();
        assert_eq!(hits.len(), found, "{state}");
    }

    // Skip needs a reason; then the ERP task is skipped and its exception closed as skipped.
    let id = order_id(&refused).to_string();
    let skip = |reason: &'static str| {
        let operator = &operator;
        let id = id.clone();
        async move {
            operator
                .rpc(
                    "/rpc/orders/skip",
                    &[
                        ("store_order_id", id.as_str()),
                        ("destination", "erp"),
                        ("reason", reason),
                    ],
                )
                .await
        }
    };
    assert_eq!(skip("  ").await.status, StatusCode::UNPROCESSABLE_ENTITY);
    let done = skip("keyed into the ERP by hand").await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(
        done.json::<String>()
            .starts_with("Skipped: the order will not be sent to the ERP")
    );
    assert_eq!(
        app.text(&format!(
            "SELECT state FROM sync_tasks WHERE store_order_id = {id} AND destination = 'erp'"
        ))
        .await,
        "skipped"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM exceptions WHERE store_order_id = {id} AND status = 'skipped'"
        ))
        .await,
        1
    );
    assert!(
        skip("again")
            .await
            .json::<String>()
            .starts_with("Nothing to skip")
    );
    let skipped: Vec<app::model::OrderView> = list("skipped").await.json();
    assert_eq!(skipped.len(), 1);
    assert_eq!(
        skipped[0].waiting, None,
        "nobody waits for a destination the order is skipped at"
    );
    // The neighbour still waits on its SKU. Both clicks are audited against the order (the
    // second with nothing changed in its result).
    assert_eq!(
        app.text(&format!(
            "SELECT state FROM sync_tasks WHERE store_order_id = {} AND destination = 'erp'",
            order_id(&neighbour)
        ))
        .await,
        "blocked"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'exceptions.skipped' AND target = 'order:{id}'"
        ))
        .await,
        2
    );
}

/// An order's state the store sent in a form SyncDesk cannot read reached no destination, so it
/// is an exception of the store's: one per order, with no task to retry, resolving by itself
/// once SyncDesk holds a state of the order as recent (the workers' sweep, or a resync). One
/// older than what SyncDesk holds opens none; one whose order cannot even be named is kept for
/// a person to close. A customer record that cannot be read opens none: orders carry their
/// customer.
async fn an_order_state_the_store_sent_unreadable_waits_in_the_queue_until_one_as_recent_is_read(
    app: TestApp,
) {
    let order = clean_order(760);
    let id = order_id(&order);
    let (_, body) = Post::new("orders/create", &order).send(&app).await;
    assert_eq!(body["outcome"], "applied", "{body}");
    let unreadable = |state: &Value| {
        let mut state = state.clone();
        state["line_items"][0]["price"] = json!("twelve");
        state
    };
    let open = |fingerprint: String| {
        let app = &app;
        async move {
            app.count(&format!(
                "SELECT COUNT(*) FROM exceptions WHERE fingerprint = '{fingerprint}'
                 AND status = 'open' AND destination = 'store' AND task_id IS NULL
                 AND code = 'unreadable_webhook'"
            ))
            .await
        }
    };
    let fingerprint = format!("unreadable_webhook:{id}");

    // Older than what SyncDesk holds: nothing is lost by not reading it.
    let (_, body) = Post::new("orders/updated", &unreadable(&later(&order, -30)))
        .send(&app)
        .await;
    assert_eq!(body["outcome"], "recorded", "{body}");
    assert_eq!(open(fingerprint.clone()).await, 0);

    // Newer, twice: one exception, waiting for the more recent of the two.
    for minutes in [10, 20] {
        let (status, body) = Post::new("orders/paid", &unreadable(&later(&order, minutes)))
            .send(&app)
            .await;
        assert_eq!(
            (status, &body["outcome"]),
            (StatusCode::OK, &json!("recorded"))
        );
    }
    assert_eq!(open(fingerprint.clone()).await, 1);
    let message = app
        .text(&format!(
            "SELECT message FROM exceptions WHERE fingerprint = '{fingerprint}'"
        ))
        .await;
    assert_eq!(
        message,
        format!(
            "The store sent the order with store id {id} (orders/paid) in a form SyncDesk cannot \
             read (at line_items[0].price), so it reached neither the CRM nor the ERP. Resync the \
             order from the store; this closes by itself once SyncDesk holds a state of the order \
             as recent."
        )
    );
    // Shown in the order's timeline, as every delivery about it.
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM webhook_events WHERE store_order_id = {id} AND outcome = 'recorded'"
        ))
        .await,
        3
    );

    // No task to send again: a retry says what to do instead, and a group retry counts it apart.
    let exception_id = app
        .count(&format!(
            "SELECT id FROM exceptions WHERE fingerprint = '{fingerprint}'"
        ))
        .await;
    let by = syncdesk::audit::Actor::System;
    let refused = app
        .store
        .retry_exception(exception_id, &by)
        .await
        .expect_err("nothing to retry");
    assert!(
        refused.to_string().contains("Resync it from the store"),
        "{refused}"
    );
    let scope = syncdesk::store::ExceptionScope {
        destination: Some("store".into()),
        ..Default::default()
    };
    let report = app
        .store
        .triage(&scope, &syncdesk::store::TriageAction::Retry, false, &by)
        .await
        .expect("retry");
    assert_eq!(
        (
            report.matched,
            report.queued,
            report.from_store,
            report.destination_wide
        ),
        (1, 0, 1, 0)
    );

    // A readable state newer than the first unread one but older than the second: still open.
    let (_, body) = Post::new("orders/updated", &later(&order, 15))
        .send(&app)
        .await;
    assert_eq!(body["outcome"], "applied", "{body}");
    assert_eq!(app.store.settle_unread_states().await.expect("sweep"), 0);
    assert_eq!(open(fingerprint.clone()).await, 1);

    // The store's current state, read by a resync: the exception closes at once.
    let current = later(&order, 20);
    app.shop.orders().put(&current).expect("the store has it");
    app.add_user("ursula@example.com", "Ursula", &[Role::Operator])
        .await;
    let operator = app.signed_in("ursula@example.com").await;
    let resynced = operator
        .rpc("/rpc/orders/resync", &[("store_order_id", &id.to_string())])
        .await;
    assert_eq!(resynced.status, StatusCode::OK, "{}", resynced.body);
    assert_eq!(open(fingerprint.clone()).await, 0);
    assert_eq!(
        app.text(&format!(
            "SELECT status || '|' || resolved_by || '|' || resolution FROM exceptions
             WHERE fingerprint = '{fingerprint}'"
        ))
        .await,
        "resolved|engine|SyncDesk took in a state of the order at least as recent"
    );

    // An order not taken in yet, without an updated_at to read: open until any state of it is.
    let other = clean_order(761);
    let other_id = order_id(&other);
    let mut first = unreadable(&other);
    first["updated_at"] = json!("yesterday");
    Post::new("orders/create", &first).send(&app).await;
    let other_fingerprint = format!("unreadable_webhook:{other_id}");
    assert_eq!(open(other_fingerprint.clone()).await, 1);
    assert_eq!(app.store.settle_unread_states().await.expect("sweep"), 0);
    let (_, body) = Post::new("orders/create", &other).send(&app).await;
    assert_eq!(body["outcome"], "applied", "{body}");
    assert_eq!(app.store.settle_unread_states().await.expect("sweep"), 1);
    assert_eq!(open(other_fingerprint).await, 0);

    // Not even the order's id: one exception for the topic, closed by a person.
    let mut nameless = unreadable(&clean_order(762));
    nameless["id"] = json!("A-762");
    Post::new("orders/create", &nameless).send(&app).await;
    let unknown = "unreadable_webhook:unknown:orders/create".to_string();
    assert_eq!(open(unknown.clone()).await, 1);
    let closed = app
        .store
        .triage(
            &syncdesk::store::ExceptionScope {
                fingerprint: Some(unknown.clone()),
                ..Default::default()
            },
            &syncdesk::store::TriageAction::Resolve {
                note: "Order #1762 keyed into the ERP by hand".into(),
            },
            false,
            &by,
        )
        .await
        .expect("resolve");
    assert_eq!(closed.changed, 1);
    assert_eq!(open(unknown).await, 0);

    // A customer record that cannot be read opens nothing.
    Post::new(
        "customers/update",
        &json!({"id": 99, "email": "x@example.com", "created_at": "soon", "updated_at": "soon"}),
    )
    .send(&app)
    .await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM exceptions WHERE status = 'open'")
            .await,
        0
    );
    app.assert_every_row_has_its_parent().await;
}
