//! The field rules the simulated destinations enforce, with the answers a real one gives:
//! 422 naming the field (in body path syntax) and, for lengths, the limit.

use rust_decimal::Decimal;

use super::reply::SimError;
use crate::connectors::erp::limits;
use crate::connectors::{ErpAddress, ErpCreditNoteRequest, ErpFulfilmentRequest, ErpSalesOrder};

/// `value` has at most `max` characters.
pub(crate) fn max_len(field: &str, value: &str, max: usize) -> Result<(), SimError> {
    let actual = value.chars().count();
    if actual > max {
        Err(SimError::too_long(field, actual, max))
    } else {
        Ok(())
    }
}

/// `value` is present (not blank) and has at most `max` characters.
pub(crate) fn required(field: &str, value: &str, max: usize) -> Result<(), SimError> {
    if value.trim().is_empty() {
        return Err(SimError::missing(field));
    }
    max_len(field, value, max)
}

/// `value`, when present, has at most `max` characters.
pub(crate) fn optional(field: &str, value: Option<&str>, max: usize) -> Result<(), SimError> {
    value.map_or(Ok(()), |v| max_len(field, v, max))
}

/// An ISO 4217 code: three upper-case letters.
pub(crate) fn currency(field: &str, value: &str) -> Result<(), SimError> {
    if value.len() == 3 && value.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(SimError::unprocessable(
            "invalid_field",
            field,
            format!("{field} must be an ISO 4217 code such as EUR."),
        ))
    }
}

/// Zero or more.
pub(crate) fn non_negative(field: &str, value: Decimal) -> Result<(), SimError> {
    if value.is_sign_negative() && !value.is_zero() {
        Err(SimError::unprocessable(
            "invalid_field",
            field,
            format!("{field} must not be negative."),
        ))
    } else {
        Ok(())
    }
}

/// More than zero.
pub(crate) fn positive(field: &str, value: Decimal) -> Result<(), SimError> {
    if value > Decimal::ZERO {
        Ok(())
    } else {
        Err(SimError::unprocessable(
            "invalid_field",
            field,
            format!("{field} must be more than 0."),
        ))
    }
}

/// The ERP's rules for a sales order body; `known_item` says whether an item code exists.
/// The first broken rule is reported, in body order.
pub(crate) fn sales_order(
    order: &ErpSalesOrder,
    known_item: impl Fn(&str) -> bool,
) -> Result<(), SimError> {
    required("external_id", &order.external_id, limits::EXTERNAL_ID)?;
    required(
        "customer_account",
        &order.customer_account,
        limits::CUSTOMER_ACCOUNT,
    )?;
    currency("currency", &order.currency)?;
    if order.lines.is_empty() {
        return Err(SimError::missing("lines"));
    }
    for (i, line) in order.lines.iter().enumerate() {
        let field = |name: &str| format!("lines[{i}].{name}");
        required(&field("item_code"), &line.item_code, limits::ITEM_CODE)?;
        if !known_item(&line.item_code) {
            return Err(SimError::unprocessable(
                "unknown_item",
                &field("item_code"),
                format!("Item {} does not exist.", line.item_code),
            ));
        }
        positive(&field("quantity"), line.quantity)?;
        non_negative(&field("unit_price_net"), line.unit_price_net)?;
        non_negative(&field("unit_price_gross"), line.unit_price_gross)?;
        non_negative(&field("discount"), line.discount)?;
        non_negative(&field("tax"), line.tax)?;
    }
    non_negative("shipping_cost", order.shipping_cost)?;
    non_negative("tax_total", order.tax_total)?;
    non_negative("total_gross", order.total_gross)?;
    if let Some(bill_to) = &order.bill_to {
        address("bill_to", bill_to, false)?;
    }
    if let Some(ship_to) = &order.ship_to {
        address("ship_to", ship_to, true)?;
    }
    Ok(())
}

/// An address; a ship-to needs a name, street, city and, where the country has them, a postal
/// code.
fn address(prefix: &str, a: &ErpAddress, ship_to: bool) -> Result<(), SimError> {
    let field = |name: &str| format!("{prefix}.{name}");
    if ship_to {
        required(&field("name"), &a.name, limits::ADDRESS_NAME)?;
        required(&field("street"), &a.street, limits::STREET)?;
    } else {
        max_len(&field("name"), &a.name, limits::ADDRESS_NAME)?;
        max_len(&field("street"), &a.street, limits::STREET)?;
    }
    optional(&field("street2"), a.street2.as_deref(), limits::STREET)?;
    if ship_to {
        required(&field("city"), &a.city, limits::CITY)?;
    }
    if ship_to && crate::connectors::erp::ship_to_needs_postal_code(&a.country) {
        required(
            &field("postal_code"),
            a.postal_code.as_deref().unwrap_or(""),
            limits::POSTAL_CODE,
        )?;
    } else if ship_to {
        optional(
            &field("postal_code"),
            a.postal_code.as_deref(),
            limits::POSTAL_CODE,
        )?;
    } else {
        max_len(&field("city"), &a.city, limits::CITY)?;
        optional(
            &field("postal_code"),
            a.postal_code.as_deref(),
            limits::POSTAL_CODE,
        )?;
    }
    optional(&field("region"), a.region.as_deref(), limits::REGION)?;
    if a.country.len() == 2 && a.country.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        let country = field("country");
        let message = format!("{country} must be an ISO 3166-1 alpha-2 code such as DE.");
        Err(SimError::unprocessable("invalid_field", &country, message))
    }
}

/// A shipment body's own rules (quantities against the order are checked by the ERP).
pub(crate) fn fulfilment(f: &ErpFulfilmentRequest) -> Result<(), SimError> {
    required("external_id", &f.external_id, limits::EXTERNAL_ID)?;
    optional(
        "tracking_number",
        f.tracking_number.as_deref(),
        limits::TRACKING_NUMBER,
    )?;
    if f.lines.is_empty() {
        return Err(SimError::missing("lines"));
    }
    for (i, line) in f.lines.iter().enumerate() {
        required(
            &format!("lines[{i}].item_code"),
            &line.item_code,
            limits::ITEM_CODE,
        )?;
        positive(&format!("lines[{i}].quantity"), line.quantity)?;
    }
    Ok(())
}

/// A credit note body's own rules (the amount against the order is checked by the ERP).
pub(crate) fn credit_note(c: &ErpCreditNoteRequest) -> Result<(), SimError> {
    required("external_id", &c.external_id, limits::EXTERNAL_ID)?;
    positive("amount", c.amount)?;
    required("reason", &c.reason, limits::REASON)
}
