//! A triage action's confirmation: the dry-run count, the reason when one is needed, the
//! buttons, and what the action did.

use leptos::prelude::*;

use super::Pending;
use crate::api::Triage;
use crate::model::TriageRequest;

/// The last action's outcome, as a sentence.
#[component]
pub(super) fn Outcome(apply: ServerAction<Triage>) -> impl IntoView {
    move || {
        apply.value().get().map(|result| match result {
            Ok(outcome) => {
                view! { <p class="success" role="status">{outcome.summary}</p> }.into_any()
            }
            Err(err) => view! { <p class="alert" role="alert">{err.to_string()}</p> }.into_any(),
        })
    }
}

/// The confirmation of a bulk action: the dry-run count, the reason when one is needed, and
/// the buttons.
#[component]
pub(super) fn Confirm(
    pending: Pending,
    preview: ServerAction<Triage>,
    apply: ServerAction<Triage>,
    on_close: impl Fn() + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let text = RwSignal::new(String::new());
    let (verb, label) = match &pending.request {
        TriageRequest::Retry => ("Retry", None),
        TriageRequest::Skip { .. } => (
            "Skip",
            Some("Why skip them? (kept on each order's timeline)"),
        ),
        TriageRequest::Resolve { .. } => (
            "Mark as done",
            Some("What was done? (kept on each order's timeline)"),
        ),
        TriageRequest::Assign { .. } => ("Assign", None),
        TriageRequest::Snooze { .. } => ("Snooze", None),
    };
    let needs_text = label.is_some();
    let heading = format!("{verb} {}?", pending.what);
    let count = move || {
        if preview.pending().get() {
            return view! { <p class="muted">"Counting…"</p> }.into_any();
        }
        match preview.value().get() {
            Some(Ok(outcome)) => view! { <p>{outcome.summary}</p> }.into_any(),
            Some(Err(err)) => {
                view! { <p class="alert" role="alert">{err.to_string()}</p> }.into_any()
            }
            None => ().into_any(),
        }
    };
    let nothing = move || {
        preview
            .value()
            .get()
            .and_then(|r| r.ok())
            .is_some_and(|o| o.matched == 0)
    };
    let confirm = {
        let pending = pending.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            let reason = text.get_untracked();
            let request = match &pending.request {
                TriageRequest::Skip { .. } => TriageRequest::Skip { reason },
                TriageRequest::Resolve { .. } => TriageRequest::Resolve { note: reason },
                other => other.clone(),
            };
            apply.dispatch(Triage {
                target: pending.target.clone(),
                request,
                dry_run: false,
            });
            on_close();
        }
    };
    view! {
        <section class="panel confirm" role="alertdialog" aria-labelledby="confirm-title" aria-describedby="confirm-count">
            <h2 id="confirm-title">{heading}</h2>
            <div id="confirm-count">{count}</div>
            <form on:submit=confirm class="stack-inline">
                {label.map(|l| view! {
                    <label for="confirm-text">{l}</label>
                    <textarea id="confirm-text" rows="2" maxlength="500" required
                        prop:value=move || text.get() on:input=move |ev| text.set(event_target_value(&ev))></textarea>
                })}
                <div>
                    <button type="submit" class="button primary"
                        disabled=move || preview.pending().get() || nothing() || (needs_text && text.get().trim().is_empty())>
                        {format!("{verb} now")}
                    </button>
                    " "
                    <button type="button" class="button subtle" on:click=move |_| on_close()>"Cancel"</button>
                </div>
            </form>
        </section>
    }
}
