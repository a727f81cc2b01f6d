//! [`ErpApi`] over HTTP, against the reference ERP API.

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Method;

use super::{
    ErpApi, ErpCancelRequest, ErpCreditNoteRequest, ErpDocument, ErpFulfilmentRequest,
    ErpSalesOrder,
};
use crate::connectors::error::{Ack, DeliveryError};
use crate::connectors::http::{ConnectorConfig, HttpClient, Reply};
use crate::connectors::wire::Page;

/// What a sales order write's answer is read for: the rest of the document it echoes is
/// skipped, not built (a flattened `ErpDocument` is buffered field by field first).
#[derive(serde::Deserialize)]
struct DocumentNumber {
    document_number: String,
}

/// What a fulfilment's or a credit note's answer is read for.
#[derive(serde::Deserialize)]
struct RecordNumber {
    number: String,
}

/// The reference ERP, over HTTP.
#[derive(Debug)]
pub struct HttpErp {
    http: HttpClient,
}

impl HttpErp {
    /// A client for the ERP at `config.base_url`.
    pub fn new(config: &ConnectorConfig) -> Result<Self, reqwest::Error> {
        Ok(HttpErp {
            http: HttpClient::new(config, "ERP")?,
        })
    }

    /// A 2xx answer's number via `number`, a `duplicate_external_id` 409 as an `Ack` with the
    /// existing number, anything else as an error.
    // DeliveryError is large, but it is what every caller gets; boxing it here alone would not help.
    #[allow(clippy::result_large_err)]
    fn created<T: serde::de::DeserializeOwned>(
        &self,
        reply: Reply,
        number: impl FnOnce(T) -> String,
    ) -> Result<Ack, DeliveryError> {
        if reply.is_success() {
            let body: T = self.http.decode(&reply)?;
            return Ok(Ack {
                external_id: number(body),
                request_id: reply.request_id,
                status: reply.status,
            });
        }
        if reply.status == 409
            && let Some(existing) = reply
                .api_error()
                .filter(|e| e.code == "duplicate_external_id")
                .and_then(|e| e.document_number)
        {
            return Ok(Ack {
                external_id: existing,
                request_id: reply.request_id,
                status: 409,
            });
        }
        Err(self.http.error(reply))
    }

    /// Lists sales orders matching `query`.
    async fn list(
        &self,
        op: &'static str,
        query: &[(&str, String)],
    ) -> Result<Page<ErpDocument>, DeliveryError> {
        let segments = ["v1", "sales-orders"];
        let reply = self
            .http
            .send::<()>(op, Method::GET, &segments, query, None, None)
            .await?;
        if !reply.is_success() {
            return Err(self.http.error(reply));
        }
        self.http.decode(&reply)
    }
}

#[async_trait]
impl ErpApi for HttpErp {
    fn credentials(&self) -> &str {
        self.http.credentials()
    }

    async fn item_exists(&self, code: &str) -> Result<bool, DeliveryError> {
        let segments = ["v1", "items", code];
        let reply = self
            .http
            .send::<()>("item_lookup", Method::GET, &segments, &[], None, None)
            .await?;
        match reply.status {
            404 => Ok(false),
            _ if reply.is_success() => Ok(true),
            _ => Err(self.http.error(reply)),
        }
    }

    async fn find_sales_order(
        &self,
        external_id: &str,
    ) -> Result<Option<ErpDocument>, DeliveryError> {
        let page = self
            .list(
                "find_sales_order",
                &[("external_id", external_id.to_owned())],
            )
            .await?;
        // Several only when the ERP failed to keep external ids unique; the oldest is the one.
        Ok(page
            .data
            .into_iter()
            .min_by(|a, b| a.created_at.cmp(&b.created_at)))
    }

    async fn create_sales_order(
        &self,
        order: &ErpSalesOrder,
        idem: &str,
    ) -> Result<Ack, DeliveryError> {
        let segments = ["v1", "sales-orders"];
        let reply = self
            .http
            .send(
                "create_sales_order",
                Method::POST,
                &segments,
                &[],
                Some(order),
                Some(idem),
            )
            .await?;
        self.created(reply, |doc: DocumentNumber| doc.document_number)
    }

    async fn update_sales_order(
        &self,
        document_number: &str,
        order: &ErpSalesOrder,
        idem: &str,
    ) -> Result<Ack, DeliveryError> {
        let segments = ["v1", "sales-orders", document_number];
        let reply = self
            .http
            .send(
                "update_sales_order",
                Method::PUT,
                &segments,
                &[],
                Some(order),
                Some(idem),
            )
            .await?;
        self.created(reply, |doc: DocumentNumber| doc.document_number)
    }

    async fn cancel_sales_order(
        &self,
        document_number: &str,
        reason: Option<&str>,
        idem: &str,
    ) -> Result<Ack, DeliveryError> {
        let segments = ["v1", "sales-orders", document_number, "cancel"];
        let body = ErpCancelRequest {
            reason: reason.map(str::to_owned),
        };
        let reply = self
            .http
            .send(
                "cancel_sales_order",
                Method::POST,
                &segments,
                &[],
                Some(&body),
                Some(idem),
            )
            .await?;
        self.created(reply, |doc: DocumentNumber| doc.document_number)
    }

    async fn add_fulfilment(
        &self,
        document_number: &str,
        fulfilment: &ErpFulfilmentRequest,
        idem: &str,
    ) -> Result<Ack, DeliveryError> {
        let segments = ["v1", "sales-orders", document_number, "fulfilments"];
        let reply = self
            .http
            .send(
                "add_fulfilment",
                Method::POST,
                &segments,
                &[],
                Some(fulfilment),
                Some(idem),
            )
            .await?;
        self.created(reply, |f: RecordNumber| f.number)
    }

    async fn add_credit_note(
        &self,
        document_number: &str,
        credit_note: &ErpCreditNoteRequest,
        idem: &str,
    ) -> Result<Ack, DeliveryError> {
        let segments = ["v1", "sales-orders", document_number, "credit-notes"];
        let reply = self
            .http
            .send(
                "add_credit_note",
                Method::POST,
                &segments,
                &[],
                Some(credit_note),
                Some(idem),
            )
            .await?;
        self.created(reply, |c: RecordNumber| c.number)
    }

    async fn sales_orders_changed_since(
        &self,
        since: DateTime<Utc>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<ErpDocument>, DeliveryError> {
        let mut query = vec![
            (
                "changed_since",
                since.to_rfc3339_opts(SecondsFormat::Micros, true),
            ),
            ("limit", limit.to_string()),
        ];
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor.to_owned()));
        }
        self.list("sales_orders_changed_since", &query).await
    }
}
