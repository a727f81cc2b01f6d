//! `GET /sku-mappings/export.csv`: every SKU mapping as a CSV download, for people signed in to
//! the app (operators and managers). Tokens use `GET /api/v1/sku-mappings.csv`.

use app::model::Role;
use axum::Extension;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::session::CurrentUser;
use crate::audit::{Actor, Change};
use crate::engine::mappings::Mappings;
use crate::store::Store;

/// Who may download the mappings.
const READERS: &[Role] = &[Role::Operator, Role::Manager];

/// The CSV download, named after today's date.
pub async fn export(
    State(mappings): State<Mappings>,
    State(store): State<Store>,
    Extension(CurrentUser(user)): Extension<CurrentUser>,
) -> Response {
    let Some(user) = user else {
        return (StatusCode::UNAUTHORIZED, "Please sign in to continue.\n").into_response();
    };
    if !READERS.iter().any(|r| user.roles.contains(r)) {
        // Refused role checks are audited, as the server functions' and the API's are.
        let who = Actor::User {
            id: user.id,
            email: user.email.clone(),
        };
        let needed = READERS.iter().map(|r| r.as_str()).collect::<Vec<_>>();
        let change = Change::new(
            &who,
            "access.denied",
            "GET /sku-mappings/export.csv".to_string(),
        )
        .after(serde_json::json!({ "needs_one_of": needed }));
        if let Err(err) = store.record(&change).await {
            tracing::error!(error = %err, "auditing a refused SKU mapping export failed");
        }
        return (
            StatusCode::FORBIDDEN,
            "Exporting SKU mappings needs the operator or manager role.\n",
        )
            .into_response();
    }
    match mappings.export_csv().await {
        Ok(csv) => csv_download(csv),
        Err(err) => {
            tracing::error!(error = %err, "exporting SKU mappings failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The export failed; it has been logged.\n",
            )
                .into_response()
        }
    }
}

/// A CSV body served as a download named `sku-mappings-<date>.csv`.
pub(super) fn csv_download(csv: String) -> Response {
    let name = format!(
        "attachment; filename=\"sku-mappings-{}.csv\"",
        chrono::Utc::now().format("%Y-%m-%d")
    );
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, name),
        ],
        csv,
    )
        .into_response()
}
