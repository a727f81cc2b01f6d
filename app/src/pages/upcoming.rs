//! Sections whose work arrives with later capabilities. Each says plainly what it will hold and
//! that it is not built yet, rather than showing empty tables that look broken.

use leptos::prelude::*;

use crate::components::{Guard, PageHeader};
use crate::model::Role;

#[component]
fn NotYet(what: &'static str) -> impl IntoView {
    view! {
        <section class="panel notice" aria-live="polite">
            <h2>"Not built yet"</h2>
            <p>{what}</p>
        </section>
    }
}

/// Proposed customer merges.
#[component]
pub fn MergesPage() -> impl IntoView {
    view! {
        <Guard roles=&[Role::Steward]>
            <PageHeader title="Merges" lead="Customers that may be the same person, for a data steward to decide."/>
            <NotYet what="Merge proposals arrive with customer identity matching."/>
        </Guard>
    }
}

/// Sync KPIs.
#[component]
pub fn DashboardPage() -> impl IntoView {
    view! {
        <Guard roles=&[Role::Manager]>
            <PageHeader title="Dashboard" lead="Sync lag, failure rate, duplicates, queue depth and dead letters."/>
            <NotYet what="The dashboard is not built yet. The engine already records every delivery attempt it will measure."/>
        </Guard>
    }
}
