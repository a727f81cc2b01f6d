use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::api::list_audit;
use crate::components::{Guard, PageHeader, encode};
use crate::model::{AuditQuery, Role};

/// The audit log: every change anyone made, newest first (admin).
#[component]
pub fn AuditPage() -> impl IntoView {
    view! {
        <Guard roles=&[Role::Admin]>
            <PageHeader title="Audit" lead="Every change made by a person or a token: who, what, when, before and after."/>
            <AuditLog/>
        </Guard>
    }
}

#[component]
fn AuditLog() -> impl IntoView {
    let params = use_query_map();
    let query = move || {
        let p = params.read();
        let text = |k: &str| p.get(k).filter(|v| !v.trim().is_empty());
        AuditQuery {
            action: text("action"),
            actor: text("actor"),
            before: p.get("before").and_then(|b| b.parse().ok()),
        }
    };
    let page = Resource::new(query, list_audit);
    view! {
        <section class="panel">
            <form method="get" class="filters" aria-label="Filter the audit log">
                <label for="f-action">"Action starts with"</label>
                <input id="f-action" name="action" placeholder="e.g. signin" prop:value=move || query().action.unwrap_or_default()/>
                <label for="f-actor">"Actor contains"</label>
                <input id="f-actor" name="actor" placeholder="e.g. ana@" prop:value=move || query().actor.unwrap_or_default()/>
                <button type="submit" class="button">"Filter"</button>
            </form>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    page.await.map(|page| {
                        let q = query();
                        let older = page.older_than.map(|id| {
                            let mut href = format!("/audit?before={id}");
                            if let Some(a) = &q.action { href.push_str(&format!("&action={}", encode(a))); }
                            if let Some(a) = &q.actor { href.push_str(&format!("&actor={}", encode(a))); }
                            view! { <a class="button" href=href>"Older entries"</a> }
                        });
                        let empty = page.rows.is_empty();
                        view! {
                            <table class="table audit">
                                <thead>
                                    <tr>
                                        <th scope="col">"When (UTC)"</th>
                                        <th scope="col">"Who"</th>
                                        <th scope="col">"What"</th>
                                        <th scope="col">"On"</th>
                                        <th scope="col">"Change"</th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {page.rows.into_iter().map(|row| view! {
                                        <tr>
                                            <td class="nowrap">{row.at}</td>
                                            <td>{row.actor}</td>
                                            <td><code>{row.action}</code></td>
                                            <td>{row.target}</td>
                                            <td class="change">
                                                {row.before.map(|b| view! { <div><span class="muted">"before "</span><code>{b}</code></div> })}
                                                {row.after.map(|a| view! { <div><span class="muted">"after "</span><code>{a}</code></div> })}
                                            </td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                            {empty.then(|| view! { <p class="muted">"No entries match."</p> })}
                            <p>{older}</p>
                        }
                    })
                })}
            </Transition>
        </section>
    }
}
