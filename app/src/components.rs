//! Pieces several pages share: the session context and the role guard.

use leptos::prelude::*;
use leptos_router::components::Redirect;

use crate::api::{SignIn, SignOut};
use crate::error::AppError;
use crate::model::{Role, Viewer};

/// The session, shared by every page: who is signed in, and the sign-in/out actions (their
/// versions refetch the viewer).
#[derive(Clone, Copy)]
pub struct SessionCtx {
    /// The signed-in person (refetched after sign-in and sign-out).
    pub viewer: Resource<Result<Option<Viewer>, AppError>>,
    /// Sign-in action.
    pub sign_in: ServerAction<SignIn>,
    /// Sign-out action.
    pub sign_out: ServerAction<SignOut>,
}

impl SessionCtx {
    /// Whether the viewer, once known, holds one of `roles`: for the fetchers of a page's
    /// resources, which are made in the page's body (see [`Guard`]) and so must not ask the
    /// server for what the page will not show.
    pub async fn allows(self, roles: &[Role]) -> bool {
        matches!(self.viewer.await, Ok(Some(viewer)) if viewer.has_any(roles))
    }

    /// `fetch`'s answer for a viewer holding one of `roles`; for anyone else `Unauthenticated`,
    /// without asking the server (`fetch` does nothing until awaited).
    pub async fn fetch_if<T>(
        self,
        roles: &[Role],
        fetch: impl std::future::Future<Output = Result<T, AppError>>,
    ) -> Result<T, AppError> {
        if self.allows(roles).await {
            fetch.await
        } else {
            Err(AppError::Unauthenticated)
        }
    }
}

/// Renders `children` only for a viewer holding one of `roles`; others read why not. This is
/// for people, not security: every server function checks the role again. The children can ask
/// [`viewer_has`] about the viewer's other roles; they are built again whenever the viewer
/// changes (signing out replaces them with a redirect).
///
/// On the server the children are built once per rendering pass (a view built in a closure is
/// built to find its resources, again to wait for them, and again for the HTML), so a page
/// makes its resources in its own body, outside the Guard, with fetchers that first ask
/// [`SessionCtx::allows`]. Made under the Guard, each pass made and fetched its own: the server
/// sent the data of the first and the HTML of the last, and a page whose data changed in
/// between (an exception written while the queue was rendered) failed to hydrate.
#[component]
pub fn Guard(roles: &'static [Role], children: ChildrenFn) -> impl IntoView {
    let session = expect_context::<SessionCtx>();
    view! {
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || {
                let children = children.clone();
                Suspend::new(async move {
                    match session.viewer.await {
                        Ok(Some(viewer)) if viewer.has_any(roles) => {
                            provide_context(viewer);
                            children().into_any()
                        }
                        Ok(Some(_)) => view! { <NoAccess roles/> }.into_any(),
                        Ok(None) => view! { <Redirect path="/login"/> }.into_any(),
                        Err(err) => view! { <p class="alert" role="alert">{err.to_string()}</p> }.into_any(),
                    }
                })
            }}
        </Transition>
    }
}

/// A resource's answer as a view: `show` of what it loaded, or why it could not be loaded (a
/// session that ended, a role taken away, the server unreachable) — never a silently empty
/// panel that reads as "nothing to do".
pub fn loaded<T, V: IntoView + 'static>(
    answer: Result<T, AppError>,
    show: impl FnOnce(T) -> V,
) -> AnyView {
    match answer {
        Ok(value) => show(value).into_any(),
        Err(AppError::Unauthenticated) => view! {
            <p class="alert" role="alert">"Your session has ended. " <a href="/login">"Sign in again"</a> " to go on."</p>
        }
        .into_any(),
        Err(err) => view! { <p class="alert" role="alert">{err.to_string()}</p> }.into_any(),
    }
}

/// Whether the viewer of the page — under a [`Guard`] — holds `role` (false outside one). Read
/// once, not tracked: the [`Guard`] rebuilds its page when the viewer changes. A view tracking
/// the session itself would be run again by the sign-out, in the same turn as the redirect that
/// takes the page down, and could read the page's own signals after they were disposed.
pub fn viewer_has(role: Role) -> bool {
    use_context::<Viewer>().is_some_and(|viewer| viewer.has_any(&[role]))
}

/// What a signed-in person without the needed role reads.
#[component]
fn NoAccess(roles: &'static [Role]) -> impl IntoView {
    let needed = roles
        .iter()
        .map(|r| r.label())
        .collect::<Vec<_>>()
        .join(" or ");
    view! {
        <section class="panel">
            <h1>"You don't have access to this page"</h1>
            <p>{format!("It needs the {needed} role. An admin can add it on the Admin page.")}</p>
        </section>
    }
}

/// A page heading with an optional one-line explanation under it.
#[component]
pub fn PageHeader(
    title: &'static str,
    #[prop(optional)] lead: Option<&'static str>,
) -> impl IntoView {
    view! {
        <leptos_meta::Title text=title/>
        <header class="page-header">
            <h1>{title}</h1>
            {lead.map(|l| view! { <p class="lead">{l}</p> })}
        </header>
    }
}

/// Query-string escaping for links built by the pages.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'@' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `?a=1&b=2` from the pairs that have a value (empty when none has).
pub fn query_string(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| {
            v.as_ref()
                .filter(|v| !v.is_empty())
                .map(|v| format!("{k}={}", encode(v)))
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}
