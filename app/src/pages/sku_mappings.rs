//! SKU mappings: the SKUs orders wait on, biggest first, each mapped inline (every order waiting
//! on it is released at once), and the mappings in force, searchable.

use std::collections::HashMap;

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::api::{
    DeleteSkuMapping, ImportSkuMappings, SaveSkuMapping, list_sku_mappings, sku_history,
    unmapped_skus,
};
use crate::components::{Guard, PageHeader, SessionCtx, loaded};
use crate::model::{ImportOutcome, Role, UnmappedSkuView};

/// Who may see and change the mappings.
const WRITERS: &[Role] = &[Role::Operator];

/// Store SKU → ERP item code (operators).
#[component]
pub fn SkuMappingsPage() -> impl IntoView {
    // Made here, once, not under the Guard (see `components::Guard`).
    let state = MappingsState::new();
    view! {
        <Guard roles=&[Role::Operator]>
            <PageHeader title="SKU mappings" lead="Which ERP item code each store SKU becomes. An order with an unmapped SKU waits here; map it once and every order waiting on it goes through."/>
            <Mappings state/>
        </Guard>
    }
}

/// The page's actions and resources.
#[derive(Clone, Copy)]
struct MappingsState {
    save: ServerAction<SaveSkuMapping>,
    delete: ServerAction<DeleteSkuMapping>,
    import: ServerAction<ImportSkuMappings>,
    unmapped: Resource<Result<Vec<UnmappedSkuView>, crate::error::AppError>>,
    mappings: Resource<Result<Vec<crate::model::SkuMappingView>, crate::error::AppError>>,
    history: Resource<Result<Vec<crate::model::AuditRow>, crate::error::AppError>>,
}

impl MappingsState {
    fn new() -> MappingsState {
        let session = expect_context::<SessionCtx>();
        let params = use_query_map();
        let search = move || params.read().get("q").filter(|s| !s.trim().is_empty());
        let save = ServerAction::<SaveSkuMapping>::new();
        let delete = ServerAction::<DeleteSkuMapping>::new();
        let import = ServerAction::<ImportSkuMappings>::new();
        let unmapped = Resource::new(
            move || (save.version().get(), import.version().get()),
            move |_| session.fetch_if(WRITERS, unmapped_skus()),
        );
        let mappings = Resource::new(
            move || {
                (
                    search(),
                    save.version().get(),
                    delete.version().get(),
                    import.version().get(),
                )
            },
            move |(q, _, _, _)| session.fetch_if(WRITERS, list_sku_mappings(q)),
        );
        let history = Resource::new(
            move || {
                (
                    save.version().get(),
                    delete.version().get(),
                    import.version().get(),
                )
            },
            move |_| session.fetch_if(WRITERS, sku_history()),
        );
        MappingsState {
            save,
            delete,
            import,
            unmapped,
            mappings,
            history,
        }
    }
}

#[component]
fn Mappings(state: MappingsState) -> impl IntoView {
    let MappingsState {
        save,
        delete,
        import,
        unmapped,
        mappings,
        history,
    } = state;
    let params = use_query_map();
    let focus = move || params.read().get("sku").filter(|s| !s.is_empty());
    let search = move || params.read().get("q").filter(|s| !s.trim().is_empty());
    // What is typed into each waiting SKU's box, by SKU: the rows are redrawn in place when the
    // list changes (a save, an import, another operator), and a box holding its own text would
    // then stand beside another SKU — one more click would map that SKU to the code typed for
    // the one before. A saved SKU's text goes with it.
    let typed = RwSignal::new(HashMap::<String, String>::new());
    Effect::new(move |_| {
        if let Some(Ok(saved)) = save.value().get() {
            typed.update(|t| {
                t.remove(&saved.sku);
            });
        }
    });
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
                    loaded(unmapped.await, |rows| {
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
                                        view! { <UnmappedLine row focused save typed/> }
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
            // Opened with the SKU a link asked for ("Map SKU" on the queue), so that it can be
            // mapped even when it is not among the waiting SKUs listed above.
            <details class="add-mapping" open=move || focus().is_some()>
                <summary>"Add or change a mapping"</summary>
                <ActionForm action=save attr:class="form-grid">
                    <label for="new-sku">"Store SKU"</label>
                    <input id="new-sku" name="sku" required maxlength="255" autocomplete="off" value=move || focus().unwrap_or_default()/>
                    <label for="new-code">"ERP item code"</label>
                    <input id="new-code" name="item_code" required maxlength="40" autocomplete="off"/>
                    <div><button type="submit" class="button primary">"Save mapping"</button></div>
                </ActionForm>
            </details>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    loaded(mappings.await, |rows| {
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
        <ImportExport import/>
        <section class="panel" aria-labelledby="history-title">
            <h2 id="history-title">"History"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    loaded(history.await, |rows| {
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
                                            <td>{match r.target.strip_prefix("sku:") {
                                                Some(sku) => view! { <code>{sku.to_string()}</code> }.into_any(),
                                                None => view! { <span class="muted">"whole file"</span> }.into_any(),
                                            }}</td>
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
    typed: RwSignal<HashMap<String, String>>,
) -> impl IntoView {
    let input_id = format!("code-{}", row.sku);
    let (shown, kept) = (row.sku.clone(), row.sku.clone());
    let value = move || typed.with(|t| t.get(&shown).cloned().unwrap_or_default());
    let on_input = move |ev: leptos::ev::Event| {
        let text = event_target_value(&ev);
        typed.update(|t| {
            t.insert(kept.clone(), text);
        });
    };
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
                    <input id=input_id name="item_code" required maxlength="40" autocomplete="off" placeholder="e.g. ERP-10042" autofocus=focused
                        prop:value=value on:input=on_input/>
                    <button type="submit" class="button small primary">"Map and release"</button>
                </ActionForm>
            </td>
        </tr>
    }
}

/// Export every mapping, or import a CSV file of them: the file is read in the browser and sent
/// as text; the server checks every row and applies all of them or none.
#[component]
fn ImportExport(import: ServerAction<ImportSkuMappings>) -> impl IntoView {
    let text = RwSignal::new(String::new());
    // Why the chosen file was not taken, said under the file input.
    let file_problem = RwSignal::new(None::<&'static str>);
    let on_file = move |ev: leptos::ev::Event| {
        #[cfg(feature = "hydrate")]
        {
            let input: web_sys::HtmlInputElement = event_target(&ev);
            if let Some(file) = input.files().and_then(|files| files.get(0)) {
                let read = wasm_bindgen_futures::JsFuture::from(file.text());
                leptos::task::spawn_local(async move {
                    // The browser reads the file as UTF-8 and puts U+FFFD where bytes are not:
                    // a Windows-1252 export's "Café" would become a SKU no order carries.
                    match read.await.ok().and_then(|contents| contents.as_string()) {
                        Some(contents) if contents.contains('\u{FFFD}') => {
                            text.set(String::new());
                            file_problem.set(Some(
                                "This file is not UTF-8 text, so its SKUs would not read as written. Save it as \"CSV UTF-8\" and choose it again.",
                            ));
                        }
                        Some(contents) => {
                            file_problem.set(None);
                            text.set(contents);
                        }
                        None => {
                            text.set(String::new());
                            file_problem.set(Some(
                                "The browser could not read this file; choose it again, or paste its contents below.",
                            ));
                        }
                    }
                });
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };
    let pending = import.pending();
    view! {
        <section class="panel" aria-labelledby="import-title">
            <h2 id="import-title">"Import and export"</h2>
            <p class="muted">
                "A CSV file whose first line names the columns " <code>"sku"</code> " and "
                <code>"item_code"</code> " (an export has them; other columns are ignored). Every row is checked first, item codes with the ERP too: if any row is wrong, nothing is imported and you get the list of rows to fix."
            </p>
            <p><a class="button" href="/sku-mappings/export.csv" download="">"Export all mappings (CSV)"</a></p>
            <ActionForm action=import attr:class="form-grid">
                <label for="import-file">"CSV file"</label>
                <input id="import-file" type="file" accept=".csv,text/csv" on:change=on_file/>
                {move || file_problem.get().map(|problem| view! {
                    <p class="alert" role="alert">{problem}</p>
                })}
                <label for="import-csv">"Contents (or paste them here)"</label>
                <textarea
                    id="import-csv"
                    name="csv"
                    rows="6"
                    required
                    spellcheck="false"
                    placeholder="sku,item_code"
                    prop:value=move || text.get()
                    on:input=move |ev| text.set(event_target_value(&ev))
                ></textarea>
                <div>
                    <button type="submit" class="button primary" disabled=move || pending.get()>
                        {move || if pending.get() { "Checking…" } else { "Import" }}
                    </button>
                </div>
            </ActionForm>
            {move || import.value().get().map(|result| match result {
                Ok(outcome) => view! { <ImportReport outcome/> }.into_any(),
                Err(err) => view! { <p class="alert" role="alert">{err.to_string()}</p> }.into_any(),
            })}
        </section>
    }
}

#[component]
fn ImportReport(outcome: ImportOutcome) -> impl IntoView {
    if outcome.applied {
        return view! { <p class="success" role="status">{outcome.summary}</p> }.into_any();
    }
    view! {
        <div class="alert" role="alert">
            <p>{outcome.summary}</p>
            <table class="table" aria-label="Rejected rows">
                <thead>
                    <tr>
                        <th scope="col" class="num">"Line"</th>
                        <th scope="col">"SKU"</th>
                        <th scope="col">"Why"</th>
                    </tr>
                </thead>
                <tbody>
                    {outcome.rejected.into_iter().map(|r| view! {
                        <tr>
                            <td class="num">{r.line}</td>
                            <td><code>{r.sku}</code></td>
                            <td>{r.reason}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}
