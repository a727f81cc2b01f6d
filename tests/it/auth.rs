//! Signing in and out, sessions, and the sign-in throttle.

use std::time::Duration;

use app::error::AppError;
use app::model::Role;
use reqwest::StatusCode;

use crate::harness::{PASSWORD, TestApp, session_set_cookie};

on_both_backends! {
    sign_in_starts_a_session_and_is_audited => sign_in_starts_a_session_and_is_audited_sqlite, sign_in_starts_a_session_and_is_audited_postgres;
    wrong_password_and_unknown_email_are_refused_alike => wrong_password_and_unknown_email_are_refused_alike_sqlite, wrong_password_and_unknown_email_are_refused_alike_postgres;
    session_id_changes_at_sign_in => session_id_changes_at_sign_in_sqlite, session_id_changes_at_sign_in_postgres;
    requests_without_a_session_are_sent_to_sign_in => requests_without_a_session_are_sent_to_sign_in_sqlite, requests_without_a_session_are_sent_to_sign_in_postgres;
    repeated_failures_lock_the_account_briefly => repeated_failures_lock_the_account_briefly_sqlite, repeated_failures_lock_the_account_briefly_postgres;
    failures_at_the_same_moment_are_each_counted => failures_at_the_same_moment_are_each_counted_sqlite, failures_at_the_same_moment_are_each_counted_postgres;
    sign_out_ends_the_session => sign_out_ends_the_session_sqlite, sign_out_ends_the_session_postgres;
}

async fn sign_in_starts_a_session_and_is_audited(app: TestApp) {
    let ana = app
        .add_user("ana@example.com", "Ana Diaz", &[Role::Admin])
        .await;
    let client = app.client();
    assert_eq!(client.whoami().await, None, "nobody is signed in yet");

    // The email is matched however it is typed.
    let res = client
        .rpc(
            "/rpc/session/sign_in",
            &[
                ("email", "  Ana@Example.COM "),
                ("password", PASSWORD),
                ("next", "/admin"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let viewer: app::model::Viewer = res.json();
    assert_eq!(
        (
            viewer.user_id,
            viewer.email.as_str(),
            viewer.roles.as_slice()
        ),
        (ana.id, "ana@example.com", &[Role::Admin][..])
    );
    // The UI's client is told where to go next (the page that sent the person to sign in).
    assert_eq!(res.header("location"), Some("/admin"));
    assert!(
        res.headers.contains_key("serverfnredirect"),
        "the client-side redirect marker is set: {:?}",
        res.headers
    );

    // The session cookie cannot be read by scripts nor sent by other sites.
    let set_cookie = session_set_cookie(&res).expect("sign-in sets the session cookie");
    let attributes = set_cookie.to_ascii_lowercase();
    assert!(attributes.contains("httponly"), "{set_cookie}");
    assert!(attributes.contains("samesite=strict"), "{set_cookie}");
    assert!(attributes.contains("path=/"), "{set_cookie}");
    assert!(client.session_cookie().is_some());

    let me = client.whoami().await.expect("signed in");
    assert_eq!((me.user_id, me.display_name.as_str()), (ana.id, "Ana Diaz"));
    let page = client.page("/admin").await;
    assert_eq!(
        page.status,
        StatusCode::OK,
        "a protected page opens once signed in: {}",
        page.body
    );

    let entries = app.audit_of("signin.succeeded").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        (entries[0].actor_id, entries[0].actor_label.as_str()),
        (Some(ana.id), "ana@example.com")
    );
    assert_eq!(entries[0].target, format!("user:{}", ana.id));
    assert_eq!(entries[0].client.as_deref(), Some("127.0.0.1"));
    let stored = app.store.user(ana.id).await.unwrap().unwrap();
    assert!(
        stored.last_sign_in_at.is_some(),
        "the last sign-in time is noted"
    );

    // Without JavaScript the sign-in form is a plain form post: a real redirect to `next`, and an
    // outside `next` is not followed.
    let res = app
        .client()
        .http
        .post(client.url("/rpc/session/sign_in"))
        .header("accept", "text/html")
        .header("origin", app.base.as_str())
        .form(&[
            ("email", "ana@example.com"),
            ("password", PASSWORD),
            ("next", "//evil.example/x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(
        res.headers().get("location").and_then(|v| v.to_str().ok()),
        Some("/")
    );
}

async fn wrong_password_and_unknown_email_are_refused_alike(app: TestApp) {
    app.add_user("ana@example.com", "Ana Diaz", &[Role::Operator])
        .await;
    let client = app.client();

    let wrong = client
        .sign_in("ana@example.com", "not the password at all")
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.body);
    assert_eq!(wrong.error(), AppError::BadCredentials);
    assert_eq!(
        wrong.error().to_string(),
        "That email and password don't match an active account."
    );
    assert!(
        wrong.header("location").is_none(),
        "a refused sign-in goes nowhere"
    );

    let unknown = client.sign_in("nobody@example.com", PASSWORD).await;
    assert_eq!(
        (unknown.status, unknown.body.as_str()),
        (wrong.status, wrong.body.as_str()),
        "no hint whether the account exists"
    );
    let malformed = client.sign_in("not an email", PASSWORD).await;
    assert_eq!(
        (malformed.status, malformed.body.as_str()),
        (wrong.status, wrong.body.as_str())
    );

    // Text that is no address is neither a throttle key nor an audit target: 100 KB of it, or
    // a NUL byte (which PostgreSQL refuses in text), is refused like any wrong guess, and
    // counted against the client alone.
    let huge = format!("{}@example.com", "a".repeat(100_000));
    for odd in [huge.as_str(), "ana\u{0}@example.com"] {
        let refused = client.sign_in(odd, PASSWORD).await;
        assert_eq!(
            (refused.status, refused.body.as_str()),
            (wrong.status, wrong.body.as_str())
        );
    }

    assert_eq!(client.whoami().await, None, "still nobody signed in");
    let failed = app.audit_of("signin.failed").await;
    let targets: Vec<_> = failed
        .iter()
        .map(|r| (r.actor_label.as_str(), r.target.as_str()))
        .collect();
    assert_eq!(
        targets,
        [
            ("anonymous", "account:(not an email address)"),
            ("anonymous", "account:(not an email address)"),
            ("anonymous", "account:(not an email address)"),
            ("anonymous", "account:nobody@example.com"),
            ("anonymous", "account:ana@example.com")
        ]
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM signin_throttle WHERE key LIKE 'account:%'")
            .await,
        2,
        "only the two addresses are keys"
    );
    assert_eq!(
        app.count(
            "SELECT CAST(MAX(failures) AS BIGINT) FROM signin_throttle WHERE key LIKE 'client:%'"
        )
        .await,
        5,
        "every attempt counts against the client"
    );
    assert!(app.audit_of("signin.succeeded").await.is_empty());
}

async fn session_id_changes_at_sign_in(app: TestApp) {
    app.add_user("mallory@example.com", "Mallory", &[Role::Operator])
        .await;
    let ana = app
        .add_user("ana@example.com", "Ana Diaz", &[Role::Admin])
        .await;

    // A made-up session id planted in the victim's browser is replaced at sign-in.
    let planted = tower_sessions::session::Id::default().to_string();
    let victim = app.client();
    victim.plant_session(&planted);
    assert_eq!(
        victim.sign_in("ana@example.com", PASSWORD).await.status,
        StatusCode::OK
    );
    let after = victim
        .session_cookie()
        .expect("a session cookie after sign-in");
    assert_ne!(after, planted);
    let attacker = app.client();
    attacker.plant_session(&planted);
    assert_eq!(
        attacker.whoami().await,
        None,
        "the planted id does not authenticate"
    );

    // A real session the attacker obtained (their own sign-in), planted in the victim's browser:
    // signing in over it issues a new id, and the attacker's copy is not signed in as the victim.
    let attacker = app.signed_in("mallory@example.com").await;
    let attackers_id = attacker.session_cookie().expect("attacker's session");
    let victim = app.client();
    victim.plant_session(&attackers_id);
    assert_eq!(
        victim.whoami().await.map(|v| v.email),
        Some("mallory@example.com".to_string()),
        "planted and live"
    );
    assert_eq!(
        victim.sign_in("ana@example.com", PASSWORD).await.status,
        StatusCode::OK
    );
    let victims_id = victim.session_cookie().expect("victim's session");
    assert_ne!(
        victims_id, attackers_id,
        "the session id changed at sign-in"
    );
    assert_eq!(victim.whoami().await.map(|v| v.user_id), Some(ana.id));
    let replay = app.client();
    replay.plant_session(&attackers_id);
    assert_eq!(
        replay.whoami().await,
        None,
        "the old id does not authenticate"
    );
    assert_eq!(replay.page("/admin").await.status, StatusCode::SEE_OTHER);
}

async fn requests_without_a_session_are_sent_to_sign_in(app: TestApp) {
    app.add_user("ana@example.com", "Ana Diaz", &[Role::Admin])
        .await;
    let client = app.client();

    // A page is a redirect to the sign-in page, which brings the person back afterwards.
    let page = client.page("/admin").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.header("location"), Some("/login?next=/admin"));
    let page = client.page("/audit?action=signin&actor=ana").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        page.header("location"),
        Some("/login?next=/audit%3Faction%3Dsignin%26actor%3Dana")
    );
    let home = client.page("/").await;
    assert_eq!(
        (home.status, home.header("location")),
        (StatusCode::SEE_OTHER, Some("/login"))
    );

    // The sign-in page itself opens.
    let login = client.page("/login?next=/admin").await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.body.contains("<form"), "the sign-in form is rendered");

    // Server functions answer 401 with the sentence the UI shows.
    for path in [
        "/rpc/admin/users",
        "/rpc/audit/list",
        "/rpc/admin/users/active",
    ] {
        let res = client
            .rpc(path, &[("user_id", "1"), ("active", "false")])
            .await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{path}: {}", res.body);
        assert_eq!(res.error(), AppError::Unauthenticated, "{path}");
        assert_eq!(res.error().to_string(), "Please sign in to continue.");
    }
    // Data asked for by a script rather than a browser is a 401 too, not a redirect.
    let json = client
        .http
        .get(client.url("/admin"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), StatusCode::UNAUTHORIZED);

    // Following the redirect's `next` through sign-in lands on the page asked for.
    let res = client
        .rpc(
            "/rpc/session/sign_in",
            &[
                ("email", "ana@example.com"),
                ("password", PASSWORD),
                ("next", "/admin"),
            ],
        )
        .await;
    assert_eq!(
        (res.status, res.header("location")),
        (StatusCode::OK, Some("/admin"))
    );
    assert_eq!(client.page("/admin").await.status, StatusCode::OK);
}

async fn repeated_failures_lock_the_account_briefly(app: TestApp) {
    app.add_user("ana@example.com", "Ana Diaz", &[Role::Operator])
        .await;
    let client = app.client();

    for attempt in 1..=5 {
        let res = client
            .sign_in("ana@example.com", "guessing wrong again")
            .await;
        assert_eq!(
            res.status,
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}: {}",
            res.body
        );
    }
    // Locked: even the right password is refused for now, with the wait stated.
    let locked = client.sign_in("ana@example.com", PASSWORD).await;
    assert_eq!(
        locked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        locked.body
    );
    let AppError::Throttled { retry_after_secs } = locked.error() else {
        panic!("expected Throttled, got {:?}", locked.error());
    };
    assert!(
        (1..=2).contains(&retry_after_secs),
        "retry in {retry_after_secs} s"
    );
    assert_eq!(
        locked.error().to_string(),
        format!("Too many failed sign-ins. Try again in {retry_after_secs} seconds.")
    );
    assert_eq!(client.whoami().await, None);
    // The lock is per account: someone else signs in meanwhile.
    app.add_user("ben@example.com", "Ben", &[Role::Operator])
        .await;
    assert_eq!(
        app.client()
            .sign_in("ben@example.com", PASSWORD)
            .await
            .status,
        StatusCode::OK
    );

    let throttled = app.audit_of("signin.throttled").await;
    assert_eq!(throttled.len(), 1, "{throttled:?}");
    assert_eq!(
        (
            throttled[0].actor_label.as_str(),
            throttled[0].target.as_str()
        ),
        ("anonymous", "account:ana@example.com")
    );
    assert_eq!(app.audit_of("signin.failed").await.len(), 5);

    // The lock (1 s in tests) passes; the owner gets in.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let res = client.sign_in("ana@example.com", PASSWORD).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(
        client.whoami().await.map(|v| v.email),
        Some("ana@example.com".into())
    );
}

async fn sign_out_ends_the_session(app: TestApp) {
    let ana = app
        .add_user("ana@example.com", "Ana Diaz", &[Role::Admin])
        .await;
    let client = app.signed_in("ana@example.com").await;
    let old_id = client.session_cookie().expect("signed in");

    let res = client.rpc("/rpc/session/sign_out", &[]).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.header("location"), Some("/login"));
    assert_eq!(client.whoami().await, None);
    assert_eq!(client.page("/admin").await.status, StatusCode::SEE_OTHER);

    // A copy of the cookie taken before sign-out is worthless now.
    let copy = app.client();
    copy.plant_session(&old_id);
    assert_eq!(copy.whoami().await, None);
    assert_eq!(
        copy.rpc("/rpc/admin/users", &[]).await.status,
        StatusCode::UNAUTHORIZED
    );

    let entries = app.audit_of("signout").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        (entries[0].actor_id, entries[0].target.clone()),
        (Some(ana.id), format!("user:{}", ana.id))
    );
}

/// Wrong passwords sent at once (each spends its time in argon2 between reading the counters
/// and writing them) are each counted: a burst cannot buy more guesses than the limit allows.
async fn failures_at_the_same_moment_are_each_counted(app: TestApp) {
    use syncdesk::accounts::{Accounts, SignInError, ThrottlePolicy};

    app.add_user("ines@example.com", "Ines Ruiz", &[Role::Operator])
        .await;
    // Limits above the burst, so that every attempt is checked and counted.
    let accounts = Accounts::new(
        app.store.clone(),
        ThrottlePolicy {
            per_account: 100,
            per_client: 100,
            ..ThrottlePolicy::default()
        },
    );
    let burst = || {
        let attempts = (0..8).map(|n| {
            let accounts = &accounts;
            async move {
                accounts
                    .sign_in(
                        "ines@example.com",
                        format!("wrong guess {n}"),
                        Some("198.51.100.7".into()),
                    )
                    .await
            }
        });
        futures_util::future::join_all(attempts)
    };
    let counted = |key: &'static str| {
        let sql =
            format!("SELECT CAST(failures AS BIGINT) FROM signin_throttle WHERE key = '{key}'");
        let app = &app;
        async move { app.count(&sql).await }
    };
    for outcome in burst().await {
        assert!(
            matches!(outcome, Err(SignInError::BadCredentials)),
            "{outcome:?}"
        );
    }
    for key in ["account:ines@example.com", "client:198.51.100.7"] {
        assert_eq!(counted(key).await, 8, "{key}");
    }

    // A window that has run out, with one failure in it: every failure of the next burst starts
    // the new window from the same row, and still each is counted.
    app.execute(
        "UPDATE signin_throttle SET failures = 1, window_started_at = '2020-01-01T00:00:00+00:00'",
    )
    .await;
    for outcome in burst().await {
        assert!(
            matches!(outcome, Err(SignInError::BadCredentials)),
            "{outcome:?}"
        );
    }
    for key in ["account:ines@example.com", "client:198.51.100.7"] {
        assert_eq!(counted(key).await, 8, "a new window, its 8 failures: {key}");
    }
}
