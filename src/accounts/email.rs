use std::fmt;

/// An email address, trimmed and lower-cased. Only a plausible address can be built: one `@`,
/// something before it, a dotted domain after it, no spaces or control characters, at most 254
/// characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

impl Email {
    /// Parses and normalises `raw`, or says what is wrong with it.
    pub fn parse(raw: &str) -> Result<Email, String> {
        let email = raw.trim().to_lowercase();
        let valid = email.len() <= 254
            && !email.chars().any(|c| c.is_whitespace() || c.is_control())
            && match email.split_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && !domain.contains('@')
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                }
                None => false,
            };
        if valid {
            Ok(Email(email))
        } else {
            Err(describe_invalid(raw.trim()))
        }
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Says that `raw` is not an email address, quoting it when it is short enough to read.
fn describe_invalid(raw: &str) -> String {
    if raw.chars().count() > 254 {
        "That is not a valid email address: it is longer than 254 characters.".into()
    } else {
        format!("{raw:?} is not a valid email address.")
    }
}

#[cfg(test)]
mod tests {
    use super::Email;

    #[test]
    fn normalises_and_rejects() {
        assert_eq!(
            Email::parse("  Ana.Diaz@Example.COM ").unwrap().as_str(),
            "ana.diaz@example.com"
        );
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "a b@example.com",
            "a@b@example.com",
            "ana@.com",
            "a\u{0}b@example.com",
            "ana\u{7f}@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
        let long = format!("{}@example.com", "a".repeat(300));
        assert_eq!(
            Email::parse(&long).unwrap_err(),
            "That is not a valid email address: it is longer than 254 characters."
        );
    }
}
