//! Roles, and what admins do with accounts.

use app::error::AppError;
use app::model::{AuditPage, Role, UserRow};
use reqwest::StatusCode;
use serde_json::json;
use syncdesk::audit::Actor;
use syncdesk::store::StoreError;

use crate::harness::{PASSWORD, TestApp, role_fields};

on_both_backends! {
    operator_is_refused_admin_functions_and_it_is_audited => operator_is_refused_admin_functions_and_it_is_audited_sqlite, operator_is_refused_admin_functions_and_it_is_audited_postgres;
    admin_adds_a_user => admin_adds_a_user_sqlite, admin_adds_a_user_postgres;
    admin_changes_roles => admin_changes_roles_sqlite, admin_changes_roles_postgres;
    deactivation_ends_sessions_at_once => deactivation_ends_sessions_at_once_sqlite, deactivation_ends_sessions_at_once_postgres;
    admin_reads_the_audit_log => admin_reads_the_audit_log_sqlite, admin_reads_the_audit_log_postgres;
}

async fn operator_is_refused_admin_functions_and_it_is_audited(app: TestApp) {
    let olga = app
        .add_user("olga@example.com", "Olga Operator", &[Role::Operator])
        .await;
    let operator = app.signed_in("olga@example.com").await;

    let res = operator.rpc("/rpc/admin/users", &[]).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.body);
    assert_eq!(
        res.error(),
        AppError::Forbidden("You need the Admin role to list users.".into())
    );

    let res = operator
        .rpc(
            "/rpc/admin/users/add",
            &[
                ("email", "sneaky@example.com"),
                ("display_name", "Sneaky"),
                ("password", PASSWORD),
                ("admin", "on"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.body);
    assert_eq!(
        res.error().to_string(),
        "You need the Admin role to add a user."
    );
    assert_eq!(
        app.store.user_count().await.unwrap(),
        1,
        "no account was created"
    );

    let res = operator
        .rpc(
            "/rpc/admin/users/roles",
            &[("user_id", &olga.id.to_string()), ("admin", "on")],
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.body);
    assert_eq!(
        app.store.user(olga.id).await.unwrap().unwrap().roles,
        [Role::Operator],
        "no self-promotion"
    );

    let res = operator.rpc("/rpc/audit/list", &[]).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.body);

    // The page says so too (and the operator stays signed in).
    let page = operator.page("/admin").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("have access to this page"),
        "{}",
        page.body
    );
    assert!(operator.whoami().await.is_some());

    let denied = app.audit_of("access.denied").await;
    let seen: Vec<_> = denied
        .iter()
        .map(|r| (r.actor_id, r.actor_label.as_str(), r.target.as_str()))
        .collect();
    let olga_id = Some(olga.id);
    assert_eq!(
        seen,
        [
            (olga_id, "olga@example.com", "read the audit log"),
            (olga_id, "olga@example.com", "change a user's roles"),
            (olga_id, "olga@example.com", "add a user"),
            (olga_id, "olga@example.com", "list users"),
        ]
    );
    assert_eq!(
        denied[3].after.as_ref().map(|j| j.0.clone()),
        Some(json!({ "needs_one_of": ["admin"] }))
    );
    assert!(
        app.audit_of("user.created")
            .await
            .iter()
            .all(|r| r.actor_label == "system")
    );
}

async fn admin_adds_a_user(app: TestApp) {
    let ana = app
        .add_user("ana@example.com", "Ana Admin", &[Role::Admin])
        .await;
    let admin = app.signed_in("ana@example.com").await;

    let res = admin
        .rpc(
            "/rpc/admin/users/add",
            &[
                ("email", " New.Person@Example.com "),
                ("display_name", " Nia Person "),
                ("password", PASSWORD),
                ("operator", "on"),
                ("manager", "on"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let added: UserRow = res.json();
    assert_eq!(
        (
            added.email.as_str(),
            added.display_name.as_str(),
            added.roles.as_slice(),
            added.active
        ),
        (
            "new.person@example.com",
            "Nia Person",
            &[Role::Operator, Role::Manager][..],
            true
        )
    );

    let list = admin.rpc("/rpc/admin/users", &[]).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let emails: Vec<String> = list
        .json::<Vec<UserRow>>()
        .into_iter()
        .map(|u| u.email)
        .collect();
    assert_eq!(emails, ["ana@example.com", "new.person@example.com"]);

    let created = app.audit_of("user.created").await;
    let by_admin = created
        .iter()
        .find(|r| r.actor_id == Some(ana.id))
        .expect("audited as the admin's act");
    assert_eq!(by_admin.target, format!("user:{}", added.id));
    let after = by_admin
        .after
        .as_ref()
        .expect("the new account is recorded")
        .0
        .clone();
    assert_eq!(after["email"], "new.person@example.com");
    assert_eq!(after["roles"], json!(["operator", "manager"]));
    assert!(
        !after.to_string().contains(PASSWORD),
        "the password is never logged"
    );
    assert!(!after.to_string().contains("argon2"), "nor its hash");

    // The new person can sign in with the password they were given.
    let nia = app.signed_in("new.person@example.com").await;
    assert_eq!(
        nia.whoami().await.map(|v| v.display_name),
        Some("Nia Person".into())
    );

    // The same email again, however typed, is a conflict that says what clashed.
    let dup = admin
        .rpc(
            "/rpc/admin/users/add",
            &[
                ("email", "NEW.PERSON@example.com"),
                ("display_name", "Again"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT, "{}", dup.body);
    assert_eq!(
        dup.error(),
        AppError::Conflict("A user with the email new.person@example.com already exists.".into())
    );

    // Bad fields are refused with what to fix, and nothing is created.
    let short = admin
        .rpc(
            "/rpc/admin/users/add",
            &[
                ("email", "short@example.com"),
                ("display_name", "Short"),
                ("password", "tooshort"),
            ],
        )
        .await;
    assert_eq!(
        short.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        short.body
    );
    assert_eq!(
        short.error(),
        AppError::Invalid("The password must be at least 12 characters long.".into())
    );
    let bad_email = admin
        .rpc(
            "/rpc/admin/users/add",
            &[
                ("email", "not-an-email"),
                ("display_name", "X"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(
        bad_email.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        bad_email.body
    );
    assert_eq!(
        bad_email.error().to_string(),
        "\"not-an-email\" is not a valid email address."
    );
    let no_name = admin
        .rpc(
            "/rpc/admin/users/add",
            &[
                ("email", "x@example.com"),
                ("display_name", "  "),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(
        no_name.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        no_name.body
    );
    // A NUL byte (PostgreSQL refuses it in text) or a mark that turns the text around is a
    // clear 422, not a failed statement.
    for name in ["Ana\u{0}", "Ana \u{202e}nimdA"] {
        let invisible = admin
            .rpc(
                "/rpc/admin/users/add",
                &[
                    ("email", "x@example.com"),
                    ("display_name", name),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(
            invisible.error(),
            AppError::Invalid(
                "The name holds an invisible control character; type it again as plain text."
                    .into()
            ),
            "{name:?}"
        );
    }
    assert_eq!(app.store.user_count().await.unwrap(), 2);
    assert_eq!(
        app.audit_of("user.created").await.len(),
        2,
        "only the real creations are audited"
    );
}

async fn admin_changes_roles(app: TestApp) {
    let ana = app
        .add_user("ana@example.com", "Ana Admin", &[Role::Admin])
        .await;
    let sam = app
        .add_user("sam@example.com", "Sam", &[Role::Operator])
        .await;
    let admin = app.signed_in("ana@example.com").await;
    let sams_browser = app.signed_in("sam@example.com").await;
    assert_eq!(
        sams_browser.rpc("/rpc/admin/users", &[]).await.status,
        StatusCode::FORBIDDEN
    );

    let sam_id = sam.id.to_string();
    let mut form = vec![("user_id", sam_id.as_str())];
    form.extend(role_fields(&[Role::Steward, Role::Admin]));
    let res = admin.rpc("/rpc/admin/users/roles", &form).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.json::<UserRow>().roles, [Role::Steward, Role::Admin]);

    // Takes effect on Sam's open session at once.
    assert_eq!(
        sams_browser.whoami().await.map(|v| v.roles),
        Some(vec![Role::Steward, Role::Admin])
    );
    assert_eq!(
        sams_browser.rpc("/rpc/admin/users", &[]).await.status,
        StatusCode::OK
    );

    let changes = app.audit_of("user.roles_changed").await;
    assert_eq!(changes.len(), 1, "{changes:?}");
    let change = &changes[0];
    assert_eq!(
        (change.actor_id, change.target.clone()),
        (Some(ana.id), format!("user:{}", sam.id))
    );
    assert_eq!(
        change.before.as_ref().unwrap().0["roles"],
        json!(["operator"])
    );
    assert_eq!(
        change.after.as_ref().unwrap().0["roles"],
        json!(["steward", "admin"])
    );

    // The audit log reads the same through the UI's server function.
    let page = admin
        .rpc("/rpc/audit/list", &[("query[action]", "user.roles")])
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let page: AuditPage = page.json();
    assert_eq!(page.rows.len(), 1, "{page:?}");
    assert_eq!(
        (page.rows[0].actor.as_str(), page.rows[0].action.as_str()),
        ("ana@example.com", "user.roles_changed")
    );

    // Nobody may take away their own admin role, so an admin always remains.
    let ana_id = ana.id.to_string();
    let res = admin
        .rpc(
            "/rpc/admin/users/roles",
            &[("user_id", ana_id.as_str()), ("operator", "on")],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.body);
    assert!(
        res.error()
            .to_string()
            .contains("can't remove your own admin role"),
        "{}",
        res.body
    );
    assert_eq!(
        app.store.user(ana.id).await.unwrap().unwrap().roles,
        [Role::Admin]
    );

    // An account that does not exist.
    let res = admin
        .rpc(
            "/rpc/admin/users/roles",
            &[("user_id", "999999"), ("operator", "on")],
        )
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND, "{}", res.body);
    assert_eq!(
        res.error(),
        AppError::NotFound("That user does not exist.".into())
    );
}

async fn deactivation_ends_sessions_at_once(app: TestApp) {
    let ana = app
        .add_user("ana@example.com", "Ana Admin", &[Role::Admin])
        .await;
    let dan = app
        .add_user("dan@example.com", "Dan", &[Role::Operator, Role::Admin])
        .await;
    let admin = app.signed_in("ana@example.com").await;
    let dans_browser = app.signed_in("dan@example.com").await;
    // A second session of Dan's, on a laptop that makes no request while he is deactivated.
    let dans_laptop = app.signed_in("dan@example.com").await;
    assert_eq!(
        dans_browser.page("/exceptions").await.status,
        StatusCode::OK
    );

    // An exception Dan took, and one he closed: the open one goes back to nobody with him.
    for status in ["open", "resolved"] {
        app.execute(&format!(
            "INSERT INTO exceptions (destination, code, kind, fingerprint, message, action, fields,
                 status, assignee_id, created_at, updated_at)
             VALUES ('erp', 'dead_letter', 'exhausted', 'dead_letter:erp', 'Gave up', 'Retry / skip', '[]',
                 '{status}', {}, '2026-11-01T00:00:06+00:00', '2026-11-01T00:00:06+00:00')",
            dan.id
        ))
        .await;
    }

    let dan_id = dan.id.to_string();
    let res = admin
        .rpc(
            "/rpc/admin/users/active",
            &[("user_id", dan_id.as_str()), ("active", "false")],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert!(!res.json::<UserRow>().active);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM exceptions WHERE assignee_id = {} AND status = 'open'",
            dan.id
        ))
        .await,
        0,
        "what he held is back with nobody"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM exceptions WHERE assignee_id = {} AND status = 'resolved'",
            dan.id
        ))
        .await,
        1,
        "who closed an exception stays on it"
    );

    // Dan's open session stops working on his very next request.
    assert_eq!(dans_browser.whoami().await, None);
    let page = dans_browser.page("/admin").await;
    assert_eq!(
        (page.status, page.header("location")),
        (StatusCode::SEE_OTHER, Some("/login?next=/admin"))
    );
    assert_eq!(
        dans_browser.rpc("/rpc/admin/users", &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    // And he cannot sign in again (told no more than for a wrong password).
    let res = dans_browser.sign_in("dan@example.com", PASSWORD).await;
    assert_eq!(
        (res.status, res.error()),
        (StatusCode::UNAUTHORIZED, AppError::BadCredentials)
    );

    let entries = app.audit_of("user.deactivated").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        (entries[0].actor_id, entries[0].target.clone()),
        (Some(ana.id), format!("user:{}", dan.id))
    );
    assert_eq!(entries[0].before.as_ref().unwrap().0["active"], json!(true));
    assert_eq!(entries[0].after.as_ref().unwrap().0["active"], json!(false));
    assert_eq!(
        entries[0].after.as_ref().unwrap().0["exceptions_unassigned"],
        json!(1)
    );

    // An admin cannot lock themselves out.
    let ana_id = ana.id.to_string();
    let res = admin
        .rpc(
            "/rpc/admin/users/active",
            &[("user_id", ana_id.as_str()), ("active", "false")],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.body);
    assert_eq!(
        res.error(),
        AppError::Invalid("You can't deactivate your own account.".into())
    );
    assert!(app.store.user(ana.id).await.unwrap().unwrap().active);
    assert!(admin.whoami().await.is_some(), "and stays signed in");

    // Reactivated, Dan signs in again.
    let res = admin
        .rpc(
            "/rpc/admin/users/active",
            &[("user_id", dan_id.as_str()), ("active", "true")],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(app.audit_of("user.reactivated").await.len(), 1);
    assert_eq!(
        dans_browser
            .sign_in("dan@example.com", PASSWORD)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(dans_browser.whoami().await.map(|v| v.user_id), Some(dan.id));
    // The laptop's session ended with the deactivation; reactivating does not bring it back.
    assert_eq!(dans_laptop.whoami().await, None);

    // Nobody can take the last active admin away, through any path: with Dan no longer an
    // admin, Ana is the last one.
    let mut form = vec![("user_id", dan_id.as_str())];
    form.extend(role_fields(&[Role::Operator]));
    assert_eq!(
        admin.rpc("/rpc/admin/users/roles", &form).await.status,
        StatusCode::OK
    );
    let last =
        "That would leave SyncDesk without an active admin; make someone else an admin first.";
    let demoted = app
        .store
        .set_user_roles(ana.id, &[Role::Operator], &Actor::System)
        .await;
    assert!(
        matches!(&demoted, Err(StoreError::Invalid(m)) if m == last),
        "{demoted:?}"
    );
    let deactivated = app
        .store
        .set_user_active(ana.id, false, &Actor::System)
        .await;
    assert!(
        matches!(&deactivated, Err(StoreError::Invalid(m)) if m == last),
        "{deactivated:?}"
    );
    let ana_now = app.store.user(ana.id).await.unwrap().unwrap();
    assert_eq!((ana_now.active, ana_now.roles), (true, vec![Role::Admin]));
    // Someone who is no admin can still be deactivated.
    app.store
        .set_user_active(dan.id, false, &Actor::System)
        .await
        .expect("Dan is no admin any more");
}

async fn admin_reads_the_audit_log(app: TestApp) {
    app.add_user("ana@example.com", "Ana Admin", &[Role::Admin])
        .await;
    let admin = app.signed_in("ana@example.com").await;
    assert_eq!(
        app.client()
            .sign_in("ana@example.com", "a wrong password!")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    // Unfiltered, the UI's client sends no fields at all (serde_qs leaves out `None`s): the page
    // opened from the navigation must still list the log.
    let res = admin.rpc("/rpc/audit/list", &[]).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let page: AuditPage = res.json();
    let actions: Vec<_> = page
        .rows
        .iter()
        .map(|r| (r.actor.as_str(), r.action.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("anonymous", "signin.failed"),
            ("ana@example.com", "signin.succeeded"),
            ("system", "user.created")
        ]
    );
    assert_eq!(page.older_than, None, "one page holds it all");

    // Filters, as the page's filter form sends them.
    let res = admin
        .rpc(
            "/rpc/audit/list",
            &[("query[action]", "signin"), ("query[actor]", "ANA@")],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let page: AuditPage = res.json();
    let actions: Vec<_> = page.rows.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["signin.succeeded"]);
    let res = admin
        .rpc("/rpc/audit/list", &[("query[action]", "user_")])
        .await;
    assert!(
        res.json::<AuditPage>().rows.is_empty(),
        "`_` is matched literally, not as a wildcard"
    );
}
