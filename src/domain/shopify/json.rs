//! Reading Shopify JSON while remembering where we are, so that every error names its field the
//! way an operator would look for it: `line_items[2].price`.
//!
//! The tree is `serde_json_borrow`'s: its strings point into the body and its objects are lists
//! of pairs, so reading a 7 KB order allocates a few vectors rather than every key and string
//! (about half the time of `serde_json::Value`, which this was). The body is validated by
//! `serde_json` either way. One difference: of a key repeated in one object, the first is
//! read (`serde_json::Value` kept the last); the store never repeats one.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json_borrow::{ObjectAsVec, Value};

use crate::domain::money::{Currency, Money, parse_decimal};

/// Why a Shopify payload could not be read. The message names the field and says plainly what
/// is wrong with it; it may quote the offending value (cut to 60 characters), so show it to
/// people who may see order data and keep it out of logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The body is not JSON at all.
    #[error("the body is not valid JSON ({0})")]
    NotJson(String),
    /// A required field is absent or null.
    #[error("{field} is missing")]
    Missing {
        /// Path of the field, e.g. `line_items[0].id`.
        field: String,
    },
    /// A field holds something of the wrong kind.
    #[error("{field} is {found}, not {expected}")]
    Invalid {
        /// Path of the field, e.g. `line_items[2].price`.
        field: String,
        /// The value found, as JSON-ish text (`"abc"`, `null`, `a list`).
        found: String,
        /// What it should have been, e.g. `a decimal amount`.
        expected: String,
    },
    /// The values are each fine but cannot be used together.
    #[error("{field}: {reason}")]
    Unusable {
        /// Path of the field, or "the body".
        field: String,
        /// What is wrong, in a sentence.
        reason: String,
    },
}

impl ParseError {
    /// The path of the field the error is about, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            ParseError::NotJson(_) => None,
            ParseError::Missing { field }
            | ParseError::Invalid { field, .. }
            | ParseError::Unusable { field, .. } => Some(field),
        }
    }
}

/// The name errors use for the top of the payload.
pub const BODY: &str = "the body";

/// Parses raw bytes as JSON; the tree borrows from `body`.
pub fn parse_json(body: &[u8]) -> Result<Value<'_>, ParseError> {
    serde_json::from_slice(body).map_err(|err| ParseError::NotJson(err.to_string()))
}

/// Converts one JSON value; `Err` carries what was expected, e.g. "a decimal amount".
pub type Read<T> = fn(&Value<'_>) -> Result<T, String>;

/// A JSON object and the path that leads to it.
#[derive(Clone, Debug)]
pub struct Obj<'a> {
    path: String,
    map: &'a ObjectAsVec<'a>,
}

impl<'a> Obj<'a> {
    /// The top of a payload, which must be an object.
    pub fn root(value: &'a Value<'a>) -> Result<Obj<'a>, ParseError> {
        Obj::at(BODY.to_owned(), value, "a JSON object")
    }

    fn at(path: String, value: &'a Value<'a>, expected: &str) -> Result<Obj<'a>, ParseError> {
        match value {
            Value::Object(map) => Ok(Obj { path, map }),
            other => Err(ParseError::Invalid {
                field: path,
                found: describe(other),
                expected: expected.to_owned(),
            }),
        }
    }

    /// The path of `key` inside this object.
    pub fn path_of(&self, key: &str) -> String {
        if self.path == BODY {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// True when `key` is present and not null.
    pub fn has(&self, key: &str) -> bool {
        self.raw(key).is_some()
    }

    fn raw(&self, key: &str) -> Option<&'a Value<'a>> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// `key` converted by `read`; absent or null is `None`.
    pub fn opt<T>(&self, key: &str, read: Read<T>) -> Result<Option<T>, ParseError> {
        match self.raw(key) {
            None => Ok(None),
            Some(value) => read(value)
                .map(Some)
                .map_err(|expected| ParseError::Invalid {
                    field: self.path_of(key),
                    found: describe(value),
                    expected,
                }),
        }
    }

    /// `key` converted by `read`; absent or null is an error.
    pub fn req<T>(&self, key: &str, read: Read<T>) -> Result<T, ParseError> {
        self.opt(key, read)?.ok_or_else(|| ParseError::Missing {
            field: self.path_of(key),
        })
    }

    /// A text field, trimmed; absent, null or blank is `None`.
    pub fn text(&self, key: &str) -> Result<Option<String>, ParseError> {
        Ok(self.opt(key, text)?.filter(|s| !s.is_empty()))
    }

    /// A text field converted by `parse`, whose error becomes "not {expected} ({error})".
    pub fn parsed<T, E: std::fmt::Display>(
        &self,
        key: &str,
        expected: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<Option<T>, ParseError> {
        let Some(raw) = self.text(key)? else {
            return Ok(None);
        };
        parse(&raw).map(Some).map_err(|err| ParseError::Invalid {
            field: self.path_of(key),
            found: describe(&Value::Str(raw.as_str().into())),
            expected: format!("{expected} ({err})"),
        })
    }

    /// A required amount in `currency`.
    pub fn money(&self, key: &str, currency: Currency) -> Result<Money, ParseError> {
        Ok(Money::new(self.req(key, decimal)?, currency))
    }

    /// An amount in `currency`; zero when absent.
    pub fn money_or_zero(&self, key: &str, currency: Currency) -> Result<Money, ParseError> {
        let amount = self.opt(key, decimal)?.unwrap_or(Decimal::ZERO);
        Ok(Money::new(amount, currency))
    }

    /// A nested object; absent or null is `None`.
    pub fn object(&self, key: &str) -> Result<Option<Obj<'a>>, ParseError> {
        self.raw(key)
            .map(|value| Obj::at(self.path_of(key), value, "an object"))
            .transpose()
    }

    /// A list of objects; absent or null is an empty list.
    pub fn list(&self, key: &str) -> Result<Vec<Obj<'a>>, ParseError> {
        let Some(value) = self.raw(key) else {
            return Ok(Vec::new());
        };
        let Value::Array(items) = value else {
            return Err(ParseError::Invalid {
                field: self.path_of(key),
                found: describe(value),
                expected: "a list".to_owned(),
            });
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| Obj::at(format!("{}[{i}]", self.path_of(key)), item, "an object"))
            .collect()
    }

    /// Adds up `key` in every object of `items`, all in `currency`.
    pub fn sum(items: &[Obj<'a>], key: &str, currency: Currency) -> Result<Money, ParseError> {
        let mut total = Money::zero(currency);
        for item in items {
            let amount = item.money(key, currency)?;
            total = total
                .checked_add(amount)
                .map_err(|err| item.unusable(key, err.to_string()))?;
        }
        Ok(total)
    }

    /// An error about `key` that is not about its type.
    pub fn unusable(&self, key: &str, reason: impl Into<String>) -> ParseError {
        ParseError::Unusable {
            field: self.path_of(key),
            reason: reason.into(),
        }
    }
}

/// A whole number (ids, order numbers).
pub fn int(value: &Value<'_>) -> Result<i64, String> {
    value.as_i64().ok_or_else(|| "a whole number".to_owned())
}

/// A count of units: a whole number, zero or more.
pub fn count(value: &Value<'_>) -> Result<u32, String> {
    value
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| "a whole number of units (0 or more)".to_owned())
}

/// A string, trimmed. A NUL character (`\u0000` in JSON) is refused: PostgreSQL cannot store it
/// in text or JSON, so an order carrying one would fail to be recorded on every delivery, and no
/// real name, address or note holds one.
pub fn text(value: &Value<'_>) -> Result<String, String> {
    match value.as_str() {
        Some(s) if s.contains('\0') => Err("text without a NUL character (\\u0000)".to_owned()),
        Some(s) => Ok(s.trim().to_owned()),
        None => Err("text".to_owned()),
    }
}

/// true or false.
pub fn flag(value: &Value<'_>) -> Result<bool, String> {
    value.as_bool().ok_or_else(|| "true or false".to_owned())
}

/// An ISO 8601 timestamp with its UTC offset, as Shopify writes them; kept in UTC.
pub fn timestamp(value: &Value<'_>) -> Result<DateTime<Utc>, String> {
    value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s.trim()).ok())
        .map(|at| at.with_timezone(&Utc))
        .ok_or_else(|| "a timestamp like \"2024-10-01T12:34:56-04:00\"".to_owned())
}

/// A decimal amount: Shopify's strings ("12.50"). A few older resources (refund line
/// subtotals) send bare JSON numbers; those are read from their decimal text, never through
/// floating-point arithmetic.
pub fn decimal(value: &Value<'_>) -> Result<Decimal, String> {
    let parsed = match value {
        Value::Str(s) => parse_decimal(s).ok(),
        Value::Number(n) => parse_decimal(&json_text(*n)).ok(),
        _ => None,
    };
    parsed.ok_or_else(|| "a decimal amount".to_owned())
}

/// A currency code such as "USD".
pub fn currency(value: &Value<'_>) -> Result<Currency, String> {
    value
        .as_str()
        .and_then(|s| Currency::parse(s).ok())
        .ok_or_else(|| "a three-letter currency code in capitals (like \"USD\")".to_owned())
}

/// A number as JSON writes it (`28.0` stays `28.0`, where `f64`'s own text would be `28`).
fn json_text(n: serde_json_borrow::Number) -> String {
    serde_json::Number::from(n).to_string()
}

/// A short rendering of a value for error messages.
pub fn describe(value: &Value<'_>) -> String {
    const LIMIT: usize = 60;
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => json_text(*n),
        Value::Str(s) if s.chars().count() > LIMIT => {
            let cut: String = s.chars().take(LIMIT).collect();
            format!("{:?}…", cut)
        }
        Value::Str(s) => format!("{s:?}"),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `json!`'s tree as text, to be read as a body is. (The crate's `From<&serde_json::Value>`
    /// turns whole numbers above zero into negative-kind ones, which `count` refuses.)
    fn body(value: serde_json::Value) -> Vec<u8> {
        value.to_string().into_bytes()
    }

    /// `read` applied to one value written as `json!` writes it.
    fn read<T>(read: Read<T>, value: serde_json::Value) -> Result<T, String> {
        read(&parse_json(&body(value)).unwrap())
    }

    #[test]
    fn paths_name_nested_fields() {
        let body = body(json!({"line_items": [{"price": "1.00"}, {"price": "abc"}]}));
        let value = parse_json(&body).unwrap();
        let root = Obj::root(&value).unwrap();
        let lines = root.list("line_items").unwrap();
        let usd = Currency::parse("USD").unwrap();
        assert!(lines[0].money("price", usd).is_ok());
        assert_eq!(
            lines[1].money("price", usd).unwrap_err().to_string(),
            "line_items[1].price is \"abc\", not a decimal amount"
        );
        assert_eq!(
            lines[1].req("id", int).unwrap_err().to_string(),
            "line_items[1].id is missing"
        );
    }

    #[test]
    fn null_is_absent_and_wrong_shapes_are_named() {
        let body = body(json!({"a": null, "b": "x", "c": {"d": 1}}));
        let value = parse_json(&body).unwrap();
        let root = Obj::root(&value).unwrap();
        assert_eq!(root.text("a").unwrap(), None);
        assert!(root.list("a").unwrap().is_empty());
        assert_eq!(
            root.list("b").unwrap_err().to_string(),
            "b is \"x\", not a list"
        );
        let c = root.object("c").unwrap().unwrap();
        assert_eq!(
            c.req("d", text).unwrap_err().to_string(),
            "c.d is 1, not text"
        );
        assert_eq!(
            Obj::root(&parse_json(b"[1]").unwrap())
                .unwrap_err()
                .to_string(),
            "the body is a list, not a JSON object"
        );
    }

    #[test]
    fn a_nul_character_is_refused_and_named_printably() {
        let body = body(json!({"note": "gift\u{0}wrap"}));
        let value = parse_json(&body).unwrap();
        let root = Obj::root(&value).unwrap();
        assert_eq!(
            root.text("note").unwrap_err().to_string(),
            "note is \"gift\\0wrap\", not text without a NUL character (\\u0000)"
        );
    }

    #[test]
    fn a_body_keeps_its_escapes_and_the_text_of_its_numbers() {
        let body = br#"{"na\u006de": " caf\u00e9 ", "subtotal": 28.0, "id": 5813623193661}"#;
        let value = parse_json(body).unwrap();
        let root = Obj::root(&value).unwrap();
        assert_eq!(root.text("name").unwrap().as_deref(), Some("café"));
        assert_eq!(root.req("subtotal", decimal).unwrap().to_string(), "28.0");
        assert_eq!(root.req("id", int).unwrap(), 5_813_623_193_661);
        assert_eq!(
            root.req("subtotal", text).unwrap_err().to_string(),
            "subtotal is 28.0, not text"
        );
        assert!(matches!(
            parse_json(b"{\"a\": 1,}"),
            Err(ParseError::NotJson(_))
        ));
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let long = "x".repeat(100);
        let shown = describe(&Value::Str(long.into()));
        assert!(shown.ends_with("\"…"));
        assert!(shown.chars().count() < 70);
    }

    #[test]
    fn decimals_come_from_strings_or_number_text() {
        assert_eq!(read(decimal, json!("12.50")).unwrap().to_string(), "12.50");
        assert_eq!(read(decimal, json!(195.66)).unwrap().to_string(), "195.66");
        assert!(read(decimal, json!("12,50")).is_err());
        assert!(read(decimal, json!(true)).is_err());
        assert!(read(timestamp, json!("2024-10-01 12:00")).is_err());
        assert_eq!(
            read(timestamp, json!("2024-10-01T08:00:00-04:00"))
                .unwrap()
                .to_rfc3339(),
            "2024-10-01T12:00:00+00:00"
        );
    }
}
