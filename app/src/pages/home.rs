use leptos::prelude::*;
use leptos_router::components::Redirect;

use crate::components::SessionCtx;
use crate::model::SECTIONS;

/// `/`: sends the viewer to the first section their roles open.
#[component]
pub fn HomePage() -> impl IntoView {
    let session = expect_context::<SessionCtx>();
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match session.viewer.await {
                    Ok(Some(viewer)) => match SECTIONS.iter().find(|s| viewer.has_any(s.roles)) {
                        Some(section) => view! { <Redirect path=section.path/> }.into_any(),
                        None => view! {
                            <section class="panel">
                                <h1>"Welcome to SyncDesk"</h1>
                                <p>"Your account has no roles yet, so there is nothing to open. Ask an admin to give you a role."</p>
                            </section>
                        }
                        .into_any(),
                    },
                    _ => view! { <Redirect path="/login"/> }.into_any(),
                }
            })}
        </Transition>
    }
}
