use leptos::prelude::*;
use leptos_meta::Title;

/// Any path SyncDesk does not know: a real 404, with a way back.
#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
        res.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <Title text="Page not found"/>
        <main id="main" class="signin">
            <section class="signin-card">
                <p class="brand"><span class="brand-mark" aria-hidden="true">"⇄"</span>"SyncDesk"</p>
                <h1>"Page not found"</h1>
                <p>"There is no page at this address. It may have moved, or the link may be mistyped."</p>
                <p><a class="button primary" href="/">"Go to SyncDesk"</a></p>
            </section>
        </main>
    }
}
