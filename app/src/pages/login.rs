use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::components::SessionCtx;

/// The sign-in page. Works without JavaScript too: the form posts to the server function, which
/// answers with a redirect.
#[component]
pub fn LoginPage() -> impl IntoView {
    let session = expect_context::<SessionCtx>();
    let query = use_query_map();
    let next = move || query.read().get("next").unwrap_or_default();
    let pending = session.sign_in.pending();
    let error = move || {
        session
            .sign_in
            .value()
            .get()
            .and_then(|r| r.err())
            .map(|err| {
                view! { <p class="alert" role="alert" id="signin-error">{err.to_string()}</p> }
            })
    };
    view! {
        <Title text="Sign in"/>
        <main id="main" class="signin">
            <section class="signin-card" aria-labelledby="signin-title">
                <p class="brand"><span class="brand-mark" aria-hidden="true">"⇄"</span>"SyncDesk"</p>
                <h1 id="signin-title">"Sign in"</h1>
                <p class="muted">"Orders kept consistent across your store, CRM and ERP."</p>
                <ActionForm action=session.sign_in attr:class="stack">
                    <input type="hidden" name="next" prop:value=next/>
                    <label for="email">"Email"</label>
                    <input id="email" name="email" type="email" autocomplete="username" required autofocus/>
                    <label for="password">"Password"</label>
                    <input id="password" name="password" type="password" autocomplete="current-password" required/>
                    {error}
                    <button type="submit" class="button primary" prop:disabled=move || pending.get()>
                        {move || if pending.get() { "Signing in…" } else { "Sign in" }}
                    </button>
                </ActionForm>
            </section>
        </main>
    }
}
