//! What each destination gets (or would get) for an order's current state: the same mapping and
//! validation the worker runs, without sending anything. The order page shows it.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{map, validate};
use crate::domain::Order;
use crate::store::{Store, StoreError};

/// One destination's payload for the order's current state.
#[derive(Clone, Debug)]
pub struct Preview {
    /// `crm` or `erp`.
    pub destination: &'static str,
    /// The body, when the order maps.
    pub payload: Option<Value>,
    /// What stops it being sent, in the exceptions' words.
    pub problems: Vec<String>,
}

/// The CRM's and the ERP's payloads for `order`, with the SKU mappings in force now.
pub async fn payloads(store: &Store, order: &Order) -> Result<Vec<Preview>, StoreError> {
    let contact = map::crm_contact(order);
    let deal = map::crm_deal(order);
    let crm = Preview {
        destination: "crm",
        problems: validate::validate_crm(contact.as_ref(), &deal)
            .into_iter()
            .map(|p| p.message)
            .collect(),
        payload: Some(json!({ "contact": contact, "deal": deal })),
    };
    let skus: BTreeSet<&str> = order
        .lines
        .iter()
        .filter_map(|l| l.sku.as_ref().map(|s| s.as_str()))
        .collect();
    let codes = store
        .item_codes(&skus.into_iter().collect::<Vec<_>>())
        .await?;
    let lookup = |sku: &crate::domain::Sku| codes.get(sku.as_str()).cloned();
    let erp = match map::erp_sales_order(order, &lookup) {
        Ok(sales_order) => Preview {
            destination: "erp",
            problems: validate::validate_erp(&order.name, &sales_order)
                .into_iter()
                .map(|p| p.message)
                .collect(),
            payload: Some(json!(sales_order)),
        },
        Err(problems) => Preview {
            destination: "erp",
            payload: None,
            problems: problems.into_iter().map(|p| p.message).collect(),
        },
    };
    Ok(vec![crm, erp])
}
