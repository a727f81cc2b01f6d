//! Who bought: normalised email and phone (the keys identity matching uses) and the customer as
//! an order refers to them.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::address::{Address, CountryCode};

/// Why a text is not a usable email address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a valid email address")]
pub struct EmailError(pub String);

/// An email address, trimmed and lower-cased, so two spellings of one mailbox compare equal.
/// Plus-addressing ("ana+shop@example.com") is kept as given: it is what the customer typed and
/// where mail must go, and linking an order to a customer compares it whole.
/// [`NormalizedEmail::without_plus_tag`] is left for proposing merges (the Identity capability's
/// seam), never for linking.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NormalizedEmail(String);

impl NormalizedEmail {
    /// Parses and normalises `raw`: one `@`, something before it, a dotted domain after it, no
    /// spaces or control characters, at most 254 characters.
    pub fn parse(raw: &str) -> Result<NormalizedEmail, EmailError> {
        let email = raw.trim().to_lowercase();
        let plausible = email.chars().count() <= 254
            && !email.chars().any(|c| c.is_whitespace() || c.is_control())
            && match email.split_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && !domain.contains('@')
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                        && !domain.contains("..")
                }
                None => false,
            };
        if plausible {
            Ok(NormalizedEmail(email))
        } else {
            Err(EmailError(raw.to_owned()))
        }
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address with any "+tag" removed from the local part ("ana+shop@example.com" →
    /// "ana@example.com"): the key for deciding whether two orders came from one person.
    pub fn without_plus_tag(&self) -> NormalizedEmail {
        match self.0.split_once('@') {
            Some((local, domain)) => match local.split_once('+') {
                Some((base, _tag)) if !base.is_empty() => {
                    NormalizedEmail(format!("{base}@{domain}"))
                }
                _ => self.clone(),
            },
            None => self.clone(),
        }
    }
}

impl TryFrom<String> for NormalizedEmail {
    type Error = EmailError;

    fn try_from(raw: String) -> Result<NormalizedEmail, EmailError> {
        NormalizedEmail::parse(&raw)
    }
}

impl From<NormalizedEmail> for String {
    fn from(email: NormalizedEmail) -> String {
        email.0
    }
}

impl fmt::Display for NormalizedEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a text is not a usable phone number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// The text does not read as a phone number at all.
    #[error("{0:?} is not a phone number")]
    NotANumber(String),
    /// A national number without "+country code" and no country to read it in.
    #[error("{0:?} has no country code (+…) and there is no country to assume")]
    NoCountry(String),
    /// Reads as a number, but not one that can exist in its country (wrong length or range).
    #[error("{0:?} is not a valid phone number for its country")]
    Invalid(String),
}

/// A phone number in E.164 form ("+14155550100"): the one spelling every system agrees on.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Phone(String);

impl Phone {
    /// Parses a number as people write it ("(415) 555-0100", "+44 20 7946 0018",
    /// "0049 30 901820") into E.164. A number without "+" is read as a national number of
    /// `default_region` (usually the address's country). Numbers that cannot exist are refused.
    pub fn parse(raw: &str, default_region: Option<CountryCode>) -> Result<Phone, PhoneError> {
        let text = raw.trim();
        if text.is_empty() || !text.chars().any(|c| c.is_ascii_digit()) {
            return Err(PhoneError::NotANumber(raw.to_owned()));
        }
        let region =
            default_region.and_then(|code| code.as_str().parse::<phonenumber::country::Id>().ok());
        // "+44 (0)20 …" is how much of Europe writes international numbers: the "(0)" is the
        // national trunk prefix, never dialled after the country code.
        let text = if text.starts_with('+') {
            text.replace("(0)", "")
        } else {
            text.to_owned()
        };
        let number = phonenumber::parse(region, &text).map_err(|err| match err {
            phonenumber::ParseError::InvalidCountryCode if region.is_none() => {
                PhoneError::NoCountry(raw.to_owned())
            }
            _ => PhoneError::NotANumber(raw.to_owned()),
        })?;
        if !can_exist(&number, region) {
            return Err(PhoneError::Invalid(raw.to_owned()));
        }
        // E.164 is the country code and the national number, leading zeros kept (Italy's), as
        // the crate's formatter writes it; that formatter also looks up, by pattern, a national
        // layout E.164 never uses.
        Ok(Phone(format!(
            "+{}{}",
            number.code().value(),
            number.national()
        )))
    }

    /// The number in E.164, e.g. "+14155550100".
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Phone {
    type Error = PhoneError;

    /// Reads a stored number back (no default region: it must start with "+"). What SyncDesk
    /// stores was made by [`Phone::parse`], so a number already in E.164 form is taken as it is:
    /// parsing it against the numbering plan again cost ~6 µs, and every delivery of an order
    /// reads its customer's numbers back. Anything else is parsed (and refused) as usual.
    fn try_from(raw: String) -> Result<Phone, PhoneError> {
        if is_e164(&raw) {
            return Ok(Phone(raw));
        }
        Phone::parse(&raw, None)
    }
}

/// Whether `number` can exist: it fits one of the number types (fixed line, mobile, toll free…)
/// of its country's numbering plan. Tried first against `region` (the country of the address it
/// came with), which is almost always the number's own: one general pattern and, usually, the
/// fixed-line one. Otherwise the crate's own rule, which first finds, among the countries sharing
/// the number's code (the 25 of +1), the one whose plan it belongs to and then tests each type in
/// turn: for a number of the address's country that was a third of a webhook's parsing.
fn can_exist(number: &phonenumber::PhoneNumber, region: Option<phonenumber::country::Id>) -> bool {
    let national = number.national().to_string();
    let own_plan = region
        .and_then(|id| phonenumber::metadata::DATABASE.by_id(id.as_ref()))
        .filter(|plan| plan.country_code() == number.code().value());
    if let Some(plan) = own_plan
        && plan.descriptors().general().is_match(&national)
        && number_types(plan).any(|kind| kind.is_match(&national))
    {
        return true;
    }
    number.is_valid()
}

/// The number types of a numbering plan that make a number valid (those `phonenumber`'s
/// `number_type` tests), the most common first.
fn number_types(
    plan: &phonenumber::metadata::Metadata,
) -> impl Iterator<Item = &phonenumber::metadata::Descriptor> {
    let types = plan.descriptors();
    [
        types.fixed_line(),
        types.mobile(),
        types.toll_free(),
        types.premium_rate(),
        types.shared_cost(),
        types.voip(),
        types.personal_number(),
        types.pager(),
        types.uan(),
        types.voicemail(),
    ]
    .into_iter()
    .flatten()
}

/// "+" and 7 to 15 digits, the first not 0: the form [`Phone::parse`] writes.
fn is_e164(text: &str) -> bool {
    text.strip_prefix('+').is_some_and(|digits| {
        (7..=15).contains(&digits.len())
            && !digits.starts_with('0')
            && digits.bytes().all(|b| b.is_ascii_digit())
    })
}

impl From<Phone> for String {
    fn from(phone: Phone) -> String {
        phone.0
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The customer an order belongs to, as far as the store told us. A guest checkout has no
/// `store_customer_id`; email and phone are then the only keys for finding the person.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerRef {
    /// Shopify's customer id; `None` for a guest checkout.
    pub store_customer_id: Option<i64>,
    /// Contact email.
    pub email: Option<NormalizedEmail>,
    /// Contact phone in E.164.
    pub phone: Option<Phone>,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// When the store last changed the customer record these details were read from (the
    /// order's `customer.updated_at`); `None` when the order carries none, as for a guest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

impl CustomerRef {
    /// True for a guest checkout: the store has no customer account for this order.
    pub fn is_guest(&self) -> bool {
        self.store_customer_id.is_none()
    }

    /// "First Last", whichever parts are known; `None` when neither is.
    pub fn full_name(&self) -> Option<String> {
        let parts: Vec<&str> = [self.first_name.as_deref(), self.last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    }
}

/// A customer record from the store (customers/create, customers/update).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreCustomer {
    /// Shopify's customer id.
    pub id: i64,
    /// Contact email.
    pub email: Option<NormalizedEmail>,
    /// Contact phone in E.164.
    pub phone: Option<Phone>,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// When the customer was created in the store.
    pub created_at: DateTime<Utc>,
    /// When the store last changed the record: the version.
    pub updated_at: DateTime<Utc>,
    /// The customer's default address, if they have one.
    pub default_address: Option<Address>,
}

impl StoreCustomer {
    /// This customer as an order would refer to them.
    pub fn customer_ref(&self) -> CustomerRef {
        CustomerRef {
            store_customer_id: Some(self.id),
            email: self.email.clone(),
            phone: self.phone.clone(),
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            updated_at: Some(self.updated_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us() -> Option<CountryCode> {
        CountryCode::parse("US").ok()
    }

    #[test]
    fn email_is_trimmed_and_lower_cased() {
        let email = NormalizedEmail::parse("  Ana.Diaz+Shop@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "ana.diaz+shop@example.com");
        assert_eq!(email.without_plus_tag().as_str(), "ana.diaz@example.com");
    }

    #[test]
    fn plus_tag_removal_leaves_plain_and_odd_addresses_alone() {
        let plain = NormalizedEmail::parse("ana@example.com").unwrap();
        assert_eq!(plain.without_plus_tag(), plain);
        let leading = NormalizedEmail::parse("+tag@example.com").unwrap();
        assert_eq!(leading.without_plus_tag(), leading);
        let double = NormalizedEmail::parse("a+b+c@example.com").unwrap();
        assert_eq!(double.without_plus_tag().as_str(), "a@example.com");
    }

    #[test]
    fn implausible_emails_are_refused() {
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "a b@example.com",
            "a@b@example.com",
            "ana@.example.com",
            "ana@example.com.",
            "ana@example..com",
        ] {
            assert!(NormalizedEmail::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(
            NormalizedEmail::parse("ana@").unwrap_err().to_string(),
            "\"ana@\" is not a valid email address"
        );
    }

    #[test]
    fn phones_in_common_formats_become_e164() {
        for (raw, region, want) in [
            ("(415) 555-0100", "US", "+14155550100"),
            ("415.555.0100", "US", "+14155550100"),
            ("1-415-555-0100", "US", "+14155550100"),
            ("+1 415 555 0100", "GB", "+14155550100"),
            ("(416) 555-0199", "CA", "+14165550199"),
            ("020 7946 0018", "GB", "+442079460018"),
            ("+44 (0)20 7946 0018", "US", "+442079460018"),
            ("030 901820", "DE", "+4930901820"),
            ("0049 30 901820", "DE", "+4930901820"),
        ] {
            let phone = Phone::parse(raw, CountryCode::parse(region).ok()).unwrap();
            assert_eq!(phone.as_str(), want, "{raw} in {region}");
        }
    }

    /// The crate's own way, which `Phone::parse` shortens for numbers of the address's country.
    fn crate_e164(raw: &str, region: Option<CountryCode>) -> Option<String> {
        let region = region.and_then(|code| code.as_str().parse().ok());
        let number = phonenumber::parse(region, raw.trim()).ok()?;
        number
            .is_valid()
            .then(|| number.format().mode(phonenumber::Mode::E164).to_string())
    }

    #[test]
    fn phones_are_judged_as_the_crates_own_rule_judges_them() {
        // Every example number of these plans (each type), read with the plan's own country,
        // with a neighbour sharing its code, and with a country of another code; and each with
        // its last digit changed and one digit more, which turns some into numbers that cannot
        // exist. Among them: the 25 countries of +1, Britain and its islands (+44), Italy's
        // leading zero, Russia and Kazakhstan (+7).
        let regions = [
            "US", "CA", "AG", "BS", "JM", "PR", "GB", "GG", "JE", "IM", "IT", "VA", "SM", "RU",
            "KZ", "DE", "FR", "NL", "ES", "AU", "BR", "IN", "JP", "MX", "ZA",
        ];
        let mut compared = 0;
        let mut refused = 0;
        for plan_region in regions {
            let plan = phonenumber::metadata::DATABASE.by_id(plan_region).unwrap();
            for example in number_types(plan).filter_map(|kind| kind.example()) {
                let mut other_last = example.to_owned();
                let last = other_last.pop().unwrap();
                other_last.push(if last == '9' { '0' } else { '9' });
                for national in [example.to_owned(), other_last, format!("{example}5")] {
                    let international = format!("+{} {national}", plan.country_code());
                    for region in [plan_region, "US", "GB", "JE", "RU"] {
                        let region = CountryCode::parse(region).ok();
                        for raw in [international.as_str(), national.as_str()] {
                            let ours = Phone::parse(raw, region).ok().map(String::from);
                            assert_eq!(ours, crate_e164(raw, region), "{raw} read in {region:?}");
                            compared += 1;
                            refused += usize::from(ours.is_none());
                        }
                    }
                }
            }
        }
        assert!(compared > 2_000, "{compared} compared");
        assert!(
            refused > 300 && refused < compared - 300,
            "{refused} of {compared} refused"
        );
    }

    #[test]
    fn garbage_phones_are_refused_with_a_reason() {
        for bad in [
            "",
            "n/a",
            "none",
            "+",
            "12",
            "555",
            "(415) 555-01",
            "+1 415 555 01000 99",
        ] {
            assert!(Phone::parse(bad, us()).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(
            Phone::parse("n/a", us()).unwrap_err(),
            PhoneError::NotANumber("n/a".into())
        );
        assert_eq!(
            Phone::parse("415 555 0100", None).unwrap_err().to_string(),
            "\"415 555 0100\" has no country code (+…) and there is no country to assume"
        );
    }

    #[test]
    fn odd_unicode_never_panics() {
        for weird in [
            "☎️ 555",
            "٤١٥٥٥٥٠١٠٠",
            "+\u{0}1",
            "++++1",
            "tel:+1-415-555-0100",
            "0",
        ] {
            let _ = Phone::parse(weird, us());
        }
    }

    #[test]
    fn stored_phone_round_trips_through_json() {
        let phone = Phone::parse("(415) 555-0100", us()).unwrap();
        let json = serde_json::to_string(&phone).unwrap();
        assert_eq!(json, "\"+14155550100\"");
        assert_eq!(serde_json::from_str::<Phone>(&json).unwrap(), phone);
        assert!(serde_json::from_str::<Phone>("\"4155550100\"").is_err());
        // Not in E.164 form: parsed as on the way in, normalised or refused.
        let spaced = serde_json::from_str::<Phone>("\"+1 415 555 0100\"").unwrap();
        assert_eq!(spaced, phone);
        for bad in [
            "\"+0415550100\"",
            "\"+12\"",
            "\"+1415555010012345\"",
            "\"n/a\"",
        ] {
            assert!(
                serde_json::from_str::<Phone>(bad).is_err(),
                "{bad} was accepted"
            );
        }
    }

    #[test]
    fn guest_and_names() {
        let guest = CustomerRef {
            first_name: Some("Ana".into()),
            ..CustomerRef::default()
        };
        assert!(guest.is_guest());
        assert_eq!(guest.full_name().as_deref(), Some("Ana"));
        assert_eq!(CustomerRef::default().full_name(), None);
    }
}
