//! SKU mappings: the SKUs orders wait on, biggest first, each mapped inline (every order waiting
//! on it is released at once), and the mappings in force, searchable.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::api::{DeleteSkuMapping, SaveSkuMapping, list_sku_mappings, sku_history, unmapped_skus};
use crate::components::{Guard, PageHeader};
use crate::model::{Role, UnmappedSkuView};

/// Store SKU → ERP item code (operators).
#[component]
pub fn SkuMappingsPage() -> impl IntoView {
    view! {
        <Guard roles=&[Role::Operator]>
            <PageHeader title="SKU mappings" lead="Which ERP item code each store SKU becomes. An order with an unmapped SKU waits here; map it once and every order waiting on it goes through."/>
            <Mappings/>
        </Guard>
    }
}

#[component]
fn Mappings() -> impl IntoView {
    let params = use_query_map();
    let focus = move || params.read().get("sku").filter(|s| !s.is_empty());
    let search = move || params.read().get("q").filter(|s| !s.trim().is_empty());
    let save = ServerAction::<SaveSkuMapping>::new();
    let delete = ServerAction::<DeleteSkuMapping>::new();
    let unmapped = Resource::new(move || save.version().get(), |_| unmapped_skus());
    let mappings = Resource::new(
        move || (search(), save.version().get(), delete.version().get()),
        |(q, _, _)| list_sku_mappings(q),
    );
    let history = Resource::new(
        move || (save.version().get(), delete.version().get()),
        |_| sku_history(),
    );
    // The newest of the two actions speaks.
    let last = RwSignal::new(0u8);
    Effect::new(move |_| {
        save.version().get();
        last.set(1);
    });
    Effect::new(move |prev: Option<usize>| {
        let v = delete.version().get();
        if prev.is_some_and(|p| p != v) {
            last.set(2);
        }
        v
    });
    let outcome = move || {
        let result = if last.get() == 2 {
            delete.value().get()
        } else {
            save.value().get().map(|r| r.map(|saved| saved.summary))
        };
        result.map(|r| match r {
            Ok(sentence) => view! { <p class="success" role="status">{sentence}</p> }.into_any(),
            Err(err) => view! { <p class="alert" role="alert">{err.to_string()}</p> }.into_any(),
        })
    };
    view! {
        {outcome}
        <section class="panel" aria-labelledby="unmapped-title">
            <h2 id="unmapped-title">"Waiting for a mapping"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    unmapped.await.map(|rows| {
                        if rows.is_empty() {
                            return view! { <p class="muted">"No order is waiting on an unmapped SKU."</p> }.into_any();
                        }
                        let focus = focus();
                        view! {
                            <table class="table" aria-labelledby="unmapped-title">
                                <thead>
                                    <tr>
                                        <th scope="col">"SKU"</th>
                                        <th scope="col" class="num">"Orders waiting"</th>
                                        <th scope="col">"Oldest"</th>
                                        <th scope="col">"ERP item code"</th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {rows.into_iter().map(|row| {
                                        let focused = focus.as_deref() == Some(row.sku.as_str());
                                        view! { <UnmappedLine row focused save/> }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }
                        .into_any()
                    })
                })}
            </Transition>
        </section>
        <section class="panel" aria-labelledby="mappings-title">
            <h2 id="mappings-title">"Mappings"</h2>
            <form method="get" action="/sku-mappings" class="filters" aria-label="Search mappings">
                <div class="field">
                    <label for="m-q">"SKU or item code starts with"</label>
                    <input id="m-q" name="q" type="search" prop:value=move || search().unwrap_or_default()/>
                </div>
                <div class="field actions"><button type="submit" class="button">"Search"</button></div>
            </form>
            <details class="add-mapping">
                <summary>"Add or change a mapping"</summary>
                <ActionForm action=save attr:class="form-grid">
                    <label for="new-sku">"Store SKU"</label>
                    <input id="new-sku" name="sku" required maxlength="64" autocomplete="off"/>
                    <label for="new-code">"ERP item code"</label>
                    <input id="new-code" name="item_code" required maxlength="64" autocomplete="off"/>
                    <div><button type="submit" class="button primary">"Save mapping"</button></div>
                </ActionForm>
            </details>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    mappings.await.map(|rows| {
                        if rows.is_empty() {
                            return view! { <p class="muted">"No mapping matches."</p> }.into_any();
                        }
                        view! {
                            <table class="table" aria-labelledby="mappings-title">
                                <thead>
                                    <tr>
                                        <th scope="col">"SKU"</th>
                                        <th scope="col">"ERP item code"</th>
                                        <th scope="col">"Changed (UTC)"</th>
                                        <th scope="col">"By"</th>
                                        <th scope="col"><span class="sr-only">"Actions"</span></th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {rows.into_iter().map(|m| {
                                        let label = format!("Delete the mapping of {}", m.sku);
                                        view! {
                                            <tr>
                                                <td><code>{m.sku.clone()}</code></td>
                                                <td><code>{m.item_code}</code></td>
                                                <td class="nowrap">{m.updated_at}</td>
                                                <td>{m.updated_by}</td>
                                                <td>
                                                    <ActionForm action=delete attr:class="inline">
                                                        <input type="hidden" name="sku" value=m.sku/>
                                                        <button type="submit" class="button small subtle" aria-label=label>"Delete"</button>
                                                    </ActionForm>
                                                </td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }
                        .into_any()
                    })
                })}
            </Transition>
        </section>
        <section class="panel" aria-labelledby="history-title">
            <h2 id="history-title">"History"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    history.await.map(|rows| {
                        if rows.is_empty() {
                            return view! { <p class="muted">"No change yet."</p> }.into_any();
                        }
                        view! {
                            <table class="table audit" aria-labelledby="history-title">
                                <thead>
                                    <tr>
                                        <th scope="col">"When (UTC)"</th>
                                        <th scope="col">"Who"</th>
                                        <th scope="col">"What"</th>
                                        <th scope="col">"SKU"</th>
                                        <th scope="col">"Change"</th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {rows.into_iter().map(|r| view! {
                                        <tr>
                                            <td class="nowrap">{r.at}</td>
                                            <td>{r.actor}</td>
                                            <td>{r.action.trim_start_matches("sku_mapping.").to_string()}</td>
                                            <td><code>{r.target.trim_start_matches("sku:").to_string()}</code></td>
                                            <td class="change">
                                                {r.before.map(|b| view! { <div><span class="muted">"before "</span><code>{b}</code></div> })}
                                                {r.after.map(|a| view! { <div><span class="muted">"after "</span><code>{a}</code></div> })}
                                            </td>
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
    }
}

#[component]
fn UnmappedLine(
    row: UnmappedSkuView,
    focused: bool,
    save: ServerAction<SaveSkuMapping>,
) -> impl IntoView {
    let input_id = format!("code-{}", row.sku);
    let label_for = input_id.clone();
    let label = format!("ERP item code for {}", row.sku);
    view! {
        <tr class:picked=focused>
            <td><code>{row.sku.clone()}</code></td>
            <td class="num"><strong>{row.orders}</strong></td>
            <td class="nowrap">{row.oldest_age}</td>
            <td>
                <ActionForm action=save attr:class="inline-map">
                    <input type="hidden" name="sku" value=row.sku.clone()/>
                    <label for=label_for class="sr-only">{label}</label>
                    <input id=input_id name="item_code" required maxlength="64" autocomplete="off" placeholder="e.g. ERP-10042" autofocus=focused/>
                    <button type="submit" class="button small primary">"Map and release"</button>
                </ActionForm>
            </td>
        </tr>
    }
}
