use leptos::prelude::*;

use crate::api::exception_groups;
use crate::components::{Guard, PageHeader};
use crate::model::Role;

/// The exception queue, grouped by cause (operators; managers read).
#[component]
pub fn ExceptionsPage() -> impl IntoView {
    view! {
        <Guard roles=&[Role::Operator, Role::Manager]>
            <PageHeader title="Exceptions" lead="Orders the engine could not settle by itself, grouped by cause: fix the cause once and every order waiting on it goes through."/>
            <Groups/>
        </Guard>
    }
}

#[component]
fn Groups() -> impl IntoView {
    let groups = Resource::new(|| (), |_| exception_groups());
    view! {
        <section class="panel" aria-labelledby="groups-title">
            <h2 id="groups-title">"Open, by cause"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    groups.await.map(|groups| {
                        if groups.is_empty() {
                            return view! { <p class="muted">"Nothing needs attention: every order is synced or on its way."</p> }.into_any();
                        }
                        view! {
                            <table class="table">
                                <thead>
                                    <tr>
                                        <th scope="col">"Cause"</th>
                                        <th scope="col" class="num">"Orders"</th>
                                        <th scope="col">"Oldest"</th>
                                        <th scope="col">"Where"</th>
                                        <th scope="col">"Fix"</th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {groups.into_iter().map(|g| {
                                        let kind = g.kind.clone();
                                        view! {
                                            <tr>
                                                <td>
                                                    <span class="badge" class:badge-bad=kind == "needs_action" || kind == "exhausted" class:badge-warn=kind == "transient">
                                                        {g.code.replace('_', " ")}
                                                    </span>
                                                    <p class="cause">{g.message}</p>
                                                </td>
                                                <td class="num"><strong>{g.open}</strong></td>
                                                <td class="nowrap">{g.oldest_age}</td>
                                                <td class="upper">{g.destinations}</td>
                                                <td class="nowrap">{g.action}</td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                            <p class="muted small">"Acting on a group from here (retry, skip, map the SKU) arrives with the operators' screens."</p>
                        }
                        .into_any()
                    })
                })}
            </Transition>
        </section>
    }
}
