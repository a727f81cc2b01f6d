//! The HTML document, the router and the frame every signed-in page shares.

use leptos::prelude::*;
use leptos_meta::{MetaTags, Title, provide_meta_context};
use leptos_router::components::{A, Outlet, ParentRoute, Route, Router, Routes};
use leptos_router::path;

use crate::api::{SignIn, SignOut, whoami};
use crate::components::SessionCtx;
use crate::model::SECTIONS;
use crate::pages::{
    AdminPage, AuditPage, DashboardPage, ExceptionsPage, HomePage, LoginPage, MergesPage, NotFound,
    OrderDetailPage, OrdersPage, SkuMappingsPage,
};

/// The whole HTML document, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <link rel="stylesheet" id="leptos" href="/pkg/syncdesk.css"/>
                <link rel="icon" type="image/svg+xml" href="/favicon.svg"/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The application: session state, routes and pages.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let sign_in = ServerAction::<SignIn>::new();
    let sign_out = ServerAction::<SignOut>::new();
    let viewer = Resource::new(
        move || (sign_in.version().get(), sign_out.version().get()),
        |_| whoami(),
    );
    provide_context(SessionCtx {
        viewer,
        sign_in,
        sign_out,
    });
    // Marks the page once the wasm has taken over, so browser tests (and curious people) can tell
    // a hydrated page from server-rendered HTML that merely looks the same.
    #[cfg(feature = "hydrate")]
    Effect::new(|_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });

    view! {
        <Title formatter=|title: String| if title.is_empty() { "SyncDesk".to_string() } else { format!("{title} · SyncDesk") }/>
        <Router>
            <Routes fallback=NotFound>
                <Route path=path!("/login") view=LoginPage/>
                <ParentRoute path=path!("") view=Frame>
                    <Route path=path!("") view=HomePage/>
                    <Route path=path!("exceptions") view=ExceptionsPage/>
                    <Route path=path!("orders") view=OrdersPage/>
                    <Route path=path!("orders/:id") view=OrderDetailPage/>
                    <Route path=path!("sku-mappings") view=SkuMappingsPage/>
                    <Route path=path!("merges") view=MergesPage/>
                    <Route path=path!("dashboard") view=DashboardPage/>
                    <Route path=path!("audit") view=AuditPage/>
                    <Route path=path!("admin") view=AdminPage/>
                </ParentRoute>
            </Routes>
        </Router>
    }
}

/// Header, navigation limited to the viewer's roles, and the page.
#[component]
fn Frame() -> impl IntoView {
    let session = expect_context::<SessionCtx>();
    let signed_in = move || session.viewer.get().and_then(|r| r.ok()).flatten();
    view! {
        <a class="skip-link" href="#main">"Skip to content"</a>
        <div class="frame">
            <header class="topbar">
                <a class="brand" href="/">
                    <span class="brand-mark" aria-hidden="true">"⇄"</span>
                    "SyncDesk"
                </a>
                <Transition fallback=|| ()>
                    {move || {
                        signed_in()
                            .map(|viewer| {
                                let roles = viewer.roles.iter().map(|r| r.label()).collect::<Vec<_>>().join(", ");
                                view! {
                                    <div class="who">
                                        <span class="who-name">{viewer.display_name.clone()}</span>
                                        <span class="who-roles">{roles}</span>
                                        <ActionForm action=session.sign_out attr:class="inline">
                                            <button type="submit" class="button subtle">"Sign out"</button>
                                        </ActionForm>
                                    </div>
                                }
                            })
                    }}
                </Transition>
            </header>
            <nav class="sidebar" aria-label="Main">
                <Transition fallback=|| ()>
                    <ul>
                        {move || {
                            let viewer = signed_in();
                            SECTIONS
                                .iter()
                                .filter(|s| viewer.as_ref().is_some_and(|v| v.has_any(s.roles)))
                                .map(|s| view! { <li><A href=s.path>{s.label}</A></li> })
                                .collect_view()
                        }}
                    </ul>
                </Transition>
            </nav>
            <main id="main" tabindex="-1">
                <Outlet/>
            </main>
        </div>
    }
}
