//! People and machines that use SyncDesk: accounts, passwords, API tokens and sign-in
//! throttling. No HTTP here; `web` calls in.

mod email;
mod password;
pub(crate) mod signin;
mod token;

pub use email::Email;
pub use password::{hash_password, validate_password, verify_password};
pub use signin::{Accounts, AddUserError, SignInError, ThrottlePolicy};
pub use token::{hash_token, new_token};
