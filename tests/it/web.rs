//! Cross-site refusal, health checks, the not-found page and security headers.

use app::model::{Role, UserRow};
use reqwest::StatusCode;

use crate::harness::{PASSWORD, TestApp};

on_both_backends! {
    cross_site_posts_are_refused_even_when_signed_in => cross_site_posts_are_refused_even_when_signed_in_sqlite, cross_site_posts_are_refused_even_when_signed_in_postgres;
    health_checks_and_not_found_page => health_checks_and_not_found_page_sqlite, health_checks_and_not_found_page_postgres;
    responses_carry_security_headers => responses_carry_security_headers_sqlite, responses_carry_security_headers_postgres;
    a_server_function_body_past_the_limit_is_refused_unread => a_server_function_body_past_the_limit_is_refused_unread_sqlite, a_server_function_body_past_the_limit_is_refused_unread_postgres;
}

async fn cross_site_posts_are_refused_even_when_signed_in(app: TestApp) {
    app.add_user("ana@example.com", "Ana Admin", &[Role::Admin])
        .await;
    let admin = app.signed_in("ana@example.com").await;
    let form = |email: &'static str| {
        vec![
            ("email", email),
            ("display_name", "Eve"),
            ("password", PASSWORD),
            ("admin", "on"),
        ]
    };
    let add = "/rpc/admin/users/add";

    // A browser tells us another site sent the request...
    let res = admin
        .rpc_with(
            add,
            &form("eve1@example.com"),
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.body);
    assert!(
        res.body.contains("Cross-site request refused"),
        "{}",
        res.body
    );
    let res = admin
        .rpc_with(
            add,
            &form("eve2@example.com"),
            &[("sec-fetch-site", "same-site")],
        )
        .await;
    assert_eq!(
        res.status,
        StatusCode::FORBIDDEN,
        "a sibling subdomain is another site too: {}",
        res.body
    );
    // ...or, without Sec-Fetch-Site, its Origin is not ours.
    let res = admin
        .rpc_with(
            add,
            &form("eve3@example.com"),
            &[("origin", "http://evil.example")],
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.body);
    let port = app.base.rsplit(':').next().unwrap();
    let res = admin
        .rpc_with(
            add,
            &form("eve4@example.com"),
            &[("origin", &format!("http://evil.example:{port}"))],
        )
        .await;
    assert_eq!(
        res.status,
        StatusCode::FORBIDDEN,
        "same port, other host: {}",
        res.body
    );
    // Signing in (login CSRF) and out are protected alike.
    let res = app
        .client()
        .rpc_with(
            "/rpc/session/sign_in",
            &[("email", "ana@example.com"), ("password", PASSWORD)],
            &[("origin", "http://evil.example")],
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.body);
    let res = admin
        .rpc_with(
            "/rpc/session/sign_out",
            &[],
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.body);

    assert_eq!(
        app.store.user_count().await.unwrap(),
        1,
        "no account was created"
    );
    assert!(
        admin.whoami().await.is_some(),
        "the refused requests did not end the session"
    );

    // The same request from SyncDesk's own pages goes through.
    let res = admin
        .rpc_with(
            add,
            &form("eve5@example.com"),
            &[("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.json::<UserRow>().email, "eve5@example.com");
    let res = admin
        .rpc_with(add, &form("eve6@example.com"), &[("origin", &app.base)])
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let created: Vec<_> = app
        .audit_of("user.created")
        .await
        .into_iter()
        .map(|r| r.after.unwrap().0["email"].clone())
        .collect();
    assert_eq!(
        created,
        ["eve6@example.com", "eve5@example.com", "ana@example.com"]
    );
}

async fn health_checks_and_not_found_page(app: TestApp) {
    let anonymous = app.client();
    let health = anonymous.page("/healthz").await;
    assert_eq!(
        (health.status, health.body.as_str()),
        (StatusCode::OK, "ok\n")
    );
    let ready = anonymous.page("/readyz").await;
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (StatusCode::OK, "ready\n")
    );

    // An unknown address, for someone not signed in, is first of all a sign-in.
    let res = anonymous.page("/no/such/page").await;
    assert_eq!(
        (res.status, res.header("location")),
        (StatusCode::SEE_OTHER, Some("/login?next=/no/such/page"))
    );

    app.add_user("olga@example.com", "Olga", &[Role::Operator])
        .await;
    let signed_in = app.signed_in("olga@example.com").await;
    for path in ["/no/such/page", "/orders/12345/nope"] {
        let res = signed_in.page(path).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{path}: {}", res.body);
        assert!(
            res.header("content-type")
                .is_some_and(|t| t.starts_with("text/html")),
            "{:?}",
            res.headers
        );
        assert!(res.body.contains("Page not found"), "{}", res.body);
        assert!(
            res.body.contains("href=\"/\""),
            "with a way back: {}",
            res.body
        );
    }
    // Known pages are not 404s.
    assert_eq!(signed_in.page("/orders").await.status, StatusCode::OK);
    let home = signed_in.page("/").await;
    assert_eq!(
        (home.status, home.header("location")),
        (StatusCode::FOUND, Some("/exceptions")),
        "home opens the first section"
    );
}

async fn responses_carry_security_headers(app: TestApp) {
    app.add_user("ana@example.com", "Ana Admin", &[Role::Admin])
        .await;
    let admin = app.signed_in("ana@example.com").await;
    let anonymous = app.client();

    let replies = [
        ("sign-in page", anonymous.page("/login").await),
        ("health check", anonymous.page("/healthz").await),
        ("redirect to sign-in", anonymous.page("/admin").await),
        (
            "refused server function",
            anonymous.rpc("/rpc/admin/users", &[]).await,
        ),
        (
            "cross-site refusal",
            admin
                .rpc_with(
                    "/rpc/session/sign_out",
                    &[],
                    &[("sec-fetch-site", "cross-site")],
                )
                .await,
        ),
        ("admin page", admin.page("/admin").await),
        ("server function", admin.rpc("/rpc/admin/users", &[]).await),
        ("not-found page", admin.page("/nowhere").await),
    ];
    for (what, reply) in &replies {
        assert_eq!(reply.header("x-frame-options"), Some("DENY"), "{what}");
        assert_eq!(
            reply.header("x-content-type-options"),
            Some("nosniff"),
            "{what}"
        );
        let csp = reply
            .header("content-security-policy")
            .unwrap_or_else(|| panic!("{what}: no CSP"));
        assert!(csp.contains("default-src 'self'"), "{what}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
        assert!(csp.contains("object-src 'none'"), "{what}: {csp}");
        assert_eq!(
            reply.header("referrer-policy"),
            Some("same-origin"),
            "{what}"
        );
        assert!(
            reply.header("strict-transport-security").is_none(),
            "{what}: no HSTS over plain HTTP"
        );
    }

    // A page the viewer has no role for says so without asking the server for its data, so
    // the audit log holds no refusal they never made.
    let denied = app.audit_of("access.denied").await.len();
    for path in ["/orders", "/orders/1042"] {
        let page = admin.page(path).await;
        assert!(
            page.body.contains("have access to this page"),
            "{path}: {}",
            page.body
        );
    }
    assert_eq!(app.audit_of("access.denied").await.len(), denied);
}

/// The server functions read their whole body before they check who is calling, so an
/// anonymous caller announcing a gigabyte is answered 413 from the headers alone: nothing of
/// the body is sent here, and the answer still comes.
async fn a_server_function_body_past_the_limit_is_refused_unread(app: TestApp) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let addr = app.base.trim_start_matches("http://").to_string();
    for path in ["/rpc/sku/import", "/rpc/session/sign_in"] {
        let mut conn = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect to the server");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\n\r\n",
            1u64 << 30
        );
        conn.write_all(head.as_bytes())
            .await
            .expect("send the head");
        let mut answer = vec![0u8; 256];
        let read = tokio::time::timeout(std::time::Duration::from_secs(10), conn.read(&mut answer))
            .await
            .expect("an answer without the body")
            .expect("read the answer");
        let answer = String::from_utf8_lossy(&answer[..read]);
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
    }
    // Within the limit, the function itself answers (here: who is calling).
    let anonymous = app.client();
    let res = anonymous
        .rpc("/rpc/sku/import", &[("csv", "sku,item_code\nA,B\n")])
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.body);
}
