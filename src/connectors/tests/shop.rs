//! The store's Admin API client when the store cannot be reached or answers nonsense: one
//! plain sentence, with the address but never its credentials.

use std::time::Duration;

use url::Url;

use crate::connectors::ShopAdmin;
use crate::connectors::shop::OrdersPageRef;

#[tokio::test]
async fn a_store_that_refuses_is_named_without_its_credentials() {
    // Bound but not listening: connections to it are refused.
    let closed = tokio::net::TcpSocket::new_v4().expect("a socket");
    closed
        .bind("127.0.0.1:0".parse().expect("an address"))
        .expect("bind");
    let port = closed.local_addr().expect("its address").port();
    let base = Url::parse(&format!("http://app:hunter2@127.0.0.1:{port}/")).expect("a URL");
    let shop = ShopAdmin::new(base, "shpat_token", Duration::from_secs(2)).expect("a client");

    let err = shop.order(1001).await.expect_err("nothing answers");
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "Could not connect to the store's Admin API at http://127.0.0.1:{port}/ (connection refused)."
        )
    );
}

#[tokio::test]
async fn an_answer_that_is_not_json_says_why() {
    let app = axum::Router::new().fallback(|| async { "<html>maintenance</html>" });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = Url::parse(&format!(
        "http://{}/",
        listener.local_addr().expect("its address")
    ))
    .expect("a URL");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let shop = ShopAdmin::new(base, "shpat_token", Duration::from_secs(2)).expect("a client");

    let since = chrono::Utc::now() - chrono::TimeDelta::days(1);
    let err = shop
        .orders_page(&OrdersPageRef::Since(since))
        .await
        .expect_err("not JSON");
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(
        err.to_string(),
        "The store's answer could not be read (expected value at line 1 column 1)."
    );
}
