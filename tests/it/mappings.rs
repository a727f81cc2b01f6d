//! SKU mappings checked against the simulated ERP's item lookup, and CSV import (all or nothing,
//! every bad row reported) and export, through the UI's server functions, the web download and
//! the JSON API.

use std::time::Duration;

use app::model::{ImportOutcome, MappingSaved, Role};
use reqwest::StatusCode;
use serde_json::Value;
use syncdesk::audit::Actor;
use syncdesk::simulate::faults::OutageMode;
use syncdesk::simulate::ledger::DocumentKind;

use crate::harness::TestApp;
use crate::sync::{UNMAPPED, drain, rig};
use crate::triage::{FINGERPRINT, blocked_orders};

on_both_backends! {
    an_item_code_the_erp_does_not_know_is_refused_and_an_unreachable_erp_is_said => an_item_code_the_erp_does_not_know_is_refused_and_an_unreachable_erp_is_said_sqlite, an_item_code_the_erp_does_not_know_is_refused_and_an_unreachable_erp_is_said_postgres;
    a_csv_with_a_bad_row_changes_nothing_and_a_good_one_releases_the_waiting_orders => a_csv_with_a_bad_row_changes_nothing_and_a_good_one_releases_the_waiting_orders_sqlite, a_csv_with_a_bad_row_changes_nothing_and_a_good_one_releases_the_waiting_orders_postgres;
    the_export_imports_back_unchanged_and_tokens_import_and_export_too => the_export_imports_back_unchanged_and_tokens_import_and_export_too_sqlite, the_export_imports_back_unchanged_and_tokens_import_and_export_too_postgres;
}

async fn an_item_code_the_erp_does_not_know_is_refused_and_an_unreachable_erp_is_said(
    app: TestApp,
) {
    let rig = rig(&app, Duration::from_secs(2)).await;
    let worker = rig.worker(&app.store);
    blocked_orders(&app, &worker, 600, 2).await;
    app.add_user("otto@example.com", "Otto", &[Role::Operator])
        .await;
    let operator = app.signed_in("otto@example.com").await;

    let unknown = operator
        .rpc(
            "/rpc/sku/save",
            &[("sku", UNMAPPED), ("item_code", "ERP-NOPE")],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        unknown.error().to_string(),
        "The ERP has no item ERP-NOPE. Check the code in the ERP's item list; nothing was saved."
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sku_mappings WHERE sku = 'NEW-GIZMO'")
            .await,
        0
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM exceptions WHERE status = 'open' AND fingerprint = '{FINGERPRINT}'"
        ))
        .await,
        2
    );

    // The ERP is down: the mapping is saved, and the answer says it was not checked.
    rig.erp
        .faults()
        .start_outage(Duration::from_secs(60), OutageMode::Unavailable);
    let saved = operator
        .rpc(
            "/rpc/sku/save",
            &[("sku", UNMAPPED), ("item_code", "ERP-NEW-GIZMO")],
        )
        .await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    let saved: MappingSaved = saved.json();
    assert_eq!(saved.released, 2);
    assert!(
        saved.summary.starts_with(
            "SKU NEW-GIZMO now maps to ERP-NEW-GIZMO: 2 orders released and on their way to the ERP. The item code was not checked with the ERP ("
        ),
        "{}",
        saved.summary
    );
    rig.erp.faults().end_outage();

    // With the ERP back, a known code is saved with no such note.
    let again: MappingSaved = operator
        .rpc(
            "/rpc/sku/save",
            &[("sku", "ANOTHER-1"), ("item_code", "ERP-NEW-GIZMO")],
        )
        .await
        .json();
    assert_eq!(
        again.summary,
        "SKU ANOTHER-1 now maps to ERP-NEW-GIZMO: no order was waiting on it."
    );
}

const BAD_FILE: &str = "sku,item_code
NEW-GIZMO,ERP-NEW-GIZMO
TEE-ZZ,ERP NOPE
TEE-YY,ERP-NOPE
NEW-GIZMO,ERP-OTHER
,ERP-1
";

async fn a_csv_with_a_bad_row_changes_nothing_and_a_good_one_releases_the_waiting_orders(
    app: TestApp,
) {
    let rig = rig(&app, Duration::from_secs(5)).await;
    let worker = rig.worker(&app.store);
    let ids = blocked_orders(&app, &worker, 640, 3).await;
    app.add_user("otto@example.com", "Otto", &[Role::Operator])
        .await;
    app.add_user("mona@example.com", "Mona", &[Role::Manager])
        .await;
    let operator = app.signed_in("otto@example.com").await;
    let mappings_before = app.count("SELECT COUNT(*) FROM sku_mappings").await;

    // A manager may not import.
    let manager = app.signed_in("mona@example.com").await;
    let refused = manager
        .rpc(
            "/rpc/sku/import",
            &[("csv", "sku,item_code\nNEW-GIZMO,ERP-NEW-GIZMO\n")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let audit_before = app.audit().await.len();

    // Every bad row is named, with its line and why; nothing is applied, not even the good row.
    let report = operator.rpc("/rpc/sku/import", &[("csv", BAD_FILE)]).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.body);
    let report: ImportOutcome = report.json();
    assert!(!report.applied);
    assert_eq!(
        report.summary,
        "Nothing was imported: 4 of 5 rows are wrong. Fix them and import the file again."
    );
    let rows: Vec<(u64, &str, &str)> = report
        .rejected
        .iter()
        .map(|r| (r.line, r.sku.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(
        rows,
        vec![
            (
                3,
                "TEE-ZZ",
                "The item code cannot be used: an ERP item code cannot contain spaces or other whitespace."
            ),
            (
                4,
                "TEE-YY",
                "The ERP has no item ERP-NOPE. Check the code in the ERP's item list."
            ),
            (
                5,
                "NEW-GIZMO",
                "SKU NEW-GIZMO is already mapped to ERP-NEW-GIZMO on line 2; a file maps each SKU once."
            ),
            (6, "", "The SKU cannot be used: a SKU cannot be empty."),
        ]
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sku_mappings").await,
        mappings_before
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM exceptions WHERE status = 'open' AND fingerprint = '{FINGERPRINT}'"
        ))
        .await,
        3
    );
    assert_eq!(
        app.audit().await.len(),
        audit_before,
        "a refused file audits nothing"
    );

    // A whole-file problem is an error, not a report.
    let headless = operator
        .rpc("/rpc/sku/import", &[("csv", "NEW-GIZMO;ERP-NEW-GIZMO\n")])
        .await;
    assert_eq!(headless.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        headless
            .error()
            .to_string()
            .contains("must name the columns sku and item_code"),
        "{}",
        headless.body
    );

    // The fixed file: one new SKU releasing the three orders, one more new, one unchanged.
    let good =
        "SKU,Item_Code\nNEW-GIZMO,ERP-NEW-GIZMO\nTEE-ZZ,ERP-TEE-BLK-M\nTEE-BLK-M,ERP-TEE-BLK-M\n";
    let report: ImportOutcome = operator
        .rpc("/rpc/sku/import", &[("csv", good)])
        .await
        .json();
    assert!(report.applied, "{report:?}");
    assert_eq!(
        report.summary,
        "Imported 3 rows: 2 new, 0 changed, 1 already so. 3 orders released and on their way to the ERP."
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM exceptions WHERE status = 'resolved' AND fingerprint = '{FINGERPRINT}'
               AND resolution LIKE '%(CSV import)'"
        ))
        .await,
        3
    );
    drain(&worker, &app, Duration::from_secs(10)).await;
    let ledger = rig.erp.ledger().check();
    for id in &ids {
        assert_eq!(ledger.count(DocumentKind::SalesOrder, &id.to_string()), 1);
    }
    // Audited per SKU written (so each SKU's history shows it) and once for the file.
    let saved = app.audit_of("sku_mapping.saved").await;
    let via_import: Vec<&str> = saved
        .iter()
        .filter(|a| a.after.as_ref().is_some_and(|j| j.0["via"] == "import"))
        .map(|a| a.target.as_str())
        .collect();
    assert_eq!(via_import.len(), 2, "{via_import:?}");
    assert!(via_import.contains(&"sku:NEW-GIZMO") && via_import.contains(&"sku:TEE-ZZ"));
    let imported = app.audit_of("sku_mapping.imported").await;
    assert_eq!(imported.len(), 1);
    assert_eq!(imported[0].actor_label, "otto@example.com");
    assert_eq!(
        imported[0].after.as_ref().expect("after").0["released_tasks"],
        3
    );
}

async fn the_export_imports_back_unchanged_and_tokens_import_and_export_too(app: TestApp) {
    let _rig = rig(&app, Duration::from_secs(5)).await;
    app.add_user("otto@example.com", "Otto", &[Role::Operator])
        .await;
    app.add_user("sara@example.com", "Sara", &[Role::Steward])
        .await;
    let operator = app.signed_in("otto@example.com").await;
    let mappings = app.count("SELECT COUNT(*) FROM sku_mappings").await;

    // The download, for a signed-in operator; refused for a role that may not see mappings.
    let export = operator.page("/sku-mappings/export.csv").await;
    assert_eq!(export.status, StatusCode::OK);
    assert_eq!(
        export.header("content-type"),
        Some("text/csv; charset=utf-8")
    );
    assert!(
        export
            .header("content-disposition")
            .is_some_and(|d| d.starts_with("attachment; filename=\"sku-mappings-")),
    );
    let mut lines = export.body.lines();
    assert_eq!(lines.next(), Some("sku,item_code,updated_at,updated_by"));
    assert!(export.body.contains("\nTEE-BLK-M,ERP-TEE-BLK-M,"));
    assert_eq!(lines.count() as i64, mappings);
    let steward = app.signed_in("sara@example.com").await;
    assert_eq!(
        steward.page("/sku-mappings/export.csv").await.status,
        StatusCode::FORBIDDEN
    );
    assert!(
        app.audit_of("access.denied")
            .await
            .iter()
            .any(|r| r.actor_label == "sara@example.com"
                && r.target == "GET /sku-mappings/export.csv"),
        "the refusal is audited: {:?}",
        app.audit_of("access.denied").await
    );
    assert_eq!(
        app.client().page("/sku-mappings/export.csv").await.status,
        StatusCode::SEE_OTHER,
        "signed out: to the sign-in page"
    );

    // The export imports back with nothing to change.
    let back: ImportOutcome = operator
        .rpc("/rpc/sku/import", &[("csv", export.body.as_str())])
        .await
        .json();
    assert!(back.applied);
    assert_eq!(
        back.summary,
        format!("Imported {mappings} rows: 0 new, 0 changed, {mappings} already so.")
    );

    // The API: a token exports and imports; a bad file answers 422 with the rows.
    let (secret, hash) = syncdesk::accounts::new_token();
    app.store
        .create_token("catalogue-sync", &hash, &[Role::Operator], &Actor::System)
        .await
        .expect("token");
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/sku-mappings.csv", app.base);
    let res = http
        .get(&url)
        .bearer_auth(&secret)
        .send()
        .await
        .expect("export");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.text()
            .await
            .expect("body")
            .starts_with("sku,item_code,")
    );
    let res = http
        .post(&url)
        .bearer_auth(&secret)
        .header("content-type", "text/csv")
        .body(BAD_FILE)
        .send()
        .await
        .expect("import");
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"]["code"], "rows_rejected");
    assert_eq!(body["rejected"].as_array().map(Vec::len), Some(4));
    assert_eq!(body["rejected"][1]["line"], 4);
    let res = http
        .post(&url)
        .bearer_auth(&secret)
        .body("sku,item_code\nNEW-GIZMO,ERP-NEW-GIZMO\n")
        .send()
        .await
        .expect("import");
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["created"], 1);
    let audit = app.audit_of("sku_mapping.imported").await;
    assert_eq!(audit[0].actor_label, "token:catalogue-sync");
    let res = http.get(&url).send().await.expect("no token");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}
