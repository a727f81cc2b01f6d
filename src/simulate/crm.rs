//! The simulated reference CRM: contacts upserted by email, deals upserted by store order id,
//! field limits enforced, and deals listed by change for reconciliation.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::routing::{get, put};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;

use super::faults::{FaultHandle, Faults};
use super::ledger::{DocumentKind, Effect, Ledger, Record};
use super::reply::{Answer, IdempotencyStore, ListQuery, SimError, Write, parse};
use super::rules;
use super::server::{SimApp, SimHandle, assemble, serve};
use crate::connectors::crm::{CrmContactRecord, CrmDealRecord, DealStage, limits, normalise_email};

/// How to start a simulated CRM.
#[derive(Debug, Clone)]
pub struct CrmSimConfig {
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    /// The bearer token to accept.
    pub token: String,
    /// Faults from the start.
    pub faults: Faults,
}

impl Default for CrmSimConfig {
    /// Loopback, a free port, a random token, no faults.
    fn default() -> Self {
        CrmSimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: format!("crm_{}", uuid::Uuid::new_v4().simple()),
            faults: Faults::default(),
        }
    }
}

/// Starts a simulated CRM in the background.
pub async fn spawn_crm(config: CrmSimConfig) -> anyhow::Result<SimHandle> {
    let listen = config.listen;
    serve(build_crm(config), listen).await
}

/// The simulated CRM's router and handles, not yet served.
pub fn build_crm(config: CrmSimConfig) -> SimApp {
    let faults = FaultHandle::new(config.faults);
    let ledger = Ledger::new();
    let crm = Arc::new(Crm {
        state: Mutex::default(),
        ledger: ledger.clone(),
    });
    let api = Router::new()
        .route("/v1/contacts/{email}", put(put_contact).get(get_contact))
        .route("/v1/deals/{external_id}", put(put_deal).get(get_deal))
        .route("/v1/deals", get(list_deals))
        .with_state(crm);
    assemble(api, Router::new(), config.token, faults, ledger)
}

/// The CRM's records.
#[derive(Debug)]
struct Crm {
    state: Mutex<CrmState>,
    ledger: Ledger,
}

#[derive(Debug, Default)]
struct CrmState {
    idem: IdempotencyStore,
    data: CrmData,
}

#[derive(Debug, Default)]
struct CrmData {
    contacts: HashMap<String, CrmContactRecord>,
    /// By external id, with the change sequence of the last change.
    deals: HashMap<String, (u64, CrmDealRecord)>,
    next_id: u64,
    next_change: u64,
}

/// `PUT /v1/contacts/{email}` body; `email` may be repeated and must then match.
#[derive(Debug, Deserialize)]
struct ContactBody {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    store_customer_id: Option<String>,
}

/// A contact field after an upsert: the body's value, what the CRM had when the body leaves it
/// out, nothing when the body sends an empty string.
fn merge(sent: Option<String>, had: &Option<String>) -> Option<String> {
    match sent {
        Some(value) if value.is_empty() => None,
        Some(value) => Some(value),
        None => had.clone(),
    }
}

/// `PUT /v1/deals/{external_id}` body; `external_id` may be repeated and must then match.
#[derive(Debug, Deserialize)]
struct DealBody {
    #[serde(default)]
    external_id: Option<String>,
    #[serde(default)]
    contact_email: Option<String>,
    /// The contact, upserted by its email in the same write, before the deal that names it.
    #[serde(default)]
    contact: Option<ContactBody>,
    name: String,
    amount: Decimal,
    currency: String,
    stage: DealStage,
    #[serde(default)]
    closed_at: Option<DateTime<Utc>>,
    source_version: DateTime<Utc>,
}

impl Crm {
    fn lock(&self) -> std::sync::MutexGuard<'_, CrmState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn valid_email(email: &str) -> Result<(), SimError> {
    rules::required("email", email, limits::EMAIL)?;
    match email.split_once('@') {
        Some((local, domain)) if !local.is_empty() && domain.contains('.') => Ok(()),
        _ => Err(SimError::unprocessable(
            "invalid_field",
            "email",
            "email is not an email address.",
        )),
    }
}

impl CrmData {
    fn next_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}_{:06}", self.next_id)
    }

    fn put_contact(
        &mut self,
        path_email: &str,
        body: &[u8],
        write: &Write,
        ledger: &Ledger,
    ) -> Result<Answer, SimError> {
        let email = normalise_email(path_email);
        valid_email(&email)?;
        let body: ContactBody = parse(body)?;
        if body
            .email
            .as_deref()
            .is_some_and(|e| normalise_email(e) != email)
        {
            let message = "The email in the body does not match the one in the path.";
            return Err(SimError::unprocessable("invalid_field", "email", message));
        }
        let (status, record) = self.upsert_contact(email, body, write, ledger)?;
        Ok(Answer::json(status, &record))
    }

    /// Checks a contact's fields, then creates (201) or updates (200) the contact with this
    /// (normalised, valid) email. A body that changes nothing records no effect.
    fn upsert_contact(
        &mut self,
        email: String,
        body: ContactBody,
        write: &Write,
        ledger: &Ledger,
    ) -> Result<(StatusCode, CrmContactRecord), SimError> {
        rules::optional("first_name", body.first_name.as_deref(), limits::NAME)?;
        rules::optional("last_name", body.last_name.as_deref(), limits::NAME)?;
        rules::optional("phone", body.phone.as_deref(), limits::PHONE)?;
        rules::optional(
            "store_customer_id",
            body.store_customer_id.as_deref(),
            limits::EXTERNAL_ID,
        )?;
        let now = Utc::now();
        let fields = (
            body.first_name,
            body.last_name,
            body.phone,
            body.store_customer_id,
        );
        let (status, effect, record) = match self.contacts.get_mut(&email) {
            Some(existing) => {
                let current = (
                    existing.first_name.clone(),
                    existing.last_name.clone(),
                    existing.phone.clone(),
                    existing.store_customer_id.clone(),
                );
                // As HubSpot's upsert: a field the body leaves out (or sends as null) keeps
                // what the CRM has; an empty string clears it.
                let merged = (
                    merge(fields.0, &current.0),
                    merge(fields.1, &current.1),
                    merge(fields.2, &current.2),
                    merge(fields.3, &current.3),
                );
                if current == merged {
                    return Ok((StatusCode::OK, existing.clone()));
                }
                (
                    existing.first_name,
                    existing.last_name,
                    existing.phone,
                    existing.store_customer_id,
                ) = merged;
                existing.updated_at = now;
                (StatusCode::OK, Effect::Updated, existing.clone())
            }
            None => {
                let record = CrmContactRecord {
                    id: self.next_id("ct"),
                    email: email.clone(),
                    first_name: merge(fields.0, &None),
                    last_name: merge(fields.1, &None),
                    phone: merge(fields.2, &None),
                    store_customer_id: merge(fields.3, &None),
                    created_at: now,
                    updated_at: now,
                };
                self.contacts.insert(email.clone(), record.clone());
                (StatusCode::CREATED, Effect::Created, record)
            }
        };
        ledger.record(Record {
            kind: DocumentKind::Contact,
            effect,
            external_id: &email,
            document_id: &record.id,
            idempotency_key: write.key(),
            body_hash: &write.body_hash,
        });
        Ok((status, record))
    }

    fn put_deal(
        &mut self,
        external_id: &str,
        body: &[u8],
        write: &Write,
        ledger: &Ledger,
    ) -> Result<Answer, SimError> {
        rules::required("external_id", external_id, limits::EXTERNAL_ID)?;
        let body: DealBody = parse(body)?;
        if body
            .external_id
            .as_deref()
            .is_some_and(|e| e != external_id)
        {
            let message = "The external_id in the body does not match the one in the path.";
            return Err(SimError::unprocessable(
                "invalid_field",
                "external_id",
                message,
            ));
        }
        rules::required("name", &body.name, limits::DEAL_NAME)?;
        rules::non_negative("amount", body.amount)?;
        rules::currency("currency", &body.currency)?;
        // Out-of-order delivery: an older store version changes nothing, the contact it
        // carries included.
        if let Some((_, existing)) = self.deals.get(external_id)
            && body.source_version < existing.source_version
        {
            return Ok(Answer::json(StatusCode::OK, existing));
        }
        let contact = match body.contact {
            Some(contact) => {
                let email = normalise_email(contact.email.as_deref().unwrap_or_default());
                valid_email(&email)?;
                if body
                    .contact_email
                    .as_deref()
                    .is_some_and(|e| normalise_email(e) != email)
                {
                    let message = "contact_email does not match the contact's email.";
                    return Err(SimError::unprocessable(
                        "invalid_field",
                        "contact_email",
                        message,
                    ));
                }
                // Every check on the deal's own fields has passed: the contact is written only
                // when the deal will be too.
                let (_, contact) = self.upsert_contact(email, contact, write, ledger)?;
                Some((contact.id, contact.email))
            }
            None => match &body.contact_email {
                None => None,
                Some(email) => match self.contacts.get(&normalise_email(email)) {
                    Some(contact) => Some((contact.id.clone(), contact.email.clone())),
                    None => {
                        let message = "No contact has this email; upsert the contact first.";
                        return Err(SimError::unprocessable(
                            "unknown_contact",
                            "contact_email",
                            message,
                        ));
                    }
                },
            },
        };
        let now = Utc::now();
        let (contact_id, contact_email) = contact.unzip();
        let mut record = CrmDealRecord {
            id: String::new(),
            external_id: external_id.to_owned(),
            contact_id,
            contact_email,
            name: body.name,
            amount: body.amount,
            currency: body.currency,
            stage: body.stage,
            closed_at: body.closed_at,
            source_version: body.source_version,
            created_at: now,
            updated_at: now,
        };
        let (status, effect) = match self.deals.get(external_id) {
            Some((_, existing)) => {
                let unchanged = CrmDealRecord {
                    id: existing.id.clone(),
                    created_at: existing.created_at,
                    updated_at: existing.updated_at,
                    ..record.clone()
                };
                if unchanged == *existing {
                    return Ok(Answer::json(StatusCode::OK, existing));
                }
                record.id = existing.id.clone();
                record.created_at = existing.created_at;
                (StatusCode::OK, Effect::Updated)
            }
            None => {
                record.id = self.next_id("dl");
                (StatusCode::CREATED, Effect::Created)
            }
        };
        self.next_change += 1;
        self.deals
            .insert(external_id.to_owned(), (self.next_change, record.clone()));
        ledger.record(Record {
            kind: DocumentKind::Deal,
            effect,
            external_id,
            document_id: &record.id,
            idempotency_key: write.key(),
            body_hash: &write.body_hash,
        });
        Ok(Answer::json(status, &record))
    }
}

async fn put_contact(
    State(crm): State<Arc<Crm>>,
    Path(email): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let write = Write::new(&Method::PUT, uri.path(), &headers, &body);
    let mut state = crm.lock();
    let CrmState { idem, data } = &mut *state;
    idem.run(&write, || {
        data.put_contact(&email, &body, &write, &crm.ledger)
            .unwrap_or_else(Answer::from)
    })
}

async fn get_contact(State(crm): State<Arc<Crm>>, Path(email): Path<String>) -> Answer {
    match crm.lock().data.contacts.get(&normalise_email(&email)) {
        Some(contact) => Answer::json(StatusCode::OK, contact),
        None => SimError::not_found("No contact has this email.").into(),
    }
}

async fn put_deal(
    State(crm): State<Arc<Crm>>,
    Path(external_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let write = Write::new(&Method::PUT, uri.path(), &headers, &body);
    let mut state = crm.lock();
    let CrmState { idem, data } = &mut *state;
    idem.run(&write, || {
        data.put_deal(&external_id, &body, &write, &crm.ledger)
            .unwrap_or_else(Answer::from)
    })
}

async fn get_deal(State(crm): State<Arc<Crm>>, Path(external_id): Path<String>) -> Answer {
    match crm.lock().data.deals.get(&external_id) {
        Some((_, deal)) => Answer::json(StatusCode::OK, deal),
        None => SimError::not_found("No deal has this external id.").into(),
    }
}

async fn list_deals(State(crm): State<Arc<Crm>>, Query(query): Query<ListQuery>) -> Answer {
    let state = crm.lock();
    let deals = state
        .data
        .deals
        .values()
        .map(|(seq, d)| (*seq, d.updated_at, d));
    match query.page(deals) {
        Ok(page) => Answer::json(StatusCode::OK, &page),
        Err(error) => error.into(),
    }
}
