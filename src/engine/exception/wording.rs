//! How problems are worded: field names as people read them, quotations, times and durations.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{MAX_QUOTE_CHARS, action};

/// A field as people read it at the start of a sentence: `ship_to.street` → "Ship-to street",
/// `lines[1].item_code` → "Item code on line 2", `customer_account` → "Customer account".
pub fn field_label(field: &str) -> String {
    capitalise(&label(field))
}

/// [`field_label`] in lower case, for the middle of a sentence ("ship-to street").
pub(super) fn label(field: &str) -> String {
    if let Some(rest) = field.strip_prefix("ship_to.") {
        return format!("ship-to {}", words(rest));
    }
    if let Some(rest) = field.strip_prefix("bill_to.") {
        return format!("bill-to {}", words(rest));
    }
    if let Some((index, rest)) = line_field(field) {
        return format!("{} on line {}", words(rest), index + 1);
    }
    match field {
        "external_id" => "order id".to_owned(),
        "name" => "deal name".to_owned(),
        "total_gross" => "order total".to_owned(),
        "lines" => "order lines".to_owned(),
        other => words(other),
    }
}

/// What "Order #1042 has no …" is missing: `ship_to.postal_code` → "shipping postal code".
pub(super) fn missing_phrase(field: &str) -> String {
    if let Some(rest) = field.strip_prefix("ship_to.") {
        return match rest {
            "name" => "name on the shipping address".to_owned(),
            other => format!("shipping {}", words(other)),
        };
    }
    if let Some(rest) = field.strip_prefix("bill_to.") {
        return match rest {
            "name" => "name on the billing address".to_owned(),
            other => format!("billing {}", words(other)),
        };
    }
    if let Some((index, rest)) = line_field(field) {
        return format!("{} on line {}", words(rest), index + 1);
    }
    match field {
        "lines" => "items left to send".to_owned(),
        "name" => "order name".to_owned(),
        other => words(other),
    }
}

/// `lines[3].item_code` → `(3, "item_code")`.
fn line_field(field: &str) -> Option<(usize, &str)> {
    let rest = field.strip_prefix("lines[")?;
    let (index, rest) = rest.split_once("].")?;
    Some((index.parse().ok()?, rest))
}

/// `postal_code` → "postal code", `street2` → "second street line".
fn words(name: &str) -> String {
    match name {
        "street2" => "second street line".to_owned(),
        "region" => "region or state".to_owned(),
        "store_customer_id" => "store customer id".to_owned(),
        other => other.replace('_', " "),
    }
}

/// A field without line numbers, for fingerprints: `lines[3].item_code` → `lines.item_code`.
pub(super) fn field_key(field: &str) -> String {
    let mut key = String::with_capacity(field.len());
    let mut in_index = false;
    for c in field.chars() {
        match c {
            '[' => in_index = true,
            ']' => in_index = false,
            _ if !in_index => key.push(c),
            _ => {}
        }
    }
    key
}

/// The action that fixes a field: addresses are edited, item codes mapped, the rest fixed at
/// the source.
pub(super) fn action_for_field(field: &str) -> &'static str {
    if field.starts_with("ship_to.") || field.starts_with("bill_to.") {
        action::EDIT_ADDRESS
    } else if field.ends_with("item_code") {
        action::MAP_SKU
    } else {
        action::FIX_IN_STORE
    }
}

/// The destination's words in quotation marks, cut at [`MAX_QUOTE_CHARS`].
pub(super) fn quote(text: &str) -> String {
    let text = text.trim();
    let cut: String = text.chars().take(MAX_QUOTE_CHARS).collect();
    let ellipsis = if cut.len() < text.len() { "…" } else { "" };
    format!("\u{201c}{cut}{ellipsis}\u{201d}")
}

/// The first letter in upper case.
pub(super) fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// "14:05 UTC".
pub(super) fn clock(at: DateTime<Utc>) -> String {
    at.format("%H:%M UTC").to_string()
}

/// A duration as people say it: "30 s", "2 min 30 s", "12 min", "4 h", "1 h 30 min", "2 d 3 h".
pub fn human_duration(duration: Duration) -> String {
    let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    let secs = secs.max(1);
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => {
            let (min, sec) = (secs / 60, secs % 60);
            if min < 5 && sec > 0 {
                format!("{min} min {sec} s")
            } else {
                format!("{min} min")
            }
        }
        3600..86_400 => {
            let (h, min) = (secs / 3600, (secs % 3600) / 60);
            if min == 0 {
                format!("{h} h")
            } else {
                format!("{h} h {min} min")
            }
        }
        _ => {
            let (d, h) = (secs / 86_400, (secs % 86_400) / 3600);
            if h == 0 {
                format!("{d} d")
            } else {
                format!("{d} d {h} h")
            }
        }
    }
}
