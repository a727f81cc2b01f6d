//! Later versions of an order: paid, shipped (all or part), cancelled, refunded. Each takes an
//! order payload and returns the next one, with a strictly later `updated_at`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rand::Rng;
use rand::seq::SliceRandom;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::{Map, Value, json};

use super::catalogue::CANCEL_REASONS;
use super::{OrderFactory, cents, decimal_of, money, money_set, number, objects};

/// What an evolution needs to know about one line of the order as it stands.
struct LineState {
    id: i64,
    quantity: u32,
    /// Price × quantity − discounts.
    net: Decimal,
    tax: Decimal,
    shipped: u32,
    refunded: u32,
}

impl LineState {
    /// Units neither shipped nor refunded.
    fn open(&self) -> u32 {
        self.quantity
            .saturating_sub(self.shipped.saturating_add(self.refunded))
    }
}

/// The refunds/create payload for the most recent refund on `order` (the same object Shopify
/// lists in the order's `refunds`); `None` when there is none.
pub fn latest_refund(order: &Value) -> Option<Value> {
    order.get("refunds")?.as_array()?.last().cloned()
}

impl OrderFactory {
    /// The order after payment was captured (orders/paid).
    pub fn paid(&mut self, order: &Value) -> Value {
        let (mut map, _) = self.next_version(order);
        let status = text_of(&map, "financial_status");
        if matches!(
            status.as_str(),
            "" | "pending" | "authorized" | "partially_paid"
        ) {
            map.insert("financial_status".into(), json!("paid"));
            map.insert("total_outstanding".into(), money(Decimal::ZERO));
        }
        Value::Object(map)
    }

    /// The order after everything still open shipped (orders/fulfilled).
    pub fn fulfilled(&mut self, order: &Value) -> Value {
        let (mut map, at) = self.next_version(order);
        let plan: Vec<(i64, u32)> = line_states(&map)
            .iter()
            .filter(|line| line.open() > 0)
            .map(|line| (line.id, line.open()))
            .collect();
        self.ship(&mut map, at, &plan);
        Value::Object(map)
    }

    /// The order after some, not all, of what is open shipped (orders/partially_fulfilled).
    /// When a single unit is left, shipping part of it is impossible, so it ships and the order
    /// is fulfilled.
    pub fn partially_fulfilled(&mut self, order: &Value) -> Value {
        let (mut map, at) = self.next_version(order);
        let lines = line_states(&map);
        let open: u32 = lines.iter().map(LineState::open).sum();
        let mut budget = if open >= 2 {
            self.rng.gen_range(1..open)
        } else {
            open
        };
        let mut plan = Vec::new();
        for line in &lines {
            let units = line.open().min(budget);
            if units > 0 {
                plan.push((line.id, units));
                budget -= units;
            }
        }
        self.ship(&mut map, at, &plan);
        Value::Object(map)
    }

    /// The order after staff cancelled it (orders/cancelled): a paid order is refunded what is
    /// left of it, an unpaid one has its payment voided.
    pub fn cancelled(&mut self, order: &Value) -> Value {
        let (mut map, at) = self.next_version(order);
        let reason = *CANCEL_REASONS.choose(&mut self.rng).unwrap_or(&"customer");
        map.insert("cancel_reason".into(), json!(reason));
        map.insert("cancelled_at".into(), json!(self.stamp(at)));
        map.insert("closed_at".into(), json!(self.stamp(at)));
        match text_of(&map, "financial_status").as_str() {
            "paid" | "partially_paid" | "partially_refunded" => {
                let left = refundable(&map);
                let lines: Vec<(i64, u32, Decimal, Decimal)> = line_states(&map)
                    .iter()
                    .filter(|line| line.open() > 0)
                    .map(|line| {
                        let (net, tax) = share(line, line.open());
                        (line.id, line.open(), net, tax)
                    })
                    .collect();
                if left > Decimal::ZERO {
                    self.add_refund(&mut map, at, left, &lines, "cancel");
                }
                map.insert("financial_status".into(), json!("refunded"));
            }
            "refunded" | "voided" => {}
            _ => {
                map.insert("financial_status".into(), json!("voided"));
            }
        }
        refresh_fulfillment(&mut map);
        Value::Object(map)
    }

    /// The order after `amount` was refunded (at most what is left to refund). Whole units
    /// whose value fits in the amount are refunded as items, last line first; the rest is a
    /// money-only adjustment. [`latest_refund`] gives the matching refunds/create payload.
    pub fn refunded(&mut self, order: &Value, amount: Decimal) -> Value {
        let (mut map, at) = self.next_version(order);
        let amount = cents(amount).min(refundable(&map));
        if amount <= Decimal::ZERO {
            return Value::Object(map);
        }
        let taxes_included = map.get("taxes_included").and_then(Value::as_bool) == Some(true);
        let mut left = amount;
        let mut lines = Vec::new();
        for line in line_states(&map).iter().rev() {
            let available = line.quantity.saturating_sub(line.refunded);
            if available == 0 || line.quantity == 0 {
                continue;
            }
            let (net, tax) = share(line, 1);
            let unit_value = if taxes_included { net } else { net + tax };
            if unit_value <= Decimal::ZERO {
                continue;
            }
            let units = (left / unit_value)
                .floor()
                .to_u32()
                .unwrap_or(0)
                .min(available);
            if units > 0 {
                let (net, tax) = share(line, units);
                left -= unit_value * Decimal::from(units);
                lines.push((line.id, units, net, tax));
            }
        }
        self.add_refund(&mut map, at, amount, &lines, "return");
        let status = if refundable(&map) <= Decimal::ZERO {
            "refunded"
        } else {
            "partially_refunded"
        };
        map.insert("financial_status".into(), json!(status));
        refresh_fulfillment(&mut map);
        Value::Object(map)
    }

    /// A copy of `order` with a strictly later `updated_at`, and that moment.
    fn next_version(&mut self, order: &Value) -> (Map<String, Value>, DateTime<Utc>) {
        let mut map = order.as_object().cloned().unwrap_or_default();
        let last = map
            .get("updated_at")
            .and_then(Value::as_str)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map_or(self.clock, |at| at.with_timezone(&Utc));
        let step = self.rng.gen_range(60..=86_400);
        let at = self.advance(last, step);
        map.insert("updated_at".into(), json!(self.stamp(at)));
        (map, at)
    }

    /// Records a shipment of `plan` (line id, units) and updates the shipping statuses.
    fn ship(&mut self, map: &mut Map<String, Value>, at: DateTime<Utc>, plan: &[(i64, u32)]) {
        if !plan.is_empty() {
            let id = self.id();
            let tracking: String = (0..16)
                .map(|_| {
                    char::from(
                        *b"0123456789ABCDEFGHJKLMNPRSTUVWXY"
                            .choose(&mut self.rng)
                            .unwrap_or(&b'0'),
                    )
                })
                .collect();
            let tracking = format!("1Z{tracking}");
            let count = objects(map, "fulfillments").count() + 1;
            let fulfillment = json!({
                "id": id, "admin_graphql_api_id": format!("gid://shopify/Fulfillment/{id}"),
                "order_id": map.get("id").cloned().unwrap_or(Value::Null),
                "name": format!("{}.{count}", text_of(map, "name")),
                "status": "success", "created_at": self.stamp(at), "updated_at": self.stamp(at),
                "service": "manual", "shipment_status": null, "location_id": 487838322,
                "tracking_company": "UPS", "tracking_number": tracking,
                "tracking_numbers": [tracking],
                "tracking_url": format!("https://www.ups.com/track?tracknum={tracking}"),
                "line_items": plan
                    .iter()
                    .map(|(line_id, units)| json!({"id": line_id, "quantity": units}))
                    .collect::<Vec<_>>(),
            });
            push(map, "fulfillments", fulfillment);
        }
        refresh_fulfillment(map);
    }

    /// Appends a refund of `amount` covering `lines` (line id, units, net, tax).
    fn add_refund(
        &mut self,
        map: &mut Map<String, Value>,
        at: DateTime<Utc>,
        amount: Decimal,
        lines: &[(i64, u32, Decimal, Decimal)],
        restock_type: &str,
    ) {
        let currency = text_of(map, "currency");
        let order_id = map.get("id").cloned().unwrap_or(Value::Null);
        let id = self.id();
        let refund_lines: Vec<Value> = lines
            .iter()
            .map(|&(line_id, units, net, tax)| {
                let rli = self.id();
                // Shopify writes these two as bare JSON numbers, unlike every other amount.
                json!({
                    "id": rli, "line_item_id": line_id, "location_id": 487838322,
                    "quantity": units, "restock_type": restock_type,
                    "subtotal": number(net), "total_tax": number(tax),
                    "subtotal_set": money_set(net, &currency),
                    "total_tax_set": money_set(tax, &currency),
                })
            })
            .collect();
        // Money beyond the refunded items' value shows up as a "refund discrepancy" adjustment.
        let items: Decimal = lines.iter().map(|&(_, _, net, tax)| net + tax).sum();
        let adjustments = if items == amount {
            json!([])
        } else {
            json!([{
                "id": self.id(), "order_id": order_id, "refund_id": id,
                "amount": money(items - amount), "tax_amount": money(Decimal::ZERO),
                "kind": "refund_discrepancy", "reason": "Refund discrepancy",
            }])
        };
        let transaction_id = self.id();
        let refund = json!({
            "id": id, "admin_graphql_api_id": format!("gid://shopify/Refund/{id}"),
            "order_id": order_id, "created_at": self.stamp(at), "processed_at": self.stamp(at),
            "note": null, "restock": !lines.is_empty(), "user_id": null, "duties": [],
            "refund_line_items": refund_lines, "order_adjustments": adjustments,
            "transactions": [{
                "id": transaction_id, "order_id": order_id, "kind": "refund",
                "gateway": "shopify_payments", "status": "success", "message": "Refund succeeded",
                "created_at": self.stamp(at), "test": false, "authorization": null,
                "currency": currency, "amount": money(amount), "parent_id": null,
            }],
        });
        push(map, "refunds", refund);
        let total = decimal_of(map.get("total_price"));
        let refunded = total - refundable(map);
        map.insert("current_total_price".into(), money(total - refunded));
    }
}

/// Lines with what has shipped (fulfilments not cancelled) and been refunded so far.
fn line_states(map: &Map<String, Value>) -> Vec<LineState> {
    let mut shipped: HashMap<i64, u32> = HashMap::new();
    for f in objects(map, "fulfillments").filter(|f| text_of(f, "status") != "cancelled") {
        for line in objects(f, "line_items") {
            let units = shipped.entry(int_of(line, "id")).or_default();
            *units = units.saturating_add(count_of(line, "quantity"));
        }
    }
    let mut refunded: HashMap<i64, u32> = HashMap::new();
    for r in objects(map, "refunds") {
        for line in objects(r, "refund_line_items") {
            let units = refunded.entry(int_of(line, "line_item_id")).or_default();
            *units = units.saturating_add(count_of(line, "quantity"));
        }
    }
    objects(map, "line_items")
        .map(|line| {
            let id = int_of(line, "id");
            let quantity = count_of(line, "quantity");
            let discount: Decimal = objects(line, "discount_allocations")
                .map(|a| decimal_of(a.get("amount")))
                .sum();
            LineState {
                id,
                quantity,
                net: decimal_of(line.get("price")) * Decimal::from(quantity) - discount,
                tax: objects(line, "tax_lines")
                    .map(|t| decimal_of(t.get("price")))
                    .sum(),
                shipped: shipped.get(&id).copied().unwrap_or(0),
                refunded: refunded.get(&id).copied().unwrap_or(0),
            }
        })
        .collect()
}

/// Sets each line's and the order's fulfilment status from what has shipped and been refunded.
fn refresh_fulfillment(map: &mut Map<String, Value>) {
    let states = line_states(map);
    let cancelled = map.get("cancelled_at").is_some_and(|v| !v.is_null());
    let mut items = take_array(map, "line_items");
    for (item, state) in items.iter_mut().zip(&states) {
        if let Some(item) = item.as_object_mut() {
            let status = match state.shipped {
                0 => Value::Null,
                _ if state.open() == 0 => json!("fulfilled"),
                _ => json!("partial"),
            };
            let fulfillable = if cancelled { 0 } else { state.open() };
            item.insert("fulfillment_status".into(), status);
            item.insert("fulfillable_quantity".into(), json!(fulfillable));
            item.insert(
                "current_quantity".into(),
                json!(state.quantity - state.refunded.min(state.quantity)),
            );
        }
    }
    map.insert("line_items".into(), Value::Array(items));
    let any_shipped = states.iter().any(|s| s.shipped > 0);
    let all_done = states.iter().all(|s| s.open() == 0);
    let status = match (any_shipped, all_done) {
        (false, _) => Value::Null,
        (true, true) => json!("fulfilled"),
        (true, false) => json!("partial"),
    };
    map.insert("fulfillment_status".into(), status);
}

/// What is left to refund: the total minus successful refund transactions.
fn refundable(map: &Map<String, Value>) -> Decimal {
    let refunded: Decimal = objects(map, "refunds")
        .flat_map(|r| objects(r, "transactions"))
        .filter(|t| text_of(t, "kind") == "refund" && text_of(t, "status") == "success")
        .map(|t| decimal_of(t.get("amount")))
        .sum();
    decimal_of(map.get("total_price")) - refunded
}

/// The net and tax of `units` units of `line`, in cents.
fn share(line: &LineState, units: u32) -> (Decimal, Decimal) {
    if line.quantity == 0 {
        return (Decimal::ZERO, Decimal::ZERO);
    }
    let fraction = Decimal::from(units) / Decimal::from(line.quantity);
    (cents(line.net * fraction), cents(line.tax * fraction))
}

fn text_of(map: &Map<String, Value>, key: &str) -> String {
    map.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn int_of(map: &Map<String, Value>, key: &str) -> i64 {
    map.get(key).and_then(Value::as_i64).unwrap_or_default()
}

fn count_of(map: &Map<String, Value>, key: &str) -> u32 {
    map.get(key)
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or_default()
}

fn take_array(map: &mut Map<String, Value>, key: &str) -> Vec<Value> {
    match map.remove(key) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    }
}

fn push(map: &mut Map<String, Value>, key: &str, value: Value) {
    let mut items = take_array(map, key);
    items.push(value);
    map.insert(key.into(), Value::Array(items));
}
