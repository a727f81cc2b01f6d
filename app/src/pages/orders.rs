use leptos::prelude::*;

use crate::api::recent_orders;
use crate::components::{Guard, PageHeader};
use crate::model::Role;

/// Orders and their state at each destination (operators, managers).
#[component]
pub fn OrdersPage() -> impl IntoView {
    let orders = Resource::new(|| (), |_| recent_orders());
    view! {
        <Guard roles=&[Role::Operator, Role::Manager]>
            <PageHeader title="Orders" lead="The most recently changed orders from the store, with their state in the CRM and the ERP."/>
            <section class="panel">
                <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        orders.await.map(|orders| {
                            if orders.is_empty() {
                                return view! { <p class="muted">"No orders yet. They appear as soon as the store sends its first webhook."</p> }.into_any();
                            }
                            view! {
                                <table class="table">
                                    <thead>
                                        <tr>
                                            <th scope="col">"Order"</th>
                                            <th scope="col">"Status"</th>
                                            <th scope="col" class="num">"Total"</th>
                                            <th scope="col">"CRM"</th>
                                            <th scope="col">"ERP"</th>
                                            <th scope="col">"Last change (UTC)"</th>
                                        </tr>
                                    </thead>
                                    <tbody>
                                        {orders.into_iter().map(|o| view! {
                                            <tr>
                                                <td><strong>{o.name}</strong></td>
                                                <td>{o.lifecycle}</td>
                                                <td class="num nowrap">{o.total}</td>
                                                <td><State state=o.crm/></td>
                                                <td><State state=o.erp/></td>
                                                <td class="nowrap">{o.updated_at}</td>
                                            </tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            }
                            .into_any()
                        })
                    })}
                </Transition>
            </section>
        </Guard>
    }
}

/// A destination state as a badge people read at a glance.
#[component]
fn State(state: String) -> impl IntoView {
    let (label, class) = match state.as_str() {
        "synced" => ("synced", "badge badge-ok"),
        "pending" | "running" => ("pending", "badge badge-muted"),
        "retrying" => ("retrying", "badge badge-warn"),
        "blocked" => ("needs action", "badge badge-bad"),
        "dead" => ("dead", "badge badge-bad"),
        "skipped" => ("skipped", "badge badge-muted"),
        _ => ("—", "badge badge-muted"),
    };
    view! { <span class=class>{label}</span> }
}
