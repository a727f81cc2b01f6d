//! The server's implementation of the UI's [`Port`]: session and role checks, then one call
//! into accounts or the store, with errors turned into sentences.

mod orders;
mod skus;
mod timeline;

use app::error::AppError;
use app::model::{
    Assignable, AuditPage, AuditQuery, AuditRow, ExceptionGroupView, ExceptionPage, ExceptionQuery,
    ExceptionRow, ImportOutcome, MappingSaved, OrderPage, OrderView, PayloadEditRequest, Role,
    SkuMappingView, TriageOutcome, TriageRequest, TriageTarget, UnmappedSkuView, UserRow, Viewer,
};
use app::port::Port;
use axum::http::request::Parts;
use leptos::prelude::use_context;
use tower_sessions::Session;

use super::session::{CurrentUser, SIGNED_IN_AT, USER_ID, client_address};
use super::{AppState, triage};
use crate::accounts::{AddUserError, SignInError};
use crate::audit::{Actor, Change};
use crate::engine::mappings::MappingError;
use crate::store::{AuditFilter, AuditRecord, ExceptionFilter, StoreError, UserRecord};

/// The port for one request.
pub struct WebPort {
    state: AppState,
}

impl WebPort {
    /// A port over `state`; request details come from the Leptos context.
    pub fn new(state: AppState) -> WebPort {
        WebPort { state }
    }

    fn parts() -> Option<Parts> {
        use_context::<Parts>()
    }

    fn current() -> Option<UserRecord> {
        Self::parts()
            .and_then(|p| p.extensions.get::<CurrentUser>().cloned())
            .and_then(|c| c.0)
    }

    fn client(&self) -> Option<String> {
        Self::parts().and_then(|p| client_address(&p, self.state.settings.trust_proxy))
    }

    async fn session() -> Result<Session, AppError> {
        leptos_axum::extract::<Session>()
            .await
            .map_err(|e| internal("session unavailable", &e))
    }
}

fn viewer(user: &UserRecord) -> Viewer {
    Viewer {
        user_id: user.id,
        email: user.email.clone(),
        display_name: user.display_name.clone(),
        roles: user.roles.clone(),
    }
}

fn actor(viewer: &Viewer) -> Actor {
    Actor::User {
        id: viewer.user_id,
        email: viewer.email.clone(),
    }
}

fn user_row(user: UserRecord) -> UserRow {
    UserRow {
        id: user.id,
        email: user.email,
        display_name: user.display_name,
        roles: user.roles,
        active: user.active,
        created_at: user.created_at.format("%Y-%m-%d %H:%M").to_string(),
        last_sign_in_at: user
            .last_sign_in_at
            .map(|t| t.format("%Y-%m-%d %H:%M").to_string()),
    }
}

/// Logs an internal error under a short reference and returns the sentence people see.
fn internal(context: &str, err: &dyn std::fmt::Display) -> AppError {
    let reference = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    tracing::error!(reference = %reference, error = %err, "{context}");
    AppError::Internal(reference)
}

fn store_error(err: StoreError) -> AppError {
    match err {
        StoreError::Conflict(message) => AppError::Conflict(message),
        StoreError::Invalid(message) => AppError::Invalid(message),
        StoreError::NotFound(what) => AppError::NotFound(format!("That {what} does not exist.")),
        other => internal("storage failed", &other),
    }
}

fn mapping_error(err: MappingError) -> AppError {
    match err {
        MappingError::Invalid(message) => AppError::Invalid(message),
        MappingError::Store(err) => store_error(err),
    }
}

fn add_user_error(err: AddUserError) -> AppError {
    match err {
        AddUserError::Invalid(message) => AppError::Invalid(message),
        AddUserError::Store(err) => store_error(err),
        AddUserError::Hash(err) => internal("password hashing failed", &err),
    }
}

#[async_trait::async_trait]
impl Port for WebPort {
    async fn viewer(&self) -> Result<Option<Viewer>, AppError> {
        Ok(Self::current().as_ref().map(viewer))
    }

    async fn authorize(&self, allowed: &[Role], what: &str) -> Result<Viewer, AppError> {
        let Some(user) = Self::current() else {
            return Err(AppError::Unauthenticated);
        };
        let viewer = viewer(&user);
        if viewer.has_any(allowed) {
            return Ok(viewer);
        }
        let needed = allowed.iter().map(|r| r.as_str()).collect::<Vec<_>>();
        let change = Change::new(&actor(&viewer), "access.denied", what.to_string())
            .after(serde_json::json!({ "needs_one_of": needed }))
            .client(self.client());
        self.state
            .store
            .record(&change)
            .await
            .map_err(store_error)?;
        let labels = allowed
            .iter()
            .map(|r| r.label())
            .collect::<Vec<_>>()
            .join(" or ");
        Err(AppError::Forbidden(format!(
            "You need the {labels} role to {what}."
        )))
    }

    async fn sign_in(&self, email: String, password: String) -> Result<Viewer, AppError> {
        let client = self.client();
        let user = match self.state.accounts.sign_in(&email, password, client).await {
            Ok(user) => user,
            Err(SignInError::BadCredentials) => return Err(AppError::BadCredentials),
            Err(SignInError::Throttled(wait)) => {
                return Err(AppError::Throttled {
                    retry_after_secs: wait.as_secs().max(1),
                });
            }
            Err(SignInError::Store(err)) => return Err(store_error(err)),
        };
        let session = Self::session().await?;
        // A new session id at sign-in, so an id planted before sign-in is worthless after it.
        session
            .cycle_id()
            .await
            .map_err(|e| internal("session cycle failed", &e))?;
        session
            .insert(USER_ID, user.id)
            .await
            .map_err(|e| internal("session write failed", &e))?;
        session
            .insert(SIGNED_IN_AT, chrono::Utc::now().timestamp_millis())
            .await
            .map_err(|e| internal("session write failed", &e))?;
        Ok(viewer(&user))
    }

    async fn sign_out(&self) -> Result<(), AppError> {
        let session = Self::session().await?;
        if let Some(user) = Self::current() {
            let actor = Actor::User {
                id: user.id,
                email: user.email,
            };
            self.state
                .accounts
                .record_sign_out(&actor, self.client())
                .await
                .map_err(store_error)?;
        }
        session
            .flush()
            .await
            .map_err(|e| internal("session flush failed", &e))
    }

    async fn list_users(&self, _by: &Viewer) -> Result<Vec<UserRow>, AppError> {
        let users = self.state.store.users().await.map_err(store_error)?;
        Ok(users.into_iter().map(user_row).collect())
    }

    async fn add_user(
        &self,
        by: &Viewer,
        email: String,
        display_name: String,
        password: String,
        roles: Vec<Role>,
    ) -> Result<UserRow, AppError> {
        let user = self
            .state
            .accounts
            .add_user(&email, &display_name, password, roles, &actor(by))
            .await
            .map_err(add_user_error)?;
        Ok(user_row(user))
    }

    async fn set_user_roles(
        &self,
        by: &Viewer,
        user_id: i64,
        roles: Vec<Role>,
    ) -> Result<UserRow, AppError> {
        if user_id == by.user_id && !roles.contains(&Role::Admin) {
            return Err(AppError::Invalid(
                "You can't remove your own admin role; ask another admin, so SyncDesk always keeps one.".into(),
            ));
        }
        let user = self
            .state
            .store
            .set_user_roles(user_id, &roles, &actor(by))
            .await
            .map_err(store_error)?;
        Ok(user_row(user))
    }

    async fn set_user_active(
        &self,
        by: &Viewer,
        user_id: i64,
        active: bool,
    ) -> Result<UserRow, AppError> {
        if user_id == by.user_id && !active {
            return Err(AppError::Invalid(
                "You can't deactivate your own account.".into(),
            ));
        }
        let user = self
            .state
            .store
            .set_user_active(user_id, active, &actor(by))
            .await
            .map_err(store_error)?;
        Ok(user_row(user))
    }

    async fn resume_destination(&self, by: &Viewer, destination: String) -> Result<bool, AppError> {
        let was_paused = self
            .state
            .store
            .resume_destination(&destination, &actor(by))
            .await
            .map_err(store_error)?;
        self.state.wake.all();
        Ok(was_paused)
    }

    async fn audit_log(&self, _by: &Viewer, query: AuditQuery) -> Result<AuditPage, AppError> {
        const PAGE: i64 = 50;
        let filter = AuditFilter {
            action_prefix: query.action,
            actor_contains: query.actor,
            before_id: query.before,
            limit: PAGE + 1,
        };
        let mut records = self
            .state
            .store
            .audit_entries(&filter)
            .await
            .map_err(store_error)?;
        let more = records.len() as i64 > PAGE;
        records.truncate(PAGE as usize);
        let older_than = if more {
            records.last().map(|r| r.id)
        } else {
            None
        };
        let rows = records.into_iter().map(audit_row).collect();
        Ok(AuditPage { rows, older_than })
    }

    async fn exception_groups(
        &self,
        by: &Viewer,
        query: ExceptionQuery,
        oldest_first: bool,
    ) -> Result<Vec<ExceptionGroupView>, AppError> {
        let now = chrono::Utc::now();
        let scope = triage::group_scope(&query, Some(by.user_id)).map_err(AppError::Invalid)?;
        let groups = self
            .state
            .store
            // The queue shows 200, and says so when there are more.
            .exception_groups(&scope, oldest_first, 201)
            .await
            .map_err(store_error)?;
        Ok(groups
            .into_iter()
            .map(|g| ExceptionGroupView {
                fingerprint: g.fingerprint,
                code: g.code,
                kind: g.kind,
                action: g.action,
                message: g.message,
                open: g.open,
                oldest_age: age(now - g.oldest),
                destinations: g.destinations,
            })
            .collect())
    }

    async fn exception_page(
        &self,
        by: &Viewer,
        query: ExceptionQuery,
        before: Option<i64>,
        oldest_first: bool,
    ) -> Result<ExceptionPage, AppError> {
        const PAGE: i64 = 50;
        let now = chrono::Utc::now();
        let scope = triage::scope(&query, Some(by.user_id)).map_err(AppError::Invalid)?;
        let filter = ExceptionFilter {
            scope,
            before_id: before,
            oldest_first,
            limit: PAGE,
        };
        let rows = self
            .state
            .store
            .exceptions(&filter)
            .await
            .map_err(store_error)?;
        let next_before = (rows.len() as i64 == PAGE)
            .then(|| rows.last().map(|r| r.id))
            .flatten();
        let rows = rows
            .into_iter()
            .map(|e| ExceptionRow {
                id: e.id,
                store_order_id: e.store_order_id,
                order_name: e.order_name,
                destination: e.destination,
                code: e.code,
                kind: e.kind,
                message: e.message,
                action: e.action,
                status: e.status,
                assignee: e.assignee,
                // A closed exception waited until it was closed, not until now.
                age: age(e.resolved_at.unwrap_or(now) - e.created_at),
                resolution: e.resolution,
            })
            .collect();
        Ok(ExceptionPage { rows, next_before })
    }

    async fn count_exceptions(&self, by: &Viewer, query: ExceptionQuery) -> Result<i64, AppError> {
        let scope = triage::scope(&query, Some(by.user_id)).map_err(AppError::Invalid)?;
        self.state
            .store
            .count_exceptions(&scope)
            .await
            .map_err(store_error)
    }

    async fn triage(
        &self,
        by: &Viewer,
        target: TriageTarget,
        request: TriageRequest,
        dry_run: bool,
    ) -> Result<TriageOutcome, AppError> {
        let me = Some(by.user_id);
        let scope = triage::target_scope(&target, me).map_err(AppError::Invalid)?;
        let action = triage::action(&request, me).map_err(AppError::Invalid)?;
        let report = self
            .state
            .store
            .triage(&scope, &action, dry_run, &actor(by))
            .await
            .map_err(store_error)?;
        if !dry_run && report.queued > 0 {
            self.state.wake.all();
        }
        Ok(triage::outcome(&request, &report))
    }

    async fn unmapped_skus(&self, _by: &Viewer) -> Result<Vec<UnmappedSkuView>, AppError> {
        skus::unmapped(&self.state).await
    }

    async fn sku_mappings(
        &self,
        _by: &Viewer,
        search: Option<String>,
    ) -> Result<Vec<SkuMappingView>, AppError> {
        skus::mappings(&self.state, search).await
    }

    async fn save_sku_mapping(
        &self,
        by: &Viewer,
        sku: String,
        item_code: String,
    ) -> Result<MappingSaved, AppError> {
        skus::save(&self.state, by, sku, item_code).await
    }

    async fn import_sku_mappings(
        &self,
        by: &Viewer,
        csv: String,
    ) -> Result<ImportOutcome, AppError> {
        skus::import(&self.state, by, csv).await
    }

    async fn delete_sku_mapping(&self, by: &Viewer, sku: String) -> Result<String, AppError> {
        skus::delete(&self.state, by, sku).await
    }

    async fn sku_history(&self, _by: &Viewer) -> Result<Vec<AuditRow>, AppError> {
        skus::history(&self.state).await
    }

    async fn assignables(&self, _by: &Viewer) -> Result<Vec<Assignable>, AppError> {
        let users = self.state.store.users().await.map_err(store_error)?;
        Ok(users
            .into_iter()
            .filter(|u| u.active && u.roles.contains(&Role::Operator))
            .map(|u| Assignable {
                id: u.id,
                name: u.display_name,
            })
            .collect())
    }

    async fn recent_orders(
        &self,
        _by: &Viewer,
        search: Option<String>,
        state: Option<String>,
    ) -> Result<Vec<OrderView>, AppError> {
        orders::recent(&self.state, search, state).await
    }

    async fn order_page(&self, _by: &Viewer, store_order_id: i64) -> Result<OrderPage, AppError> {
        orders::page(&self.state, store_order_id).await
    }

    async fn skip_order(
        &self,
        by: &Viewer,
        store_order_id: i64,
        destination: String,
        reason: String,
    ) -> Result<String, AppError> {
        orders::skip(&self.state, by, store_order_id, destination, reason).await
    }

    async fn resync_order(&self, by: &Viewer, store_order_id: i64) -> Result<String, AppError> {
        orders::resync(&self.state, by, store_order_id).await
    }

    async fn edit_payload(
        &self,
        by: &Viewer,
        edit: PayloadEditRequest,
    ) -> Result<String, AppError> {
        orders::edit_payload(&self.state, by, edit).await
    }

    async fn retry_order(
        &self,
        by: &Viewer,
        store_order_id: i64,
        destination: String,
    ) -> Result<String, AppError> {
        orders::retry(&self.state, by, store_order_id, destination).await
    }
}

fn audit_row(r: AuditRecord) -> AuditRow {
    AuditRow {
        id: r.id,
        at: r.at.format("%Y-%m-%d %H:%M:%S").to_string(),
        actor: r.actor_label,
        action: r.action,
        target: r.target,
        before: r.before.map(|j| j.0.to_string()),
        after: r.after.map(|j| j.0.to_string()),
    }
}

/// "45 s", "12 min", "3 h", "2 d".
fn age(elapsed: chrono::TimeDelta) -> String {
    let secs = elapsed.num_seconds().max(0);
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..86400 => format!("{} h", secs / 3600),
        _ => format!("{} d", secs / 86400),
    }
}
