use leptos::prelude::*;

use crate::api::{AddUser, SetUserActive, SetUserRoles, list_users};
use crate::components::{Guard, PageHeader, SessionCtx, loaded};
use crate::error::AppError;
use crate::model::{Role, UserRow};

/// Users and roles: list, add, change roles, deactivate (admin).
#[component]
pub fn AdminPage() -> impl IntoView {
    // Made here, once, not under the Guard (see `components::Guard`).
    let session = expect_context::<SessionCtx>();
    let add = ServerAction::<AddUser>::new();
    let roles = ServerAction::<SetUserRoles>::new();
    let active = ServerAction::<SetUserActive>::new();
    let users = Resource::new(
        move || {
            (
                add.version().get(),
                roles.version().get(),
                active.version().get(),
            )
        },
        move |_| session.fetch_if(&[Role::Admin], list_users()),
    );
    view! {
        <Guard roles=&[Role::Admin]>
            <PageHeader title="Admin" lead="Who can sign in to SyncDesk, and what each person may do."/>
            <Users add roles active users/>
        </Guard>
    }
}

/// Which of the page's actions ran last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Last {
    None,
    Add,
    Roles,
    Active,
}

#[component]
fn Users(
    add: ServerAction<AddUser>,
    roles: ServerAction<SetUserRoles>,
    active: ServerAction<SetUserActive>,
    users: Resource<Result<Vec<UserRow>, AppError>>,
) -> impl IntoView {
    // Only the newest action speaks: an old refusal must not stand beside, or hide, what the
    // person did since.
    let last = RwSignal::new(Last::None);
    for (action, which) in [
        (add.version(), Last::Add),
        (roles.version(), Last::Roles),
        (active.version(), Last::Active),
    ] {
        Effect::new(move |prev: Option<usize>| {
            let v = action.get();
            if prev.is_some_and(|p| p != v) {
                last.set(which);
            }
            v
        });
    }
    let outcome = move || {
        let failed = match last.get() {
            Last::None => None,
            Last::Add => add.value().get().and_then(|r| r.err()),
            Last::Roles => roles.value().get().and_then(|r| r.err()),
            Last::Active => active.value().get().and_then(|r| r.err()),
        };
        failed.map(|err| view! { <p class="alert" role="alert">{err.to_string()}</p> })
    };
    let added = move || {
        (last.get() == Last::Add)
            .then(|| add.value().get().and_then(|r| r.ok()))
            .flatten()
            .map(|u| view! { <p class="success" role="status">{format!("Added {}.", u.email)}</p> })
    };

    view! {
        <section class="panel" aria-labelledby="users-title">
            <h2 id="users-title">"Users"</h2>
            {outcome}
            <Transition fallback=|| view! { <p class="muted">"Loading users…"</p> }>
                {move || Suspend::new(async move {
                    loaded(users.await, |list| view! {
                        <table class="table">
                            <thead>
                                <tr>
                                    <th scope="col">"Name"</th>
                                    <th scope="col">"Email"</th>
                                    <th scope="col">"Roles"</th>
                                    <th scope="col">"Status"</th>
                                    <th scope="col">"Last sign-in (UTC)"</th>
                                </tr>
                            </thead>
                            <tbody>
                                {list.into_iter().map(|user| view! { <UserLine user roles active/> }).collect_view()}
                            </tbody>
                        </table>
                    })
                })}
            </Transition>
        </section>
        <section class="panel" aria-labelledby="add-user-title">
            <h2 id="add-user-title">"Add a user"</h2>
            <p class="muted">"They sign in with this email and password; share the password with them privately."</p>
            {added}
            <ActionForm action=add attr:class="form-grid">
                <label for="new-name">"Name"</label>
                <input id="new-name" name="display_name" required maxlength="100"/>
                <label for="new-email">"Email"</label>
                <input id="new-email" name="email" type="email" required autocomplete="off"/>
                <label for="new-password">"Password"</label>
                <input id="new-password" name="password" type="password" required minlength="12" autocomplete="new-password"
                    aria-describedby="new-password-hint"/>
                <p id="new-password-hint" class="hint">"At least 12 characters."</p>
                <fieldset class="roles">
                    <legend>"Roles"</legend>
                    <RoleBoxes id_prefix="new".to_string() held=vec![]/>
                </fieldset>
                <div><button type="submit" class="button primary">"Add user"</button></div>
            </ActionForm>
        </section>
    }
}

#[component]
fn UserLine(
    user: UserRow,
    roles: ServerAction<SetUserRoles>,
    active: ServerAction<SetUserActive>,
) -> impl IntoView {
    let prefix = format!("user-{}", user.id);
    view! {
        <tr class:inactive=!user.active>
            <td>{user.display_name.clone()}</td>
            <td>{user.email.clone()}</td>
            <td>
                <ActionForm action=roles attr:class="inline roles-form" attr:aria-label=format!("Roles of {}", user.email)>
                    <input type="hidden" name="user_id" value=user.id/>
                    <RoleBoxes id_prefix=prefix held=user.roles.clone()/>
                    <button type="submit" class="button small">"Save roles"</button>
                </ActionForm>
            </td>
            <td>
                <ActionForm action=active attr:class="inline">
                    <input type="hidden" name="user_id" value=user.id/>
                    <input type="hidden" name="active" value=(!user.active).to_string()/>
                    <span class="badge" class:badge-ok=user.active class:badge-muted=!user.active>
                        {if user.active { "Active" } else { "Deactivated" }}
                    </span>
                    " "
                    <button type="submit" class="button small subtle">
                        {if user.active { "Deactivate" } else { "Reactivate" }}
                    </button>
                </ActionForm>
            </td>
            <td>{user.last_sign_in_at.clone().unwrap_or_else(|| "never".into())}</td>
        </tr>
    }
}

/// The four role checkboxes, named as the server functions expect.
#[component]
fn RoleBoxes(id_prefix: String, held: Vec<Role>) -> impl IntoView {
    Role::ALL
        .into_iter()
        .map(|role| {
            let id = format!("{id_prefix}-{}", role.as_str());
            let label_for = id.clone();
            let checked = held.contains(&role);
            view! {
                <label class="check" for=label_for>
                    <input type="checkbox" id=id name=role.as_str() value="on" checked=checked/>
                    {role.label()}
                </label>
            }
        })
        .collect_view()
}
