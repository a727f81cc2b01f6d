//! Money: a decimal amount that always travels with its currency.
//!
//! Amounts are `rust_decimal::Decimal`, never `f64`, so "0.10 + 0.20" is exactly "0.30". Adding or
//! subtracting two amounts in different currencies is refused instead of silently producing a
//! number that means nothing.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Why an amount or a currency could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The text is not a plain decimal number such as "12.50".
    #[error("{0:?} is not a decimal amount")]
    InvalidAmount(String),
    /// The text is not a three-letter ISO 4217 code in capitals such as "USD".
    #[error("{0:?} is not a three-letter currency code in capitals (like \"USD\")")]
    InvalidCurrency(String),
    /// Two amounts in different currencies were combined.
    #[error("cannot combine {left} with {right}: the currencies differ")]
    MixedCurrency {
        /// The amount on the left-hand side.
        left: Money,
        /// The amount on the right-hand side.
        right: Money,
    },
    /// The result does not fit in a decimal (about 28 significant digits).
    #[error("the amount is too large to compute")]
    Overflow,
}

/// An ISO 4217 currency code: exactly three ASCII capital letters, e.g. `USD`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    /// US dollar.
    pub const USD: Currency = Currency(*b"USD");
    /// Euro.
    pub const EUR: Currency = Currency(*b"EUR");
    /// Pound sterling.
    pub const GBP: Currency = Currency(*b"GBP");
    /// Canadian dollar.
    pub const CAD: Currency = Currency(*b"CAD");

    /// Parses a code such as "USD"; surrounding whitespace is ignored, lower case is refused.
    pub fn parse(raw: &str) -> Result<Currency, MoneyError> {
        match raw.trim().as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => Ok(Currency([a, b, c])),
            _ => Err(MoneyError::InvalidCurrency(raw.to_owned())),
        }
    }

    /// The code as text, e.g. "USD".
    pub fn as_str(&self) -> &str {
        // Only ASCII capitals get in (see `parse`), so this is always valid UTF-8.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    /// Digits after the decimal point in an amount of this currency, as ISO 4217 gives them:
    /// 0 for the yen or the won, 3 for the Kuwaiti dinar, 2 for most.
    pub fn minor_unit_digits(&self) -> u32 {
        match &self.0 {
            b"BIF" | b"CLP" | b"DJF" | b"GNF" | b"ISK" | b"JPY" | b"KMF" | b"KRW" | b"PYG"
            | b"RWF" | b"UGX" | b"UYI" | b"VND" | b"VUV" | b"XAF" | b"XOF" | b"XPF" => 0,
            b"BHD" | b"IQD" | b"JOD" | b"KWD" | b"LYD" | b"OMR" | b"TND" => 3,
            b"CLF" | b"UYW" => 4,
            _ => 2,
        }
    }
}

impl FromStr for Currency {
    type Err = MoneyError;

    fn from_str(raw: &str) -> Result<Currency, MoneyError> {
        Currency::parse(raw)
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;

    fn try_from(raw: String) -> Result<Currency, MoneyError> {
        Currency::parse(&raw)
    }
}

impl From<Currency> for String {
    fn from(currency: Currency) -> String {
        currency.as_str().to_owned()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.as_str())
    }
}

/// An amount of money in one currency. Amounts may be negative (a balance owed back).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// The exact decimal amount, e.g. `12.50`.
    pub amount: Decimal,
    /// The currency the amount is in.
    pub currency: Currency,
}

impl Money {
    /// An amount in a currency.
    pub fn new(amount: Decimal, currency: Currency) -> Money {
        Money { amount, currency }
    }

    /// Nothing, in `currency`.
    pub fn zero(currency: Currency) -> Money {
        Money::new(Decimal::ZERO, currency)
    }

    /// Parses a decimal amount as Shopify sends it ("12.50", "0.00", "-3.5") in `currency`.
    ///
    /// Only plain decimal notation is accepted: an optional minus sign, digits, and at most one
    /// decimal point. Exponents, thousands separators and currency symbols are refused, so a
    /// typo never becomes a different number.
    pub fn parse(raw: &str, currency: Currency) -> Result<Money, MoneyError> {
        parse_decimal(raw).map(|amount| Money::new(amount, currency))
    }

    /// `self + other`, refusing amounts in different currencies.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        self.amount
            .checked_add(other.amount)
            .map(|amount| Money::new(amount, self.currency))
            .ok_or(MoneyError::Overflow)
    }

    /// `self - other`, refusing amounts in different currencies.
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        self.amount
            .checked_sub(other.amount)
            .map(|amount| Money::new(amount, self.currency))
            .ok_or(MoneyError::Overflow)
    }

    /// `self × quantity`, e.g. a unit price times the units ordered.
    pub fn checked_mul(self, quantity: u32) -> Result<Money, MoneyError> {
        self.amount
            .checked_mul(Decimal::from(quantity))
            .map(|amount| Money::new(amount, self.currency))
            .ok_or(MoneyError::Overflow)
    }

    /// The sum of `amounts`, all of which must be in `currency`; zero when there are none.
    pub fn sum<I: IntoIterator<Item = Money>>(
        currency: Currency,
        amounts: I,
    ) -> Result<Money, MoneyError> {
        amounts
            .into_iter()
            .try_fold(Money::zero(currency), Money::checked_add)
    }

    /// True when the amount is exactly zero.
    pub fn is_zero(&self) -> bool {
        self.amount.is_zero()
    }

    fn same_currency(self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::MixedCurrency {
                left: self,
                right: other,
            })
        }
    }
}

impl fmt::Display for Money {
    /// "12.50 USD"
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

/// Parses plain decimal notation ("12.50", "-3", "0.5"); see [`Money::parse`].
pub fn parse_decimal(raw: &str) -> Result<Decimal, MoneyError> {
    let invalid = || MoneyError::InvalidAmount(raw.to_owned());
    let text = raw.trim();
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let plain = !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit())
        && !(digits.ends_with('.'));
    if !plain {
        return Err(invalid());
    }
    Decimal::from_str_exact(text).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    fn usd() -> Currency {
        Currency::parse("USD").unwrap()
    }

    fn eur() -> Currency {
        Currency::parse("EUR").unwrap()
    }

    fn dec(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    #[test]
    fn minor_units_follow_iso_4217() {
        let digits = |code: &str| Currency::parse(code).unwrap().minor_unit_digits();
        assert_eq!(
            [
                digits("USD"),
                digits("EUR"),
                digits("JPY"),
                digits("KRW"),
                digits("KWD"),
                digits("BHD")
            ],
            [2, 2, 0, 0, 3, 3]
        );
    }

    #[test]
    fn currency_is_three_capital_letters() {
        assert_eq!(Currency::parse(" USD ").unwrap(), Currency::USD);
        for named in [Currency::USD, Currency::EUR, Currency::GBP, Currency::CAD] {
            assert_eq!(Currency::parse(named.as_str()), Ok(named));
        }
        for bad in ["", "US", "USDX", "usd", "U$D", "ÜSD", "12A"] {
            assert!(Currency::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(
            Currency::parse("usd").unwrap_err().to_string(),
            "\"usd\" is not a three-letter currency code in capitals (like \"USD\")"
        );
    }

    #[test]
    fn parses_shopify_decimal_strings_exactly() {
        let m = Money::parse("12.50", usd()).unwrap();
        assert_eq!(m.amount, dec("12.50"));
        assert_eq!(m.to_string(), "12.50 USD");
        assert_eq!(Money::parse("0.00", usd()).unwrap().amount, Decimal::ZERO);
        assert_eq!(Money::parse("7", usd()).unwrap().amount, dec("7"));
        assert_eq!(Money::parse("-3.5", usd()).unwrap().amount, dec("-3.5"));
        assert_eq!(
            Money::parse("0.1", usd()).unwrap().amount + dec("0.2"),
            dec("0.3")
        );
    }

    #[test]
    fn refuses_anything_but_plain_decimals() {
        for bad in [
            "",
            "abc",
            "12,50",
            "1e3",
            "$12.50",
            "12.",
            ".5",
            "1_000",
            "--1",
            "1.2.3",
            "NaN",
            "12.50 USD",
            "+1",
        ] {
            let err = Money::parse(bad, usd()).unwrap_err();
            assert_eq!(err, MoneyError::InvalidAmount(bad.to_owned()), "{bad:?}");
        }
        assert_eq!(
            Money::parse("abc", usd()).unwrap_err().to_string(),
            "\"abc\" is not a decimal amount"
        );
    }

    #[test]
    fn adds_and_subtracts_in_one_currency() {
        let a = Money::parse("10.25", usd()).unwrap();
        let b = Money::parse("0.75", usd()).unwrap();
        assert_eq!(a.checked_add(b).unwrap().amount, dec("11.00"));
        assert_eq!(b.checked_sub(a).unwrap().amount, dec("-9.50"));
        assert_eq!(b.checked_mul(3).unwrap().amount, dec("2.25"));
        let total = Money::sum(usd(), [a, b, b]).unwrap();
        assert_eq!(total.amount, dec("11.75"));
        assert!(Money::sum(eur(), []).unwrap().is_zero());
    }

    #[test]
    fn refuses_mixed_currencies() {
        let dollars = Money::parse("10.00", usd()).unwrap();
        let euros = Money::parse("3.00", eur()).unwrap();
        let err = dollars.checked_add(euros).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot combine 10.00 USD with 3.00 EUR: the currencies differ"
        );
        assert!(matches!(
            dollars.checked_sub(euros),
            Err(MoneyError::MixedCurrency { .. })
        ));
        assert!(Money::sum(usd(), [dollars, euros]).is_err());
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        let huge = Money::new(Decimal::MAX, usd());
        assert_eq!(huge.checked_add(huge), Err(MoneyError::Overflow));
        assert_eq!(huge.checked_mul(2), Err(MoneyError::Overflow));
    }

    #[test]
    fn serialises_amounts_as_strings_and_checks_currency_on_the_way_back() {
        let m = Money::parse("12.50", usd()).unwrap();
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"amount":"12.50","currency":"USD"}"#);
        assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), m);
        assert!(serde_json::from_str::<Money>(r#"{"amount":"1","currency":"usd"}"#).is_err());
    }
}
