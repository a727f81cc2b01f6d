//! The simulated reference ERP: item lookup, sales orders with unique external ids, updates,
//! cancellation, shipments and credit notes as documents of their own, and listing by change.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::routing::{get, post, put};
use serde::Deserialize;

use super::erp_books::{Books, Effects};
use super::faults::{FaultHandle, Faults};
use super::ledger::Ledger;
use super::reply::{Answer, IdempotencyStore, ListQuery, SimError, Write, parse};
use super::server::{SimApp, SimHandle, assemble, serve};
use crate::connectors::erp::{ErpCancelRequest, ErpItem};
use crate::connectors::{ErpCreditNoteRequest, ErpFulfilmentRequest, ErpSalesOrder};

/// The ERP's item catalogue; clones share it, so items can be added while it runs.
#[derive(Debug, Clone, Default)]
pub struct ErpCatalogue {
    items: Arc<RwLock<BTreeMap<String, ErpItem>>>,
}

impl ErpCatalogue {
    /// A catalogue of these item codes (active, unit `EA`).
    pub fn from_codes<S: Into<String>>(codes: impl IntoIterator<Item = S>) -> Self {
        let catalogue = ErpCatalogue::default();
        for code in codes {
            catalogue.add(code);
        }
        catalogue
    }

    /// Adds (or reactivates) an item code.
    pub fn add(&self, code: impl Into<String>) {
        let code = code.into();
        let item = ErpItem {
            description: format!("Item {code}"),
            code: code.clone(),
            unit_of_measure: "EA".to_owned(),
            active: true,
        };
        self.insert(item);
    }

    /// Adds or replaces an item.
    pub fn insert(&self, item: ErpItem) {
        self.write().insert(item.code.clone(), item);
    }

    /// Removes an item code; true when it was there.
    pub fn remove(&self, code: &str) -> bool {
        self.write().remove(code).is_some()
    }

    /// Whether orders may use this code (it exists and is active).
    pub fn contains(&self, code: &str) -> bool {
        self.read().get(code).is_some_and(|i| i.active)
    }

    /// One item.
    pub fn get(&self, code: &str) -> Option<ErpItem> {
        self.read().get(code).cloned()
    }

    /// Every item, by code.
    pub fn items(&self) -> Vec<ErpItem> {
        self.read().values().cloned().collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, ErpItem>> {
        self.items.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, ErpItem>> {
        self.items.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// How to start a simulated ERP.
#[derive(Debug, Clone)]
pub struct ErpSimConfig {
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    /// The bearer token to accept.
    pub token: String,
    /// Faults from the start.
    pub faults: Faults,
    /// Known item codes; keep a clone to change them at run time.
    pub catalogue: ErpCatalogue,
}

impl Default for ErpSimConfig {
    /// Loopback, a free port, a random token, no faults, an empty catalogue.
    fn default() -> Self {
        ErpSimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: format!("erp_{}", uuid::Uuid::new_v4().simple()),
            faults: Faults::default(),
            catalogue: ErpCatalogue::default(),
        }
    }
}

/// Starts a simulated ERP in the background.
pub async fn spawn_erp(config: ErpSimConfig) -> anyhow::Result<SimHandle> {
    let listen = config.listen;
    serve(build_erp(config), listen).await
}

/// The simulated ERP's router and handles, not yet served.
pub fn build_erp(config: ErpSimConfig) -> SimApp {
    let faults = FaultHandle::new(config.faults);
    let ledger = Ledger::new();
    let erp = Arc::new(Erp {
        state: Mutex::default(),
        ledger: ledger.clone(),
        faults: faults.clone(),
        catalogue: config.catalogue.clone(),
    });
    let api = Router::new()
        .route("/v1/items/{code}", get(get_item))
        .route("/v1/sales-orders", get(list_orders).post(create_order))
        .route(
            "/v1/sales-orders/{number}",
            get(get_order).put(update_order),
        )
        .route("/v1/sales-orders/{number}/cancel", post(cancel_order))
        .route(
            "/v1/sales-orders/{number}/fulfilments",
            post(add_fulfilment),
        )
        .route(
            "/v1/sales-orders/{number}/credit-notes",
            post(add_credit_note),
        )
        .with_state(erp);
    let control = Router::new()
        .route("/_sim/items", get(list_items))
        .route("/_sim/items/{code}", put(put_item).delete(delete_item))
        .with_state(config.catalogue);
    assemble(api, control, config.token, faults, ledger)
}

#[derive(Debug)]
struct Erp {
    state: Mutex<ErpState>,
    ledger: Ledger,
    faults: FaultHandle,
    catalogue: ErpCatalogue,
}

#[derive(Debug, Default)]
struct ErpState {
    idem: IdempotencyStore,
    books: Books,
}

impl Erp {
    /// Runs one write under the lock, with idempotent replay, answering errors in the envelope.
    fn write(
        &self,
        write: &Write,
        apply: impl FnOnce(&mut Books, &Effects<'_>) -> Result<Answer, SimError>,
    ) -> Answer {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let ErpState { idem, books } = &mut *state;
        let effects = Effects {
            ledger: &self.ledger,
            write,
        };
        idem.run(write, || {
            apply(books, &effects).unwrap_or_else(Answer::from)
        })
    }

    fn books(&self) -> std::sync::MutexGuard<'_, ErpState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn get_item(State(erp): State<Arc<Erp>>, Path(code): Path<String>) -> Answer {
    match erp.catalogue.get(&code) {
        Some(item) => Answer::json(StatusCode::OK, &item),
        None => SimError::not_found(format!("No item {code}.")).into(),
    }
}

/// `GET /v1/sales-orders`: by `external_id`, or by change.
#[derive(Debug, Deserialize)]
struct OrdersQuery {
    external_id: Option<String>,
    changed_since: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

async fn list_orders(State(erp): State<Arc<Erp>>, Query(q): Query<OrdersQuery>) -> Answer {
    let state = erp.books();
    if let Some(external_id) = q.external_id {
        return Answer::json(StatusCode::OK, &state.books.find(&external_id));
    }
    let list = ListQuery {
        changed_since: q.changed_since,
        limit: q.limit,
        cursor: q.cursor,
    };
    match list.page(state.books.changes()) {
        Ok(page) => Answer::json(StatusCode::OK, &page),
        Err(error) => error.into(),
    }
}

async fn get_order(State(erp): State<Arc<Erp>>, Path(number): Path<String>) -> Answer {
    match erp.books().books.get(&number) {
        Some(doc) => Answer::json(StatusCode::OK, doc),
        None => SimError::not_found(format!("No sales order {number}.")).into(),
    }
}

async fn create_order(
    State(erp): State<Arc<Erp>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let write = Write::new(&Method::POST, uri.path(), &headers, &body);
    let allow_duplicates = erp.faults.get().allow_duplicates;
    let catalogue = &erp.catalogue;
    erp.write(&write, |books: &mut Books, effects: &Effects<'_>| {
        let order: ErpSalesOrder = parse(&body)?;
        books.create(order, |c| catalogue.contains(c), allow_duplicates, effects)
    })
}

async fn update_order(
    State(erp): State<Arc<Erp>>,
    Path(number): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let write = Write::new(&Method::PUT, uri.path(), &headers, &body);
    let catalogue = &erp.catalogue;
    erp.write(&write, |books: &mut Books, effects: &Effects<'_>| {
        let order: ErpSalesOrder = parse(&body)?;
        books.update(&number, order, |c| catalogue.contains(c), effects)
    })
}

async fn cancel_order(
    State(erp): State<Arc<Erp>>,
    Path(number): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let write = Write::new(&Method::POST, uri.path(), &headers, &body);
    erp.write(&write, |books: &mut Books, effects: &Effects<'_>| {
        // An empty body is a cancel without a reason.
        let request: ErpCancelRequest = if body.is_empty() {
            ErpCancelRequest::default()
        } else {
            parse(&body)?
        };
        books.cancel(&number, request, effects)
    })
}

async fn add_fulfilment(
    State(erp): State<Arc<Erp>>,
    Path(number): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let write = Write::new(&Method::POST, uri.path(), &headers, &body);
    erp.write(&write, |books: &mut Books, effects: &Effects<'_>| {
        let request: ErpFulfilmentRequest = parse(&body)?;
        books.fulfil(&number, request, effects)
    })
}

async fn add_credit_note(
    State(erp): State<Arc<Erp>>,
    Path(number): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let write = Write::new(&Method::POST, uri.path(), &headers, &body);
    erp.write(&write, |books: &mut Books, effects: &Effects<'_>| {
        let request: ErpCreditNoteRequest = parse(&body)?;
        books.credit(&number, request, effects)
    })
}

async fn list_items(State(catalogue): State<ErpCatalogue>) -> Answer {
    Answer::json(
        StatusCode::OK,
        &serde_json::json!({ "data": catalogue.items() }),
    )
}

/// `PUT /_sim/items/{code}` body: all optional.
#[derive(Debug, Default, Deserialize)]
struct ItemBody {
    description: Option<String>,
    unit_of_measure: Option<String>,
    active: Option<bool>,
}

async fn put_item(
    State(catalogue): State<ErpCatalogue>,
    Path(code): Path<String>,
    body: Bytes,
) -> Answer {
    let body: ItemBody = if body.is_empty() {
        ItemBody::default()
    } else {
        match parse(&body) {
            Ok(body) => body,
            Err(error) => return error.into(),
        }
    };
    let item = ErpItem {
        description: body.description.unwrap_or_else(|| format!("Item {code}")),
        unit_of_measure: body.unit_of_measure.unwrap_or_else(|| "EA".to_owned()),
        active: body.active.unwrap_or(true),
        code,
    };
    catalogue.insert(item.clone());
    Answer::json(StatusCode::OK, &item)
}

async fn delete_item(State(catalogue): State<ErpCatalogue>, Path(code): Path<String>) -> Answer {
    if catalogue.remove(&code) {
        Answer::json(StatusCode::OK, &serde_json::json!({ "deleted": code }))
    } else {
        SimError::not_found(format!("No item {code}.")).into()
    }
}
