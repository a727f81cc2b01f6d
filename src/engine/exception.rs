//! Exceptions in plain language: every way a sync attempt can end other than "synced",
//! classified into a [`Problem`] a person can act on.
//!
//! A problem has a machine `code`, a [`ExceptionKind`], a sentence for someone who has never
//! seen a stack trace, the action that fixes it, the payload fields concerned and a cause
//! *fingerprint*. Problems with one fingerprint share one fix: saving the SKU mapping behind
//! `missing_sku:erp:ABC-123` releases every order waiting on it.
//!
//! Rules the sentences follow:
//! - Destinations are "the CRM" and "the ERP"; orders are named as people know them ("#1042").
//! - No email, phone or street text appears in a sentence: a length, a field name or an order
//!   name says enough. The one exception is the destination's own words on a rejection, which
//!   are quoted verbatim (and cut at [`MAX_QUOTE_CHARS`]) because they are what the person must
//!   understand.
//! - Times are UTC ("14:05 UTC"); the UI may show them in the reader's zone.
//! - Group counts ("57 orders wait on this SKU") are added by whoever shows the group; one
//!   problem describes one order.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::domain::Sku;
use crate::store::NewException;

pub mod action;
mod classify;
pub mod code;
mod wording;

pub use classify::from_delivery_error;
use wording::{action_for_field, capitalise, clock, field_key, label, missing_phrase, quote};
pub use wording::{field_label, human_duration};

/// What an exception asks of people.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExceptionKind {
    /// Nothing will change until a person acts (map a SKU, fix an address, renew a token).
    NeedsAction,
    /// The engine retries by itself with backoff; shown so people know why an order waits.
    Transient,
    /// Retries ran out: the task is dead-lettered until someone retries or skips it.
    Exhausted,
}

impl ExceptionKind {
    /// The stored spelling: `needs_action`, `transient` or `exhausted`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExceptionKind::NeedsAction => "needs_action",
            ExceptionKind::Transient => "transient",
            ExceptionKind::Exhausted => "exhausted",
        }
    }
}

/// A system orders are synced to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Destination {
    /// The CRM: contacts and deals.
    Crm,
    /// The ERP: sales orders, shipments and credit notes.
    Erp,
}

impl Destination {
    /// Every destination.
    pub const ALL: [Destination; 2] = [Destination::Crm, Destination::Erp];

    /// The stored name: `crm` or `erp` (as in `sync_tasks.destination`).
    pub fn as_str(self) -> &'static str {
        match self {
            Destination::Crm => "crm",
            Destination::Erp => "erp",
        }
    }

    /// Reads a stored name; `None` for anything else.
    pub fn parse(raw: &str) -> Option<Destination> {
        Destination::ALL.into_iter().find(|d| d.as_str() == raw)
    }

    /// The name people use: "CRM" or "ERP".
    pub fn label(self) -> &'static str {
        match self {
            Destination::Crm => "CRM",
            Destination::Erp => "ERP",
        }
    }

    /// "the CRM" / "the ERP", for sentences.
    fn the(self) -> String {
        format!("the {}", self.label())
    }
}

/// How many characters of a destination's own message a sentence quotes.
pub const MAX_QUOTE_CHARS: usize = 300;

/// A classified outcome, ready to become an exception.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Machine code, one of [`code`].
    pub code: &'static str,
    /// Needs action, transient or exhausted.
    pub kind: ExceptionKind,
    /// The sentence a person reads.
    pub message: String,
    /// The action that fixes it, one of [`action`].
    pub action: &'static str,
    /// Payload fields concerned, in the destination's body syntax (`ship_to.street`,
    /// `lines[0].item_code`).
    pub fields: Vec<String>,
    /// Cause fingerprint for grouping and release, e.g. `missing_sku:erp:ABC-123`.
    pub fingerprint: String,
}

impl Problem {
    /// What a person reads when one delivery found several problems: the first, which keeps its
    /// code, fingerprint and action (the group it joins, the fix that releases it), told along
    /// with the rest, so one look shows everything that stands in the order's way and every
    /// field concerned. Without it, an order with two unmapped SKUs showed the first only, and
    /// mapping that one released it to be blocked on the second. `None` for no problems.
    pub fn together(problems: Vec<Problem>) -> Option<Problem> {
        const TOLD: usize = 3;
        let mut problems = problems.into_iter();
        let mut first = problems.next()?;
        let mut rest: Vec<Problem> = Vec::new();
        for problem in problems {
            let told =
                |p: &Problem| p.fingerprint == problem.fingerprint && p.message == problem.message;
            if !told(&first) && !rest.iter().any(told) {
                rest.push(problem);
            }
        }
        if rest.is_empty() {
            return Some(first);
        }
        let skus: Option<Vec<&str>> = std::iter::once(&first)
            .chain(&rest)
            .map(|p| {
                (p.code == code::MISSING_SKU_MAPPING)
                    .then(|| p.fingerprint.strip_prefix("missing_sku:erp:"))
                    .flatten()
            })
            .collect();
        let also = match skus {
            // Every one an unmapped SKU: name the others, once.
            Some(skus) => {
                let others = &skus[1..];
                let named = others.iter().take(TOLD).copied().collect::<Vec<_>>();
                let more = others.len() - named.len();
                let list = if more > 0 {
                    format!("{} and {more} more", named.join(", "))
                } else {
                    english_list(&named)
                };
                let (noun, verb) = if others.len() == 1 {
                    ("SKU", "has")
                } else {
                    ("SKUs", "have")
                };
                format!(
                    "{noun} {list} on the same order {verb} none either; the order waits until every one is mapped."
                )
            }
            None => {
                let told: Vec<&str> = rest.iter().take(TOLD).map(|p| p.message.as_str()).collect();
                let more = rest.len() - told.len();
                let mut also = format!("Also: {}", told.join(" "));
                if more > 0 {
                    also.push_str(&format!(" And {more} more."));
                }
                also
            }
        };
        first.message = format!("{} {also}", first.message);
        for field in rest.into_iter().flat_map(|p| p.fields) {
            if !first.fields.contains(&field) {
                first.fields.push(field);
            }
        }
        Some(first)
    }

    /// The SKU has no ERP item code. `fields` are the payload lines that carry it.
    /// Fingerprint `missing_sku:erp:<SKU>`: saving that mapping releases the order.
    pub fn missing_sku_mapping(order_name: &str, sku: &Sku, fields: Vec<String>) -> Problem {
        Problem {
            code: code::MISSING_SKU_MAPPING,
            kind: ExceptionKind::NeedsAction,
            message: format!(
                "SKU {sku} has no ERP item code, so order {order_name} can't be created in the ERP."
            ),
            action: action::MAP_SKU,
            fields,
            fingerprint: format!("missing_sku:erp:{sku}"),
        }
    }

    /// The ERP does not know the item code a line was mapped to (its `unknown_item`). With the
    /// SKU behind the line, the fingerprint is the SKU's (`missing_sku:erp:<SKU>`), so
    /// re-mapping it releases the order; without, it is `unknown_item:erp`.
    pub fn unknown_item(
        order_name: &str,
        sku: Option<&Sku>,
        field: Option<&str>,
        erp_message: &str,
    ) -> Problem {
        let quote = quote(erp_message);
        let (message, fingerprint) = match sku {
            Some(sku) => (
                format!(
                    "SKU {sku} is mapped to an item code the ERP does not know, so order \
                     {order_name} can't be created in the ERP. The ERP said: {quote}"
                ),
                format!("missing_sku:erp:{sku}"),
            ),
            None => (
                format!(
                    "The ERP does not know an item code on order {order_name}, so the order \
                     can't be created in the ERP. The ERP said: {quote}"
                ),
                "unknown_item:erp".to_owned(),
            ),
        };
        Problem {
            code: code::MISSING_SKU_MAPPING,
            kind: ExceptionKind::NeedsAction,
            message,
            action: action::MAP_SKU,
            fields: field.map(str::to_owned).into_iter().collect(),
            fingerprint,
        }
    }

    /// An order line has no SKU (a custom item such as gift wrapping), so it cannot be matched
    /// to an ERP item. Fingerprint `line_without_sku:erp:<title>`, grouping orders that carry
    /// the same custom item.
    pub fn line_without_sku(order_name: &str, line_title: &str, field: String) -> Problem {
        Problem {
            code: code::LINE_WITHOUT_SKU,
            kind: ExceptionKind::NeedsAction,
            message: format!(
                "The line \u{201c}{line_title}\u{201d} on order {order_name} has no SKU, so it \
                 can't be matched to an ERP item and the order can't be created in the ERP."
            ),
            action: action::FIX_IN_STORE,
            fields: vec![field],
            fingerprint: format!("line_without_sku:erp:{line_title}"),
        }
    }

    /// `field` is `length` characters, more than the destination's `limit`:
    /// "Ship-to street is 74 characters; the ERP accepts at most 60."
    /// Fingerprint `field_too_long:<dest>:<field>` (line numbers left out).
    pub fn field_too_long(
        destination: Destination,
        field: &str,
        length: usize,
        limit: usize,
    ) -> Problem {
        Problem {
            code: code::FIELD_TOO_LONG,
            kind: ExceptionKind::NeedsAction,
            message: format!(
                "{} is {length} characters; {} accepts at most {limit}.",
                field_label(field),
                destination.the()
            ),
            action: action_for_field(field),
            fields: vec![field.to_owned()],
            fingerprint: format!(
                "field_too_long:{}:{}",
                destination.as_str(),
                field_key(field)
            ),
        }
    }

    /// The destination itself said `field` is too long (the length is in its words, quoted).
    fn too_long_at_destination(
        destination: Destination,
        order_name: &str,
        field: &str,
        limit: Option<u64>,
        destination_message: &str,
    ) -> Problem {
        let the = destination.the();
        let limit = limit
            .map(|max| format!(" (at most {max} characters)"))
            .unwrap_or_default();
        Problem {
            code: code::FIELD_TOO_LONG,
            kind: ExceptionKind::NeedsAction,
            message: format!(
                "{} of order {order_name} is longer than {the} accepts{limit}. {} said: {}",
                field_label(field),
                capitalise(&the),
                quote(destination_message)
            ),
            action: action_for_field(field),
            fields: vec![field.to_owned()],
            fingerprint: format!(
                "field_too_long:{}:{}",
                destination.as_str(),
                field_key(field)
            ),
        }
    }

    /// A value the destination requires is absent:
    /// "Order #1042 has no shipping postal code, which the ERP requires."
    /// Fingerprint `missing_field:<dest>:<field>`.
    pub fn missing_field(destination: Destination, order_name: &str, field: &str) -> Problem {
        Problem {
            code: code::MISSING_FIELD,
            kind: ExceptionKind::NeedsAction,
            message: format!(
                "Order {order_name} has no {}, which {} requires.",
                missing_phrase(field),
                destination.the()
            ),
            action: action::FIX_IN_STORE,
            fields: vec![field.to_owned()],
            fingerprint: format!(
                "missing_field:{}:{}",
                destination.as_str(),
                field_key(field)
            ),
        }
    }

    /// A value is present but unacceptable. `what` finishes the sentence "Ship-to country of order
    /// #1042 …", e.g. "is not a two-letter country code (like DE), which the ERP requires".
    /// Fingerprint `invalid_field:<dest>:<field>`.
    pub fn invalid_field(
        destination: Destination,
        order_name: &str,
        field: &str,
        what: &str,
    ) -> Problem {
        Problem {
            code: code::INVALID_FIELD,
            kind: ExceptionKind::NeedsAction,
            message: format!("{} of order {order_name} {what}.", field_label(field)),
            action: action::FIX_IN_STORE,
            fields: vec![field.to_owned()],
            fingerprint: format!(
                "invalid_field:{}:{}",
                destination.as_str(),
                field_key(field)
            ),
        }
    }

    /// The destination refused our credentials (HTTP `status`). Fingerprint `auth:<dest>`: one
    /// exception for the destination, released when the credentials are renewed.
    pub fn auth_expired(destination: Destination, status: u16) -> Problem {
        let the = destination.the();
        Problem {
            code: code::AUTH_EXPIRED,
            kind: ExceptionKind::NeedsAction,
            message: format!(
                "{} rejected our credentials ({status}). Nothing will sync to {the} until they \
                 are renewed.",
                capitalise(&the)
            ),
            action: action::RENEW_CREDENTIALS,
            fields: Vec::new(),
            fingerprint: format!("auth:{}", destination.as_str()),
        }
    }

    /// The destination asked us to slow down: "The CRM asked us to slow down; retrying in 30 s."
    /// `retry_after` is what it asked for; without it, `next_retry_at` says when we retry.
    pub fn rate_limited(
        destination: Destination,
        retry_after: Option<Duration>,
        next_retry_at: Option<DateTime<Utc>>,
    ) -> Problem {
        let when = match (retry_after, next_retry_at) {
            (Some(wait), _) => format!("retrying in {}", human_duration(wait)),
            (None, Some(at)) => format!("retrying at {}", clock(at)),
            (None, None) => "retrying shortly".to_owned(),
        };
        Problem {
            code: code::RATE_LIMITED,
            kind: ExceptionKind::Transient,
            message: format!(
                "{} asked us to slow down; {when}.",
                capitalise(&destination.the())
            ),
            action: action::NONE,
            fields: Vec::new(),
            fingerprint: format!("rate_limited:{}", destination.as_str()),
        }
    }

    /// The destination did not answer or failed on its side. `cause` is a sentence such as
    /// the connector's "The ERP did not answer within 10 s."; `attempt` is the attempt that
    /// just failed (1 for the first):
    /// "The ERP did not answer within 10 s; trying again at 14:05 UTC (try 4 of 8)."
    pub fn destination_down(
        destination: Destination,
        cause: &str,
        attempt: i64,
        max_attempts: i64,
        next_retry_at: Option<DateTime<Utc>>,
    ) -> Problem {
        let cause = cause.trim().trim_end_matches('.');
        let when = match next_retry_at {
            Some(at) => format!("at {}", clock(at)),
            None => "shortly".to_owned(),
        };
        let next = attempt.saturating_add(1);
        Problem {
            code: code::DESTINATION_DOWN,
            kind: ExceptionKind::Transient,
            message: format!("{cause}; trying again {when} (try {next} of {max_attempts})."),
            action: action::NONE,
            fields: Vec::new(),
            fingerprint: format!("destination_down:{}", destination.as_str()),
        }
    }

    /// The destination refused the order for a reason of its own: its message quoted, plus
    /// the field it named. Fingerprint `rejected:<dest>:<code>[:<field>]`.
    pub fn rejected(
        destination: Destination,
        order_name: &str,
        destination_code: &str,
        field: Option<&str>,
        destination_message: &str,
    ) -> Problem {
        let mut message = format!(
            "{} refused order {order_name} and said: {}",
            capitalise(&destination.the()),
            quote(destination_message)
        );
        let mut fingerprint = format!("rejected:{}:{destination_code}", destination.as_str());
        if let Some(field) = field {
            message.push_str(&format!(" This concerns the {}.", label(field)));
            fingerprint.push(':');
            fingerprint.push_str(&field_key(field));
        }
        Problem {
            code: code::REJECTED,
            kind: ExceptionKind::NeedsAction,
            message,
            action: action::EDIT_OR_SKIP,
            fields: field.map(str::to_owned).into_iter().collect(),
            fingerprint,
        }
    }

    /// Retries ran out: "Gave up sending order #1042 to the ERP after 8 tries over 4 h; last
    /// error: …". `over` is the time from the first attempt to the last, when known.
    /// Fingerprint `dead_letter:<dest>`.
    pub fn dead_letter(
        destination: Destination,
        order_name: &str,
        attempts: i64,
        over: Option<TimeDelta>,
        last_error: &str,
    ) -> Problem {
        let tries = if attempts == 1 { "try" } else { "tries" };
        let over = over
            .and_then(|d| d.to_std().ok())
            .filter(|d| !d.is_zero())
            .map(|d| format!(" over {}", human_duration(d)))
            .unwrap_or_default();
        let last = last_error.trim();
        let last = if last.is_empty() { "unknown" } else { last };
        Problem {
            code: code::DEAD_LETTER,
            kind: ExceptionKind::Exhausted,
            message: format!(
                "Gave up sending order {order_name} to {} after {attempts} {tries}{over}; last \
                 error: {last}",
                destination.the()
            ),
            action: action::RETRY_OR_SKIP,
            fields: Vec::new(),
            fingerprint: format!("dead_letter:{}", destination.as_str()),
        }
    }

    /// The order as stored could not be read back (a bug, or a store format SyncDesk does not
    /// know yet), so nothing was sent. `field` is where reading stopped; the value found is
    /// never quoted (it may be an email or a phone). Fingerprint `unreadable_order:<dest>`.
    pub fn unreadable_order(
        destination: Destination,
        store_order_id: i64,
        field: Option<&str>,
    ) -> Problem {
        let at = field.map(|f| format!(" (at {f})")).unwrap_or_default();
        Problem {
            code: code::UNREADABLE_ORDER,
            kind: ExceptionKind::NeedsAction,
            message: format!(
                "Store order {store_order_id} could not be read back{at}, so nothing was sent \
                 to {}. Retry after an upgrade, or skip it.",
                destination.the()
            ),
            action: action::RETRY_OR_SKIP,
            fields: field.map(str::to_owned).into_iter().collect(),
            fingerprint: format!("unreadable_order:{}", destination.as_str()),
        }
    }

    /// The store sent an order's state (an order, or a refund of it, under `topic`) that cannot
    /// be read, so it reached no destination. `order` is the order's id when that much could be
    /// read, `field` where reading stopped; the value found is never quoted. An exception of the
    /// store's, with no task: fingerprint `unreadable_webhook:<order id>` (one per order,
    /// resolving by itself once SyncDesk holds a state of the order as recent), or
    /// `unreadable_webhook:unknown:<topic>` when not even the order's id could be read (one for
    /// all such webhooks of a topic, telling the latest: they are one fault, repeated).
    pub fn unreadable_webhook(topic: &str, order: Option<i64>, field: Option<&str>) -> Problem {
        let at = field.map(|f| format!(" (at {f})")).unwrap_or_default();
        let refund = topic.starts_with("refunds/");
        match order {
            Some(id) => Problem {
                code: code::UNREADABLE_WEBHOOK,
                kind: ExceptionKind::NeedsAction,
                message: format!(
                    "The store sent {what} ({topic}) in a form SyncDesk cannot read{at}, so it \
                     reached neither the CRM nor the ERP. Resync the order from the store; this \
                     closes by itself once SyncDesk holds a state of the order as recent.",
                    what = if refund {
                        format!("a refund of the order with store id {id}")
                    } else {
                        format!("the order with store id {id}")
                    },
                ),
                action: action::RESYNC_FROM_STORE,
                fields: field.map(str::to_owned).into_iter().collect(),
                fingerprint: format!("unreadable_webhook:{id}"),
            },
            None => Problem {
                code: code::UNREADABLE_WEBHOOK,
                kind: ExceptionKind::NeedsAction,
                message: format!(
                    "The store sent a {topic} webhook SyncDesk cannot read{at}, not even which \
                     order it is about, so that order reached neither the CRM nor the ERP. Find \
                     it in the store and resync it, then mark this done."
                ),
                action: action::LOOK_UP_IN_STORE,
                fields: field.map(str::to_owned).into_iter().collect(),
                fingerprint: format!("unreadable_webhook:unknown:{topic}"),
            },
        }
    }
}

/// The row a problem opens.
impl From<&Problem> for NewException {
    fn from(problem: &Problem) -> NewException {
        NewException {
            code: problem.code.to_string(),
            kind: problem.kind.as_str(),
            fingerprint: problem.fingerprint.clone(),
            message: problem.message.clone(),
            action: problem.action.to_string(),
            fields: problem.fields.clone(),
        }
    }
}

/// A dead letter: retries ran out (see [`Problem::dead_letter`]).
pub fn dead_letter(
    destination: Destination,
    order_name: &str,
    attempts: i64,
    over: Option<TimeDelta>,
    last_error: &str,
) -> Problem {
    Problem::dead_letter(destination, order_name, attempts, over, last_error)
}

/// "A", "A and B", "A, B and C".
fn english_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests;
