//! Stock-keeping units: the store's item code, the key that SKU mappings to ERP item codes use.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The most characters a SKU may have: Shopify's own limit, so that no order the store accepts
/// is refused here for its SKU. (What the ERP takes is the item code a SKU maps to.)
pub const MAX_SKU_CHARS: usize = 255;

/// Why a text is not a usable SKU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkuError {
    /// Nothing but whitespace.
    #[error("a SKU cannot be empty")]
    Empty,
    /// More than [`MAX_SKU_CHARS`] characters.
    #[error("a SKU has at most {MAX_SKU_CHARS} characters; this one has {0}")]
    TooLong(usize),
    /// A control character (tab, newline, NUL…) inside the code.
    #[error("a SKU cannot contain control characters such as tabs or line breaks")]
    ControlCharacter,
}

/// A store SKU: trimmed, non-empty, at most 255 characters, no control characters. Case is kept
/// as the store wrote it ("abc-1" and "ABC-1" are different SKUs, as they are in Shopify).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sku(String);

impl Sku {
    /// Parses `raw`, trimming surrounding whitespace.
    pub fn parse(raw: &str) -> Result<Sku, SkuError> {
        let sku = raw.trim();
        if sku.is_empty() {
            return Err(SkuError::Empty);
        }
        let chars = sku.chars().count();
        if chars > MAX_SKU_CHARS {
            return Err(SkuError::TooLong(chars));
        }
        if sku.chars().any(char::is_control) {
            return Err(SkuError::ControlCharacter);
        }
        Ok(Sku(sku.to_owned()))
    }

    /// The SKU as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Sku {
    type Error = SkuError;

    fn try_from(raw: String) -> Result<Sku, SkuError> {
        Sku::parse(&raw)
    }
}

impl From<Sku> for String {
    fn from(sku: Sku) -> String {
        sku.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The most characters an ERP item code may have: the reference ERP's limit on a sales order
/// line's `item_code`, so a mapping the ERP could never take is refused when it is saved.
pub const MAX_ITEM_CODE_CHARS: usize = crate::connectors::erp::limits::ITEM_CODE;

/// Why a text is not a usable ERP item code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ItemCodeError {
    /// Nothing but whitespace.
    #[error("an ERP item code cannot be empty")]
    Empty,
    /// More than [`MAX_ITEM_CODE_CHARS`] characters.
    #[error("an ERP item code has at most {MAX_ITEM_CODE_CHARS} characters; this one has {0}")]
    TooLong(usize),
    /// Whitespace or a control character inside the code.
    #[error("an ERP item code cannot contain spaces or other whitespace")]
    Whitespace,
}

/// An ERP item code, what a SKU maps to: trimmed, non-empty, at most 40 characters, no
/// whitespace inside. Whether the ERP knows it is a separate question (`engine::mappings`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemCode(String);

impl ItemCode {
    /// Parses `raw`, trimming surrounding whitespace.
    pub fn parse(raw: &str) -> Result<ItemCode, ItemCodeError> {
        let code = raw.trim();
        if code.is_empty() {
            return Err(ItemCodeError::Empty);
        }
        let chars = code.chars().count();
        if chars > MAX_ITEM_CODE_CHARS {
            return Err(ItemCodeError::TooLong(chars));
        }
        if code.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ItemCodeError::Whitespace);
        }
        Ok(ItemCode(code.to_owned()))
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ItemCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_keeps_case() {
        assert_eq!(Sku::parse("  Tee-Blk-M \n").unwrap().as_str(), "Tee-Blk-M");
        assert_ne!(Sku::parse("abc-1").unwrap(), Sku::parse("ABC-1").unwrap());
    }

    #[test]
    fn refuses_empty_long_and_control_characters() {
        assert_eq!(Sku::parse("   "), Err(SkuError::Empty));
        assert_eq!(Sku::parse(&"A".repeat(255)).unwrap().as_str().len(), 255);
        assert_eq!(Sku::parse(&"A".repeat(256)), Err(SkuError::TooLong(256)));
        assert_eq!(Sku::parse("AB\tC"), Err(SkuError::ControlCharacter));
        assert_eq!(Sku::parse("AB\u{0}C"), Err(SkuError::ControlCharacter));
        assert_eq!(
            Sku::parse(&"A".repeat(300)).unwrap_err().to_string(),
            "a SKU has at most 255 characters; this one has 300"
        );
    }

    #[test]
    fn counts_characters_not_bytes() {
        // 255 "é" are 510 bytes but 255 characters: allowed.
        assert!(Sku::parse(&"é".repeat(255)).is_ok());
        assert!(ItemCode::parse(&"é".repeat(40)).is_ok());
    }

    #[test]
    fn deserialising_parses_again() {
        let sku: Sku = serde_json::from_str("\" NEW-42 \"").unwrap();
        assert_eq!(sku.as_str(), "NEW-42");
        assert_eq!(serde_json::to_string(&sku).unwrap(), "\"NEW-42\"");
        assert!(serde_json::from_str::<Sku>("\"\"").is_err());
    }

    #[test]
    fn item_codes_are_trimmed_and_refuse_inner_whitespace() {
        assert_eq!(ItemCode::parse(" ERP-1 ").unwrap().as_str(), "ERP-1");
        assert_eq!(ItemCode::parse(" "), Err(ItemCodeError::Empty));
        assert_eq!(ItemCode::parse("ERP 1"), Err(ItemCodeError::Whitespace));
        assert_eq!(
            ItemCode::parse(&"X".repeat(41)),
            Err(ItemCodeError::TooLong(41))
        );
        assert!(ItemCode::parse(&"X".repeat(40)).is_ok());
    }
}
