//! Connector tests: real HTTP on loopback against the simulators in `crate::simulate`.

mod crm;
mod erp;
mod faults;
mod shop;

use std::str::FromStr;
use std::time::Duration;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::{
    ApiToken, ConnectorConfig, ErpAddress, ErpLine, ErpPaymentStatus, ErpSalesOrder, HttpCrm,
    HttpErp,
};
use crate::simulate::SimHandle;
use crate::simulate::crm::{CrmSimConfig, spawn_crm};
use crate::simulate::erp::{ErpCatalogue, ErpSimConfig, spawn_erp};

/// A decimal from a literal.
fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).expect("decimal literal")
}

/// A connector config for `sim`: 2 s timeout, no client-side rate limit.
fn config(sim: &SimHandle) -> ConnectorConfig {
    let mut config = ConnectorConfig::new(sim.base_url().clone(), ApiToken::new(sim.token()));
    config.timeout = Duration::from_secs(2);
    config.rate_limit = None;
    config
}

/// A simulated ERP knowing `ABC-1` and `XYZ-2`, and a connector for it.
async fn erp() -> (SimHandle, HttpErp) {
    let sim_config = ErpSimConfig {
        catalogue: ErpCatalogue::from_codes(["ABC-1", "XYZ-2"]),
        ..ErpSimConfig::default()
    };
    let sim = spawn_erp(sim_config).await.expect("ERP simulator starts");
    let client = HttpErp::new(&config(&sim)).expect("client builds");
    (sim, client)
}

/// A simulated CRM and a connector for it.
async fn crm() -> (SimHandle, HttpCrm) {
    let sim = spawn_crm(CrmSimConfig::default())
        .await
        .expect("CRM simulator starts");
    let client = HttpCrm::new(&config(&sim)).expect("client builds");
    (sim, client)
}

/// A valid two-line order with a ship-to.
fn order(external_id: &str) -> ErpSalesOrder {
    let line = |code: &str, quantity: &str| ErpLine {
        item_code: code.to_owned(),
        quantity: dec(quantity),
        unit_price_net: dec("10.00"),
        unit_price_gross: dec("11.90"),
        discount: dec("0"),
        tax: dec("1.90"),
    };
    ErpSalesOrder {
        external_id: external_id.to_owned(),
        customer_account: "jane@example.com".to_owned(),
        currency: "EUR".to_owned(),
        order_date: NaiveDate::from_ymd_opt(2024, 5, 1).expect("date"),
        lines: vec![line("ABC-1", "2"), line("XYZ-2", "1")],
        shipping_cost: dec("4.90"),
        tax_total: dec("5.70"),
        total_gross: dec("40.60"),
        payment_status: ErpPaymentStatus::Authorized,
        bill_to: None,
        ship_to: Some(ErpAddress {
            name: "Jane Doe".to_owned(),
            street: "Hauptstraße 1".to_owned(),
            street2: None,
            city: "Berlin".to_owned(),
            postal_code: Some("10115".to_owned()),
            region: None,
            country: "DE".to_owned(),
        }),
    }
}
