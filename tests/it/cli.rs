//! The `syncdesk` command itself, run as a process the way an operator or a script runs it:
//! tokens and users made on the command line, configuration mistakes answered with one sentence
//! (and no secret in it), the simulated store's burst, and the benchmark with its ledgers.

use std::process::Stdio;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::harness::{Backend, TestApp, WEBHOOK_SECRET, postgres_server, temp_dir};
use crate::sync::clean_order;
use crate::webhooks::{Post, later};

on_both_backends! {
    a_token_made_on_the_command_line_opens_the_api_to_its_roles_only => a_token_made_on_the_command_line_opens_the_api_to_its_roles_only_sqlite, a_token_made_on_the_command_line_opens_the_api_to_its_roles_only_postgres;
    a_user_added_on_the_command_line_signs_in_and_a_short_password_adds_nobody => a_user_added_on_the_command_line_signs_in_and_a_short_password_adds_nobody_sqlite, a_user_added_on_the_command_line_signs_in_and_a_short_password_adds_nobody_postgres;
    the_simulated_stores_burst_arrives_signed_and_whole => the_simulated_stores_burst_arrives_signed_and_whole_sqlite, the_simulated_stores_burst_arrives_signed_and_whole_postgres;
    a_backfill_takes_in_what_the_store_has_once_and_says_so => a_backfill_takes_in_what_the_store_has_once_and_says_so_sqlite, a_backfill_takes_in_what_the_store_has_once_and_says_so_postgres;
    a_backfill_that_stops_partway_says_and_audits_what_it_took_in => a_backfill_that_stops_partway_says_and_audits_what_it_took_in_sqlite, a_backfill_that_stops_partway_says_and_audits_what_it_took_in_postgres;
}

/// What a finished `syncdesk` run said.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Everything it printed, for a failing assertion's message.
    fn said(&self) -> String {
        format!("exit {:?}\n{}\n{}", self.code, self.stdout, self.stderr)
    }
}

/// Runs `syncdesk args…` with `input` on its standard input, in an environment of its own
/// (none of the caller's `DATABASE_URL`, secrets or tokens), for at most two minutes.
async fn syncdesk(args: &[&str], input: Option<&str>) -> Run {
    syncdesk_with(args, &[], input).await
}

/// [`syncdesk`] with the environment variables `env` set.
async fn syncdesk_with(args: &[&str], env: &[(&str, &str)], input: Option<&str>) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_syncdesk"));
    command.env_clear();
    for kept in ["PATH", "HOME", "TMPDIR"] {
        if let Some(value) = std::env::var_os(kept) {
            command.env(kept, value);
        }
    }
    // Errors only: a slow statement's warning on a loaded machine is not what is tested.
    command
        .env("SYNCDESK_LOG", "error")
        .envs(env.iter().copied());
    let mut child = command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start syncdesk");
    let mut stdin = child.stdin.take().expect("its standard input");
    if let Some(input) = input {
        stdin
            .write_all(input.as_bytes())
            .await
            .expect("write its standard input");
    }
    drop(stdin);
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("`syncdesk {}` ran over two minutes", args.join(" ")))
        .expect("syncdesk ran");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// One API request with `token`; its status.
async fn status_with(app: &TestApp, method: Method, path: &str, token: &str) -> StatusCode {
    let mut request = reqwest::Client::new()
        .request(method.clone(), format!("{}{path}", app.base))
        .bearer_auth(token);
    if method == Method::PUT {
        request = request.json(&json!({ "item_code": "ERP-1" }));
    }
    request.send().await.expect("an answer").status()
}

/// `syncdesk token create --name <name> --role <role>` on the database at `url`.
async fn token_create(url: &str, name: &str, role: &str) -> Run {
    let args = [
        "token",
        "create",
        "--database-url",
        url,
        "--name",
        name,
        "--role",
        role,
    ];
    syncdesk(&args, None).await
}

async fn a_token_made_on_the_command_line_opens_the_api_to_its_roles_only(app: TestApp) {
    let url = app.database_url();
    let run = token_create(&url, "nightly report", "manager").await;
    assert_eq!(run.code, Some(0), "{}", run.said());
    assert!(
        run.stdout
            .starts_with("Token \"nightly report\" created (id "),
        "{}",
        run.said()
    );
    // The secret is the last line, printed once.
    let secret = run.stdout.lines().last().unwrap_or_default().trim();
    assert!(secret.starts_with("sdk_"), "{}", run.said());

    let exceptions = status_with(&app, Method::GET, "/api/v1/exceptions", secret).await;
    assert_eq!(exceptions, StatusCode::OK, "a manager reads the queue");
    let mapping = status_with(&app, Method::PUT, "/api/v1/sku-mappings/ABC", secret).await;
    assert_eq!(mapping, StatusCode::FORBIDDEN, "but maps no SKU");
    assert_eq!(app.count("SELECT COUNT(*) FROM sku_mappings").await, 0);

    // Kept as its hash only, and audited without it.
    let hash = syncdesk::accounts::hash_token(secret);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM api_tokens WHERE token_hash = '{hash}' AND name = 'nightly report'"
        ))
        .await,
        1
    );
    let audit = app.audit_of("token.created").await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].actor_label, "system");
    assert!(!format!("{audit:?}").contains(secret), "{audit:?}");

    // A role that does not exist is refused before anything is stored.
    let run = token_create(&url, "x", "wizard").await;
    assert_eq!(run.code, Some(2), "{}", run.said());
    assert!(
        run.stderr
            .contains("unknown role \"wizard\"; use operator, steward, manager or admin"),
        "{}",
        run.said()
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM api_tokens").await, 1);

    // Listed without its secret; revoked, it opens nothing from that moment.
    let id = app.count("SELECT id FROM api_tokens").await.to_string();
    let database = ["--database-url", url.as_str()];
    let list = syncdesk(&[&["token", "list"][..], &database].concat(), None).await;
    assert_eq!(list.code, Some(0), "{}", list.said());
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", list.said());
    assert!(lines[0].starts_with("ID  NAME"), "{}", list.said());
    let cells: Vec<&str> = lines[1]
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(cells.len(), 6, "{}", list.said());
    assert_eq!(
        (cells[0], cells[1], cells[2], cells[5]),
        (id.as_str(), "nightly report", "manager", "-"),
        "used above, not revoked: {}",
        list.said()
    );
    assert_ne!(cells[4], "-", "it was used: {}", list.said());
    assert!(!list.stdout.contains(secret), "{}", list.said());

    let revoke = |id: &str| {
        let args: Vec<&str> = [&["token", "revoke", "--id"][..], &[id], &database].concat();
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let run = syncdesk(&as_strs(&revoke(&id)), None).await;
    assert_eq!(run.code, Some(0), "{}", run.said());
    assert_eq!(
        run.stdout.trim(),
        format!("Token \"nightly report\" (id {id}) revoked: requests with it are refused.")
    );
    let exceptions = status_with(&app, Method::GET, "/api/v1/exceptions", secret).await;
    assert_eq!(
        exceptions,
        StatusCode::UNAUTHORIZED,
        "a revoked token opens nothing"
    );
    let again = syncdesk(&as_strs(&revoke(&id)), None).await;
    assert_eq!(again.code, Some(0), "{}", again.said());
    assert!(
        again.stdout.contains("was already revoked on "),
        "{}",
        again.said()
    );
    let unknown = syncdesk(&as_strs(&revoke("9999")), None).await;
    assert_eq!(unknown.code, Some(1), "{}", unknown.said());
    assert_eq!(
        unknown.stderr.trim(),
        "syncdesk: There is no token with id 9999; `syncdesk token list` shows them."
    );
    let revoked = app.audit_of("token.revoked").await;
    assert_eq!(revoked.len(), 1, "revoked once, audited once: {revoked:?}");
    assert_eq!(revoked[0].target, format!("token:{id}"));

    // A role given twice is held, and audited, once.
    let args = [
        "token",
        "create",
        "--database-url",
        url.as_str(),
        "--name",
        "twice",
        "--role",
        "operator",
        "--role",
        "operator",
    ];
    let run = syncdesk(&args, None).await;
    assert_eq!(run.code, Some(0), "{}", run.said());
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM api_token_roles r JOIN api_tokens t ON t.id = r.token_id WHERE t.name = 'twice'"
        )
        .await,
        1
    );
    let created = app.audit_of("token.created").await;
    let said = created
        .iter()
        .map(|r| format!("{:?}", r.after))
        .find(|after| after.contains("twice"))
        .unwrap_or_default();
    assert_eq!(said.matches("operator").count(), 1, "{said}");
}

fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

async fn a_user_added_on_the_command_line_signs_in_and_a_short_password_adds_nobody(app: TestApp) {
    let url = app.database_url();
    let password = "a long enough password";
    let add = |email: &'static str| {
        vec![
            "user",
            "add",
            "--database-url",
            url.as_str(),
            "--email",
            email,
            "--name",
            "Dana",
            "--role",
            "steward",
            "--role",
            "operator",
        ]
    };
    // The password comes from standard input when it is not a terminal, never from the
    // command line.
    let run = syncdesk(&add(" Dana@Example.com"), Some(&format!("{password}\n"))).await;
    assert_eq!(run.code, Some(0), "{}", run.said());
    assert_eq!(
        run.stdout.trim(),
        "Added dana@example.com (operator, steward)."
    );
    let client = app.client();
    let reply = client.sign_in("dana@example.com", password).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let audit = app.audit_of("user.created").await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert!(!format!("{audit:?}").contains(password), "{audit:?}");

    let run = syncdesk(&add("eve@example.com"), Some("too short\n")).await;
    assert_eq!(run.code, Some(1), "{}", run.said());
    assert_eq!(
        run.stderr.trim(),
        "syncdesk: The password must be at least 12 characters long."
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users WHERE email = 'eve@example.com'")
            .await,
        0
    );
}

/// `syncdesk simulate --burst`: the store's orders, their updates, duplicates and late
/// deliveries, signed with the shared secret, all acknowledged and all kept.
async fn the_simulated_stores_burst_arrives_signed_and_whole(app: TestApp) {
    let target = format!("{}/webhooks/shopify", app.base);
    let run = syncdesk(
        &[
            "simulate",
            "--target",
            &target,
            "--shopify-webhook-secret",
            WEBHOOK_SECRET,
            "--burst",
            "25",
            "--seed",
            "7",
        ],
        None,
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.said());
    // It says where its CRM and ERP listen, for a worker to be pointed at.
    assert!(
        run.stdout
            .contains("Simulated CRM: SYNCDESK_CRM_URL=http://127.0.0.1:")
            && run
                .stdout
                .contains("Simulated ERP: SYNCDESK_ERP_URL=http://127.0.0.1:"),
        "{}",
        run.said()
    );
    // "25 orders, 61 webhooks (applied 50, duplicate 8, …), 4 duplicated, …, 0 retries,
    // 0 unacknowledged"
    let stats = run.stdout.lines().last().unwrap_or_default();
    assert!(stats.starts_with("25 orders, "), "{stats}");
    assert!(stats.ends_with(" 0 unacknowledged"), "{stats}");
    let number_before = |what: &str| -> i64 {
        let (before, _) = stats
            .split_once(what)
            .unwrap_or_else(|| panic!("{what:?} in {stats}"));
        let digits = before.rsplit(' ').next().unwrap_or_default();
        digits
            .parse()
            .unwrap_or_else(|_| panic!("a number before {what:?} in {stats}"))
    };
    let (sent, retries) = (number_before(" webhooks ("), number_before(" retries"));
    assert!(sent > 25, "updates, duplicates and late ones too: {stats}");

    let kept = app.count("SELECT COUNT(*) FROM webhook_events").await;
    assert!(
        (sent..=sent + retries).contains(&kept),
        "{kept} webhooks kept of {sent} sent ({retries} retries)"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 25);
    assert!(
        app.count("SELECT COUNT(*) FROM webhook_events WHERE duplicate")
            .await
            > 0,
        "the burst repeats some webhooks, and they are kept as duplicates"
    );
}

/// `syncdesk backfill`: the orders the store changed since the date that SyncDesk lacks, or
/// holds at an older state, are taken in; a second run finds them all current.
async fn a_backfill_takes_in_what_the_store_has_once_and_says_so(app: TestApp) {
    let known = clean_order(931);
    let changed = clean_order(932);
    let unheard = clean_order(933);
    for order in [&known, &changed] {
        app.shop.orders().put(order).expect("the store has it");
        Post::new("orders/create", order).send(&app).await;
    }
    let mut paid = later(&changed, 30);
    paid["financial_status"] = json!("paid");
    app.shop.orders().put(&paid).expect("a newer state");
    app.shop.orders().put(&unheard).expect("the store has it");

    let url = app.database_url();
    let store_url = app.shop.base_url().to_string();
    let token = app.shop.access_token().to_string();
    let args = [
        "backfill",
        "--database-url",
        url.as_str(),
        "--store-url",
        store_url.as_str(),
        "--store-token",
        token.as_str(),
        "--since",
        "2000-01-01",
    ];
    let run = syncdesk(&args, None).await;
    assert_eq!(run.code, Some(0), "{}", run.said());
    assert_eq!(
        run.stdout.trim(),
        "Checked 3 orders in the store: 1 were missing here and 1 were behind the store; those are taken in and will sync."
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 3);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sync_tasks WHERE target_version = 2")
            .await,
        2,
        "the changed order's tasks are re-armed at its new version"
    );
    let run = syncdesk(&args, None).await;
    assert_eq!(run.code, Some(0), "{}", run.said());
    assert!(
        run.stdout
            .starts_with("Checked 3 orders in the store: 0 were missing here and 0 were behind"),
        "{}",
        run.said()
    );
    assert_eq!(app.audit_of("orders.backfilled").await.len(), 2);
    // The token never shows, in what it printed or in the audit.
    assert!(!run.said().contains(&token));
    assert!(!format!("{:?}", app.audit().await).contains(&token));
}

/// A backfill whose store fails for good on the second page has taken in the first page's
/// orders, which are in SyncDesk and syncing: it says how many, audits them with the reason it
/// stopped, and ends with that reason.
async fn a_backfill_that_stops_partway_says_and_audits_what_it_took_in(app: TestApp) {
    use syncdesk::simulate::store::{StoreSimConfig, build_store};

    let shop = build_store(StoreSimConfig::default());
    let page_size = syncdesk::connectors::shop::PAGE_SIZE;
    for n in 0..=page_size as u64 {
        shop.orders
            .put(&clean_order(7_000 + n))
            .expect("the store has it");
    }
    let store_url = crate::harness::serve_refusing_after_the_first(shop.router).await;

    let url = app.database_url();
    let args = [
        "backfill",
        "--database-url",
        url.as_str(),
        "--store-url",
        store_url.as_str(),
        "--store-token",
        shop.access_token.as_str(),
        "--since",
        "2000-01-01",
    ];
    let run = syncdesk(&args, None).await;
    assert_eq!(run.code, Some(1), "{}", run.said());
    assert_eq!(
        run.stdout.trim(),
        format!(
            "Stopped partway. Checked {page_size} orders in the store: {page_size} were missing here and 0 were behind the store; those are taken in and will sync."
        ),
        "{}",
        run.said()
    );
    assert!(run.stderr.starts_with("syncdesk: "), "{}", run.said());
    assert_eq!(
        app.count("SELECT COUNT(*) FROM orders").await,
        page_size as i64
    );
    let audited = app.audit_of("orders.backfilled").await;
    assert_eq!(audited.len(), 1);
    let said = format!("{:?}", audited[0]);
    assert!(
        said.contains("stopped") && said.contains(&format!("{page_size}")),
        "{said}"
    );
}

/// Configuration mistakes end start-up with one sentence that says what is wrong, not a
/// backtrace, and no password in it.
#[tokio::test]
async fn configuration_mistakes_end_start_up_with_one_plain_sentence() {
    let dir = temp_dir();
    let sqlite = format!("sqlite://{}", dir.join("syncdesk.db").display());
    // A port bound but not listening, for the whole test: connections to it are refused, and
    // no other test's server can take it meanwhile.
    let closed = tokio::net::TcpSocket::new_v4().expect("a socket");
    closed
        .bind("127.0.0.1:0".parse().expect("an address"))
        .expect("bind");
    let free = closed.local_addr().expect("its address").port();
    let mut missing = url::Url::parse(&postgres_server()).expect("the test server's URL");
    let name = format!("sd_test_missing_{}", uuid::Uuid::new_v4().simple());
    missing.set_path(&format!("/{name}"));
    let missing = missing.to_string();
    let refused = format!("postgres://postgres:hunter2@127.0.0.1:{free}/shop");
    let unreachable_store = format!("http://127.0.0.1:{free}/");
    let backfill_db = format!("sqlite://{}", dir.join("backfill.db").display());

    let empty_secret = "syncdesk: SHOPIFY_WEBHOOK_SECRET is empty, and anyone could sign a webhook with an empty key: set the store's secret, or leave it unset to refuse webhooks";
    let cases: Vec<(Vec<&str>, i32, String)> = vec![
        (
            vec!["migrate", "--database-url", "mysql://localhost/shop"],
            1,
            "syncdesk: DATABASE_URL must start with sqlite: or postgres: (got \"mysql://localhost/shop\")".into(),
        ),
        (
            vec!["migrate", "--database-url", &refused],
            1,
            format!(
                "syncdesk: cannot open the database at postgres://postgres:***@127.0.0.1:{free}/shop: nothing answers there (connection refused): is the server running, on that host and port?"
            ),
        ),
        (
            vec!["migrate", "--database-url", &missing],
            1,
            format!(
                "syncdesk: cannot open the database at {}: database \"{name}\" does not exist",
                syncdesk::store::redact(&missing)
            ),
        ),
        (
            vec!["migrate", "--database-url", "sqlite:/no-such-folder-for-syncdesk/x.db"],
            1,
            "syncdesk: cannot open the database at sqlite:/no-such-folder-for-syncdesk/x.db: unable to open database file (does its folder exist, and may SyncDesk write there?)".into(),
        ),
        (
            vec![
                "backfill",
                "--database-url",
                &backfill_db,
                "--store-url",
                &unreachable_store,
                "--store-token",
                "shpat_hunter2",
                "--since",
                "2026-11-01",
            ],
            1,
            format!(
                "syncdesk: Could not connect to the store's Admin API at {unreachable_store} (connection refused)."
            ),
        ),
        (
            vec!["worker", "--database-url", &sqlite],
            1,
            "syncdesk: a worker needs its destinations: set SYNCDESK_CRM_URL, SYNCDESK_CRM_TOKEN, SYNCDESK_ERP_URL and SYNCDESK_ERP_TOKEN".into(),
        ),
        (
            vec!["serve", "--database-url", &sqlite, "--shopify-webhook-secret", " "],
            1,
            empty_secret.into(),
        ),
        (
            vec!["worker", "--database-url", &sqlite, "--crm-token", ""],
            2,
            "error: invalid value '' for '--crm-token <CRM_TOKEN>': it is empty; set the real value, or leave it unset".into(),
        ),
    ];
    for (args, code, sentence) in cases {
        let run = syncdesk(&args, None).await;
        assert_eq!(run.code, Some(code), "{args:?}: {}", run.said());
        let first = run.stderr.lines().next().unwrap_or_default();
        assert_eq!(first, sentence, "{args:?}: {}", run.said());
        if code == 1 {
            assert_eq!(
                run.stderr.trim(),
                sentence,
                "one sentence only: {}",
                run.said()
            );
        }
        assert!(!run.stderr.contains("hunter2"), "{}", run.said());
        assert!(!run.stderr.contains("panicked"), "{}", run.said());
    }
    // The same empty secret from the environment, as a deployment would set it.
    let run = syncdesk_with(
        &["serve", "--database-url", &sqlite],
        &[("SHOPIFY_WEBHOOK_SECRET", "")],
        None,
    )
    .await;
    assert_eq!(run.code, Some(1), "{}", run.said());
    assert_eq!(run.stderr.trim(), empty_secret, "{}", run.said());
    // A token copied with a Windows line ending: refused in one sentence that does not repeat
    // it, rather than sent as an empty header whose 401 would pause the ERP.
    let run = syncdesk_with(
        &["worker", "--database-url", &sqlite],
        &[
            ("SYNCDESK_CRM_URL", "http://127.0.0.1:9/"),
            ("SYNCDESK_CRM_TOKEN", "crm-token"),
            ("SYNCDESK_ERP_URL", "http://127.0.0.1:9/"),
            ("SYNCDESK_ERP_TOKEN", "hunter2-erp\r"),
        ],
        None,
    )
    .await;
    assert_eq!(run.code, Some(1), "{}", run.said());
    assert_eq!(
        run.stderr.trim(),
        "syncdesk: SYNCDESK_ERP_TOKEN contains a line break or another control character (copied from a file saved with Windows line endings?): set the token alone",
        "{}",
        run.said()
    );
    // The webhook secret likewise: signed with it, every store webhook would be refused.
    let run = syncdesk_with(
        &["serve", "--database-url", &sqlite],
        &[("SHOPIFY_WEBHOOK_SECRET", "hunter2-secret\r")],
        None,
    )
    .await;
    assert_eq!(run.code, Some(1), "{}", run.said());
    assert!(
        run.stderr
            .starts_with("syncdesk: SHOPIFY_WEBHOOK_SECRET contains a line break"),
        "{}",
        run.said()
    );
    assert!(!run.said().contains("hunter2"), "{}", run.said());
    // The worker and the server stopped before they opened the database.
    assert!(!dir.join("syncdesk.db").exists(), "nothing was created");
    drop(closed);
    let _ = std::fs::remove_dir_all(dir);
}

/// `syncdesk bench`, small, on each backend: every order synced and the ledgers balanced.
async fn the_benchmark_runs_and_its_ledgers_balance(backend: Backend) {
    let server = postgres_server();
    // Few connections: the tests share one PostgreSQL server.
    let mut args = vec![
        "bench",
        "--orders",
        "150",
        "--workers",
        "2",
        "--connections",
        "4",
    ];
    if backend == Backend::Postgres {
        args.extend(["--postgres", server.as_str()]);
    }
    let run = syncdesk(&args, None).await;
    assert_eq!(run.code, Some(0), "{}", run.said());
    for line in [
        "  orders          150 (2 workers",
        "  ledger          lost = 0, duplicated = 0",
        "  requests        1.00 to the CRM and 1.00 to the ERP per order",
    ] {
        assert!(
            run.stdout.lines().any(|l| l.starts_with(line)),
            "{line:?} in {}",
            run.said()
        );
    }
    assert!(run.stdout.contains("orders/s end to end"), "{}", run.said());
}

#[tokio::test]
async fn the_benchmark_runs_and_its_ledgers_balance_sqlite() {
    the_benchmark_runs_and_its_ledgers_balance(Backend::Sqlite).await
}

#[tokio::test]
async fn the_benchmark_runs_and_its_ledgers_balance_postgres() {
    the_benchmark_runs_and_its_ledgers_balance(Backend::Postgres).await
}

/// `syncdesk serve` told to stop lets a request under way finish, but not for ever: a client
/// that sends half a webhook and stalls is cut off after the drain limit (20 s), and the
/// process ends with 0, its workers and database closed, instead of waiting for the kill.
#[tokio::test]
async fn serve_stops_within_its_drain_limit_when_a_client_stalls_mid_request() {
    use tokio::io::AsyncReadExt;

    let dir = temp_dir();
    let sqlite = format!("sqlite://{}", dir.join("syncdesk.db").display());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its address")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_syncdesk"))
        .args(["serve", "--database-url", &sqlite, "--listen", &listen])
        .env("SYNCDESK_LOG", "error")
        .env("SHOPIFY_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start syncdesk serve");
    let started = tokio::time::Instant::now();
    loop {
        let ready = reqwest::get(format!("http://{listen}/healthz")).await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "serve did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Half a webhook: its headers, and 10 of the 1,000 bytes they announce.
    let mut stalled = tokio::net::TcpStream::connect(&listen)
        .await
        .expect("connect");
    stalled
        .write_all(
            format!(
                "POST /webhooks/shopify HTTP/1.1\r\nHost: {listen}\r\nContent-Type: application/json\r\n\
                 Content-Length: 1000\r\nX-Shopify-Topic: orders/create\r\n\r\n{{\"id\": 12"
            )
            .as_bytes(),
        )
        .await
        .expect("write half a request");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let pid = server.id().expect("its pid").to_string();
    let told = tokio::time::Instant::now();
    let sent = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill -TERM");
    assert!(sent.success());
    let status = tokio::time::timeout(Duration::from_secs(60), server.wait())
        .await
        .expect("serve ended within a minute of SIGTERM")
        .expect("serve's status");
    let took = told.elapsed();
    let mut stderr = String::new();
    if let Some(mut err) = server.stderr.take() {
        let _ = err.read_to_string(&mut stderr).await;
    }
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        took >= Duration::from_secs(19) && took < Duration::from_secs(40),
        "the stalled request was waited for {took:?}, not the drain limit"
    );
    // The stalled client was hung up on.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stalled.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the connection was closed");
}
