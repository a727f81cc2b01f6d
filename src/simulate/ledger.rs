//! The simulators' ledger: every committed effect, in order, so tests and the benchmark can prove
//! that no order is missing downstream and none is duplicated.
//!
//! Only real effects are recorded: an idempotent replay, an unchanged upsert or a repeated
//! cancel records nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The kind of document an effect touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    /// CRM contact, keyed by normalised email.
    Contact,
    /// CRM deal, keyed by store order id.
    Deal,
    /// ERP sales order, keyed by store order id.
    SalesOrder,
    /// ERP shipment, keyed by `{order external id}/{fulfilment external id}`.
    Fulfilment,
    /// ERP credit note, keyed by `{order external id}/{refund external id}`.
    CreditNote,
}

/// What happened to the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// A new document.
    Created,
    /// An existing document changed.
    Updated,
    /// A document was cancelled.
    Cancelled,
}

/// One committed effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Position in the ledger, from 1.
    pub seq: u64,
    /// Document kind.
    pub kind: DocumentKind,
    /// What happened.
    pub effect: Effect,
    /// The caller's key for the document (see [`DocumentKind`]).
    pub external_id: String,
    /// The simulator's id or document number.
    pub document_id: String,
    /// The request's `Idempotency-Key`, if it had one.
    pub idempotency_key: Option<String>,
    /// SHA-256 of the request body, hex.
    pub body_hash: String,
    /// When it was committed.
    pub at: DateTime<Utc>,
}

/// A simulator's ledger; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    entries: Arc<Mutex<Vec<LedgerEntry>>>,
}

/// A document-creating effect's description, before it gets a sequence number and a time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record<'a> {
    pub(crate) kind: DocumentKind,
    pub(crate) effect: Effect,
    pub(crate) external_id: &'a str,
    pub(crate) document_id: &'a str,
    pub(crate) idempotency_key: Option<&'a str>,
    pub(crate) body_hash: &'a str,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Ledger::default()
    }

    /// Appends one effect.
    pub(crate) fn record(&self, r: Record<'_>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let seq = entries.len() as u64 + 1;
        entries.push(LedgerEntry {
            seq,
            kind: r.kind,
            effect: r.effect,
            external_id: r.external_id.to_owned(),
            document_id: r.document_id.to_owned(),
            idempotency_key: r.idempotency_key.map(str::to_owned),
            body_hash: r.body_hash.to_owned(),
            at: Utc::now(),
        });
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> Vec<LedgerEntry> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The entries for one external id, oldest first.
    pub fn entries_for(&self, external_id: &str) -> Vec<LedgerEntry> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .iter()
            .filter(|e| e.external_id == external_id)
            .cloned()
            .collect()
    }

    /// How many effects have been committed.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True before the first effect.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many documents exist per (kind, external id).
    pub fn check(&self) -> LedgerCheck {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let mut created: BTreeMap<(DocumentKind, &str), BTreeSet<&str>> = BTreeMap::new();
        for entry in entries.iter().filter(|e| e.effect == Effect::Created) {
            created
                .entry((entry.kind, entry.external_id.as_str()))
                .or_default()
                .insert(entry.document_id.as_str());
        }
        let counts: Vec<DocumentCount> = created
            .into_iter()
            .map(|((kind, external_id), ids)| DocumentCount {
                kind,
                external_id: external_id.to_owned(),
                documents: ids.len(),
                document_ids: ids.into_iter().map(str::to_owned).collect(),
            })
            .collect();
        let duplicated = counts.iter().filter(|c| c.documents > 1).cloned().collect();
        LedgerCheck {
            effects: entries.len(),
            counts,
            duplicated,
        }
    }
}

/// How many documents exist for one (kind, external id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentCount {
    /// Document kind.
    pub kind: DocumentKind,
    /// The caller's key.
    pub external_id: String,
    /// How many distinct documents were created for it: 1 is right, more is a duplicate.
    pub documents: usize,
    /// Their ids.
    pub document_ids: Vec<String>,
}

/// The ledger's verdict: per external id, how many documents exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerCheck {
    /// Effects in the ledger.
    pub effects: usize,
    /// One row per (kind, external id) that has at least one document.
    pub counts: Vec<DocumentCount>,
    /// The rows with more than one document.
    pub duplicated: Vec<DocumentCount>,
}

impl LedgerCheck {
    /// Documents of `kind` for `external_id` (0 when none).
    pub fn count(&self, kind: DocumentKind, external_id: &str) -> usize {
        self.counts
            .iter()
            .find(|c| c.kind == kind && c.external_id == external_id)
            .map_or(0, |c| c.documents)
    }

    /// The `expected` external ids that have no document of `kind`: the lost ones.
    pub fn missing<'a>(
        &self,
        kind: DocumentKind,
        expected: impl IntoIterator<Item = &'a str>,
    ) -> Vec<String> {
        // One pass over the counts, not one per id: a benchmark checks a million ids.
        let present: std::collections::HashSet<&str> = self
            .counts
            .iter()
            .filter(|c| c.kind == kind && c.documents > 0)
            .map(|c| c.external_id.as_str())
            .collect();
        expected
            .into_iter()
            .filter(|id| !present.contains(id))
            .map(str::to_owned)
            .collect()
    }

    /// Extra documents beyond one per external id, over all kinds: the duplicated count.
    pub fn extra_documents(&self) -> usize {
        self.duplicated.iter().map(|c| c.documents - 1).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created(ledger: &Ledger, kind: DocumentKind, external_id: &str, document_id: &str) {
        ledger.record(Record {
            kind,
            effect: Effect::Created,
            external_id,
            document_id,
            idempotency_key: None,
            body_hash: "00",
        });
    }

    #[test]
    fn check_counts_documents_per_external_id_and_finds_the_missing() {
        let ledger = Ledger::new();
        created(&ledger, DocumentKind::SalesOrder, "1001", "SO-1");
        created(&ledger, DocumentKind::SalesOrder, "1002", "SO-2");
        created(&ledger, DocumentKind::SalesOrder, "1002", "SO-3");
        created(&ledger, DocumentKind::Deal, "1001", "dl_1");
        ledger.record(Record {
            kind: DocumentKind::SalesOrder,
            effect: Effect::Updated,
            external_id: "1001",
            document_id: "SO-1",
            idempotency_key: Some("k"),
            body_hash: "01",
        });
        let check = ledger.check();
        assert_eq!(check.effects, 5);
        assert_eq!(check.count(DocumentKind::SalesOrder, "1001"), 1);
        assert_eq!(check.count(DocumentKind::SalesOrder, "1002"), 2);
        assert_eq!(check.count(DocumentKind::Deal, "1002"), 0);
        assert_eq!(check.duplicated.len(), 1);
        assert_eq!(check.extra_documents(), 1);
        assert_eq!(
            check.missing(DocumentKind::SalesOrder, ["1001", "1003"]),
            vec!["1003"]
        );
        assert_eq!(ledger.entries_for("1001").len(), 3);
    }
}
