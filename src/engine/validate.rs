//! Validation: a mapped payload checked against its destination's rules before it is sent, so a
//! person learns what to fix from SyncDesk, in plain words, instead of from a rejection.
//!
//! The rules are the ones the reference CRM and ERP enforce (and their simulators, in
//! `crate::simulate`): the field limits come from `connectors::crm::limits` and
//! `connectors::erp::limits`, lengths count characters (not bytes), "required" means not blank
//! after trimming, and amounts are never negative. A payload these functions accept is never
//! refused by a simulator for a field reason (a test proves it over generated orders); what
//! only the destination can know — whether an item code exists, whether a shipment exceeds
//! what was ordered — is still answered by the destination.
//!
//! Unlike a destination, which stops at the first broken rule, validation reports them all.

use rust_decimal::Decimal;

use super::exception::{Destination, Problem};
use super::map::ErpChange;
use crate::connectors::crm::{limits as crm_limits, normalise_email};
use crate::connectors::erp::limits as erp_limits;
use crate::connectors::{CrmContact, CrmDeal, ErpAddress, ErpSalesOrder};

/// Every problem the ERP would find in `order` (the sales order body for order `order_name`):
/// missing or too-long values, codes that are not ISO codes, an order without lines, negative
/// amounts. The ship-to needs a name, street, city and postal code; the bill-to only has to
/// fit. Whether each item code exists is the ERP's to say.
pub fn validate_erp(order_name: &str, order: &ErpSalesOrder) -> Vec<Problem> {
    let mut check = Check::new(Destination::Erp, order_name);
    check.required("external_id", &order.external_id, erp_limits::EXTERNAL_ID);
    check.required(
        "customer_account",
        &order.customer_account,
        erp_limits::CUSTOMER_ACCOUNT,
    );
    check.currency("currency", &order.currency);
    if order.lines.is_empty() {
        check.missing("lines");
    }
    for (i, line) in order.lines.iter().enumerate() {
        let field = |name: &str| format!("lines[{i}].{name}");
        check.required(&field("item_code"), &line.item_code, erp_limits::ITEM_CODE);
        check.positive(&field("quantity"), line.quantity);
        check.non_negative(&field("unit_price_net"), line.unit_price_net);
        check.non_negative(&field("unit_price_gross"), line.unit_price_gross);
        check.non_negative(&field("discount"), line.discount);
        check.non_negative(&field("tax"), line.tax);
    }
    check.non_negative("shipping_cost", order.shipping_cost);
    check.non_negative("tax_total", order.tax_total);
    check.non_negative("total_gross", order.total_gross);
    if let Some(bill_to) = &order.bill_to {
        check.address("bill_to", bill_to, false);
    }
    if let Some(ship_to) = &order.ship_to {
        check.address("ship_to", ship_to, true);
    }
    check.problems
}

/// Every problem the ERP would find in one change to a sales order (its own fields: ids,
/// tracking number, reason, a positive credit amount). Whether a shipment or a credit fits
/// what the order holds is the ERP's to say.
pub fn validate_erp_change(order_name: &str, change: &ErpChange) -> Vec<Problem> {
    let mut check = Check::new(Destination::Erp, order_name);
    match change {
        ErpChange::Cancel { reason } => {
            check.optional("reason", reason.as_deref(), erp_limits::REASON);
        }
        ErpChange::Fulfilment(f) => {
            check.required("external_id", &f.external_id, erp_limits::EXTERNAL_ID);
            check.optional(
                "tracking_number",
                f.tracking_number.as_deref(),
                erp_limits::TRACKING_NUMBER,
            );
            if f.lines.is_empty() {
                check.missing("lines");
            }
            for (i, line) in f.lines.iter().enumerate() {
                let field = |name: &str| format!("lines[{i}].{name}");
                check.required(&field("item_code"), &line.item_code, erp_limits::ITEM_CODE);
                check.positive(&field("quantity"), line.quantity);
            }
        }
        ErpChange::CreditNote(c) => {
            check.required("external_id", &c.external_id, erp_limits::EXTERNAL_ID);
            check.positive("amount", c.amount);
            check.required("reason", &c.reason, erp_limits::REASON);
        }
    }
    check.problems
}

/// Every problem the CRM would find in the contact (when there is one) and the deal: the
/// contact's email must read as an email, names, phone and ids must fit, the deal needs a name
/// and a non-negative amount in an ISO currency, and a deal that names a contact must name the
/// one sent with it (the CRM refuses a deal whose contact it does not have).
pub fn validate_crm(contact: Option<&CrmContact>, deal: &CrmDeal) -> Vec<Problem> {
    // The deal's name is the order's; a deal without one is named by its store order id.
    let order_name = match deal.name.trim() {
        "" => deal.external_id.as_str(),
        name => name,
    };
    let mut check = Check::new(Destination::Crm, order_name);
    if let Some(contact) = contact {
        let email = normalise_email(&contact.email);
        check.required("email", &email, crm_limits::EMAIL);
        let plausible = match email.split_once('@') {
            Some((local, domain)) => !local.is_empty() && domain.contains('.'),
            None => email.trim().is_empty(),
        };
        if !plausible {
            check.invalid("email", "is not an email address, which the CRM requires");
        }
        check.optional(
            "first_name",
            contact.first_name.as_deref(),
            crm_limits::NAME,
        );
        check.optional("last_name", contact.last_name.as_deref(), crm_limits::NAME);
        check.optional("phone", contact.phone.as_deref(), crm_limits::PHONE);
        check.optional(
            "store_customer_id",
            contact.store_customer_id.as_deref(),
            crm_limits::EXTERNAL_ID,
        );
    }
    check.required("external_id", &deal.external_id, crm_limits::EXTERNAL_ID);
    check.required("name", &deal.name, crm_limits::DEAL_NAME);
    check.non_negative("amount", deal.amount);
    check.currency("currency", &deal.currency);
    if let Some(deal_email) = &deal.contact_email {
        let sent = contact.map(|c| normalise_email(&c.email));
        if sent.as_deref() != Some(normalise_email(deal_email).as_str()) {
            check.invalid(
                "contact_email",
                "names a contact that is not sent with the deal, which the CRM refuses",
            );
        }
    }
    check.problems
}

/// Collects problems for one payload, one rule at a time.
struct Check<'a> {
    destination: Destination,
    order_name: &'a str,
    problems: Vec<Problem>,
}

impl<'a> Check<'a> {
    fn new(destination: Destination, order_name: &'a str) -> Self {
        Check {
            destination,
            order_name,
            problems: Vec::new(),
        }
    }

    fn missing(&mut self, field: &str) {
        let problem = Problem::missing_field(self.destination, self.order_name, field);
        self.problems.push(problem);
    }

    fn invalid(&mut self, field: &str, what: &str) {
        let problem = Problem::invalid_field(self.destination, self.order_name, field, what);
        self.problems.push(problem);
    }

    /// At most `max` characters.
    fn max_len(&mut self, field: &str, value: &str, max: usize) {
        let length = value.chars().count();
        if length > max {
            let problem = Problem::field_too_long(self.destination, field, length, max);
            self.problems.push(problem);
        }
    }

    /// Not blank, and at most `max` characters.
    fn required(&mut self, field: &str, value: &str, max: usize) {
        if value.trim().is_empty() {
            self.missing(field);
        } else {
            self.max_len(field, value, max);
        }
    }

    /// When present, at most `max` characters.
    fn optional(&mut self, field: &str, value: Option<&str>, max: usize) {
        if let Some(value) = value {
            self.max_len(field, value, max);
        }
    }

    /// Three capital letters.
    fn currency(&mut self, field: &str, value: &str) {
        if !(value.len() == 3 && value.bytes().all(|b| b.is_ascii_uppercase())) {
            let what = format!(
                "is not a three-letter currency code (like EUR), which {} requires",
                the(self.destination)
            );
            self.invalid(field, &what);
        }
    }

    fn non_negative(&mut self, field: &str, value: Decimal) {
        if value.is_sign_negative() && !value.is_zero() {
            let what = format!(
                "is negative ({value}); {} accepts only zero or more",
                the(self.destination)
            );
            self.invalid(field, &what);
        }
    }

    fn positive(&mut self, field: &str, value: Decimal) {
        if value <= Decimal::ZERO {
            let what = format!(
                "is {value}; {} accepts only more than zero",
                the(self.destination)
            );
            self.invalid(field, &what);
        }
    }

    /// An address; a ship-to needs a name, street, city and, where the country has them, a
    /// postal code.
    fn address(&mut self, prefix: &str, a: &ErpAddress, ship_to: bool) {
        use erp_limits::{ADDRESS_NAME, CITY, POSTAL_CODE, REGION, STREET};
        let field = |name: &str| format!("{prefix}.{name}");
        if ship_to {
            self.required(&field("name"), &a.name, ADDRESS_NAME);
            self.required(&field("street"), &a.street, STREET);
        } else {
            self.max_len(&field("name"), &a.name, ADDRESS_NAME);
            self.max_len(&field("street"), &a.street, STREET);
        }
        self.optional(&field("street2"), a.street2.as_deref(), STREET);
        if ship_to {
            self.required(&field("city"), &a.city, CITY);
        }
        if ship_to && crate::connectors::erp::ship_to_needs_postal_code(&a.country) {
            self.required(
                &field("postal_code"),
                a.postal_code.as_deref().unwrap_or(""),
                POSTAL_CODE,
            );
        } else if ship_to {
            self.optional(&field("postal_code"), a.postal_code.as_deref(), POSTAL_CODE);
        } else {
            self.max_len(&field("city"), &a.city, CITY);
            self.optional(&field("postal_code"), a.postal_code.as_deref(), POSTAL_CODE);
        }
        self.optional(&field("region"), a.region.as_deref(), REGION);
        if a.country.trim().is_empty() {
            self.missing(&field("country"));
        } else if !(a.country.len() == 2 && a.country.bytes().all(|b| b.is_ascii_uppercase())) {
            self.invalid(
                &field("country"),
                "is not a two-letter country code (like DE), which the ERP requires",
            );
        }
    }
}

/// "the CRM" / "the ERP".
fn the(destination: Destination) -> String {
    format!("the {}", destination.label())
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod sim_agreement;
