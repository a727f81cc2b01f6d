//! Realistic Shopify order webhooks (REST, API version 2024-10 shape) for the store simulator and
//! for tests: new orders and their later versions (paid, shipped, cancelled, refunded), with the
//! awkward cases real stores produce: guest checkouts, plus-addressed emails, SKUs the ERP has
//! never heard of, custom items without a SKU, street lines too long for an ERP, missing postal
//! codes, digital goods without a shipping address, taxes, discounts and shipping.
//!
//! Everything is seeded: one seed, one sequence of orders. Every version of an order carries a
//! strictly later `updated_at` than the one it was made from, and everything produced reads
//! back through [`crate::domain::shopify`].

mod catalogue;
mod evolve;
mod people;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Duration, FixedOffset, SecondsFormat, Utc};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Map, Value, json};

pub use catalogue::{CATALOGUE, PLACES, Place, Product};
pub use evolve::latest_refund;

use crate::domain::{Currency, money::parse_decimal};
use catalogue::{DISCOUNT_CODES, SHIPPING_RATES};
use people::Shopper;

/// Makes Shopify order payloads. One factory is one shop: its currency, its tax setting, its
/// clock and its id sequence.
pub struct OrderFactory {
    rng: StdRng,
    clock: DateTime<Utc>,
    next_id: i64,
    next_number: i64,
    currency: Currency,
    taxes_included: bool,
    utc_offset_secs: i32,
    shoppers: Vec<Shopper>,
}

impl OrderFactory {
    /// A USD shop (prices before tax) whose first order is placed on 2024-10-01, seeded by
    /// `seed`.
    pub fn new(seed: u64) -> OrderFactory {
        let start = DateTime::from_timestamp(1_727_784_000, 0).unwrap_or_default();
        OrderFactory::starting_at(seed, start)
    }

    /// Like [`OrderFactory::new`], with the shop's clock starting at `start` (e.g. now, for
    /// live demo traffic).
    pub fn starting_at(seed: u64, start: DateTime<Utc>) -> OrderFactory {
        let mut rng = StdRng::seed_from_u64(seed);
        // Ids look like Shopify's (13 digits) and differ between seeds, so several factories
        // can feed one test without colliding.
        let next_id = 5_000_000_000_000 + rng.gen_range(0..1_000_000_i64) * 1_000_000;
        OrderFactory {
            rng,
            clock: start,
            next_id,
            next_number: 1001,
            currency: Currency::USD,
            taxes_included: false,
            utc_offset_secs: -4 * 3600,
            shoppers: Vec::new(),
        }
    }

    /// The same shop selling in `currency`, with prices that include tax (VAT-style) or not.
    pub fn with_currency(mut self, currency: Currency, taxes_included: bool) -> OrderFactory {
        self.currency = currency;
        self.taxes_included = taxes_included;
        self
    }

    /// The latest moment the factory has written into a payload.
    pub fn clock(&self) -> DateTime<Utc> {
        self.clock
    }

    /// Sets the clock the next order starts from: for live traffic, whose every version is
    /// moved to the wall clock anyway, so that the factory's own time (about a day further for
    /// each order it writes) does not run past the year 9999, where timestamps stop parsing.
    pub fn set_clock(&mut self, at: DateTime<Utc>) {
        self.clock = at;
    }

    /// A new order, as orders/create delivers it.
    pub fn order(&mut self) -> Value {
        let step = self.rng.gen_range(30..=7200);
        let created = self.advance(self.clock, step);
        let id = self.id();
        let number = self.next_number;
        self.next_number += 1;
        let guest = self.rng.gen_bool(0.15);
        let shopper = self.shopper(guest, created);
        let currency = self.currency.as_str().to_owned();
        let rate = Decimal::from(shopper.place.tax_percent);

        let digital_only = self.rng.gen_bool(0.05);
        let products = self.pick_products(digital_only);
        let discount = self.rng.gen_bool(0.25).then(|| {
            *DISCOUNT_CODES
                .choose(&mut self.rng)
                .unwrap_or(&("WELCOME10", 10))
        });

        let (mut gross, mut net, mut tax, mut discounts) =
            (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
        let mut lines = Vec::new();
        for product in &products {
            let quantity: u32 = *[1, 1, 1, 2, 2, 3].choose(&mut self.rng).unwrap_or(&1);
            let price = parse_decimal(product.price).unwrap_or(Decimal::ONE);
            let line_gross = price * Decimal::from(quantity);
            let line_discount = discount.map_or(Decimal::ZERO, |(_, pct)| {
                cents(line_gross * Decimal::from(pct) / Decimal::ONE_HUNDRED)
            });
            let line_net = line_gross - line_discount;
            let line_tax = if self.taxes_included {
                cents(line_net * rate / (Decimal::ONE_HUNDRED + rate))
            } else {
                cents(line_net * rate / Decimal::ONE_HUNDRED)
            };
            gross += line_gross;
            net += line_net;
            tax += line_tax;
            discounts += line_discount;
            let line_id = self.id();
            lines.push(line_json(
                line_id,
                product,
                quantity,
                &currency,
                line_discount,
                line_tax,
                &shopper.place,
            ));
        }

        let ships = products.iter().any(|p| p.requires_shipping);
        let mut applications = Vec::new();
        if let Some((code, pct)) = discount {
            applications.push(json!({
                "type": "discount_code", "value": format!("{pct}.0"), "value_type": "percentage",
                "allocation_method": "across", "target_selection": "all",
                "target_type": "line_item", "code": code,
            }));
        }
        let mut shipping = Decimal::ZERO;
        let mut shipping_lines = Vec::new();
        if ships {
            // From 100 the shop's automatic free-shipping discount takes the whole standard
            // rate off: the line keeps its price, and its discounted price is what is charged.
            let free = net >= Decimal::ONE_HUNDRED;
            let (title, price) = if free {
                SHIPPING_RATES[0]
            } else {
                *SHIPPING_RATES
                    .choose(&mut self.rng)
                    .unwrap_or(&SHIPPING_RATES[0])
            };
            let price = parse_decimal(price).unwrap_or(Decimal::ZERO);
            let mut allocations = Vec::new();
            if free {
                allocations.push(json!({
                    "amount": money(price), "amount_set": money_set(price, &currency),
                    "discount_application_index": applications.len(),
                }));
                applications.push(json!({
                    "type": "automatic", "title": "Free shipping over 100", "value": "100.0",
                    "value_type": "percentage", "allocation_method": "each",
                    "target_selection": "all", "target_type": "shipping_line",
                }));
            } else {
                shipping = price;
            }
            shipping_lines.push(json!({
                "id": self.id(), "code": title, "title": title, "price": money(price),
                "price_set": money_set(price, &currency), "discounted_price": money(shipping),
                "discounted_price_set": money_set(shipping, &currency),
                "source": "shopify", "carrier_identifier": null, "tax_lines": [],
                "discount_allocations": allocations, "is_removed": false,
            }));
        }
        let total = net
            + shipping
            + if self.taxes_included {
                Decimal::ZERO
            } else {
                tax
            };
        let financial = *["pending", "authorized", "authorized", "paid", "paid"]
            .choose(&mut self.rng)
            .unwrap_or(&"paid");

        let shipping_address = ships.then(|| self.address_json(&shopper, true));
        let billing_address = self.address_json(&shopper, false);
        let at = self.stamp(created);
        // Built in parts: one json! this size would exceed the macro recursion limit.
        let parts = [
            json!({
            "id": id,
            "admin_graphql_api_id": format!("gid://shopify/Order/{id}"),
            "app_id": 580111,
            "browser_ip": format!("203.0.113.{}", self.rng.gen_range(1..=254)),
            "buyer_accepts_marketing": self.rng.gen_bool(0.4),
            "cancel_reason": null,
            "cancelled_at": null,
            "checkout_token": self.token(),
            "closed_at": null,
            "confirmation_number": self.confirmation(),
            "confirmed": true,
            "contact_email": shopper.email,
            "created_at": at,
            "currency": currency,
            "current_subtotal_price": money(net),
            "current_total_discounts": money(discounts),
            "current_total_price": money(total),
            "current_total_tax": money(tax),
            }),
            json!({
            "customer_locale": "en-US",
            "discount_applications": applications,
            "discount_codes": discount.map_or(json!([]), |(code, _)| json!([{
                "code": code, "amount": money(discounts), "type": "percentage",
            }])),
            "email": shopper.email,
            "estimated_taxes": false,
            "financial_status": financial,
            "fulfillment_status": null,
            "name": format!("#{number}"),
            "note": null,
            "number": number - 1000,
            "order_number": number,
            "payment_gateway_names": ["shopify_payments"],
            "phone": null,
            }),
            json!({
            "presentment_currency": currency,
            "processed_at": at,
            "source_name": "web",
            "subtotal_price": money(net),
            "subtotal_price_set": money_set(net, &currency),
            "tags": "",
            "tax_lines": tax_lines(tax, &shopper.place),
            "taxes_included": self.taxes_included,
            "test": false,
            "token": self.token(),
            "total_discounts": money(discounts),
            "total_discounts_set": money_set(discounts, &currency),
            "total_line_items_price": money(gross),
            "total_outstanding": money(if financial == "paid" { Decimal::ZERO } else { total }),
            "total_price": money(total),
            "total_price_set": money_set(total, &currency),
            "total_shipping_price_set": money_set(shipping, &currency),
            "total_tax": money(tax),
            "total_tax_set": money_set(tax, &currency),
            "total_weight": 0,
            "updated_at": at,
            "billing_address": billing_address,
            "shipping_address": shipping_address,
            "customer": null,
            "line_items": lines,
            "shipping_lines": shipping_lines,
            "fulfillments": [],
            "refunds": [],
            }),
        ];
        let mut order = Map::new();
        for part in parts {
            if let Value::Object(fields) = part {
                order.extend(fields);
            }
        }
        if let Some(customer) = self.customer_object(&shopper, created) {
            order.insert("customer".to_owned(), customer);
        }
        Value::Object(order)
    }

    /// The moment `step_secs` after `from`, and never before anything already written; the
    /// clock moves there.
    fn advance(&mut self, from: DateTime<Utc>, step_secs: i64) -> DateTime<Utc> {
        let at = from.max(self.clock) + Duration::seconds(step_secs.max(1));
        self.clock = at;
        at
    }

    /// A timestamp as Shopify writes them: the shop's local time with its offset, to the second.
    fn stamp(&self, at: DateTime<Utc>) -> String {
        match FixedOffset::east_opt(self.utc_offset_secs) {
            Some(offset) => at
                .with_timezone(&offset)
                .to_rfc3339_opts(SecondsFormat::Secs, false),
            None => at.to_rfc3339_opts(SecondsFormat::Secs, false),
        }
    }

    fn id(&mut self) -> i64 {
        self.next_id += self.rng.gen_range(1..=97);
        self.next_id
    }

    fn token(&mut self) -> String {
        format!("{:032x}", self.rng.r#gen::<u128>())
    }

    fn confirmation(&mut self) -> String {
        const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        (0..9)
            .map(|_| char::from(*CHARS.choose(&mut self.rng).unwrap_or(&b'X')))
            .collect()
    }

    /// 1–4 distinct products; now and then one the ERP does not know ("NEW-…") or a custom
    /// item without SKU. Digital-only orders get 1–2 digital products.
    fn pick_products(&mut self, digital_only: bool) -> Vec<Product> {
        let digital: Vec<Product> = CATALOGUE
            .iter()
            .copied()
            .filter(|p| !p.requires_shipping)
            .collect();
        if digital_only {
            let count = self.rng.gen_range(1..=digital.len().max(1));
            return digital
                .choose_multiple(&mut self.rng, count)
                .copied()
                .collect();
        }
        let physical = |p: &&Product| p.requires_shipping;
        let new: Vec<Product> = CATALOGUE
            .iter()
            .filter(physical)
            .filter(|p| p.sku.starts_with("NEW-"))
            .copied()
            .collect();
        let custom: Vec<Product> = CATALOGUE
            .iter()
            .filter(physical)
            .filter(|p| p.sku.is_empty())
            .copied()
            .collect();
        let regular: Vec<Product> = CATALOGUE
            .iter()
            .filter(physical)
            .filter(|p| !p.sku.is_empty() && !p.sku.starts_with("NEW-"))
            .copied()
            .collect();
        let wanted = self.rng.gen_range(1..=4);
        let mut picked: Vec<Product> = Vec::new();
        for _ in 0..wanted * 3 {
            if picked.len() == wanted {
                break;
            }
            let roll = self.rng.gen_range(0..100);
            let pool = match roll {
                0..8 => &new,
                8..11 => &custom,
                _ => &regular,
            };
            if let Some(product) = pool.choose(&mut self.rng)
                && !picked.contains(product)
            {
                picked.push(*product);
            }
        }
        picked
    }
}

/// A line item as Shopify writes it.
fn line_json(
    id: i64,
    p: &Product,
    quantity: u32,
    currency: &str,
    discount: Decimal,
    tax: Decimal,
    place: &Place,
) -> Value {
    let price = parse_decimal(p.price).unwrap_or(Decimal::ONE);
    let name = match p.variant {
        Some(variant) => format!("{} - {variant}", p.title),
        None => p.title.to_owned(),
    };
    let allocations = if discount.is_zero() {
        json!([])
    } else {
        json!([{
            "amount": money(discount), "amount_set": money_set(discount, currency),
            "discount_application_index": 0,
        }])
    };
    json!({
        "id": id, "admin_graphql_api_id": format!("gid://shopify/LineItem/{id}"),
        "current_quantity": quantity, "fulfillable_quantity": quantity,
        "fulfillment_service": "manual", "fulfillment_status": null,
        "gift_card": p.sku.starts_with("EGIFT"), "grams": if p.requires_shipping { 250 } else { 0 },
        "name": name, "price": money(price), "price_set": money_set(price, currency),
        "product_exists": true, "properties": [], "quantity": quantity,
        "requires_shipping": p.requires_shipping, "sku": p.sku, "taxable": true,
        "title": p.title, "total_discount": money(discount),
        "total_discount_set": money_set(discount, currency), "variant_title": p.variant,
        "vendor": "SyncDesk Supply Co.", "tax_lines": tax_lines(tax, place),
        "discount_allocations": allocations, "duties": [],
    })
}

/// Tax lines for `tax` at `place`'s rate; none where there is no tax.
fn tax_lines(tax: Decimal, place: &Place) -> Value {
    if place.tax_percent == 0 {
        return json!([]);
    }
    let rate = Decimal::from(place.tax_percent) / Decimal::ONE_HUNDRED;
    json!([{
        "channel_liable": false, "price": money(tax), "rate": number(rate),
        "title": place.tax_title,
    }])
}

/// Rounds to cents, halves away from zero, as shops do (not banker's rounding).
fn cents(amount: Decimal) -> Decimal {
    let mut rounded = amount.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(2);
    rounded
}

/// An amount as Shopify writes it: a string with two decimals.
fn money(amount: Decimal) -> Value {
    Value::String(cents(amount).to_string())
}

/// A decimal as a bare JSON number, the way Shopify writes tax rates and refund line
/// subtotals. The number is built from the decimal's text, never through arithmetic on floats.
fn number(value: Decimal) -> Value {
    let text = value.normalize().to_string();
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

/// A Shopify money set (shop and presentment currency, here the same).
fn money_set(amount: Decimal, currency: &str) -> Value {
    let m = json!({"amount": money(amount), "currency_code": currency});
    json!({"shop_money": m, "presentment_money": m})
}

/// Reads a decimal written by Shopify (string) or a bare JSON number; zero if neither.
fn decimal_of(value: Option<&Value>) -> Decimal {
    match value {
        Some(Value::String(s)) => parse_decimal(s).unwrap_or(Decimal::ZERO),
        Some(Value::Number(n)) => parse_decimal(&n.to_string()).unwrap_or(Decimal::ZERO),
        _ => Decimal::ZERO,
    }
}

/// The objects in `map[key]`, or none.
fn objects<'a>(
    map: &'a Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'a Map<String, Value>> {
    map.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}
