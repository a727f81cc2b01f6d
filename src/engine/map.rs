//! Mapping: the slice of the canonical order each destination gets, in that destination's own
//! shape. Pure: the SKU → item-code lookup is passed in, nothing is read or sent here.
//!
//! Decisions (each also stated on the function it shapes):
//! - **CRM contact**: keyed by the customer's normalised email; an order without any email has
//!   no contact (the deal is still sent, without a contact).
//! - **CRM deal amount**: net revenue, `total − total_refunded`, never below zero; the stage
//!   says whether it was cancelled.
//! - **ERP quantities**: units ordered minus units an order edit removed. Refunded units stay on
//!   the sales order and are given back by a credit note, so the invoice and its credit notes
//!   add up to what the customer paid, and a returned unit that already shipped never makes the
//!   order ask for less than was shipped.
//! - **ERP prices**: unit prices in the shop's own basis are passed through; the other basis is
//!   derived from the line's own tax (rounded to [`UNIT_PRICE_DP`] places); discounts are net
//!   of tax; amounts are rounded to the currency's smallest unit (cents, whole yen, a Kuwaiti
//!   dinar's thousandths) half away from zero (never banker's rounding).
//! - **Unmapped SKUs are never guessed**: every distinct unmapped SKU, and every line without a
//!   SKU, is a problem, and no sales order is built.

use std::collections::HashMap;

use rust_decimal::{Decimal, RoundingStrategy};

use super::exception::Problem;
use crate::connectors::erp::GUEST_ACCOUNT;
use crate::connectors::{
    CrmContact, CrmDeal, DealStage, ErpAddress, ErpLine, ErpPaymentStatus, ErpSalesOrder,
};
use crate::domain::{
    Address, Currency, FinancialStatus, Lifecycle, NormalizedEmail, Order, OrderLine, Sku,
};

mod erp_changes;

pub use erp_changes::{ErpChange, erp_changes, may_change_document};

/// Decimal places of derived unit prices (net from gross or gross from net). Four, as ERPs
/// keep unit prices, so that quantity × unit price lands on the store's cent.
pub const UNIT_PRICE_DP: u32 = 4;

/// The store SKU → ERP item code lookup (the SKU mapping table).
pub type ItemCodes<'a> = &'a dyn Fn(&Sku) -> Option<String>;

/// The CRM contact for the order's buyer, keyed by their normalised email (the customer
/// account's email, else the order's contact email). `None` when there is no email at all: a
/// guest who gave only a phone cannot be a CRM contact, and the deal goes without one.
///
/// Names come from the customer (for guests, the billing name); the phone is sent in E.164.
/// The store customer id is absent for guest checkouts.
pub fn crm_contact(order: &Order) -> Option<CrmContact> {
    let email = buyer_email(order)?;
    let customer = order.customer.as_ref();
    Some(CrmContact {
        email: email.as_str().to_owned(),
        first_name: customer.and_then(|c| c.first_name.clone()),
        last_name: customer.and_then(|c| c.last_name.clone()),
        phone: customer
            .and_then(|c| c.phone.as_ref())
            .map(|p| p.as_str().to_owned()),
        store_customer_id: customer
            .and_then(|c| c.store_customer_id)
            .map(|id| id.to_string()),
    })
}

/// The CRM deal for the order, keyed by the store order id.
///
/// - `amount` is net revenue: `total − total_refunded`, never below zero, in the currency's
///   smallest unit ([`minor_units`]). A fully
///   refunded order is worth 0; an order cancelled before payment keeps its value and its
///   stage says `cancelled`.
/// - `stage` is the order's [`Lifecycle`], one to one.
/// - `closed_at` is when the sale was made (the order's creation) for every stage past `open`,
///   the cancellation time for cancelled orders, and `None` for open ones (and for orders whose
///   payment was voided without a cancellation).
/// - `contact_email` is [`crm_contact`]'s email, so the contact upserted first is the one the
///   deal points to.
pub fn crm_deal(order: &Order) -> CrmDeal {
    let lifecycle = order.lifecycle();
    let net = order
        .total
        .amount
        .saturating_sub(order.total_refunded.amount)
        .max(Decimal::ZERO);
    let closed_at = match lifecycle {
        Lifecycle::Open => None,
        Lifecycle::Cancelled => order.cancelled_at,
        _ => Some(order.created_at),
    };
    CrmDeal {
        external_id: order.store_order_id.to_string(),
        contact_email: buyer_email(order).map(|e| e.as_str().to_owned()),
        name: order.name.clone(),
        amount: minor_units(net, order.currency),
        currency: order.currency.as_str().to_owned(),
        stage: deal_stage(lifecycle),
        closed_at,
        source_version: order.updated_at,
    }
}

/// The CRM pipeline stage for a lifecycle.
pub fn deal_stage(lifecycle: Lifecycle) -> DealStage {
    match lifecycle {
        Lifecycle::Open => DealStage::Open,
        Lifecycle::Paid => DealStage::Paid,
        Lifecycle::PartiallyFulfilled => DealStage::PartiallyFulfilled,
        Lifecycle::Fulfilled => DealStage::Fulfilled,
        Lifecycle::Cancelled => DealStage::Cancelled,
        Lifecycle::PartiallyRefunded => DealStage::PartiallyRefunded,
        Lifecycle::Refunded => DealStage::Refunded,
    }
}

/// The ERP's payment status for the store's: the store's own, but for an authorisation that
/// lapsed, which is as good as voided to the books.
pub fn erp_payment_status(status: FinancialStatus) -> ErpPaymentStatus {
    match status {
        FinancialStatus::Pending => ErpPaymentStatus::Unpaid,
        FinancialStatus::Authorized => ErpPaymentStatus::Authorized,
        FinancialStatus::PartiallyPaid => ErpPaymentStatus::PartiallyPaid,
        FinancialStatus::Paid => ErpPaymentStatus::Paid,
        FinancialStatus::PartiallyRefunded => ErpPaymentStatus::PartiallyRefunded,
        FinancialStatus::Refunded => ErpPaymentStatus::Refunded,
        FinancialStatus::Voided | FinancialStatus::Expired => ErpPaymentStatus::Voided,
    }
}

/// The ERP sales order for `order`, its lines mapped from store SKUs to ERP item codes through
/// `item_codes`. Every distinct unmapped SKU is one `missing_sku_mapping` problem and every
/// line without a SKU a `line_without_sku` problem; then no sales order is built.
///
/// - Lines: those with [`erp_quantity`] above zero, in store order.
/// - Prices: see [`erp_line`]. `shipping_cost` is gross: the shipping lines, plus — when
///   prices exclude tax — the tax not on any line (the shipping tax). `tax_total` and
///   `total_gross` are the store's `total_tax` and `total`, less the share of the units an
///   edit removed ([`removed_by_edits`]), in the currency's smallest unit;
///   refunds do not lower
///   them (they are credit notes, see [`erp_changes`]).
/// - `payment_status` follows the store's ([`erp_payment_status`]): a payment taken or given
///   back changes the sales order, so orders/paid reaches the ERP as an update.
/// - `customer_account` is the customer's normalised email, or `GUEST` for guest checkouts
///   and customers without an email.
/// - `order_date` is the UTC day the order was placed.
/// - `bill_to` / `ship_to` from the store's addresses ([`erp_address`]); no ship-to when the
///   order has no shipping address (digital goods, pickup).
pub fn erp_sales_order(
    order: &Order,
    item_codes: ItemCodes<'_>,
) -> Result<ErpSalesOrder, Vec<Problem>> {
    let codes = line_item_codes(order, item_codes)?;
    let mut lines = Vec::new();
    let mut problems = Vec::new();
    for (index, line) in erp_lines(order).enumerate() {
        let code = codes.get(&line.line_id).cloned().unwrap_or_default();
        match erp_line(order, line, code) {
            Some(erp) => lines.push(erp),
            None => problems.push(too_large(order, &format!("lines[{index}]"))),
        }
    }
    let line_tax = order
        .lines
        .iter()
        .try_fold(Decimal::ZERO, |sum, l| sum.checked_add(l.tax.amount));
    let shipping_tax = match (order.taxes_included, line_tax) {
        (true, _) => Some(Decimal::ZERO),
        (false, Some(line_tax)) => order
            .total_tax
            .amount
            .checked_sub(line_tax)
            .map(|t| t.max(Decimal::ZERO)),
        (false, None) => None,
    };
    let shipping_cost = shipping_tax.and_then(|t| order.shipping.amount.checked_add(t));
    let Some(shipping_cost) = shipping_cost else {
        problems.push(too_large(order, "shipping_cost"));
        return Err(problems);
    };
    let Some((removed_gross, removed_tax)) = removed_by_edits(order) else {
        problems.push(too_large(order, "total_gross"));
        return Err(problems);
    };
    let (Some(total_gross), Some(tax_total)) = (
        order.total.amount.checked_sub(removed_gross),
        order.total_tax.amount.checked_sub(removed_tax),
    ) else {
        problems.push(too_large(order, "total_gross"));
        return Err(problems);
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(ErpSalesOrder {
        external_id: order.store_order_id.to_string(),
        customer_account: customer_account(order),
        currency: order.currency.as_str().to_owned(),
        order_date: order.created_at.date_naive(),
        lines,
        shipping_cost: minor_units(shipping_cost, order.currency),
        tax_total: minor_units(tax_total, order.currency),
        total_gross: minor_units(total_gross, order.currency),
        payment_status: erp_payment_status(order.financial_status),
        bill_to: order.billing_address.as_ref().map(erp_address),
        ship_to: order.shipping_address.as_ref().map(erp_address),
    })
}

/// The gross amount and the tax of the units order edits removed (a line's share of its
/// discounted amount and tax for each unit gone), which the store's `total` and `total_tax`,
/// the order as placed, still hold: taken off them, the sales order's totals add up to its
/// lines and shipping. `None` on overflow.
fn removed_by_edits(order: &Order) -> Option<(Decimal, Decimal)> {
    let mut gross = Decimal::ZERO;
    let mut tax = Decimal::ZERO;
    for line in &order.lines {
        let removed = line.quantity.saturating_sub(erp_quantity(line));
        if removed == 0 {
            continue;
        }
        let share = Decimal::from(removed).checked_div(Decimal::from(line.quantity))?;
        let discounted = line
            .unit_price
            .amount
            .checked_mul(Decimal::from(line.quantity))?
            .checked_sub(line.total_discount.amount)?;
        let line_gross = if order.taxes_included {
            discounted
        } else {
            discounted.checked_add(line.tax.amount)?
        };
        gross = gross.checked_add(line_gross.checked_mul(share)?)?;
        tax = tax.checked_add(line.tax.amount.checked_mul(share)?)?;
    }
    Some((gross, tax))
}

/// Units of `line` that belong on the ERP sales order: the units ordered minus those an order
/// edit removed. The store's `current_quantity` leaves out refunded units too; they are added
/// back, because a refund is a credit note against the order, not a change to it. Never more
/// than the units originally ordered.
pub fn erp_quantity(line: &OrderLine) -> u32 {
    line.current_quantity
        .saturating_add(line.refunded_quantity)
        .min(line.quantity)
}

/// The order lines that go to the ERP: those with units left ([`erp_quantity`] above zero), in
/// store order. Payload line `i` is the `i`-th of these.
pub fn erp_lines(order: &Order) -> impl Iterator<Item = &OrderLine> {
    order.lines.iter().filter(|line| erp_quantity(line) > 0)
}

/// The store SKU behind a sales-order payload field such as `lines[2].item_code`, for turning
/// the ERP's `unknown_item` into a problem about the SKU (see
/// [`super::exception::Problem::unknown_item`]).
pub fn sku_of_erp_field<'o>(order: &'o Order, field: &str) -> Option<&'o Sku> {
    let index: usize = field
        .strip_prefix("lines[")?
        .split_once(']')?
        .0
        .parse()
        .ok()?;
    erp_lines(order).nth(index)?.sku.as_ref()
}

/// One ERP line for `line` (at [`erp_quantity`] units) with item code `item_code`; `None` only
/// when the amounts are too large to compute.
///
/// The store gives one unit price, in its own basis (tax included or not), a discount on the
/// whole line in that basis, and the tax on the whole line after the discount. The line's own
/// tax ratio (tax ÷ discounted amount) gives the other basis:
/// - prices exclude tax: `unit_price_net` is the store's price, `unit_price_gross` is it times
///   (1 + ratio); the discount is the store's;
/// - prices include tax: `unit_price_gross` is the store's price, `unit_price_net` is it with
///   the tax share taken out, and so is the discount.
///
/// So `quantity × unit_price_net − discount + tax` is the line's gross amount. When an edit
/// removed units, discount and tax are scaled to the units left.
pub fn erp_line(order: &Order, line: &OrderLine, item_code: String) -> Option<ErpLine> {
    let units = erp_quantity(line);
    let ordered = Decimal::from(line.quantity.max(1));
    let share = Decimal::from(units).checked_div(ordered)?;
    let unit_price = line.unit_price.amount;
    let discount = line.total_discount.amount;
    let tax = line.tax.amount;
    // The discounted line amount, in the shop's basis, for all units originally ordered.
    let discounted = unit_price.checked_mul(ordered)?.checked_sub(discount)?;
    let (unit_net, unit_gross, discount_net) = if order.taxes_included {
        let net = discounted.checked_sub(tax)?;
        let net_share = ratio(net, discounted)?;
        (
            unit_price.checked_mul(net_share)?,
            unit_price,
            discount.checked_mul(net_share)?,
        )
    } else {
        let gross_share = ratio(discounted.checked_add(tax)?, discounted)?;
        (unit_price, unit_price.checked_mul(gross_share)?, discount)
    };
    Some(ErpLine {
        item_code,
        quantity: Decimal::from(units),
        unit_price_net: unit_price_rounded(unit_net),
        unit_price_gross: unit_price_rounded(unit_gross),
        discount: minor_units(discount_net.checked_mul(share)?, order.currency),
        tax: minor_units(tax.checked_mul(share)?, order.currency),
    })
}

/// `part ÷ whole`, or 1 when the whole is zero (a free line has no tax to derive a rate from).
fn ratio(part: Decimal, whole: Decimal) -> Option<Decimal> {
    if whole.is_zero() {
        Some(Decimal::ONE)
    } else {
        part.checked_div(whole)
    }
}

/// An ERP address from a store address. The name is the addressee's, followed by the company
/// for business addresses ("Ana Díaz, Northwind Traders"), or the company alone. Nothing is
/// shortened: a value too long for the ERP is reported by validation, with the original kept
/// for the person fixing it. Absent texts become empty strings (and validation says when the
/// ERP requires them).
pub fn erp_address(address: &Address) -> ErpAddress {
    let name = match (address.name.as_deref(), address.company.as_deref()) {
        (Some(name), Some(company)) if name != company => format!("{name}, {company}"),
        (Some(name), _) => name.to_owned(),
        (None, Some(company)) => company.to_owned(),
        (None, None) => String::new(),
    };
    ErpAddress {
        name,
        street: address.address1.clone().unwrap_or_default(),
        street2: address.address2.clone(),
        city: address.city.clone().unwrap_or_default(),
        postal_code: address.zip.clone(),
        region: address.province_code.clone(),
        country: address
            .country_code
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default(),
    }
}

/// The ERP customer account: the customer's normalised email, or `GUEST` for a guest checkout
/// (whose email still reaches the CRM) and for a customer without an email.
pub fn customer_account(order: &Order) -> String {
    match buyer_email(order) {
        Some(email) if !order.is_guest_checkout() => email.as_str().to_owned(),
        _ => GUEST_ACCOUNT.to_owned(),
    }
}

/// The buyer's email: the customer account's, else the order's contact email.
fn buyer_email(order: &Order) -> Option<&NormalizedEmail> {
    order
        .customer
        .as_ref()
        .and_then(|c| c.email.as_ref())
        .or(order.email.as_ref())
}

/// The item code of every line that goes to the ERP, by line id; or a problem per distinct
/// unmapped SKU (naming every payload line that carries it) and per line without a SKU. A
/// blank item code counts as unmapped.
fn line_item_codes(
    order: &Order,
    item_codes: ItemCodes<'_>,
) -> Result<HashMap<i64, String>, Vec<Problem>> {
    let mut codes = HashMap::new();
    let mut problems: Vec<Problem> = Vec::new();
    let mut unmapped: HashMap<&Sku, usize> = HashMap::new();
    for (index, line) in erp_lines(order).enumerate() {
        let field = format!("lines[{index}].item_code");
        let Some(sku) = &line.sku else {
            problems.push(Problem::line_without_sku(&order.name, &line.title, field));
            continue;
        };
        match item_codes(sku).filter(|code| !code.trim().is_empty()) {
            Some(code) => {
                codes.insert(line.line_id, code);
            }
            None => match unmapped.get(sku) {
                Some(&at) => problems[at].fields.push(field),
                None => {
                    unmapped.insert(sku, problems.len());
                    problems.push(Problem::missing_sku_mapping(&order.name, sku, vec![field]));
                }
            },
        }
    }
    if problems.is_empty() {
        Ok(codes)
    } else {
        Err(problems)
    }
}

/// Amounts too large to compute (a corrupt order, never a real one).
fn too_large(order: &Order, field: &str) -> Problem {
    Problem::invalid_field(
        super::exception::Destination::Erp,
        &order.name,
        field,
        "has amounts too large to compute; check the order in the store",
    )
}

/// An amount rounded to its currency's smallest unit (cents; whole yen; thousandths of a
/// Kuwaiti dinar), halves away from zero as invoices round, always with that many places.
pub fn minor_units(amount: Decimal, currency: Currency) -> Decimal {
    let digits = currency.minor_unit_digits();
    let mut rounded = amount.round_dp_with_strategy(digits, RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(digits);
    rounded
}

/// A unit price to [`UNIT_PRICE_DP`] places, halves away from zero, shown with at least two
/// places and no trailing zeros beyond them ("25.00", "20.8333").
fn unit_price_rounded(price: Decimal) -> Decimal {
    let mut rounded = price
        .round_dp_with_strategy(UNIT_PRICE_DP, RoundingStrategy::MidpointAwayFromZero)
        .normalize();
    if rounded.scale() < 2 {
        rounded.rescale(2);
    }
    rounded
}

#[cfg(test)]
mod tests;
