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
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
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
}
