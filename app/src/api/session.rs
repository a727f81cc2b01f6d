use leptos::prelude::*;

use crate::error::AppError;
use crate::model::Viewer;

/// The signed-in person, or `None` when nobody is.
#[server(prefix = "/rpc", endpoint = "session/whoami")]
pub async fn whoami() -> Result<Option<Viewer>, AppError> {
    use crate::port::{port, respond};
    respond(async { port()?.viewer().await }.await)
}

/// Signs in and, on success, sends the browser to `next` (a path inside SyncDesk) or home.
#[server(prefix = "/rpc", endpoint = "session/sign_in")]
pub async fn sign_in(
    email: String,
    password: String,
    next: Option<String>,
) -> Result<Viewer, AppError> {
    use crate::port::{port, respond};
    let viewer = respond(async { port()?.sign_in(email, password).await }.await)?;
    leptos_axum::redirect(&safe_next(next.as_deref()));
    Ok(viewer)
}

/// Signs out and sends the browser to the sign-in page.
#[server(prefix = "/rpc", endpoint = "session/sign_out")]
pub async fn sign_out() -> Result<(), AppError> {
    use crate::port::{port, respond};
    respond(async { port()?.sign_out().await }.await)?;
    leptos_axum::redirect("/login");
    Ok(())
}

/// Only a path inside this site is followed after sign-in; anything else (another origin, a
/// protocol-relative `//host`) goes home, so the sign-in page cannot be used as an open redirect.
///
/// The path must be printable ASCII throughout: browsers drop tabs and line breaks from a URL
/// before reading it, so `/<tab>/evil.example` would become `//evil.example`, and a control
/// character cannot go in the `Location` header at all. (A browser sends its own path and query
/// percent-encoded, so nothing SyncDesk links to is refused.)
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && p.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
                && !p.starts_with("/login") =>
        {
            p.to_string()
        }
        _ => "/".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_site() {
        assert_eq!(safe_next(Some("/orders?q=1")), "/orders?q=1");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }

    /// Browsers drop tabs and line breaks inside a URL, so these would lead off the site (or,
    /// for a line break, fail to become a `Location` header at all).
    #[test]
    fn next_with_invisible_characters_goes_home() {
        for next in [
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "/ /evil.example",
            "/orders\u{7f}",
            "/\u{a0}/evil.example",
        ] {
            assert_eq!(safe_next(Some(next)), "/", "{next:?}");
        }
        assert_eq!(
            safe_next(Some("/exceptions?q=caf%C3%A9&status=open")),
            "/exceptions?q=caf%C3%A9&status=open"
        );
    }
}
