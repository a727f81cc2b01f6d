//! The simulated ERP's books: sales orders with their shipments and credit notes, and the
//! business rules a real ERP applies to them (unique external ids, no changes after a cancel,
//! no shipping more than was ordered, no crediting more than was charged).

use std::collections::HashMap;

use axum::http::StatusCode;
use chrono::Utc;
use rust_decimal::Decimal;

use super::ledger::{DocumentKind, Effect, Ledger, Record};
use super::reply::{Answer, SimError, Write};
use super::rules;
use crate::connectors::erp::{ErpCancelRequest, ErpCreditNote, ErpFulfilment, limits};
use crate::connectors::{
    ErpCreditNoteRequest, ErpDocument, ErpFulfilmentRequest, ErpSalesOrder, ErpStatus, Page,
};

/// Every sales order, by document number, with the change sequence of its last change.
#[derive(Debug, Default)]
pub(crate) struct Books {
    docs: HashMap<String, (u64, ErpDocument)>,
    by_external: HashMap<String, Vec<String>>,
    next_number: u64,
    next_change: u64,
}

/// Where a write's effect goes in the ledger.
pub(crate) struct Effects<'a> {
    pub(crate) ledger: &'a Ledger,
    pub(crate) write: &'a Write,
}

impl Effects<'_> {
    fn record(&self, kind: DocumentKind, effect: Effect, external_id: &str, document_id: &str) {
        self.ledger.record(Record {
            kind,
            effect,
            external_id,
            document_id,
            idempotency_key: self.write.key(),
            body_hash: &self.write.body_hash,
        });
    }
}

fn invalid_state(message: String) -> SimError {
    SimError::new(StatusCode::CONFLICT, "invalid_state", message)
}

/// Quantity per item code.
fn quantities<'a>(lines: impl Iterator<Item = (&'a str, Decimal)>) -> HashMap<&'a str, Decimal> {
    let mut totals: HashMap<&str, Decimal> = HashMap::new();
    for (code, quantity) in lines {
        // Saturating: quantities past what a decimal holds are refused as too many, not a panic.
        let total = totals.entry(code).or_default();
        *total = total.saturating_add(quantity);
    }
    totals
}

fn shipped(doc: &ErpDocument) -> HashMap<&str, Decimal> {
    quantities(
        doc.fulfilments
            .iter()
            .flat_map(|f| f.lines.iter().map(|l| (l.item_code.as_str(), l.quantity))),
    )
}

/// Open, partially fulfilled or fulfilled, from what shipped.
fn fulfilment_status(doc: &ErpDocument) -> ErpStatus {
    let shipped = shipped(doc);
    if shipped.values().all(|q| q.is_zero()) {
        return ErpStatus::Open;
    }
    let ordered = quantities(
        doc.order
            .lines
            .iter()
            .map(|l| (l.item_code.as_str(), l.quantity)),
    );
    let complete = ordered
        .iter()
        .all(|(code, q)| shipped.get(code).is_some_and(|s| s >= q));
    if complete {
        ErpStatus::Fulfilled
    } else {
        ErpStatus::PartiallyFulfilled
    }
}

impl Books {
    /// Sales orders with this external id (more than one only when duplicates were allowed).
    pub(crate) fn find(&self, external_id: &str) -> Page<ErpDocument> {
        let numbers = self
            .by_external
            .get(external_id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let data = numbers
            .iter()
            .filter_map(|n| self.docs.get(n))
            .map(|(_, d)| d.clone())
            .collect();
        Page {
            data,
            next_cursor: None,
        }
    }

    /// One document.
    pub(crate) fn get(&self, number: &str) -> Option<&ErpDocument> {
        self.docs.get(number).map(|(_, d)| d)
    }

    /// Every document with its change sequence and time, for listing.
    pub(crate) fn changes(
        &self,
    ) -> impl Iterator<Item = (u64, chrono::DateTime<Utc>, &ErpDocument)> {
        self.docs.values().map(|(seq, d)| (*seq, d.updated_at, d))
    }

    fn next(&mut self, prefix: &str) -> String {
        self.next_number += 1;
        format!("{prefix}-{:06}", self.next_number)
    }

    /// Stores `doc` as changed now.
    fn touch(&mut self, mut doc: ErpDocument) -> ErpDocument {
        doc.updated_at = Utc::now();
        self.next_change += 1;
        self.docs
            .insert(doc.document_number.clone(), (self.next_change, doc.clone()));
        doc
    }

    fn existing(&self, number: &str) -> Result<ErpDocument, SimError> {
        self.get(number)
            .cloned()
            .ok_or_else(|| SimError::not_found(format!("No sales order {number}.")))
    }

    /// `POST /v1/sales-orders`.
    pub(crate) fn create(
        &mut self,
        order: ErpSalesOrder,
        known_item: impl Fn(&str) -> bool,
        allow_duplicates: bool,
        effects: &Effects<'_>,
    ) -> Result<Answer, SimError> {
        rules::sales_order(&order, known_item)?;
        let holder = self
            .by_external
            .get(&order.external_id)
            .and_then(|n| n.first());
        if let (Some(number), false) = (holder, allow_duplicates) {
            let message = format!(
                "Sales order {number} already has external id {}.",
                order.external_id
            );
            return Err(SimError::duplicate(number, message));
        }
        let now = Utc::now();
        let number = self.next("SO");
        let doc = ErpDocument {
            document_number: number.clone(),
            status: ErpStatus::Open,
            order,
            fulfilments: Vec::new(),
            credit_notes: Vec::new(),
            cancel_reason: None,
            created_at: now,
            updated_at: now,
        };
        self.by_external
            .entry(doc.order.external_id.clone())
            .or_default()
            .push(number.clone());
        let doc = self.touch(doc);
        effects.record(
            DocumentKind::SalesOrder,
            Effect::Created,
            &doc.order.external_id,
            &number,
        );
        Ok(Answer::json(StatusCode::CREATED, &doc))
    }

    /// `PUT /v1/sales-orders/{number}`: replaces the order part of an open document.
    pub(crate) fn update(
        &mut self,
        number: &str,
        order: ErpSalesOrder,
        known_item: impl Fn(&str) -> bool,
        effects: &Effects<'_>,
    ) -> Result<Answer, SimError> {
        let mut doc = self.existing(number)?;
        if doc.status == ErpStatus::Cancelled {
            return Err(invalid_state(format!(
                "{number} is cancelled and can no longer change."
            )));
        }
        rules::sales_order(&order, known_item)?;
        if order.external_id != doc.order.external_id {
            let message = format!("The external id of {number} cannot change.");
            return Err(SimError::unprocessable(
                "invalid_field",
                "external_id",
                message,
            ));
        }
        if doc.order == order {
            return Ok(Answer::json(StatusCode::OK, &doc));
        }
        let ordered = quantities(
            order
                .lines
                .iter()
                .map(|l| (l.item_code.as_str(), l.quantity)),
        );
        for (code, quantity) in shipped(&doc) {
            if ordered.get(code).is_none_or(|q| *q < quantity) {
                let message = format!(
                    "{quantity} of {code} already shipped on {number}; the order cannot ask for less."
                );
                return Err(SimError::unprocessable("below_shipped", "lines", message));
            }
        }
        doc.order = order;
        doc.status = fulfilment_status(&doc);
        let doc = self.touch(doc);
        effects.record(
            DocumentKind::SalesOrder,
            Effect::Updated,
            &doc.order.external_id,
            number,
        );
        Ok(Answer::json(StatusCode::OK, &doc))
    }

    /// `POST /v1/sales-orders/{number}/cancel`: idempotent; refused once anything shipped.
    pub(crate) fn cancel(
        &mut self,
        number: &str,
        request: ErpCancelRequest,
        effects: &Effects<'_>,
    ) -> Result<Answer, SimError> {
        let mut doc = self.existing(number)?;
        if doc.status == ErpStatus::Cancelled {
            return Ok(Answer::json(StatusCode::OK, &doc));
        }
        rules::optional("reason", request.reason.as_deref(), limits::REASON)?;
        if !doc.fulfilments.is_empty() {
            return Err(invalid_state(format!(
                "{number} has shipments and cannot be cancelled; issue a credit note instead."
            )));
        }
        doc.status = ErpStatus::Cancelled;
        doc.cancel_reason = request.reason;
        let doc = self.touch(doc);
        effects.record(
            DocumentKind::SalesOrder,
            Effect::Cancelled,
            &doc.order.external_id,
            number,
        );
        Ok(Answer::json(StatusCode::OK, &doc))
    }

    /// `POST /v1/sales-orders/{number}/fulfilments`.
    pub(crate) fn fulfil(
        &mut self,
        number: &str,
        request: ErpFulfilmentRequest,
        effects: &Effects<'_>,
    ) -> Result<Answer, SimError> {
        let mut doc = self.existing(number)?;
        rules::fulfilment(&request)?;
        if let Some(existing) = doc.fulfilment(&request.external_id) {
            let message = format!(
                "Shipment {} already records fulfilment {}.",
                existing.number, request.external_id
            );
            return Err(SimError::duplicate(&existing.number, message));
        }
        if doc.status == ErpStatus::Cancelled {
            return Err(invalid_state(format!(
                "{number} is cancelled; nothing can ship."
            )));
        }
        let ordered = quantities(
            doc.order
                .lines
                .iter()
                .map(|l| (l.item_code.as_str(), l.quantity)),
        );
        let mut shipping = shipped(&doc);
        for (i, line) in request.lines.iter().enumerate() {
            let Some(limit) = ordered.get(line.item_code.as_str()) else {
                let message = format!("Item {} is not on {number}.", line.item_code);
                return Err(SimError::unprocessable(
                    "not_on_order",
                    &format!("lines[{i}].item_code"),
                    message,
                ));
            };
            let total = shipping.entry(line.item_code.as_str()).or_default();
            *total = total.saturating_add(line.quantity);
            if *total > *limit {
                let message = format!(
                    "{number} orders {limit} of {}; this would ship {total}.",
                    line.item_code
                );
                return Err(SimError::unprocessable(
                    "over_fulfilment",
                    &format!("lines[{i}].quantity"),
                    message,
                ));
            }
        }
        let shipment = ErpFulfilment {
            number: self.next("SH"),
            external_id: request.external_id,
            shipped_at: request.shipped_at,
            tracking_number: request.tracking_number,
            lines: request.lines,
            created_at: Utc::now(),
        };
        doc.fulfilments.push(shipment.clone());
        doc.status = fulfilment_status(&doc);
        let doc = self.touch(doc);
        let key = format!("{}/{}", doc.order.external_id, shipment.external_id);
        effects.record(
            DocumentKind::Fulfilment,
            Effect::Created,
            &key,
            &shipment.number,
        );
        Ok(Answer::json(StatusCode::CREATED, &shipment))
    }

    /// `POST /v1/sales-orders/{number}/credit-notes`.
    pub(crate) fn credit(
        &mut self,
        number: &str,
        request: ErpCreditNoteRequest,
        effects: &Effects<'_>,
    ) -> Result<Answer, SimError> {
        let mut doc = self.existing(number)?;
        rules::credit_note(&request)?;
        if let Some(existing) = doc.credit_note(&request.external_id) {
            let message = format!(
                "Credit note {} already records refund {}.",
                existing.number, request.external_id
            );
            return Err(SimError::duplicate(&existing.number, message));
        }
        let credited = doc
            .credit_notes
            .iter()
            .fold(Decimal::ZERO, |sum, c| sum.saturating_add(c.amount));
        if credited.saturating_add(request.amount) > doc.order.total_gross {
            let message = format!(
                "{number} totals {} {}; {credited} is already credited, so at most {} more can be.",
                doc.order.total_gross,
                doc.order.currency,
                doc.order.total_gross - credited
            );
            return Err(SimError::unprocessable(
                "credit_exceeds_total",
                "amount",
                message,
            ));
        }
        let note = ErpCreditNote {
            number: self.next("CN"),
            external_id: request.external_id,
            amount: request.amount,
            currency: doc.order.currency.clone(),
            reason: request.reason,
            created_at: Utc::now(),
        };
        doc.credit_notes.push(note.clone());
        let doc = self.touch(doc);
        let key = format!("{}/{}", doc.order.external_id, note.external_id);
        effects.record(
            DocumentKind::CreditNote,
            Effect::Created,
            &key,
            &note.number,
        );
        Ok(Answer::json(StatusCode::CREATED, &note))
    }
}
