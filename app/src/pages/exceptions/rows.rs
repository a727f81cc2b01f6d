//! The queue's rows: a cause with its orders and group actions, and the list of exceptions
//! under the current filter with their own actions and selection.

use std::collections::BTreeSet;

use leptos::prelude::*;

use super::queue_href;
use crate::api::{ResumeDestination, ResyncOrder};
use crate::components::loaded;
use crate::model::{ExceptionGroupView, ExceptionQuery, ExceptionRow, TriageRequest, TriageTarget};

/// The SKU a missing-mapping cause is about.
pub(super) fn sku_of(fingerprint: &str) -> Option<&str> {
    fingerprint.strip_prefix("missing_sku:erp:")
}

#[component]
pub(super) fn GroupLine(
    g: ExceptionGroupView,
    query: ExceptionQuery,
    oldest: bool,
    can_act: bool,
    can_resume: bool,
    resume: ServerAction<ResumeDestination>,
    start: impl Fn(TriageTarget, TriageRequest, String) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let kind = g.kind.clone();
    // A destination-wide cause (`auth:erp`) names the destination it paused.
    let paused = g.fingerprint.strip_prefix("auth:").map(str::to_string);
    // The group's buttons act on what its row counts: this cause within the filters the queue
    // is shown under (an assignee, an age, a search, a status: with none chosen, the open
    // ones), not every exception of the cause.
    let acted_on = ExceptionQuery {
        fingerprint: Some(g.fingerprint.clone()),
        status: query.status.clone().or_else(|| Some("open".to_string())),
        ..query.clone()
    };
    let show = queue_href(
        &ExceptionQuery {
            fingerprint: Some(g.fingerprint.clone()),
            ..query
        },
        oldest,
        None,
    );
    let orders = if g.open == 1 {
        "the 1 order of this cause".to_string()
    } else {
        format!("the {} orders of this cause", g.open)
    };
    let map_sku = sku_of(&g.fingerprint)
        .map(|sku| format!("/sku-mappings?sku={}", crate::components::encode(sku)));
    let retry_scope = acted_on.clone();
    let skip_scope = acted_on;
    let what = orders.clone();
    let what2 = orders.clone();
    let auth = g.code == "auth_expired";
    // An order state the store sent unreadable: a retry has nothing to send (its rows below
    // resync the order from the store); skipping closes it.
    let from_store = g.code == "unreadable_webhook";
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
            <td class="group-actions"><div class="buttons">
                {map_sku.map(|href| view! { <a class="button small primary" href=href>"Map SKU"</a> })}
                <a class="button small" href=show>{if g.open == 1 { "Show order".to_string() } else { format!("Show {} orders", g.open) }}</a>
                {(can_act && !auth).then(|| {
                    let (retry_scope, skip_scope, what, what2) = (retry_scope.clone(), skip_scope.clone(), what.clone(), what2.clone());
                    view! {
                        {(!from_store).then(|| {
                            let (retry_scope, what) = (retry_scope.clone(), what.clone());
                            view! { <button type="button" class="button small" on:click=move |_| start(TriageTarget::Filter { query: retry_scope.clone() }, TriageRequest::Retry, what.clone())>"Retry all"</button> }
                        })}
                        <button type="button" class="button small subtle" on:click=move |_| start(TriageTarget::Filter { query: skip_scope.clone() }, TriageRequest::Skip { reason: String::new() }, what2.clone())>"Skip all…"</button>
                    }
                })}
                {(auth && can_resume).then(|| paused.clone()).flatten().map(|destination| view! {
                    <button type="button" class="button small"
                        title="For credentials put right on the destination's side. If it still refuses them, the next delivery pauses it again."
                        disabled=move || resume.pending().get()
                        on:click=move |_| { resume.dispatch(ResumeDestination { destination: destination.clone() }); }>
                        "Resume deliveries"
                    </button>
                })}
                {auth.then(|| view! { <span class="muted small">"An admin renews the credentials and restarts SyncDesk; the destination then resumes by itself."</span> })}
            </div></td>
        </tr>
    }
}

#[component]
pub(super) fn List(
    parsed: Memo<(ExceptionQuery, Option<i64>, bool)>,
    page: Resource<Result<crate::model::ExceptionPage, crate::error::AppError>>,
    people: Resource<Result<Vec<crate::model::Assignable>, crate::error::AppError>>,
    selected: RwSignal<BTreeSet<i64>>,
    can_act: bool,
    resync: ServerAction<ResyncOrder>,
    start: impl Fn(TriageTarget, TriageRequest, String) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let title = move || {
        let (q, _, _) = parsed.get();
        match (&q.fingerprint, &q.q) {
            (Some(fp), _) => format!("Orders waiting on {}", fp.replace(':', " · ")),
            (None, Some(s)) => format!("Matching “{s}”"),
            _ => "All in this view".to_string(),
        }
    };
    // The bulk bar acts on the selection, or on everything the filter matches.
    let selection_target = move || TriageTarget::Ids {
        ids: selected.get_untracked().into_iter().collect(),
    };
    let filter_target = move || TriageTarget::Filter {
        query: parsed.get_untracked().0,
    };
    let sel_what = move || {
        let n = selected.get_untracked().len();
        if n == 1 {
            "the selected exception".to_string()
        } else {
            format!("the {n} selected exceptions")
        }
    };
    let assign_to = RwSignal::new(String::from("me"));
    let snooze_for = RwSignal::new(String::from("24"));
    let bulk = move |request: TriageRequest| {
        if selected.get_untracked().is_empty() {
            start(
                filter_target(),
                request,
                "everything matching this filter".to_string(),
            );
        } else {
            start(selection_target(), request, sel_what());
        }
    };
    view! {
        <h2 id="list-title">{title}</h2>
        {can_act.then(|| view! {
            <div class="bulk" role="group" aria-label="Act on the selection, or on everything matching the filter">
                <span class="bulk-scope">{move || {
                    let n = selected.get().len();
                    if n == 0 { "Nothing selected: buttons act on everything matching the filter.".to_string() } else { format!("{n} selected") }
                }}</span>
                <button type="button" class="button small" on:click=move |_| bulk(TriageRequest::Retry)>"Retry"</button>
                <button type="button" class="button small" on:click=move |_| bulk(TriageRequest::Skip { reason: String::new() })>"Skip…"</button>
                <button type="button" class="button small" on:click=move |_| bulk(TriageRequest::Resolve { note: String::new() })>"Mark done…"</button>
                <span class="bulk-field">
                    <label for="assign-to" class="sr-only">"Assign to"</label>
                    <select id="assign-to" on:change=move |ev| assign_to.set(event_target_value(&ev))>
                        <option value="me">"Me"</option>
                        <option value="none">"Nobody"</option>
                        <Transition fallback=|| ()>
                            {move || Suspend::new(async move {
                                people.await.map(|list| list.into_iter().map(|p| view! { <option value=p.id.to_string()>{p.name}</option> }).collect_view())
                            })}
                        </Transition>
                    </select>
                    <button type="button" class="button small" on:click=move |_| bulk(TriageRequest::Assign { assignee: assign_to.get_untracked() })>"Assign"</button>
                </span>
                <span class="bulk-field">
                    <label for="snooze-for" class="sr-only">"Snooze for"</label>
                    <select id="snooze-for" on:change=move |ev| snooze_for.set(event_target_value(&ev))>
                        <option value="1">"1 hour"</option>
                        <option value="24" selected>"1 day"</option>
                        <option value="168">"1 week"</option>
                    </select>
                    <button type="button" class="button small" on:click=move |_| bulk(TriageRequest::Snooze { hours: snooze_for.get_untracked().parse().unwrap_or(24) })>"Snooze"</button>
                </span>
            </div>
        })}
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                loaded(page.await, |page| {
                    let (query, _, oldest) = parsed.get_untracked();
                    let older = page.next_before.map(|id| view! {
                        <a class="button" href=queue_href(&query, oldest, Some(id))>{if oldest { "Newer →" } else { "Older →" }}</a>
                    });
                    if page.rows.is_empty() {
                        return view! { <p class="muted">"No exception matches this filter."</p> }.into_any();
                    }
                    // Only the rows that can be acted on: a closed one has its box disabled.
                    let ids: Vec<i64> = page
                        .rows
                        .iter()
                        .filter(|r| r.status == "open" || r.status == "snoozed")
                        .map(|r| r.id)
                        .collect();
                    let all_ids = ids.clone();
                    let all_checked = move || {
                        let s = selected.get();
                        !ids.is_empty() && ids.iter().all(|id| s.contains(id))
                    };
                    view! {
                        <table class="table exceptions" aria-labelledby="list-title">
                            <thead>
                                <tr>
                                    {can_act.then(move || {
                                        let all_ids = all_ids.clone();
                                        view! {
                                            <th scope="col" class="pick">
                                                <input type="checkbox" aria-label="Select all on this page" prop:checked=all_checked.clone()
                                                    on:change=move |ev| {
                                                        let on = event_target_checked(&ev);
                                                        selected.update(|s| for id in &all_ids { if on { s.insert(*id); } else { s.remove(id); } });
                                                    }/>
                                            </th>
                                        }
                                    })}
                                    <th scope="col">"Order"</th>
                                    <th scope="col">"Where"</th>
                                    <th scope="col">"Problem"</th>
                                    <th scope="col">"Status"</th>
                                    <th scope="col">"Waiting"</th>
                                    {can_act.then(|| view! { <th scope="col"><span class="sr-only">"Actions"</span></th> })}
                                </tr>
                            </thead>
                            <tbody>
                                {page.rows.into_iter().map(|row| view! { <ExceptionLine row selected can_act resync start/> }).collect_view()}
                            </tbody>
                        </table>
                        <p class="pager">{older}</p>
                    }
                    .into_any()
                })
            })}
        </Transition>
    }
}

#[component]
pub(super) fn ExceptionLine(
    row: ExceptionRow,
    selected: RwSignal<BTreeSet<i64>>,
    can_act: bool,
    resync: ServerAction<ResyncOrder>,
    start: impl Fn(TriageTarget, TriageRequest, String) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let id = row.id;
    let open = row.status == "open" || row.status == "snoozed";
    // An order state the store sent unreadable has no task to send again: reading the order's
    // current state from the store is what retries it.
    let from_store = row.destination == "store";
    let resyncable = open && from_store;
    // A destination-wide exception (rejected credentials) has no order to send again: it is
    // settled by resuming the destination, from its cause's row above.
    let retriable = open && !from_store && row.store_order_id.is_some();
    let order = match (row.store_order_id, row.order_name.clone()) {
        (Some(sid), Some(name)) => {
            view! { <a href=format!("/orders/{sid}")><strong>{name}</strong></a> }.into_any()
        }
        // Not taken in yet: the store's id is all there is.
        (Some(sid), None) => view! { <span>{format!("store id {sid}")}</span> }.into_any(),
        _ if from_store => view! { <span class="muted">"order unknown"</span> }.into_any(),
        _ => view! { <span class="muted">"whole destination"</span> }.into_any(),
    };
    let store_order_id = row.store_order_id;
    let label = row
        .order_name
        .clone()
        .unwrap_or_else(|| format!("exception {id}"));
    let status = match (&row.status[..], &row.assignee) {
        (s, Some(who)) => format!("{s} · {who}"),
        (s, None) => s.to_string(),
    };
    let one = move || TriageTarget::Ids { ids: vec![id] };
    let what = format!("order {label}");
    view! {
        <tr class:picked=move || selected.with(|s| s.contains(&id))>
            {can_act.then(|| view! {
                <td class="pick">
                    <input type="checkbox" aria-label=format!("Select {label}") disabled=!open
                        prop:checked=move || selected.with(|s| s.contains(&id))
                        on:change=move |ev| {
                            let on = event_target_checked(&ev);
                            selected.update(|s| { if on { s.insert(id); } else { s.remove(&id); } });
                        }/>
                </td>
            })}
            <td class="nowrap">{order}</td>
            <td class="upper">{row.destination.clone()}</td>
            <td>
                <p class="cause">{row.message.clone()}</p>
                {row.resolution.clone().map(|r| view! { <p class="muted small">{r}</p> })}
            </td>
            <td class="nowrap">{status}</td>
            <td class="nowrap">{row.age.clone()}</td>
            {can_act.then(move || {
                let what = what.clone();
                view! {
                    <td class="nowrap row-actions">
                        {retriable.then(|| view! {
                            <button type="button" class="button small" on:click=move |_| start(one(), TriageRequest::Retry, what.clone())>"Retry"</button>
                        })}
                        {resyncable.then_some(store_order_id).flatten().map(|sid| view! {
                            <button type="button" class="button small"
                                title="Read the order's current state from the store and send it to the CRM and the ERP"
                                disabled=move || resync.pending().get()
                                on:click=move |_| { resync.dispatch(ResyncOrder { store_order_id: sid }); }>
                                "Resync from the store"
                            </button>
                        })}
                    </td>
                }
            })}
        </tr>
    }
}
