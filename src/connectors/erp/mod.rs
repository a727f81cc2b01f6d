//! The ERP connector: the trait the engine calls, the find-before-create upsert every
//! implementation shares, and the HTTP client for the reference ERP API.

mod http;
mod model;

pub use http::HttpErp;
pub use model::{
    ErpAddress, ErpCancelRequest, ErpCreditNote, ErpCreditNoteRequest, ErpDocument, ErpFulfilment,
    ErpFulfilmentLine, ErpFulfilmentRequest, ErpItem, ErpLine, ErpPaymentStatus, ErpSalesOrder,
    ErpStatus, GUEST_ACCOUNT, limits, ship_to_needs_postal_code,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::error::{Ack, DeliveryError, TransientKind};
use super::wire::Page;

/// What the engine needs from an ERP.
///
/// Writes that create something (`create_sales_order`, `add_fulfilment`, `add_credit_note`)
/// answer `Ok` with `status: 409` and the existing document's number when the external id is
/// already taken: the thing exists, which is what the caller wanted.
#[async_trait]
pub trait ErpApi: Send + Sync {
    /// The fingerprint of the credentials this client sends
    /// ([`credentials_fingerprint`](crate::connectors::credentials_fingerprint)): a destination
    /// paused for rejecting them resumes when a process starts with others.
    fn credentials(&self) -> &str;

    /// Whether the catalogue knows this item code.
    async fn item_exists(&self, code: &str) -> Result<bool, DeliveryError>;

    /// The sales order for a store order id, if the ERP has one.
    async fn find_sales_order(
        &self,
        external_id: &str,
    ) -> Result<Option<ErpDocument>, DeliveryError>;

    /// Creates a sales order. Prefer [`ErpApi::upsert_sales_order`], which never duplicates.
    async fn create_sales_order(
        &self,
        order: &ErpSalesOrder,
        idem: &str,
    ) -> Result<Ack, DeliveryError>;

    /// Replaces an open sales order's header, lines and addresses.
    async fn update_sales_order(
        &self,
        document_number: &str,
        order: &ErpSalesOrder,
        idem: &str,
    ) -> Result<Ack, DeliveryError>;

    /// Cancels a sales order (a no-op when it already is cancelled).
    async fn cancel_sales_order(
        &self,
        document_number: &str,
        reason: Option<&str>,
        idem: &str,
    ) -> Result<Ack, DeliveryError>;

    /// Records a shipment; 409 (already recorded) comes back as `Ok` with the shipment number.
    async fn add_fulfilment(
        &self,
        document_number: &str,
        fulfilment: &ErpFulfilmentRequest,
        idem: &str,
    ) -> Result<Ack, DeliveryError>;

    /// Records a refund; 409 (already recorded) comes back as `Ok` with the credit note number.
    async fn add_credit_note(
        &self,
        document_number: &str,
        credit_note: &ErpCreditNoteRequest,
        idem: &str,
    ) -> Result<Ack, DeliveryError>;

    /// Sales orders changed at or after `since`, oldest change first, for reconciliation.
    async fn sales_orders_changed_since(
        &self,
        since: DateTime<Utc>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<ErpDocument>, DeliveryError>;

    /// Brings the ERP to `order`: finds by external id first, creates only when nothing is
    /// there, updates only when something differs. After a timeout, a 5xx or a 409 on create it
    /// finds again instead of creating a second document. Create uses `idem` as its key, update
    /// `"{idem}:update"`.
    async fn upsert_sales_order(
        &self,
        order: &ErpSalesOrder,
        idem: &str,
    ) -> Result<Ack, DeliveryError> {
        if let Some(doc) = self.find_sales_order(&order.external_id).await? {
            return bring_up_to_date(self, doc, order, idem).await;
        }
        create_or_bring_up_to_date(self, order, idem).await
    }

    /// [`ErpApi::upsert_sales_order`] for an order SyncDesk has never sent to this ERP (the
    /// first claim ever of its task): creates without looking first, which saves a request for
    /// every new order. Whatever the ERP holds already (a document someone else created, one
    /// sent before a database restore) is caught as upsert catches it: a 409 on the external
    /// id, a timeout or a 5xx leads to a find, then an update only if something differs.
    async fn create_unsent_sales_order(
        &self,
        order: &ErpSalesOrder,
        idem: &str,
    ) -> Result<Ack, DeliveryError> {
        create_or_bring_up_to_date(self, order, idem).await
    }
}

/// Creates `order`; when the ERP answers that its external id is taken, or a failure leaves
/// unknown whether the create was applied, finds the document and brings it up to date instead
/// of creating a second one.
async fn create_or_bring_up_to_date<E: ErpApi + ?Sized>(
    erp: &E,
    order: &ErpSalesOrder,
    idem: &str,
) -> Result<Ack, DeliveryError> {
    match erp.create_sales_order(order, idem).await {
        Ok(ack) if !ack.already_existed() => Ok(ack),
        Ok(duplicate) => match erp.find_sales_order(&order.external_id).await? {
            Some(doc) => bring_up_to_date(erp, doc, order, idem).await,
            None => Err(DeliveryError::Transient {
                kind: TransientKind::Server { status: 409 },
                message: format!(
                    "The ERP says {} already holds this order but does not list it yet.",
                    duplicate.external_id
                ),
                request_id: duplicate.request_id,
            }),
        },
        Err(error) if may_have_committed(&error) => {
            // The ERP may have committed before the answer was lost: look before retrying.
            match erp.find_sales_order(&order.external_id).await {
                Ok(Some(doc)) => bring_up_to_date(erp, doc, order, idem).await,
                _ => Err(error),
            }
        }
        Err(error) => Err(error),
    }
}

/// Updates `doc` to `order` unless it already matches or is cancelled (a cancelled order takes
/// no more changes; the cancellation is the newer truth).
async fn bring_up_to_date<E: ErpApi + ?Sized>(
    erp: &E,
    doc: ErpDocument,
    order: &ErpSalesOrder,
    idem: &str,
) -> Result<Ack, DeliveryError> {
    if doc.status == ErpStatus::Cancelled || doc.matches(order) {
        return Ok(Ack {
            external_id: doc.document_number,
            request_id: None,
            status: 200,
        });
    }
    erp.update_sales_order(&doc.document_number, order, &format!("{idem}:update"))
        .await
}

/// A write that failed this way may still have been applied.
fn may_have_committed(error: &DeliveryError) -> bool {
    matches!(
        error,
        DeliveryError::Transient {
            kind: TransientKind::Timeout | TransientKind::Server { .. },
            ..
        }
    )
}
