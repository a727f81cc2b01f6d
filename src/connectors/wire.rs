//! Shapes both reference APIs share: the error envelope and list pages.

use serde::{Deserialize, Serialize};

/// One page of a list answer; pass `next_cursor` back as `cursor` for the next page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The records on this page, oldest change first.
    pub data: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// The body of every error answer: `{"error": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    /// What went wrong.
    pub error: ApiErrorBody,
}

/// What went wrong, in the reference APIs' words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    /// Machine code, e.g. `field_too_long`, `unknown_item`, `duplicate_external_id`.
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// The field concerned, in body path syntax: `ship_to.street`, `lines[1].item_code`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The field's limit, for `field_too_long`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
    /// The document that already holds this external id, for `duplicate_external_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_number: Option<String>,
}

impl ApiErrorBody {
    /// An error with a code and a message and nothing else.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ApiErrorBody {
            code: code.into(),
            message: message.into(),
            field: None,
            max: None,
            document_number: None,
        }
    }

    /// The same error, naming a field.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// The same error, naming the field's limit.
    pub fn with_max(mut self, max: u64) -> Self {
        self.max = Some(max);
        self
    }
}
