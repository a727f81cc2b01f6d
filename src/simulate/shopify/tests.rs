//! Everything the factory produces must read back through `domain::shopify`, and look like a
//! real shop's traffic.

use rust_decimal::Decimal;
use serde_json::Value;

use super::*;
use crate::domain::order::{FinancialStatus, FulfillmentStatus, Lifecycle};
use crate::domain::shopify::{parse_customer, parse_order, parse_refund};
use crate::domain::{CountryCode, Order, Phone};

fn parse(value: &Value) -> Order {
    let body = serde_json::to_vec(value).unwrap();
    parse_order(&body).unwrap_or_else(|err| panic!("{err}\n{value:#}"))
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str_exact(s).unwrap()
}

/// The totals a shop shows add up: lines to subtotal, subtotal + shipping (+ tax) to total.
fn assert_consistent(order: &Order) {
    let net: Decimal = order
        .lines
        .iter()
        .map(|l| l.net_total().unwrap().amount)
        .sum();
    assert_eq!(order.subtotal.amount, net, "{}", order.name);
    let tax: Decimal = order.lines.iter().map(|l| l.tax.amount).sum();
    assert_eq!(order.total_tax.amount, tax, "{}", order.name);
    let added_tax = if order.taxes_included {
        Decimal::ZERO
    } else {
        tax
    };
    assert_eq!(
        order.total.amount,
        net + order.shipping.amount + added_tax,
        "{}",
        order.name
    );
    assert!((1..=4).contains(&order.lines.len()), "{}", order.name);
}

#[test]
fn hundreds_of_orders_and_every_evolution_read_back() {
    for seed in [1_u64, 2, 3] {
        let mut shop = OrderFactory::new(seed);
        for _ in 0..120 {
            let created = shop.order();
            let order = parse(&created);
            assert_consistent(&order);
            let mut last = order.updated_at;
            let mut step = |value: &Value| {
                let next = parse(value);
                assert!(next.updated_at > last, "{} did not move forward", next.name);
                assert_eq!(next.store_order_id, order.store_order_id);
                last = next.updated_at;
                next
            };

            let paid = shop.paid(&created);
            let paid_order = step(&paid);
            assert_eq!(paid_order.lifecycle(), Lifecycle::Paid);

            let partial = shop.partially_fulfilled(&paid);
            let partial_order = step(&partial);
            let units: u32 = order.lines.iter().map(|l| l.quantity).sum();
            let shipped: u32 = partial_order
                .lines
                .iter()
                .map(|l| l.fulfilled_quantity)
                .sum();
            if units >= 2 {
                assert_eq!(partial_order.lifecycle(), Lifecycle::PartiallyFulfilled);
                assert!(shipped > 0 && shipped < units);
            } else {
                assert_eq!(partial_order.lifecycle(), Lifecycle::Fulfilled);
            }

            let full = shop.fulfilled(&partial);
            let full_order = step(&full);
            assert_eq!(full_order.lifecycle(), Lifecycle::Fulfilled);
            assert!(
                full_order
                    .lines
                    .iter()
                    .all(|l| l.fulfilled_quantity == l.quantity)
            );
            assert_eq!(
                full_order.fulfillments.len(),
                if units >= 2 { 2 } else { 1 }
            );

            let refund_amount = (order.total.amount / Decimal::TWO).round_dp(2);
            let refunded = shop.refunded(&full, refund_amount);
            let refunded_order = step(&refunded);
            assert_eq!(refunded_order.total_refunded.amount, refund_amount);
            let want = if refund_amount.is_zero() {
                Lifecycle::Fulfilled
            } else if refund_amount < order.total.amount {
                Lifecycle::PartiallyRefunded
            } else {
                Lifecycle::Refunded
            };
            assert_eq!(refunded_order.lifecycle(), want, "{}", order.name);
            if let Some(refund_json) = latest_refund(&refunded) {
                let refund = parse_refund(&serde_json::to_vec(&refund_json).unwrap()).unwrap();
                assert_eq!(refund.order_id, order.store_order_id);
                assert_eq!(refund.amount.amount, refund_amount);
                assert_eq!(refunded_order.refunds.last(), Some(&refund));
            }

            let cancelled = shop.cancelled(&created);
            let cancelled_order = step(&cancelled);
            assert_eq!(cancelled_order.lifecycle(), Lifecycle::Cancelled);
            assert!(cancelled_order.cancel_reason.is_some());

            if let Some(customer_json) = shop.customer_json(&cancelled) {
                let body = serde_json::to_vec(&customer_json).unwrap();
                let customer = parse_customer(&body).unwrap_or_else(|e| panic!("{e}"));
                assert!(customer.updated_at > last);
                let customer_ref = order.customer.as_ref().unwrap();
                assert_eq!(customer_ref.store_customer_id, Some(customer.id));
                assert_eq!(customer_ref.email, customer.email);
            } else {
                assert!(order.is_guest_checkout());
            }
        }
    }
}

#[test]
fn cancelling_refunds_paid_orders_and_voids_unpaid_ones() {
    let mut shop = OrderFactory::new(7);
    for _ in 0..40 {
        let created = shop.order();
        let unpaid = shop.cancelled(&created);
        let order = parse(&created);
        let voided = parse(&unpaid);
        if order.financial_status == FinancialStatus::Paid {
            assert_eq!(voided.financial_status, FinancialStatus::Refunded);
            assert_eq!(voided.total_refunded, order.total);
            assert!(
                voided
                    .lines
                    .iter()
                    .all(|l| l.refunded_quantity == l.quantity)
            );
        } else {
            assert_eq!(voided.financial_status, FinancialStatus::Voided);
            assert!(voided.total_refunded.is_zero());
        }
        let paid = shop.paid(&created);
        let refunded = parse(&shop.cancelled(&paid));
        assert_eq!(refunded.financial_status, FinancialStatus::Refunded);
        assert_eq!(refunded.total_refunded, order.total);
    }
}

#[test]
fn refunds_never_exceed_the_total() {
    let mut shop = OrderFactory::new(11);
    let paid = {
        let created = shop.order();
        shop.paid(&created)
    };
    let total = parse(&paid).total;
    let once = shop.refunded(&paid, total.amount + dec("1000"));
    let order = parse(&once);
    assert_eq!(order.total_refunded, total);
    assert_eq!(order.lifecycle(), Lifecycle::Refunded);
    let again = parse(&shop.refunded(&once, dec("5.00")));
    assert_eq!(again.total_refunded, total, "nothing left to refund");
    assert!(again.updated_at > order.updated_at);
}

#[test]
fn the_traffic_has_the_awkward_cases_in_realistic_proportions() {
    let mut shop = OrderFactory::new(2024);
    let n = 2000;
    let orders: Vec<Order> = (0..n).map(|_| parse(&shop.order())).collect();
    let share = |count: usize| count as f64 * 100.0 / n as f64;
    let guests = share(orders.iter().filter(|o| o.is_guest_checkout()).count());
    let plus = share(
        orders
            .iter()
            .filter(|o| o.email.as_ref().is_some_and(|e| e.as_str().contains('+')))
            .count(),
    );
    let ship_to = |o: &Order| o.shipping_address.clone();
    let long = share(
        orders
            .iter()
            .filter_map(ship_to)
            .filter(|a| a.address1.as_ref().is_some_and(|s| s.chars().count() > 60))
            .count(),
    );
    let no_zip = share(
        orders
            .iter()
            .filter_map(ship_to)
            .filter(|a| a.zip.is_none())
            .count(),
    );
    let digital = share(
        orders
            .iter()
            .filter(|o| o.shipping_address.is_none())
            .count(),
    );
    let unknown_sku = orders
        .iter()
        .flat_map(|o| &o.lines)
        .filter(|l| {
            l.sku
                .as_ref()
                .is_some_and(|s| s.as_str().starts_with("NEW-"))
        })
        .count();
    let discounted = share(
        orders
            .iter()
            .filter(|o| !o.total_discounts.is_zero())
            .count(),
    );
    assert!((11.0..19.0).contains(&guests), "guests {guests}%");
    assert!((6.0..14.0).contains(&plus), "plus-addressed {plus}%");
    assert!((1.5..5.0).contains(&long), "long streets {long}%");
    assert!((0.8..3.5).contains(&no_zip), "missing zip {no_zip}%");
    assert!((2.5..8.0).contains(&digital), "digital {digital}%");
    assert!(
        (15.0..35.0).contains(&discounted),
        "discounted {discounted}%"
    );
    assert!(unknown_sku > 50, "only {unknown_sku} NEW- lines");
    assert!(orders.iter().any(|o| o.lines_without_sku().count() > 0));
    assert!(orders.iter().any(|o| {
        o.email
            .as_ref()
            .is_some_and(|e| e.as_str() != e.without_plus_tag().as_str())
    }));
    let returning = orders
        .iter()
        .filter_map(|o| o.customer.as_ref()?.store_customer_id)
        .count()
        - orders
            .iter()
            .filter_map(|o| o.customer.as_ref()?.store_customer_id)
            .collect::<std::collections::HashSet<_>>()
            .len();
    assert!(
        returning > 100,
        "customers should come back ({returning} repeat orders)"
    );
    assert!(orders.windows(2).all(|w| w[0].created_at < w[1].created_at));
    assert!(
        orders
            .iter()
            .all(|o| o.fulfillment_status == FulfillmentStatus::Unfulfilled)
    );
}

#[test]
fn one_seed_one_sequence() {
    let run = |seed| {
        let mut shop = OrderFactory::new(seed);
        (0..5).map(|_| shop.order()).collect::<Vec<_>>()
    };
    assert_eq!(run(5), run(5));
    let (a, b) = (run(5), run(6));
    assert_ne!(a[0]["id"], b[0]["id"]);
}

#[test]
fn a_vat_shop_in_euros_reads_back_consistently() {
    let mut shop = OrderFactory::new(3).with_currency(Currency::EUR, true);
    for _ in 0..100 {
        let order = parse(&shop.order());
        assert_eq!(order.currency, Currency::EUR);
        assert!(order.taxes_included);
        assert_consistent(&order);
    }
}

#[test]
fn timestamps_are_written_in_shop_time_with_their_offset() {
    let mut shop = OrderFactory::new(1);
    let order = shop.order();
    let created = order["created_at"].as_str().unwrap();
    assert!(created.ends_with("-04:00"), "{created}");
    assert_eq!(parse(&order).created_at, shop.clock());
}

#[test]
fn every_place_writes_phones_that_normalise() {
    let mut shop = OrderFactory::new(9);
    for place in PLACES {
        let local = place.phone_pattern.replace('#', "7");
        let region = CountryCode::parse(place.country_code).ok();
        assert!(
            Phone::parse(&local, region).is_ok(),
            "{local} in {}",
            place.city
        );
    }
    let with_phone = (0..200)
        .map(|_| shop.order())
        .filter(|o| {
            o["customer"]["phone"]
                .as_str()
                .is_some_and(|p| p.starts_with('+'))
        })
        .count();
    assert!(
        with_phone > 150,
        "customers should have E.164 phones ({with_phone})"
    );
}
