//! The exception queue: open exceptions grouped by cause, the list under the current filter,
//! and the triage actions (retry, skip, resolve, assign, snooze) on one, a selection, a group or
//! everything the filter matches. Bulk actions count first (a dry run) and ask to confirm. The
//! page refreshes itself every few seconds, so exceptions appear and resolve without a reload.

use std::collections::BTreeSet;
use std::time::Duration;

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::api::{Triage, assignables, exception_groups, list_exceptions};
use crate::components::{Guard, PageHeader, query_string, viewer_has};
use crate::model::{
    ExceptionGroupView, ExceptionQuery, ExceptionRow, Role, TriageRequest, TriageTarget,
};

/// How often the queue refreshes itself.
const REFRESH: Duration = Duration::from_secs(4);

/// The exception queue (operators act; managers read).
#[component]
pub fn ExceptionsPage() -> impl IntoView {
    view! {
        <Guard roles=&[Role::Operator, Role::Manager]>
            <PageHeader title="Exceptions" lead="Orders the engine could not settle by itself, grouped by cause: fix the cause once and every order waiting on it goes through."/>
            <Queue/>
        </Guard>
    }
}

/// The filter in the address bar, so a view can be shared and survives a reload.
fn read_query(params: &leptos_router::params::ParamsMap) -> (ExceptionQuery, Option<i64>, bool) {
    let text = |k: &str| params.get(k).filter(|v| !v.trim().is_empty());
    let query = ExceptionQuery {
        status: text("status"),
        code: text("code"),
        destination: text("destination"),
        fingerprint: text("fingerprint"),
        assignee: text("assignee"),
        older_than_minutes: text("older").and_then(|v| v.parse().ok()),
        q: text("q"),
    };
    let before = text("before").and_then(|v| v.parse().ok());
    let oldest_first = text("sort").as_deref() == Some("oldest");
    (query, before, oldest_first)
}

/// The address of the queue under `query` (and sort).
fn queue_href(query: &ExceptionQuery, oldest_first: bool, before: Option<i64>) -> String {
    let pairs = [
        ("status", query.status.clone()),
        ("code", query.code.clone()),
        ("destination", query.destination.clone()),
        ("fingerprint", query.fingerprint.clone()),
        ("assignee", query.assignee.clone()),
        ("older", query.older_than_minutes.map(|m| m.to_string())),
        ("q", query.q.clone()),
        ("sort", oldest_first.then(|| "oldest".to_string())),
        ("before", before.map(|b| b.to_string())),
    ];
    format!("/exceptions{}", query_string(&pairs))
}

/// An action waiting for confirmation, with its dry-run count.
#[derive(Clone, Debug, PartialEq)]
struct Pending {
    target: TriageTarget,
    request: TriageRequest,
    /// What it applies to, for the heading ("the 57 orders of this group").
    what: String,
}

#[component]
fn Queue() -> impl IntoView {
    let params = use_query_map();
    let parsed = Memo::new(move |_| read_query(&params.read()));

    // Live updates: a tick every few seconds (in the browser only) refetches the lists.
    let tick = RwSignal::new(0u64);
    Effect::new(move |_| {
        if let Ok(handle) = set_interval_with_handle(move || tick.update(|t| *t += 1), REFRESH) {
            on_cleanup(move || handle.clear());
        }
    });

    let preview = ServerAction::<Triage>::new();
    let apply = ServerAction::<Triage>::new();
    let pending = RwSignal::new(None::<Pending>);
    let selected = RwSignal::new(BTreeSet::<i64>::new());
    // After an action: refresh at once and forget the selection.
    Effect::new(move |prev: Option<usize>| {
        let v = apply.version().get();
        if prev.is_some_and(|p| p != v) {
            selected.set(BTreeSet::new());
            tick.update(|t| *t += 1);
        }
        v
    });

    let groups = Resource::new(
        move || (parsed.get().0, tick.get()),
        |(query, _)| {
            // The groups ignore the cause filter, so the other causes stay in view.
            let query = ExceptionQuery {
                fingerprint: None,
                ..query
            };
            exception_groups(query, false)
        },
    );
    let page = Resource::new(
        move || (parsed.get(), tick.get()),
        |((query, before, oldest), _)| list_exceptions(query, before, oldest),
    );
    let can_act = viewer_has(Role::Operator);
    // Only operators assign; nobody else asks for the list (the server would refuse, and audit
    // the refusal).
    let people = Resource::new(
        || (),
        move |_| async move {
            if can_act {
                assignables().await
            } else {
                Ok(Vec::new())
            }
        },
    );

    // Starts an action: a single exception goes at once; anything bigger is counted first.
    let start = move |target: TriageTarget, request: TriageRequest, what: String| {
        let one = matches!(&target, TriageTarget::Ids { ids } if ids.len() == 1);
        let needs_text = matches!(
            request,
            TriageRequest::Skip { .. } | TriageRequest::Resolve { .. }
        );
        if one && !needs_text {
            apply.dispatch(Triage {
                target,
                request,
                dry_run: false,
            });
        } else {
            preview.dispatch(Triage {
                target: target.clone(),
                request: request.clone(),
                dry_run: true,
            });
            pending.set(Some(Pending {
                target,
                request,
                what,
            }));
        }
    };

    view! {
        <Filters parsed/>
        <Outcome apply/>
        {move || pending.get().map(|p| view! { <Confirm pending=p preview apply on_close=move || pending.set(None)/> })}
        <section class="panel" aria-labelledby="groups-title">
            <h2 id="groups-title">"By cause"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    groups.await.map(|groups| {
                        if groups.is_empty() {
                            // Only the unfiltered queue may say that nothing needs attention.
                            let query = parsed.get_untracked().0;
                            let narrowed = ExceptionQuery {
                                status: query.status.filter(|s| s != "open"),
                                fingerprint: None,
                                ..query
                            } != ExceptionQuery::default();
                            let sentence = if narrowed {
                                "No cause matches this filter."
                            } else {
                                "Nothing needs attention here: every order is synced or on its way."
                            };
                            return view! { <p class="muted">{sentence}</p> }.into_any();
                        }
                        let (query, _, oldest) = parsed.get_untracked();
                        view! {
                            <table class="table groups" aria-labelledby="groups-title">
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
                                    {groups.into_iter().map(|g| view! { <GroupLine g query=query.clone() oldest can_act start/> }).collect_view()}
                                </tbody>
                            </table>
                        }
                        .into_any()
                    })
                })}
            </Transition>
        </section>
        <section class="panel" aria-labelledby="list-title">
            <List parsed page people selected can_act start/>
        </section>
    }
}

/// The filter bar: a plain GET form, so it works before the page is interactive too.
#[component]
fn Filters(parsed: Memo<(ExceptionQuery, Option<i64>, bool)>) -> impl IntoView {
    let value = move |f: fn(&ExceptionQuery) -> Option<String>| {
        move || f(&parsed.get().0).unwrap_or_default()
    };
    let is = move |f: fn(&ExceptionQuery) -> Option<String>, v: &'static str| {
        move || f(&parsed.get().0).as_deref() == Some(v)
    };
    view! {
        <form method="get" action="/exceptions" class="panel filters" aria-label="Filter exceptions">
            <div class="field">
                <label for="f-q">"Search"</label>
                <input id="f-q" name="q" type="search" placeholder="Order #, email or SKU" prop:value=value(|q| q.q.clone())/>
            </div>
            <div class="field">
                <label for="f-status">"Status"</label>
                <select id="f-status" name="status">
                    <option value="open" selected=is(|q| q.status.clone(), "open")>"Open"</option>
                    <option value="snoozed" selected=is(|q| q.status.clone(), "snoozed")>"Snoozed"</option>
                    <option value="resolved" selected=is(|q| q.status.clone(), "resolved")>"Resolved"</option>
                    <option value="skipped" selected=is(|q| q.status.clone(), "skipped")>"Skipped"</option>
                    <option value="all" selected=is(|q| q.status.clone(), "all")>"All"</option>
                </select>
            </div>
            <div class="field">
                <label for="f-dest">"Where"</label>
                <select id="f-dest" name="destination">
                    <option value="">"CRM and ERP"</option>
                    <option value="crm" selected=is(|q| q.destination.clone(), "crm")>"CRM"</option>
                    <option value="erp" selected=is(|q| q.destination.clone(), "erp")>"ERP"</option>
                </select>
            </div>
            <div class="field">
                <label for="f-assignee">"Assigned"</label>
                <select id="f-assignee" name="assignee">
                    <option value="">"Anyone"</option>
                    <option value="me" selected=is(|q| q.assignee.clone(), "me")>"To me"</option>
                    <option value="none" selected=is(|q| q.assignee.clone(), "none")>"To nobody"</option>
                </select>
            </div>
            <div class="field">
                <label for="f-older">"Waiting"</label>
                <select id="f-older" name="older">
                    <option value="">"Any time"</option>
                    <option value="15" selected=is(|q| q.older_than_minutes.map(|m| m.to_string()), "15")>"Over 15 min"</option>
                    <option value="60" selected=is(|q| q.older_than_minutes.map(|m| m.to_string()), "60")>"Over 1 hour"</option>
                    <option value="1440" selected=is(|q| q.older_than_minutes.map(|m| m.to_string()), "1440")>"Over 1 day"</option>
                </select>
            </div>
            <div class="field">
                <label for="f-sort">"Order"</label>
                <select id="f-sort" name="sort">
                    <option value="">"Newest first"</option>
                    <option value="oldest" selected=move || parsed.get().2>"Oldest first"</option>
                </select>
            </div>
            {move || parsed.get().0.fingerprint.map(|fp| view! { <input type="hidden" name="fingerprint" value=fp/> })}
            <div class="field actions">
                <button type="submit" class="button">"Filter"</button>
                <a class="button subtle" href="/exceptions">"Clear"</a>
            </div>
        </form>
    }
}

/// The last action's outcome, as a sentence.
#[component]
fn Outcome(apply: ServerAction<Triage>) -> impl IntoView {
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
fn Confirm(
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

/// The SKU a missing-mapping cause is about.
fn sku_of(fingerprint: &str) -> Option<&str> {
    fingerprint.strip_prefix("missing_sku:erp:")
}

#[component]
fn GroupLine(
    g: ExceptionGroupView,
    query: ExceptionQuery,
    oldest: bool,
    can_act: bool,
    start: impl Fn(TriageTarget, TriageRequest, String) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let kind = g.kind.clone();
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
    let fp = g.fingerprint.clone();
    let fp2 = g.fingerprint.clone();
    let what = orders.clone();
    let what2 = orders.clone();
    let auth = g.code == "auth_expired";
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
                    let (fp, fp2, what, what2) = (fp.clone(), fp2.clone(), what.clone(), what2.clone());
                    view! {
                        <button type="button" class="button small" on:click=move |_| start(TriageTarget::Group { fingerprint: fp.clone() }, TriageRequest::Retry, what.clone())>"Retry all"</button>
                        <button type="button" class="button small subtle" on:click=move |_| start(TriageTarget::Group { fingerprint: fp2.clone() }, TriageRequest::Skip { reason: String::new() }, what2.clone())>"Skip all…"</button>
                    }
                })}
                {auth.then(|| view! { <span class="muted small">"An admin renews the credentials; the destination then resumes by itself."</span> })}
            </div></td>
        </tr>
    }
}

#[component]
fn List(
    parsed: Memo<(ExceptionQuery, Option<i64>, bool)>,
    page: Resource<Result<crate::model::ExceptionPage, crate::error::AppError>>,
    people: Resource<Result<Vec<crate::model::Assignable>, crate::error::AppError>>,
    selected: RwSignal<BTreeSet<i64>>,
    can_act: bool,
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
                page.await.map(|page| {
                    let (query, _, oldest) = parsed.get_untracked();
                    let older = page.next_before.map(|id| view! {
                        <a class="button" href=queue_href(&query, oldest, Some(id))>{if oldest { "Newer →" } else { "Older →" }}</a>
                    });
                    if page.rows.is_empty() {
                        return view! { <p class="muted">"No exception matches this filter."</p> }.into_any();
                    }
                    let ids: Vec<i64> = page.rows.iter().map(|r| r.id).collect();
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
                                {page.rows.into_iter().map(|row| view! { <ExceptionLine row selected can_act start/> }).collect_view()}
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
fn ExceptionLine(
    row: ExceptionRow,
    selected: RwSignal<BTreeSet<i64>>,
    can_act: bool,
    start: impl Fn(TriageTarget, TriageRequest, String) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let id = row.id;
    let open = row.status == "open" || row.status == "snoozed";
    let order = match (row.store_order_id, row.order_name.clone()) {
        (Some(sid), Some(name)) => {
            view! { <a href=format!("/orders/{sid}")><strong>{name}</strong></a> }.into_any()
        }
        _ => view! { <span class="muted">"whole destination"</span> }.into_any(),
    };
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
                        {open.then(|| view! {
                            <button type="button" class="button small" on:click=move |_| start(one(), TriageRequest::Retry, what.clone())>"Retry"</button>
                        })}
                    </td>
                }
            })}
        </tr>
    }
}
