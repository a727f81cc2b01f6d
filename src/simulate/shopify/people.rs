//! The simulated store's shoppers: who buys, where they live, how they write their email and
//! phone, and the customer records the store keeps for them.

use chrono::{DateTime, Utc};
use rand::Rng;
use rand::seq::SliceRandom;
use serde_json::{Value, json};

use super::OrderFactory;
use super::catalogue::{
    COMPANIES, EMAIL_DOMAINS, FIRST_NAMES, LAST_NAMES, LONG_STREETS, PLACES, PLUS_TAGS, Place,
    STREETS, UNITS,
};
use crate::domain::{CountryCode, Phone};

/// A person who shops at the simulated store. Customers come back; some check out as guests.
#[derive(Clone, Debug)]
pub(super) struct Shopper {
    pub(super) customer_id: Option<i64>,
    pub(super) first: &'static str,
    pub(super) last: &'static str,
    pub(super) email: String,
    pub(super) phone_local: String,
    pub(super) phone_e164: Option<String>,
    pub(super) place: Place,
    pub(super) street: String,
    pub(super) created_at: DateTime<Utc>,
}

impl OrderFactory {
    /// The order's customer as customers/update delivers it, one step later than anything
    /// written so far; `None` for a guest checkout.
    pub fn customer_json(&mut self, order: &Value) -> Option<Value> {
        let mut customer = order.get("customer")?.as_object()?.clone();
        let seen = [customer.get("updated_at"), order.get("updated_at")]
            .into_iter()
            .flatten()
            .filter_map(|v| {
                v.as_str()
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            })
            .map(|at| at.with_timezone(&Utc))
            .max()
            .unwrap_or(self.clock);
        let step = self.rng.gen_range(1..=600);
        let at = self.advance(seen, step);
        customer.insert("updated_at".to_owned(), Value::String(self.stamp(at)));
        let address = customer
            .get("default_address")
            .cloned()
            .unwrap_or(Value::Null);
        customer.insert("addresses".to_owned(), json!([address]));
        customer.insert("orders_count".to_owned(), json!(self.rng.gen_range(1..=6)));
        customer.insert(
            "last_order_id".to_owned(),
            order.get("id").cloned().unwrap_or(Value::Null),
        );
        customer.insert(
            "last_order_name".to_owned(),
            order.get("name").cloned().unwrap_or(Value::Null),
        );
        Some(Value::Object(customer))
    }

    /// A returning customer (30%), a returning person checking out as a guest, or someone new.
    pub(super) fn shopper(&mut self, guest: bool, now: DateTime<Utc>) -> Shopper {
        let known: Vec<&Shopper> = self
            .shoppers
            .iter()
            .filter(|s| s.customer_id.is_some())
            .collect();
        if !known.is_empty()
            && self.rng.gen_bool(0.3)
            && let Some(existing) = known.choose(&mut self.rng).map(|s| (*s).clone())
        {
            return Shopper {
                customer_id: if guest { None } else { existing.customer_id },
                ..existing
            };
        }
        let (first, first_ascii) = *FIRST_NAMES.choose(&mut self.rng).unwrap_or(&("Ana", "ana"));
        let (last, last_ascii) = *LAST_NAMES
            .choose(&mut self.rng)
            .unwrap_or(&("Díaz", "diaz"));
        let domain = *EMAIL_DOMAINS
            .choose(&mut self.rng)
            .unwrap_or(&"example.com");
        let mut local = match self.rng.gen_range(0..3) {
            0 => format!("{first_ascii}.{last_ascii}"),
            1 => format!("{first_ascii}{last_ascii}{}", self.rng.gen_range(1..99)),
            _ => format!("{}.{last_ascii}", &first_ascii[..1]),
        };
        if self.rng.gen_bool(0.10) {
            local = format!(
                "{local}+{}",
                PLUS_TAGS.choose(&mut self.rng).unwrap_or(&"shop")
            );
        }
        let mut email = format!("{local}@{domain}");
        if self.rng.gen_bool(0.05) {
            // Some people type their address with capitals; the store keeps what they typed.
            email = email.to_uppercase();
        }
        let place = *PLACES.choose(&mut self.rng).unwrap_or(&PLACES[0]);
        let phone_local: String = place
            .phone_pattern
            .chars()
            .map(|c| {
                if c == '#' {
                    char::from(b'0' + self.rng.gen_range(0..10u8))
                } else {
                    c
                }
            })
            .collect();
        let region = CountryCode::parse(place.country_code).ok();
        let phone_e164 = Phone::parse(&phone_local, region).ok().map(String::from);
        let street = format!(
            "{} {}",
            self.rng.gen_range(1..2400),
            STREETS.choose(&mut self.rng).unwrap_or(&"Main St")
        );
        let customer_id = (!guest).then(|| self.id());
        let shopper = Shopper {
            customer_id,
            first,
            last,
            email,
            phone_local,
            phone_e164,
            place,
            street,
            created_at: now,
        };
        if customer_id.is_some() {
            self.shoppers.push(shopper.clone());
        }
        shopper
    }

    /// A Shopify address. Ship-to addresses are sometimes too long for an ERP (3%) or lack
    /// their postal code (2%).
    pub(super) fn address_json(&mut self, s: &Shopper, ship_to: bool) -> Value {
        let long = ship_to && self.rng.gen_bool(0.03);
        let address1 = if long {
            (*LONG_STREETS
                .choose(&mut self.rng)
                .unwrap_or(&LONG_STREETS[0]))
            .to_owned()
        } else {
            s.street.clone()
        };
        let zip = (!(ship_to && self.rng.gen_bool(0.02))).then_some(s.place.zip);
        let address2 = self
            .rng
            .gen_bool(0.3)
            .then(|| *UNITS.choose(&mut self.rng).unwrap_or(&"Apt 1"));
        let company = self.rng.gen_bool(0.08).then(|| {
            *COMPANIES
                .choose(&mut self.rng)
                .unwrap_or(&"Northwind Traders")
        });
        json!({
            "first_name": s.first, "last_name": s.last, "name": format!("{} {}", s.first, s.last),
            "company": company, "address1": address1, "address2": address2.unwrap_or(""),
            "city": s.place.city, "province": s.place.province,
            "province_code": s.place.province_code, "country": s.place.country,
            "country_code": s.place.country_code, "zip": zip, "phone": s.phone_local,
            "latitude": null, "longitude": null,
        })
    }

    /// The `customer` object embedded in an order; `None` for guests.
    pub(super) fn customer_object(&mut self, s: &Shopper, now: DateTime<Utc>) -> Option<Value> {
        let id = s.customer_id?;
        let default_address = self.address_json(s, false);
        Some(json!({
            "id": id, "email": s.email, "created_at": self.stamp(s.created_at),
            "updated_at": self.stamp(now), "first_name": s.first, "last_name": s.last,
            "state": "enabled", "note": null, "verified_email": true,
            "multipass_identifier": null, "tax_exempt": false, "phone": s.phone_e164,
            "email_marketing_consent": {
                "state": "not_subscribed", "opt_in_level": "single_opt_in",
                "consent_updated_at": null,
            },
            "sms_marketing_consent": null, "tags": "", "currency": self.currency.as_str(),
            "tax_exemptions": [], "admin_graphql_api_id": format!("gid://shopify/Customer/{id}"),
            "default_address": default_address,
        }))
    }
}
