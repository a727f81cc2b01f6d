//! Orders: the latest (or those matching a search) with each destination's state, and one
//! order's page — its state and payload at each destination, and its history across systems.

use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::api::{EditPayload, ResyncOrder, RetryOrder, SkipOrder, order_detail, recent_orders};
use crate::components::{Guard, PageHeader, SessionCtx, loaded, viewer_has};
use crate::model::{OrderDestination, Role};

/// Who reads orders: operators act on them, managers read them.
const READERS: &[Role] = &[Role::Operator, Role::Manager];

/// Orders and their state at each destination (operators, managers).
#[component]
pub fn OrdersPage() -> impl IntoView {
    let params = use_query_map();
    let search = move || params.read().get("q").filter(|s| !s.trim().is_empty());
    let state = move || params.read().get("state").filter(|s| !s.is_empty());
    // Nobody the page would refuse makes the server refuse them too (and audit the refusal).
    let session = expect_context::<SessionCtx>();
    let orders = Resource::new(
        move || (search(), state()),
        move |(q, st)| session.fetch_if(READERS, recent_orders(q, st)),
    );
    view! {
        <Guard roles=READERS>
            <PageHeader title="Orders" lead="The most recently changed orders from the store, with their state in the CRM and the ERP."/>
            <section class="panel">
                <form method="get" action="/orders" class="filters" aria-label="Find orders">
                    <div class="field">
                        <label for="o-q">"Find an order"</label>
                        <input id="o-q" name="q" type="search" placeholder="Order #, email or SKU" prop:value=move || search().unwrap_or_default()/>
                    </div>
                    <div class="field">
                        <label for="o-state">"State at a destination"</label>
                        <select id="o-state" name="state">
                            {[("", "Any"), ("blocked", "Needs action"), ("retrying", "Retrying"), ("pending", "Pending"), ("running", "Being delivered"), ("dead", "Dead"), ("skipped", "Skipped"), ("synced", "Synced")]
                                .into_iter()
                                .map(|(value, label)| view! { <option value=value selected=move || state().as_deref().unwrap_or("") == value>{label}</option> })
                                .collect_view()}
                        </select>
                    </div>
                    <div class="field actions">
                        <button type="submit" class="button">"Find"</button>
                        <a class="button subtle" href="/orders">"Clear"</a>
                    </div>
                </form>
                <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        loaded(orders.await, |orders| {
                            if orders.is_empty() {
                                let text = if search().is_some() {
                                    "No order matches. Search by the order number (#1042), the customer's email, or a SKU on the order."
                                } else if state().is_some() {
                                    "No order is in this state at the CRM or the ERP right now."
                                } else {
                                    "No orders yet. They appear as soon as the store sends its first webhook."
                                };
                                return view! { <p class="muted">{text}</p> }.into_any();
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
                                            <th scope="col">"Waiting"</th>
                                            <th scope="col">"Last change (UTC)"</th>
                                        </tr>
                                    </thead>
                                    <tbody>
                                        {orders.into_iter().map(|o| view! {
                                            <tr>
                                                <td><a href=format!("/orders/{}", o.store_order_id)><strong>{o.name}</strong></a></td>
                                                <td>{o.lifecycle}</td>
                                                <td class="num nowrap">{o.total}</td>
                                                <td><State state=o.crm/></td>
                                                <td><State state=o.erp/></td>
                                                <td class="nowrap">{o.waiting.unwrap_or_else(|| "—".into())}</td>
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
        "pending" => ("pending", "badge badge-muted"),
        "running" => ("being delivered", "badge badge-muted"),
        "retrying" => ("retrying", "badge badge-warn"),
        "blocked" => ("needs action", "badge badge-bad"),
        "dead" => ("dead", "badge badge-bad"),
        "skipped" => ("skipped", "badge badge-muted"),
        _ => ("—", "badge badge-muted"),
    };
    view! { <span class=class>{label}</span> }
}

/// One order (operators act; managers read).
#[component]
pub fn OrderDetailPage() -> impl IntoView {
    let session = expect_context::<SessionCtx>();
    let params = use_params_map();
    let id = move || params.read().get("id").and_then(|v| v.parse::<i64>().ok());
    let retry = ServerAction::<RetryOrder>::new();
    let edit = ServerAction::<EditPayload>::new();
    let resync = ServerAction::<ResyncOrder>::new();
    let skip = ServerAction::<SkipOrder>::new();
    let order = Resource::new(
        move || {
            (
                id(),
                retry.version().get(),
                edit.version().get(),
                resync.version().get(),
                skip.version().get(),
            )
        },
        move |(id, _, _, _, _)| async move {
            match id {
                Some(id) => session.fetch_if(READERS, order_detail(id)).await.map(Some),
                None => Ok(None),
            }
        },
    );
    // The newest of the two actions speaks.
    let last = RwSignal::new(0u8);
    Effect::new(move |prev: Option<usize>| {
        let v = retry.version().get();
        if prev.is_some_and(|p| p != v) {
            last.set(1);
        }
        v
    });
    Effect::new(move |prev: Option<usize>| {
        let v = edit.version().get();
        if prev.is_some_and(|p| p != v) {
            last.set(2);
        }
        v
    });
    Effect::new(move |prev: Option<usize>| {
        let v = resync.version().get();
        if prev.is_some_and(|p| p != v) {
            last.set(3);
        }
        v
    });
    Effect::new(move |prev: Option<usize>| {
        let v = skip.version().get();
        if prev.is_some_and(|p| p != v) {
            last.set(4);
        }
        v
    });
    let outcome = move || {
        let value = match last.get() {
            2 => edit.value().get(),
            3 => resync.value().get(),
            4 => skip.value().get(),
            _ => retry.value().get(),
        };
        value.map(|r| match r {
            Ok(sentence) => view! { <p class="success" role="status">{sentence}</p> }.into_any(),
            Err(err) => view! { <p class="alert" role="alert">{err.to_string()}</p> }.into_any(),
        })
    };
    view! {
        <Guard roles=READERS>
            <p class="crumbs"><a href="/orders">"← Orders"</a></p>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    // Asked here, under the guard that knows the viewer.
                    let can_act = viewer_has(Role::Operator);
                    match order.await {
                        Ok(Some(o)) => view! {
                            <leptos_meta::Title text=format!("Order {}", o.name)/>
                            <header class="page-header">
                                <h1>{format!("Order {}", o.name)}</h1>
                                <p class="lead">{format!("{} · {} · version {} · store state of {} UTC · store id {}", o.lifecycle, o.total, o.version, o.store_updated_at, o.store_order_id)}</p>
                            </header>
                            // Only where the store's Admin API is configured: without it every
                            // press would be refused.
                            {(can_act && o.can_resync).then(|| view! {
                                <ActionForm action=resync attr:class="inline page-actions">
                                    <input type="hidden" name="store_order_id" value=o.store_order_id/>
                                    <button type="submit" class="button small" title="Read the order's current state from the store and send it to the CRM and the ERP again">"Resync from the store"</button>
                                </ActionForm>
                            })}
                            {outcome}
                            <div class="destinations">
                                {o.destinations.into_iter().map(|d| view! { <DestinationCard d id=o.store_order_id version=o.version retry edit skip can_act/> }).collect_view()}
                            </div>
                            <section class="panel" aria-labelledby="timeline-title">
                                <h2 id="timeline-title">"Timeline"</h2>
                                <table class="table timeline" aria-labelledby="timeline-title">
                                    <thead>
                                        <tr>
                                            <th scope="col">"When (UTC)"</th>
                                            <th scope="col">"Where"</th>
                                            <th scope="col">"What"</th>
                                            <th scope="col">"Details"</th>
                                        </tr>
                                    </thead>
                                    <tbody>
                                        {o.timeline.into_iter().map(|e| {
                                            let class = format!("badge badge-{}", e.tone);
                                            view! {
                                                <tr>
                                                    <td class="nowrap">{e.at}</td>
                                                    <td class="upper">{e.source}</td>
                                                    <td class="nowrap"><span class=class>{e.label}</span></td>
                                                    <td class="detail">{e.detail}</td>
                                                </tr>
                                            }
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            </section>
                        }
                        .into_any(),
                        Ok(None) | Err(crate::error::AppError::NotFound(_)) => view! {
                            <section class="panel"><h1>"No such order"</h1><p>"No order with that id has reached SyncDesk. Find orders by number, email or SKU on the Orders page."</p></section>
                        }
                        .into_any(),
                        Err(err) => view! { <p class="alert" role="alert">{err.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </Guard>
    }
}

#[component]
fn DestinationCard(
    d: OrderDestination,
    id: i64,
    version: i64,
    retry: ServerAction<RetryOrder>,
    edit: ServerAction<EditPayload>,
    skip: ServerAction<SkipOrder>,
    can_act: bool,
) -> impl IntoView {
    // Skip closes the exception that says why the order needs a person: a blocked or dead
    // task always has one; a retrying one only after a few failures (its exception, if any,
    // is in the queue, where it can be skipped).
    let skippable = matches!(d.state.as_str(), "blocked" | "dead");
    let name = if d.destination == "crm" { "CRM" } else { "ERP" };
    let label = format!("{name}: payload for the current state");
    let dest = d.destination.clone();
    let editable = Some(d.payload.clone())
        .flatten()
        .filter(|_| d.state != "running");
    let based_on = d.edit_id;
    let shown = d.payload_digest.clone();
    let synced = d
        .synced_version
        .map(|v| v.to_string())
        .unwrap_or_else(|| "none".into());
    view! {
        <section class="panel destination" aria-label=name>
            <h2>{name} " " <State state=d.state.clone()/></h2>
            <dl class="facts">
                <dt>"Version synced / wanted"</dt><dd>{format!("{synced} / {}", d.target_version)}</dd>
                <dt>{if d.destination == "crm" { "CRM deal id" } else { "ERP document" }}</dt>
                <dd>{d.external_id.clone().unwrap_or_else(|| "not created yet".into())}</dd>
            </dl>
            {(!d.problems.is_empty()).then(|| view! {
                <ul class="problems">{d.problems.iter().map(|p| view! { <li>{p.clone()}</li> }).collect_view()}</ul>
            })}
            {d.edited.clone().map(|e| view! { <p class="edited"><span class="badge badge-warn">"edited"</span> " " {e}</p> })}
            {d.payload.clone().map(|p| view! {
                <details><summary>{label.clone()}</summary><pre class="payload">{p}</pre></details>
            })}
            {d.original.clone().map(|p| view! {
                <details><summary>{format!("{name}: the computed payload (kept, not sent)")}</summary><pre class="payload">{p}</pre></details>
            })}
            {can_act.then(|| {
                let for_retry = dest.clone();
                let for_edit = dest.clone();
                let for_skip = dest.clone();
                let reason_id = format!("skip-{dest}");
                let editable = editable.clone();
                let field_id = format!("edit-{dest}");
                view! {
                    <ActionForm action=retry attr:class="inline">
                        <input type="hidden" name="store_order_id" value=id/>
                        <input type="hidden" name="destination" value=for_retry/>
                        <button type="submit" class="button small">{format!("Send to the {name} again")}</button>
                    </ActionForm>
                    {skippable.then(|| view! {
                        <details class="edit-payload">
                            <summary>{format!("Skip the {name} for this order")}</summary>
                            <ActionForm action=skip attr:class="form-grid">
                                <input type="hidden" name="store_order_id" value=id/>
                                <input type="hidden" name="destination" value=for_skip/>
                                <label for=reason_id.clone()>"Why"</label>
                                <input id=reason_id name="reason" required maxlength="500" placeholder="e.g. test order, keyed in by hand"/>
                                <div><button type="submit" class="button">{format!("Skip the {name}")}</button></div>
                            </ActionForm>
                        </details>
                    })}
                    {editable.map(|payload| view! {
                        <details class="edit-payload">
                            <summary>{format!("Edit what the {name} gets")}</summary>
                            <p class="muted">"Your change stands for as long as the store leaves those fields as they are; a field the store changes again is the store's. The computed payload is kept, and your change is recorded in the audit log."</p>
                            <ActionForm action=edit attr:class="form-grid">
                                <input type="hidden" name="store_order_id" value=id/>
                                <input type="hidden" name="destination" value=for_edit/>
                                <input type="hidden" name="version" value=version/>
                                <input type="hidden" name="based_on" value=based_on/>
                                <input type="hidden" name="shown" value=shown.clone()/>
                                <label for=field_id.clone()>{format!("{name} payload (JSON)")}</label>
                                <textarea id=field_id name="payload" rows="18" spellcheck="false" class="payload-editor">{payload}</textarea>
                                <div><button type="submit" class="button primary">{format!("Save and send to the {name}")}</button></div>
                            </ActionForm>
                        </details>
                    })}
                }
            })}
        </section>
    }
}
