//! Postal addresses as the store records them (bill-to, ship-to, a customer's default address).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::customer::Phone;

/// Why a text is not an ISO 3166-1 alpha-2 country code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a two-letter country code in capitals (like \"US\")")]
pub struct CountryCodeError(pub String);

/// An ISO 3166-1 alpha-2 country code: two ASCII capital letters, e.g. `US`, `GB`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// Parses a code such as "US"; surrounding whitespace is ignored, lower case is refused.
    pub fn parse(raw: &str) -> Result<CountryCode, CountryCodeError> {
        match raw.trim().as_bytes() {
            &[a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => Ok(CountryCode([a, b])),
            _ => Err(CountryCodeError(raw.to_owned())),
        }
    }

    /// The code as text, e.g. "US".
    pub fn as_str(&self) -> &str {
        // Only ASCII capitals get in (see `parse`), so this is always valid UTF-8.
        std::str::from_utf8(&self.0).unwrap_or("ZZ")
    }
}

impl TryFrom<String> for CountryCode {
    type Error = CountryCodeError;

    fn try_from(raw: String) -> Result<CountryCode, CountryCodeError> {
        CountryCode::parse(&raw)
    }
}

impl From<CountryCode> for String {
    fn from(code: CountryCode) -> String {
        code.as_str().to_owned()
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountryCode({})", self.as_str())
    }
}

/// A postal address exactly as the store holds it: trimmed, empty fields absent, nothing
/// shortened. Destination limits (an ERP's 60-character street) are checked when mapping, so
/// the person fixing it sees the full original text.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// The addressee's full name.
    pub name: Option<String>,
    /// Company name, for business addresses.
    pub company: Option<String>,
    /// Street and number.
    pub address1: Option<String>,
    /// Apartment, suite, floor…
    pub address2: Option<String>,
    /// City or town.
    pub city: Option<String>,
    /// State / province / region code, e.g. "CA", "ON".
    pub province_code: Option<String>,
    /// Country.
    pub country_code: Option<CountryCode>,
    /// Postal code; absent for countries without one, or when the shopper left it out.
    pub zip: Option<String>,
    /// The phone number as typed at checkout (free text); see [`Address::phone_e164`].
    pub phone: Option<String>,
}

impl Address {
    /// The address's phone in E.164, read with this address's country as the default region;
    /// `None` when there is no phone or it is not a valid number.
    pub fn phone_e164(&self) -> Option<Phone> {
        let raw = self.phone.as_deref()?;
        Phone::parse(raw, self.country_code).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn country_codes_are_two_capitals() {
        assert_eq!(CountryCode::parse(" GB ").unwrap().as_str(), "GB");
        for bad in ["", "G", "GBR", "gb", "G1", "ÜK"] {
            assert!(CountryCode::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            CountryCode::parse("usa").unwrap_err().to_string(),
            "\"usa\" is not a two-letter country code in capitals (like \"US\")"
        );
        let json = serde_json::to_string(&CountryCode::parse("CA").unwrap()).unwrap();
        assert_eq!(json, "\"CA\"");
        assert!(serde_json::from_str::<CountryCode>("\"ca\"").is_err());
    }

    #[test]
    fn address_phone_uses_the_address_country() {
        let address = Address {
            phone: Some("(415) 555-0100".into()),
            country_code: CountryCode::parse("US").ok(),
            ..Address::default()
        };
        assert_eq!(address.phone_e164().unwrap().as_str(), "+14155550100");
        let junk = Address {
            phone: Some("call the front desk".into()),
            ..address.clone()
        };
        assert_eq!(junk.phone_e164(), None);
    }
}
