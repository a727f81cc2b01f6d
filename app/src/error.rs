//! The one error type server functions return: each variant reads as a sentence a person can act
//! on, and maps to the HTTP status the server answers with.

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

/// What went wrong, said for the person who clicked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum AppError {
    /// No valid session.
    #[error("Please sign in to continue.")]
    Unauthenticated,
    /// Signed in, but without a role this needs.
    #[error("{0}")]
    Forbidden(String),
    /// The input was refused; the message says which field and why.
    #[error("{0}")]
    Invalid(String),
    /// Email and password did not match an active account.
    #[error("That email and password don't match an active account.")]
    BadCredentials,
    /// Too many failed sign-ins for this account or from this address.
    #[error("Too many failed sign-ins. Try again in {retry_after_secs} seconds.")]
    Throttled {
        /// Seconds until the next attempt is allowed.
        retry_after_secs: u64,
    },
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The change clashes with the current state (e.g. an email already in use).
    #[error("{0}")]
    Conflict(String),
    /// A fault on our side; the reference finds the logged details.
    #[error("Something went wrong on our side (reference {0}). It has been logged.")]
    Internal(String),
    /// The request never reached the server function, or its answer could not be read.
    #[error("The request could not be completed: {0}")]
    Transport(String),
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        AppError::Transport(value.to_string())
    }
}

#[cfg(feature = "ssr")]
impl AppError {
    /// The HTTP status a server function answers with for this error.
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            AppError::Unauthenticated | AppError::BadCredentials => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            AppError::Transport(_) => StatusCode::BAD_REQUEST,
        }
    }
}
