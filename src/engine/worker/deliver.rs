//! What a delivery sends to each destination: the CRM's contact and deal, the ERP's sales order
//! and the changes that follow it (cancellation, shipments, credit notes), each write with its
//! idempotency key.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use super::{Delivery, Worker};
use crate::connectors::{DeliveryError, TransientKind};
use crate::domain::Order;
use crate::engine::edit::{self, CrmPayload};
use crate::engine::exception::{Destination, Problem};
use crate::engine::{map, validate};
use crate::store::PayloadEditInForce;

/// The destination's id for the order, when it can be kept: one holding a control character
/// (PostgreSQL refuses a NUL in text, which failed the recording of every delivery beside it)
/// or past 255 characters is an answer SyncDesk cannot use, so the attempt counts as failed
/// for now. The write was applied, so the next attempt finds it rather than writing again.
pub(super) fn keepable(destination: Destination, delivery: Delivery) -> Delivery {
    match delivery {
        Delivery::Synced(ack)
            if ack.external_id.chars().any(char::is_control)
                || ack.external_id.chars().count() > 255 =>
        {
            Delivery::Failed(DeliveryError::Transient {
                kind: TransientKind::Server { status: ack.status },
                message: format!(
                    "The {} answered with a document id SyncDesk cannot keep (it holds a control \
                     character or is over 255 characters long).",
                    destination.label()
                ),
                request_id: ack.request_id,
            })
        }
        delivery => delivery,
    }
}

impl Worker {
    /// The CRM gets the contact (by email) and the deal (by store order id), in one write.
    pub(super) async fn deliver_crm(
        &self,
        order: &Order,
        version: i64,
        edit: Option<&PayloadEditInForce>,
    ) -> Delivery {
        let (contact, deal) = (map::crm_contact(order), map::crm_deal(order));
        let (contact, deal) = match edit {
            Some(edit) => {
                let fresh = CrmPayload { contact, deal };
                match with_edit(&fresh, edit) {
                    Ok(CrmPayload { contact, deal }) => (contact, deal),
                    Err(err) => return unreadable_edit(order, edit, &err),
                }
            }
            None => (contact, deal),
        };
        if let Some(problem) = Problem::together(validate::validate_crm(contact.as_ref(), &deal)) {
            return Delivery::NeedsAction(problem);
        }
        let key = idempotency_key(order, version, edit, "crm");
        let crm = &self.destinations.crm;
        match crm
            .upsert_deal_with_contact(contact.as_ref(), &deal, &key)
            .await
        {
            Ok(ack) => Delivery::Synced(ack),
            Err(err) => Delivery::Failed(err),
        }
    }

    /// The ERP gets the sales order (lines mapped to item codes), then whatever cancellation,
    /// shipments and credit notes the order's state implies. `claimed` are the item codes the
    /// claim read; they are asked for again unless every SKU of the order is among them.
    /// `never_sent`: this is the task's first claim ever, so the sales order is created without
    /// looking for it first.
    pub(super) async fn deliver_erp(
        &self,
        order: &Order,
        version: i64,
        edit: Option<&PayloadEditInForce>,
        claimed: Option<HashMap<String, String>>,
        never_sent: bool,
    ) -> Delivery {
        let skus: BTreeSet<&str> = order
            .lines
            .iter()
            .filter_map(|l| l.sku.as_ref().map(|s| s.as_str()))
            .collect();
        let codes = match claimed {
            Some(codes) if skus.iter().all(|sku| codes.contains_key(*sku)) => Ok(codes),
            _ => {
                self.store
                    .item_codes(&skus.into_iter().collect::<Vec<_>>())
                    .await
            }
        };
        let codes = match codes {
            Ok(codes) => codes,
            Err(err) => {
                return Delivery::Failed(DeliveryError::Transient {
                    kind: TransientKind::Server { status: 503 },
                    message: format!("SyncDesk could not read its SKU mappings: {err}"),
                    request_id: None,
                });
            }
        };
        let lookup = |sku: &crate::domain::Sku| codes.get(sku.as_str()).cloned();
        let sales_order = match map::erp_sales_order(order, &lookup) {
            Ok(so) => so,
            Err(problems) => return needs_action(order, problems),
        };
        let sales_order = match edit {
            Some(edit) => match with_edit(&sales_order, edit) {
                Ok(so) => so,
                Err(err) => return unreadable_edit(order, edit, &err),
            },
            None => sales_order,
        };
        if let Some(problem) = Problem::together(validate::validate_erp(&order.name, &sales_order))
        {
            return Delivery::NeedsAction(problem);
        }
        let key = idempotency_key(order, version, edit, "erp");
        let erp = &self.destinations.erp;
        let sent = if never_sent {
            erp.create_unsent_sales_order(&sales_order, &key).await
        } else {
            erp.upsert_sales_order(&sales_order, &key).await
        };
        let ack = match sent {
            Ok(ack) => ack,
            Err(err) => return Delivery::Failed(err),
        };
        if !map::may_change_document(order) {
            return Delivery::Synced(ack);
        }
        let document = match erp
            .find_sales_order(&order.store_order_id.to_string())
            .await
        {
            Ok(Some(document)) => document,
            // An ERP whose search lags its writes: the cancellation, shipments and credit notes
            // are still to send, so the order is not synced yet (the next attempt finds the
            // sales order and updates nothing it already says).
            Ok(None) => {
                return Delivery::Failed(DeliveryError::Transient {
                    kind: TransientKind::Server { status: 404 },
                    message: format!(
                        "The ERP accepted sales order {} but does not list it yet; its \
                         cancellation, shipments and credit notes follow on the next attempt.",
                        ack.external_id
                    ),
                    request_id: ack.request_id,
                });
            }
            Err(err) => return Delivery::Failed(err),
        };
        // The ERP now has the sales order as sent: its lines (an operator's edit included) are
        // what shipments must name, whatever an ERP whose search lags its writes lists.
        let mut document = document;
        document.order = sales_order;
        let changes = match map::erp_changes(order, &document, &lookup) {
            Ok(changes) => changes,
            Err(problems) => return needs_action(order, problems),
        };
        for change in &changes {
            if let Some(problem) =
                Problem::together(validate::validate_erp_change(&order.name, change))
            {
                return Delivery::NeedsAction(problem);
            }
        }
        let change_key = format!("{}-erp", order.store_order_id);
        match self
            .apply_erp_changes(changes, &ack.external_id, &change_key)
            .await
        {
            Ok(()) => Delivery::Synced(ack),
            Err(err) => Delivery::Failed(err),
        }
    }

    async fn apply_erp_changes(
        &self,
        changes: Vec<map::ErpChange>,
        document: &str,
        key: &str,
    ) -> Result<(), DeliveryError> {
        let erp = &self.destinations.erp;
        for change in changes {
            // Keyed by what the change is (not by the order version), so a repeat after a
            // timeout is recognised by the ERP.
            let key = format!("{key}-{}", change.key());
            match change {
                map::ErpChange::Fulfilment(request) => {
                    erp.add_fulfilment(document, &request, &key).await?;
                }
                map::ErpChange::CreditNote(request) => {
                    erp.add_credit_note(document, &request, &key).await?;
                }
                map::ErpChange::Cancel { reason } => {
                    erp.cancel_sales_order(document, reason.as_deref(), &key)
                        .await?;
                }
            }
        }
        Ok(())
    }
}

/// The key a version's write is sent with. An edited payload gets its own (the destination
/// would otherwise answer a retry after a timeout with the first payload's result).
fn idempotency_key(
    order: &Order,
    version: i64,
    edit: Option<&PayloadEditInForce>,
    destination: &str,
) -> String {
    match edit {
        Some(edit) => format!(
            "{}-v{version}-edit{}-{destination}",
            order.store_order_id, edit.id
        ),
        None => format!("{}-v{version}-{destination}", order.store_order_id),
    }
}

/// A delivery stopped at its deadline: a timeout like a request's, so the next attempt looks for
/// what the destination may have done before doing it again.
pub(super) fn overran(destination: Destination, deadline: Duration) -> Delivery {
    Delivery::Failed(DeliveryError::Transient {
        kind: TransientKind::Timeout,
        message: format!(
            "Delivering to the {dest} took longer than {secs:.0} s and was stopped; the next \
             attempt finds what the {dest} already did rather than doing it again.",
            dest = destination.label(),
            secs = deadline.as_secs_f64(),
        ),
        request_id: None,
    })
}

/// An edit that no longer reads as the payload (checked when saved, so only after an upgrade
/// changed the payload's shape): a retryable failure with the reason, for people to see.
/// The payload computed afresh, `fresh`, with the operator's edit laid onto it (see
/// [`edit::carry`]): their changes where the store has left those fields as they were.
fn with_edit<T>(fresh: &T, edit: &PayloadEditInForce) -> Result<T, serde_json::Error>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let mut payload = serde_json::to_value(fresh)?;
    let dropped = edit::carry(&edit.original, &edit.payload, &mut payload);
    if !dropped.is_empty() {
        tracing::debug!(
            edit = edit.id,
            fields = ?dropped,
            "the store changed fields an edit had changed; its values stand"
        );
    }
    serde_json::from_value(payload)
}

fn unreadable_edit(order: &Order, edit: &PayloadEditInForce, err: &serde_json::Error) -> Delivery {
    Delivery::Failed(DeliveryError::Transient {
        kind: TransientKind::Server { status: 500 },
        message: format!(
            "The edited payload of order {} (edit {}) cannot be read: {err}. Edit it again.",
            order.name, edit.id
        ),
        request_id: None,
    })
}

/// The problems mapping found, told together (mapping fails only with at least one).
fn needs_action(order: &Order, problems: Vec<Problem>) -> Delivery {
    match Problem::together(problems) {
        Some(problem) => Delivery::NeedsAction(problem),
        None => Delivery::Failed(DeliveryError::Transient {
            kind: TransientKind::Server { status: 500 },
            message: format!("Order {} could not be prepared for the ERP.", order.name),
            request_id: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::Ack;

    fn synced(id: &str) -> Delivery {
        Delivery::Synced(Ack {
            external_id: id.to_string(),
            request_id: Some("req-9".into()),
            status: 201,
        })
    }

    #[test]
    fn an_id_that_cannot_be_stored_is_a_failed_attempt_not_a_failed_batch() {
        for bad in ["SO-\u{0}1", "SO-1\n", &"9".repeat(256)] {
            match keepable(Destination::Erp, synced(bad)) {
                Delivery::Failed(err) => {
                    assert!(err.is_transient(), "{err:?}");
                    assert!(err.to_string().contains("document id"), "{err}");
                }
                _ => panic!("{bad:?} was kept"),
            }
        }
        assert!(matches!(
            keepable(Destination::Crm, synced("deal-42")),
            Delivery::Synced(ack) if ack.external_id == "deal-42"
        ));
    }
}
