//! Shopify's REST webhook and Admin API payloads (API version 2024-10), read into the canonical
//! types. Unknown fields are ignored; plain string money fields are used (`total_price`, not
//! `total_price_set`), in the shop currency (`currency`). A missing `id` or `updated_at` is an
//! error; missing optional data (guest checkout, no shipping address for digital goods) is not.
//!
//! Topics: orders/create, orders/updated, orders/paid, orders/fulfilled,
//! orders/partially_fulfilled and orders/cancelled carry the order ([`parse_order`]);
//! refunds/create carries a refund ([`parse_refund`]); customers/create and customers/update a
//! customer ([`parse_customer`]). orders/edited is different: it carries an `order_edit`
//! describing the change, not the order ([`parse_order_edit`]); the order itself arrives with
//! the orders/updated that Shopify sends for the same edit, or from the Admin API.

#[cfg(test)]
mod fixtures;
mod json;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json_borrow::Value;

use json::{BODY, Obj, count, currency, decimal, flag, int, timestamp};
pub use json::{ParseError, parse_json};

use super::address::{Address, CountryCode};
use super::customer::{CustomerRef, NormalizedEmail, Phone, StoreCustomer};
use super::money::{Currency, Money};
use super::order::{
    CancelReason, FinancialStatus, Fulfillment, FulfillmentLine, FulfillmentStatus, Order,
    OrderLine,
};
use super::refund::{Refund, RefundLine};
use super::sku::Sku;

/// An orders/edited notice: which order changed, not what it now looks like.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderEdit {
    /// The store's id for the edit.
    pub edit_id: i64,
    /// The order that was edited.
    pub order_id: i64,
    /// When the edit was started.
    pub created_at: DateTime<Utc>,
    /// When the edit was saved to the order (sent from API version 2024-07 on).
    pub committed_at: Option<DateTime<Utc>>,
}

/// Reads an order payload (orders/* webhooks except orders/edited, or the Admin API's
/// `{"order": {…}}`).
pub fn parse_order(body: &[u8]) -> Result<Order, ParseError> {
    order_from_json(&parse_json(body)?)
}

/// Reads an order from JSON already parsed, e.g. one entry of an Admin API `orders` page.
pub fn order_from_json(value: &Value<'_>) -> Result<Order, ParseError> {
    let root = Obj::root(value)?;
    if !root.has("id") {
        if let Some(inner) = root.object("order")? {
            return read_order(&inner);
        }
        if root.has("order_edit") {
            return Err(ParseError::Unusable {
                field: BODY.to_owned(),
                reason: "this is an orders/edited notice (an order_edit), not an order; \
                         the edited order arrives with orders/updated"
                    .to_owned(),
            });
        }
    }
    read_order(&root)
}

/// What can still be read of an order or refund payload that cannot be read as a whole: which
/// order it is about, and how recent the state it carried was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderReference {
    /// The store's id of the order.
    pub order_id: i64,
    /// How recent the unread state was, when that much could be read: an order's `updated_at`;
    /// for a refund, a microsecond before its `created_at`, which is how recent an order is
    /// once the refund is applied to it (see `store::ingest`).
    pub as_of: Option<DateTime<Utc>>,
}

/// The order an unreadable order payload (`refund == false`) or refunds/create payload
/// (`refund == true`) is about, if its id can be read; `None` when not even that can.
pub fn order_reference(value: &Value<'_>, refund: bool) -> Option<OrderReference> {
    let root = Obj::root(value).ok()?;
    let (wrapper, id_key, at_key) = if refund {
        ("refund", "order_id", "created_at")
    } else {
        ("order", "id", "updated_at")
    };
    let object = match root.object(wrapper) {
        Ok(Some(inner)) if !root.has("id") => inner,
        _ => root,
    };
    let order_id = object.opt(id_key, int).ok().flatten()?;
    let as_of = object.opt(at_key, timestamp).ok().flatten();
    Some(OrderReference {
        order_id,
        as_of: if refund {
            as_of.map(|at| at - chrono::TimeDelta::microseconds(1))
        } else {
            as_of
        },
    })
}

/// Reads a refunds/create payload.
pub fn parse_refund(body: &[u8]) -> Result<Refund, ParseError> {
    refund_from_json(&parse_json(body)?)
}

/// Reads a refunds/create payload already parsed.
pub fn refund_from_json(value: &Value<'_>) -> Result<Refund, ParseError> {
    let root = Obj::root(value)?;
    match root.object("refund")? {
        Some(inner) if !root.has("id") => read_refund(&inner, None),
        _ => read_refund(&root, None),
    }
}

/// Reads a customers/create or customers/update payload (or the Admin API's
/// `{"customer": {…}}`).
pub fn parse_customer(body: &[u8]) -> Result<StoreCustomer, ParseError> {
    customer_from_json(&parse_json(body)?)
}

/// Reads a customers/create or customers/update payload already parsed.
pub fn customer_from_json(value: &Value<'_>) -> Result<StoreCustomer, ParseError> {
    let root = Obj::root(value)?;
    let customer = match root.object("customer")? {
        Some(inner) if !root.has("id") => inner,
        _ => root,
    };
    let default_address = customer
        .object("default_address")?
        .map(|a| read_address(&a))
        .transpose()?;
    let region = default_address.as_ref().and_then(|a| a.country_code);
    Ok(StoreCustomer {
        id: customer.req("id", int)?,
        email: read_email(&customer, "email")?,
        phone: read_phone(&customer, "phone", region)?,
        first_name: customer.text("first_name")?,
        last_name: customer.text("last_name")?,
        created_at: customer.req("created_at", timestamp)?,
        updated_at: customer.req("updated_at", timestamp)?,
        default_address,
    })
}

/// Reads an orders/edited payload (`{"order_edit": {…}}`).
pub fn parse_order_edit(body: &[u8]) -> Result<OrderEdit, ParseError> {
    order_edit_from_json(&parse_json(body)?)
}

/// Reads an orders/edited payload already parsed.
pub fn order_edit_from_json(value: &Value<'_>) -> Result<OrderEdit, ParseError> {
    let root = Obj::root(value)?;
    let edit = root
        .object("order_edit")?
        .ok_or_else(|| ParseError::Missing {
            field: "order_edit".to_owned(),
        })?;
    Ok(OrderEdit {
        edit_id: edit.req("id", int)?,
        order_id: edit.req("order_id", int)?,
        created_at: edit.req("created_at", timestamp)?,
        committed_at: edit.opt("committed_at", timestamp)?,
    })
}

fn read_order(o: &Obj<'_>) -> Result<Order, ParseError> {
    let store_order_id = o.req("id", int)?;
    let updated_at = o.req("updated_at", timestamp)?;
    let currency = o.req("currency", currency)?;
    let order_number = o.req("order_number", int)?;
    let billing_address = o
        .object("billing_address")?
        .map(|a| read_address(&a))
        .transpose()?;
    let shipping_address = o
        .object("shipping_address")?
        .map(|a| read_address(&a))
        .transpose()?;
    let region = [&billing_address, &shipping_address]
        .into_iter()
        .flatten()
        .find_map(|a| a.country_code);

    let email = match read_email(o, "email")? {
        Some(email) => Some(email),
        None => read_email(o, "contact_email")?,
    };
    let phone = read_phone(o, "phone", region)?;
    let customer = read_customer_ref(o, &email, &phone, billing_address.as_ref(), region)?;

    let refunds = o
        .list("refunds")?
        .iter()
        .map(|r| read_refund(r, Some(currency)))
        .collect::<Result<Vec<_>, _>>()?;
    let total_refunded = Money::sum(currency, refunds.iter().map(|r| r.amount))
        .map_err(|err| o.unusable("refunds", err.to_string()))?;
    let mut refunded: HashMap<i64, u32> = HashMap::new();
    for line in refunds.iter().flat_map(|r| &r.lines) {
        let units = refunded.entry(line.line_item_id).or_default();
        *units = units.saturating_add(line.quantity);
    }
    let fulfillments = read_fulfillments(o)?;
    // Some payloads omit `fulfillments`; then, and only then, a line's own status says whether
    // it shipped (a line whose fulfilment is still `pending` may already say "fulfilled").
    let fulfillments_listed = !o.list("fulfillments")?.is_empty();
    let mut shipped: HashMap<i64, u32> = HashMap::new();
    for line in fulfillments.iter().flat_map(|f| &f.lines) {
        let units = shipped.entry(line.line_id).or_default();
        *units = units.saturating_add(line.quantity);
    }
    let lines = o
        .list("line_items")?
        .iter()
        .map(|l| {
            read_line(
                l,
                currency,
                fulfillments_listed.then_some(&shipped),
                &refunded,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;

    let shipping_lines: Vec<_> = o
        .list("shipping_lines")?
        .into_iter()
        .filter(|s| !matches!(s.opt("is_removed", flag), Ok(Some(true))))
        .collect();

    Ok(Order {
        store_order_id,
        name: o
            .text("name")?
            .unwrap_or_else(|| format!("#{order_number}")),
        order_number,
        created_at: o.req("created_at", timestamp)?,
        updated_at,
        currency,
        financial_status: read_financial_status(o)?,
        fulfillment_status: read_fulfillment_status(o, "fulfillment_status")?,
        cancelled_at: o.opt("cancelled_at", timestamp)?,
        cancel_reason: o.text("cancel_reason")?.map(|r| CancelReason::parse(&r)),
        customer,
        email,
        lines,
        subtotal: o.money("subtotal_price", currency)?,
        total_discounts: o.money_or_zero("total_discounts", currency)?,
        total_tax: o.money_or_zero("total_tax", currency)?,
        shipping: shipping_charged(&shipping_lines, currency)?,
        total: o.money("total_price", currency)?,
        total_refunded,
        billing_address,
        shipping_address,
        taxes_included: o.opt("taxes_included", flag)?.unwrap_or(false),
        fulfillments,
        refunds,
    })
}

/// What the customer pays for shipping: each line's price less its discounts. A shipping
/// discount (a free-shipping code) leaves `price` as it was and is allocated to the line
/// (`discount_allocations`); `discounted_price` carries the line's own discounts, and not
/// always an order-level code's. So the lower of the two readings, never below zero.
fn shipping_charged(lines: &[Obj<'_>], currency: Currency) -> Result<Money, ParseError> {
    let mut total = Money::zero(currency);
    for line in lines {
        let price = line.money("price", currency)?;
        let allocated = Obj::sum(&line.list("discount_allocations")?, "amount", currency)?;
        let after_allocations = price
            .amount
            .checked_sub(allocated.amount)
            .ok_or_else(|| line.unusable("discount_allocations", "the amounts are too large"))?;
        let discounted = line
            .opt("discounted_price", decimal)?
            .unwrap_or(price.amount);
        let charged = after_allocations.min(discounted).max(Decimal::ZERO);
        total = total
            .checked_add(Money::new(charged, currency))
            .map_err(|err| line.unusable("price", err.to_string()))?;
    }
    Ok(total)
}

fn read_financial_status(o: &Obj<'_>) -> Result<FinancialStatus, ParseError> {
    // Very old orders and some draft conversions carry no financial status: nothing paid yet.
    let Some(raw) = o.text("financial_status")? else {
        return Ok(FinancialStatus::Pending);
    };
    FinancialStatus::parse(&raw).ok_or_else(|| ParseError::Invalid {
        field: o.path_of("financial_status"),
        found: format!("{raw:?}"),
        expected: format!(
            "one of {}",
            FinancialStatus::ALL.map(FinancialStatus::as_str).join(", ")
        ),
    })
}

fn read_fulfillment_status(o: &Obj<'_>, key: &str) -> Result<FulfillmentStatus, ParseError> {
    let raw = o.text(key)?;
    FulfillmentStatus::parse(raw.as_deref()).ok_or_else(|| ParseError::Invalid {
        field: o.path_of(key),
        found: format!("{:?}", raw.unwrap_or_default()),
        expected: "one of unfulfilled, partial, fulfilled (or null)".to_owned(),
    })
}

/// The customer the order belongs to. A guest checkout has no `customer` object (or one
/// without an id); the order's own email, phone and billing name then identify the buyer.
fn read_customer_ref(
    o: &Obj<'_>,
    order_email: &Option<NormalizedEmail>,
    order_phone: &Option<Phone>,
    billing: Option<&Address>,
    region: Option<CountryCode>,
) -> Result<Option<CustomerRef>, ParseError> {
    // Shopify's addresses carry first and last name separately; a guest's name comes from there.
    let billing_obj = o.object("billing_address")?;
    let billing_first = billing_obj
        .as_ref()
        .map(|b| b.text("first_name"))
        .transpose()?
        .flatten();
    let billing_last = billing_obj
        .as_ref()
        .map(|b| b.text("last_name"))
        .transpose()?
        .flatten();
    let found = match o.object("customer")? {
        Some(c) => {
            let own_region = c
                .object("default_address")?
                .map(|a| read_address(&a))
                .transpose()?
                .and_then(|a| a.country_code)
                .or(region);
            CustomerRef {
                store_customer_id: c.opt("id", int)?,
                email: read_email(&c, "email")?.or_else(|| order_email.clone()),
                phone: read_phone(&c, "phone", own_region)?.or_else(|| order_phone.clone()),
                first_name: c.text("first_name")?.or_else(|| billing_first.clone()),
                last_name: c.text("last_name")?.or_else(|| billing_last.clone()),
                updated_at: c.opt("updated_at", timestamp)?,
            }
        }
        None => CustomerRef {
            store_customer_id: None,
            email: order_email.clone(),
            phone: order_phone
                .clone()
                .or_else(|| billing.and_then(Address::phone_e164)),
            first_name: billing_first,
            last_name: billing_last,
            updated_at: None,
        },
    };
    Ok((found != CustomerRef::default()).then_some(found))
}

/// `shipped`: units shipped per line, from the order's fulfilments; `None` when the payload
/// lists none, and the line's own status is all there is.
fn read_line(
    l: &Obj<'_>,
    currency: Currency,
    shipped: Option<&HashMap<i64, u32>>,
    refunded: &HashMap<i64, u32>,
) -> Result<OrderLine, ParseError> {
    let line_id = l.req("id", int)?;
    let quantity = l.req("quantity", count)?;
    let title = match l.text("name")? {
        Some(name) => name,
        None => l.text("title")?.ok_or_else(|| ParseError::Missing {
            field: l.path_of("title"),
        })?,
    };
    // Since 2019 discounts are reported per line in `discount_allocations`; the older
    // `total_discount` is used only when there are none.
    let allocations = l.list("discount_allocations")?;
    let total_discount = if allocations.is_empty() {
        l.money_or_zero("total_discount", currency)?
    } else {
        Obj::sum(&allocations, "amount", currency)?
    };
    // Units shipped: from the order's fulfilments when it lists them, otherwise from the
    // line's own status (some payloads omit `fulfillments`).
    let fulfilled_quantity = match shipped {
        Some(shipped) => shipped.get(&line_id).copied().unwrap_or(0),
        None if l.text("fulfillment_status")?.as_deref() == Some("fulfilled") => quantity,
        None => 0,
    };
    Ok(OrderLine {
        line_id,
        sku: l.parsed("sku", "a usable SKU", Sku::parse)?,
        title,
        quantity,
        current_quantity: l.opt("current_quantity", count)?.unwrap_or(quantity),
        unit_price: l.money("price", currency)?,
        total_discount,
        tax: Obj::sum(&l.list("tax_lines")?, "price", currency)?,
        fulfilled_quantity: fulfilled_quantity.min(quantity),
        refunded_quantity: refunded.get(&line_id).copied().unwrap_or(0).min(quantity),
    })
}

/// The shipments: fulfilments whose status is `success`. Shopify's `pending` and `open` are a
/// fulfilment service's that has not shipped yet, and may still fail or be cancelled; counted
/// as shipped, they would reach the ERP as a shipment that never left. (A fulfilment without
/// a status, as some older payloads have, is taken as shipped.)
fn read_fulfillments(o: &Obj<'_>) -> Result<Vec<Fulfillment>, ParseError> {
    let mut fulfillments = Vec::new();
    for f in o.list("fulfillments")? {
        let status = f.text("status")?;
        if status.as_deref().is_some_and(|status| status != "success") {
            continue;
        }
        let lines = f
            .list("line_items")?
            .iter()
            .map(|l| {
                Ok(FulfillmentLine {
                    line_id: l.req("id", int)?,
                    quantity: l.req("quantity", count)?,
                })
            })
            .collect::<Result<Vec<_>, ParseError>>()?;
        fulfillments.push(Fulfillment {
            fulfillment_id: f.req("id", int)?,
            created_at: f.req("created_at", timestamp)?,
            tracking_number: f.text("tracking_number")?,
            lines,
        });
    }
    Ok(fulfillments)
}

/// A refund, standalone (refunds/create, `order_currency` unknown) or inside an order.
fn read_refund(r: &Obj<'_>, order_currency: Option<Currency>) -> Result<Refund, ParseError> {
    let transactions = r.list("transactions")?;
    let refund_lines = r.list("refund_line_items")?;
    let currency = match order_currency {
        Some(currency) => currency,
        None => {
            refund_currency(&transactions, &refund_lines)?.ok_or_else(|| ParseError::Unusable {
                field: r.path_of("transactions"),
                reason: "the refund has no transaction or line that says which currency it is in"
                    .to_owned(),
            })?
        }
    };
    let mut amount = Money::zero(currency);
    for t in &transactions {
        let kind = t.text("kind")?;
        let status = t.text("status")?;
        // Only money that actually went back counts: failed or pending attempts do not.
        if kind.is_some_and(|k| k != "refund") || status.is_some_and(|s| s != "success") {
            continue;
        }
        let refunded = match t.opt("currency", json::currency)? {
            Some(other) if other != currency => {
                shop_money(t, currency)?.ok_or_else(|| ParseError::Invalid {
                    field: t.path_of("currency"),
                    found: format!("{:?}", other.as_str()),
                    expected: format!("the order's currency, {currency}"),
                })?
            }
            _ => t.money("amount", currency)?,
        };
        amount = amount
            .checked_add(refunded)
            .map_err(|err| t.unusable("amount", err.to_string()))?;
    }
    let lines = refund_lines
        .iter()
        .map(|l| {
            Ok(RefundLine {
                line_item_id: l.req("line_item_id", int)?,
                quantity: l.req("quantity", count)?,
                subtotal: l.money_or_zero("subtotal", currency)?,
                total_tax: l.money_or_zero("total_tax", currency)?,
            })
        })
        .collect::<Result<Vec<_>, ParseError>>()?;
    Ok(Refund {
        refund_id: r.req("id", int)?,
        order_id: r.req("order_id", int)?,
        created_at: r.req("created_at", timestamp)?,
        lines,
        amount,
    })
}

/// A transaction's amount in the shop's currency, from `amount_set.shop_money`, for payments
/// the customer made in another (presentment) currency; `None` when the set is absent.
fn shop_money(t: &Obj<'_>, currency: Currency) -> Result<Option<Money>, ParseError> {
    let Some(set) = t.object("amount_set")? else {
        return Ok(None);
    };
    let Some(shop) = set.object("shop_money")? else {
        return Ok(None);
    };
    if shop.opt("currency_code", json::currency)? != Some(currency) {
        return Ok(None);
    }
    shop.money("amount", currency).map(Some)
}

/// The shop currency a standalone refund is in: the shop-money side of its transactions or
/// lines when present (a customer may have paid in another currency), else the transactions'
/// own currency.
fn refund_currency(
    transactions: &[Obj<'_>],
    lines: &[Obj<'_>],
) -> Result<Option<Currency>, ParseError> {
    let sets = transactions
        .iter()
        .map(|t| (t, "amount_set"))
        .chain(lines.iter().map(|l| (l, "subtotal_set")));
    for (item, key) in sets {
        if let Some(set) = item.object(key)?
            && let Some(shop) = set.object("shop_money")?
            && let Some(found) = shop.opt("currency_code", currency)?
        {
            return Ok(Some(found));
        }
    }
    for t in transactions {
        if let Some(found) = t.opt("currency", currency)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

fn read_address(a: &Obj<'_>) -> Result<Address, ParseError> {
    let name = match a.text("name")? {
        Some(name) => Some(name),
        None => {
            let parts: Vec<String> = [a.text("first_name")?, a.text("last_name")?]
                .into_iter()
                .flatten()
                .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        }
    };
    Ok(Address {
        name,
        company: a.text("company")?,
        address1: a.text("address1")?,
        address2: a.text("address2")?,
        city: a.text("city")?,
        province_code: a.text("province_code")?,
        country_code: a.parsed(
            "country_code",
            "a two-letter country code",
            CountryCode::parse,
        )?,
        zip: a.text("zip")?,
        phone: a.text("phone")?,
    })
}

fn read_email(o: &Obj<'_>, key: &str) -> Result<Option<NormalizedEmail>, ParseError> {
    o.parsed(key, "an email address", |raw| {
        NormalizedEmail::parse(raw).map_err(|_| "check for typos and spaces")
    })
}

/// A phone number in E.164, when the text reads as one. Shoppers type phone numbers freely
/// (a national number with no address to tell its country, "call after 6"), and Shopify keeps
/// what they typed; such a number is left out rather than the order or customer refused,
/// which would keep it from every destination. (The raw webhook keeps the text as typed.)
fn read_phone(
    o: &Obj<'_>,
    key: &str,
    region: Option<CountryCode>,
) -> Result<Option<Phone>, ParseError> {
    Ok(o.text(key)?.and_then(|raw| Phone::parse(&raw, region).ok()))
}
