//! The CRM connector: the trait the engine calls, and its HTTP client for the reference CRM API.

mod model;

pub use model::{
    CrmContact, CrmContactRecord, CrmDeal, CrmDealRecord, DealStage, limits, normalise_email,
};

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Method;

use super::error::{Ack, DeliveryError};
use super::http::{ConnectorConfig, HttpClient};
use super::wire::Page;

/// What the engine needs from a CRM.
#[async_trait]
pub trait CrmApi: Send + Sync {
    /// The fingerprint of the credentials this client sends
    /// ([`credentials_fingerprint`](crate::connectors::credentials_fingerprint)): a destination
    /// paused for rejecting them resumes when a process starts with others.
    fn credentials(&self) -> &str;

    /// Creates or updates the contact with this email. `idem` is the Idempotency-Key.
    async fn upsert_contact(&self, contact: &CrmContact, idem: &str) -> Result<Ack, DeliveryError>;

    /// Creates or updates the deal keyed by the store order id. `idem` is the Idempotency-Key.
    async fn upsert_deal(&self, deal: &CrmDeal, idem: &str) -> Result<Ack, DeliveryError>;

    /// Creates or updates the deal and, when there is one, its contact: the contact first, so
    /// the deal can name it. The default makes the two writes in turn; a CRM that takes both in
    /// one write (as the reference CRM does) saves a request per delivery. `idem` is the
    /// Idempotency-Key of both.
    async fn upsert_deal_with_contact(
        &self,
        contact: Option<&CrmContact>,
        deal: &CrmDeal,
        idem: &str,
    ) -> Result<Ack, DeliveryError> {
        upsert_in_turn(self, contact, deal, idem).await
    }

    /// The deal for a store order id, if the CRM has one.
    async fn find_deal(&self, external_id: &str) -> Result<Option<CrmDealRecord>, DeliveryError>;

    /// Deals changed at or after `since`, oldest change first, for reconciliation.
    async fn deals_changed_since(
        &self,
        since: DateTime<Utc>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<CrmDealRecord>, DeliveryError>;
}

/// The contact (when there is one), then the deal: two writes under one key.
async fn upsert_in_turn<C: CrmApi + ?Sized>(
    crm: &C,
    contact: Option<&CrmContact>,
    deal: &CrmDeal,
    idem: &str,
) -> Result<Ack, DeliveryError> {
    if let Some(contact) = contact {
        crm.upsert_contact(contact, idem).await?;
    }
    crm.upsert_deal(deal, idem).await
}

/// [`CrmApi`] over HTTP, against the reference CRM API.
#[derive(Debug)]
pub struct HttpCrm {
    http: HttpClient,
}

impl HttpCrm {
    /// A client for the CRM at `config.base_url`.
    pub fn new(config: &ConnectorConfig) -> Result<Self, reqwest::Error> {
        Ok(HttpCrm {
            http: HttpClient::new(config, "CRM")?,
        })
    }
}

/// A deal's body with its contact inside.
#[derive(serde::Serialize)]
struct DealWithContact<'a> {
    #[serde(flatten)]
    deal: &'a CrmDeal,
    contact: &'a CrmContact,
}

/// The `id` every CRM write answers with.
#[derive(serde::Deserialize)]
struct IdOnly {
    id: String,
}

impl HttpCrm {
    /// `PUT` an upsert and read back the record's id.
    async fn put_record<B: serde::Serialize + Sync>(
        &self,
        operation: &'static str,
        segments: &[&str],
        body: &B,
        idem: &str,
    ) -> Result<Ack, DeliveryError> {
        let reply = self
            .http
            .send(
                operation,
                Method::PUT,
                segments,
                &[],
                Some(body),
                Some(idem),
            )
            .await?;
        if !reply.is_success() {
            return Err(self.http.error(reply));
        }
        let record: IdOnly = self.http.decode(&reply)?;
        Ok(Ack {
            external_id: record.id,
            request_id: reply.request_id,
            status: reply.status,
        })
    }
}

#[async_trait]
impl CrmApi for HttpCrm {
    fn credentials(&self) -> &str {
        self.http.credentials()
    }

    async fn upsert_contact(&self, contact: &CrmContact, idem: &str) -> Result<Ack, DeliveryError> {
        let segments = ["v1", "contacts", contact.email.as_str()];
        self.put_record("upsert_contact", &segments, contact, idem)
            .await
    }

    async fn upsert_deal(&self, deal: &CrmDeal, idem: &str) -> Result<Ack, DeliveryError> {
        let segments = ["v1", "deals", deal.external_id.as_str()];
        self.put_record("upsert_deal", &segments, deal, idem).await
    }

    /// One `PUT /v1/deals/{external_id}` carrying the contact: the reference CRM upserts the
    /// contact, then the deal, or neither when either is refused. With a contact the key gets
    /// `+contact`, so that a deal sent alone under the caller's key (by a SyncDesk from before
    /// the combined write) is never answered "key reused with a different body".
    async fn upsert_deal_with_contact(
        &self,
        contact: Option<&CrmContact>,
        deal: &CrmDeal,
        idem: &str,
    ) -> Result<Ack, DeliveryError> {
        // A deal that names no contact stays without one: the contact goes alone, as before.
        let Some(contact) = contact.filter(|_| deal.contact_email.is_some()) else {
            return upsert_in_turn(self, contact, deal, idem).await;
        };
        let segments = ["v1", "deals", deal.external_id.as_str()];
        let body = DealWithContact { deal, contact };
        let idem = format!("{idem}+contact");
        self.put_record("upsert_deal", &segments, &body, &idem)
            .await
    }

    async fn find_deal(&self, external_id: &str) -> Result<Option<CrmDealRecord>, DeliveryError> {
        let segments = ["v1", "deals", external_id];
        let reply = self
            .http
            .send::<()>("find_deal", Method::GET, &segments, &[], None, None)
            .await?;
        match reply.status {
            404 => Ok(None),
            _ if reply.is_success() => self.http.decode(&reply).map(Some),
            _ => Err(self.http.error(reply)),
        }
    }

    async fn deals_changed_since(
        &self,
        since: DateTime<Utc>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<CrmDealRecord>, DeliveryError> {
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
        let reply = self
            .http
            .send::<()>(
                "deals_changed_since",
                Method::GET,
                &["v1", "deals"],
                &query,
                None,
                None,
            )
            .await?;
        if !reply.is_success() {
            return Err(self.http.error(reply));
        }
        self.http.decode(&reply)
    }
}
