use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::api::list_audit;
use crate::components::{Guard, PageHeader, SessionCtx, encode, loaded};
use crate::model::{AuditQuery, Role};

/// The audit log: every change anyone made, newest first (admin).
#[component]
pub fn AuditPage() -> impl IntoView {
    // Made here, once, not under the Guard (see `components::Guard`).
    let session = expect_context::<SessionCtx>();
    let params = use_query_map();
    let query = Memo::new(move |_| {
        let p = params.read();
        let text = |k: &str| p.get(k).filter(|v| !v.trim().is_empty());
        AuditQuery {
            action: text("action"),
            actor: text("actor"),
            before: p.get("before").and_then(|b| b.parse().ok()),
        }
    });
    let page = Resource::new(
        move || query.get(),
        move |query| session.fetch_if(&[Role::Admin], list_audit(query)),
    );
    view! {
        <Guard roles=&[Role::Admin]>
            <PageHeader title="Audit" lead="Every change made by a person or a token: who, what, when, before and after."/>
            <AuditLog query page/>
        </Guard>
    }
}

#[component]
fn AuditLog(
    query: Memo<AuditQuery>,
    page: Resource<Result<crate::model::AuditPage, crate::error::AppError>>,
) -> impl IntoView {
    let query = move || query.get();
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
                    loaded(page.await, |page| {
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
                                            <td class="nowrap"><code>{row.target}</code></td>
                                            <td class="change">
                                                {row.before.map(|b| change("before", b))}
                                                {row.after.map(|a| change("after", a))}
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

/// One side of a change, as its fields side by side (`item code ERP-10042`, `released tasks 3`)
/// when the log kept an object of them, else as the JSON it kept.
fn change(side: &'static str, json: String) -> impl IntoView {
    let shown = match fields(&json) {
        Some(fields) => fields
            .into_iter()
            .map(|(name, value)| {
                view! { <span class="field"><span class="muted">{name}</span>" "<code>{value}</code></span>" " }
            })
            .collect_view()
            .into_any(),
        None => view! { <code>{json}</code> }.into_any(),
    };
    view! { <div><span class="side">{side}</span>" "{shown}</div> }
}

/// The fields of a JSON object, names in words (`item_code` → `item code`), values as text (a
/// list of words as the words, commas between).
fn fields(json: &str) -> Option<Vec<(String, String)>> {
    use serde_json::Value;
    let Value::Object(map) = serde_json::from_str(json).ok()? else {
        return None;
    };
    let text = |value: Value| match value {
        Value::String(text) => text,
        Value::Null => "none".to_owned(),
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    };
    Some(
        map.into_iter()
            .map(|(name, value)| (name.replace('_', " "), text(value)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::fields;

    #[test]
    fn a_change_shows_its_fields_in_words_and_anything_else_as_kept() {
        let shown = fields(
            r#"{"item_code":"ERP-BTL-750","released_tasks":3,"note":null,"roles":["admin","operator"],"ids":[1,2]}"#,
        );
        let shown = shown.expect("an object has fields");
        assert!(shown.contains(&("item code".to_owned(), "ERP-BTL-750".to_owned())));
        assert!(shown.contains(&("released tasks".to_owned(), "3".to_owned())));
        assert!(shown.contains(&("note".to_owned(), "none".to_owned())));
        assert!(shown.contains(&("roles".to_owned(), "admin, operator".to_owned())));
        assert!(shown.contains(&("ids".to_owned(), "[1,2]".to_owned())));
        assert_eq!(shown.len(), 5);
        assert_eq!(fields(r#"["not", "an", "object"]"#), None);
        assert_eq!(fields("not json"), None);
    }
}
