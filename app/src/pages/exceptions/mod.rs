//! The exception queue: open exceptions grouped by cause, the list under the current filter,
//! and the triage actions (retry, skip, resolve, assign, snooze) on one, a selection, a group or
//! everything the filter matches. Bulk actions count first (a dry run) and ask to confirm. The
//! page refreshes itself every few seconds, so exceptions appear and resolve without a reload.

mod confirm;
mod rows;

use std::collections::BTreeSet;
use std::time::Duration;

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use confirm::{Confirm, Outcome};
use rows::{GroupLine, List};

use crate::api::{
    ResumeDestination, ResyncOrder, Triage, assignables, exception_groups, list_exceptions,
};
use crate::components::{Guard, PageHeader, SessionCtx, loaded, query_string, viewer_has};
use crate::error::AppError;
use crate::model::{ExceptionQuery, Role, TriageRequest, TriageTarget};

/// Who may read the queue.
const READERS: &[Role] = &[Role::Operator, Role::Manager];

/// How often the queue refreshes itself.
const REFRESH: Duration = Duration::from_secs(4);

/// The causes the queue shows at most; the server sends one more, to tell when there are more.
const GROUPS_SHOWN: usize = 200;

/// The exception queue (operators act; managers read).
#[component]
pub fn ExceptionsPage() -> impl IntoView {
    // The queue's state and resources are made here, once, not under the Guard: the server
    // builds what is under it once per rendering pass (see `components::Guard`).
    let state = QueueState::new();
    view! {
        <Guard roles=&[Role::Operator, Role::Manager]>
            <PageHeader title="Exceptions" lead="Orders the engine could not settle by itself, grouped by cause: fix the cause once and every order waiting on it goes through."/>
            <Queue state/>
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
pub(super) fn queue_href(
    query: &ExceptionQuery,
    oldest_first: bool,
    before: Option<i64>,
) -> String {
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
pub(super) struct Pending {
    target: TriageTarget,
    request: TriageRequest,
    /// What it applies to, for the heading ("the 57 orders of this group").
    what: String,
}

/// The queue's signals, actions and resources.
#[derive(Clone, Copy)]
struct QueueState {
    parsed: Memo<(ExceptionQuery, Option<i64>, bool)>,
    preview: ServerAction<Triage>,
    apply: ServerAction<Triage>,
    resume: ServerAction<ResumeDestination>,
    /// "Resync from the store", on a row of an order state the store sent unreadable.
    resync: ServerAction<ResyncOrder>,
    pending: RwSignal<Option<Pending>>,
    selected: RwSignal<BTreeSet<i64>>,
    groups: Resource<Result<Vec<crate::model::ExceptionGroupView>, crate::error::AppError>>,
    page: Resource<Result<crate::model::ExceptionPage, crate::error::AppError>>,
    people: Resource<Result<Vec<crate::model::Assignable>, crate::error::AppError>>,
}

impl QueueState {
    fn new() -> QueueState {
        let session = expect_context::<SessionCtx>();
        let params = use_query_map();
        let parsed = Memo::new(move |_| read_query(&params.read()));

        // Live updates: a tick every few seconds (in the browser only) refetches the lists;
        // not once the server has refused them (a session ended, a role taken away), which
        // asking again every few seconds would not change, only audit again and again.
        let tick = RwSignal::new(0u64);
        let refused = RwSignal::new(false);
        Effect::new(move |_| {
            let next = move || {
                if !refused.get_untracked() {
                    tick.update(|t| *t += 1);
                }
            };
            if let Ok(handle) = set_interval_with_handle(next, REFRESH) {
                on_cleanup(move || handle.clear());
            }
        });
        let noted = move |error: Option<&AppError>| {
            if matches!(
                error,
                Some(AppError::Unauthenticated | AppError::Forbidden(_))
            ) {
                refused.set(true);
            }
        };

        let preview = ServerAction::<Triage>::new();
        let apply = ServerAction::<Triage>::new();
        let resume = ServerAction::<ResumeDestination>::new();
        let resync = ServerAction::<ResyncOrder>::new();
        let pending = RwSignal::new(None::<Pending>);
        let selected = RwSignal::new(BTreeSet::<i64>::new());
        // After an action (or a destination resumed): refresh at once; after a triage action,
        // forget the selection too.
        Effect::new(move |prev: Option<(usize, usize, usize)>| {
            let v = (
                apply.version().get(),
                resume.version().get(),
                resync.version().get(),
            );
            if let Some(p) = prev.filter(|p| *p != v) {
                if p.0 != v.0 {
                    selected.set(BTreeSet::new());
                }
                tick.update(|t| *t += 1);
            }
            v
        });

        // Another view (a cause's "Show N orders", the next page, the filters cleared): what
        // was selected or being confirmed belongs to the view left, and acting on it from here
        // would act on rows no longer in sight.
        Effect::new(move |prev: Option<(ExceptionQuery, Option<i64>, bool)>| {
            let now = parsed.get();
            if prev.is_some_and(|p| p != now) {
                selected.set(BTreeSet::new());
                pending.set(None);
            }
            now
        });

        // Nobody the page would refuse makes the server refuse them too (and audit the refusal).
        let groups = Resource::new(
            move || {
                let (query, _, oldest) = parsed.get();
                (query, oldest, tick.get())
            },
            move |(query, oldest, _)| {
                // The groups ignore the cause filter, so the other causes stay in view. Without
                // a status chosen they count what the list shows, the open ones (the API's
                // groups count snoozed ones too): a snoozed exception is out of sight until
                // it wakes, and "Show 12 orders" must not list 9.
                let query = ExceptionQuery {
                    fingerprint: None,
                    status: query.status.clone().or_else(|| Some("open".to_string())),
                    ..query
                };
                async move {
                    let answer = session
                        .fetch_if(READERS, exception_groups(query, oldest))
                        .await;
                    noted(answer.as_ref().err());
                    answer
                }
            },
        );
        let page = Resource::new(
            move || (parsed.get(), tick.get()),
            move |((query, before, oldest), _)| async move {
                let answer = session
                    .fetch_if(READERS, list_exceptions(query, before, oldest))
                    .await;
                noted(answer.as_ref().err());
                answer
            },
        );
        // Only operators assign; nobody else asks for the list.
        let people = Resource::new(
            || (),
            move |_| async move {
                if session.allows(&[Role::Operator]).await {
                    assignables().await
                } else {
                    Ok(Vec::new())
                }
            },
        );
        QueueState {
            parsed,
            preview,
            apply,
            resume,
            resync,
            pending,
            selected,
            groups,
            page,
            people,
        }
    }
}

#[component]
fn Queue(state: QueueState) -> impl IntoView {
    let QueueState {
        parsed,
        preview,
        apply,
        resume,
        resync,
        pending,
        selected,
        groups,
        page,
        people,
    } = state;
    let can_act = viewer_has(Role::Operator);
    let can_resume = viewer_has(Role::Admin);

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
        {move || resume.value().get().and_then(Result::err).map(|e| view! { <p class="alert" role="alert">{e.to_string()}</p> })}
        {move || resync.value().get().map(|r| match r {
            Ok(sentence) => view! { <p class="success" role="status">{sentence}</p> }.into_any(),
            Err(e) => view! { <p class="alert" role="alert">{e.to_string()}</p> }.into_any(),
        })}
        {move || pending.get().map(|p| view! { <Confirm pending=p preview apply on_close=move || pending.set(None)/> })}
        <section class="panel" aria-labelledby="groups-title">
            <h2 id="groups-title">"By cause"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    loaded(groups.await, |groups| {
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
                        let cut = groups.len() > GROUPS_SHOWN;
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
                                    {groups.into_iter().take(GROUPS_SHOWN).map(|g| view! { <GroupLine g query=query.clone() oldest can_act can_resume resume start/> }).collect_view()}
                                </tbody>
                            </table>
                            {cut.then(|| view! {
                                <p class="muted small">{format!(
                                    "More causes than the {GROUPS_SHOWN} shown here ({}). Narrow the filter (where, code, a search) to see the rest.",
                                    if oldest { "the longest waiting first" } else { "the most orders first" }
                                )}</p>
                            })}
                        }
                        .into_any()
                    })
                })}
            </Transition>
        </section>
        <section class="panel" aria-labelledby="list-title">
            <List parsed page people selected can_act resync start/>
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
                    <option value="">"Anywhere"</option>
                    <option value="crm" selected=is(|q| q.destination.clone(), "crm")>"CRM"</option>
                    <option value="erp" selected=is(|q| q.destination.clone(), "erp")>"ERP"</option>
                    <option value="store" selected=is(|q| q.destination.clone(), "store")>"Store"</option>
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
