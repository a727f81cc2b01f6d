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

/// The exception queue (operators; managers read).
#[component]
pub fn ExceptionsPage() -> impl IntoView {
    view! {
        <Guard roles=&[Role::Operator, Role::Manager]>
            <PageHeader title="Exceptions" lead="Orders the engine could not settle by itself, grouped by cause."/>
            <NotYet what="The exception queue arrives with the sync engine. Until then no orders are synced, so nothing can fail."/>
        </Guard>
    }
}

/// Orders and their state at each destination.
#[component]
pub fn OrdersPage() -> impl IntoView {
    view! {
        <Guard roles=&[Role::Operator, Role::Manager]>
            <PageHeader title="Orders" lead="Every order from the store, with its state in the CRM and the ERP."/>
            <NotYet what="Orders appear here once the sync engine receives store webhooks."/>
        </Guard>
    }
}

/// Store SKU to ERP item code mappings.
#[component]
pub fn SkuMappingsPage() -> impl IntoView {
    view! {
        <Guard roles=&[Role::Operator]>
            <PageHeader title="SKU mappings" lead="Which ERP item code each store SKU becomes."/>
            <NotYet what="SKU mappings arrive with the sync engine, together with the list of unmapped SKUs that block orders."/>
        </Guard>
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
            <NotYet what="The dashboard arrives once the sync engine records deliveries to measure."/>
        </Guard>
    }
}
