//! The view types server functions exchange with the pages. They carry display-ready values
//! (timestamps already formatted in UTC), so the browser bundle needs no date or money library.

use serde::{Deserialize, Serialize};

/// What a person may do in SyncDesk. A user may hold several.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Triages the exception queue and maintains SKU mappings.
    Operator,
    /// Reviews proposed customer merges.
    Steward,
    /// Watches sync KPIs.
    Manager,
    /// Manages users, roles, tokens and destinations; reads the audit log.
    Admin,
}

impl Role {
    /// Every role, in the order the UI lists them.
    pub const ALL: [Role; 4] = [Role::Operator, Role::Steward, Role::Manager, Role::Admin];

    /// The stable name stored in the database and used in forms and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Steward => "steward",
            Role::Manager => "manager",
            Role::Admin => "admin",
        }
    }

    /// Parses the stable name; `None` for anything else.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == name.trim().to_ascii_lowercase())
    }

    /// The name shown to people.
    pub fn label(self) -> &'static str {
        match self {
            Role::Operator => "Operator",
            Role::Steward => "Data steward",
            Role::Manager => "Manager",
            Role::Admin => "Admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The signed-in person, as the UI sees them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Viewer {
    /// Their user id.
    pub user_id: i64,
    /// Their sign-in email.
    pub email: String,
    /// The name shown in the header and the audit log.
    pub display_name: String,
    /// The roles they hold.
    pub roles: Vec<Role>,
}

impl Viewer {
    /// Whether they hold at least one of `roles`.
    pub fn has_any(&self, roles: &[Role]) -> bool {
        roles.iter().any(|r| self.roles.contains(r))
    }
}

/// A user account as the admin page lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRow {
    /// User id.
    pub id: i64,
    /// Sign-in email (normalised to lower case).
    pub email: String,
    /// Name shown in the UI.
    pub display_name: String,
    /// Roles held.
    pub roles: Vec<Role>,
    /// A deactivated account cannot sign in; its sessions stop working at once.
    pub active: bool,
    /// When the account was created (UTC, `YYYY-MM-DD HH:MM`).
    pub created_at: String,
    /// When the account last signed in, if ever.
    pub last_sign_in_at: Option<String>,
}

/// One line of the audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    /// Position in the log; newer entries have larger ids.
    pub id: i64,
    /// When it happened (UTC, `YYYY-MM-DD HH:MM:SS`).
    pub at: String,
    /// Who did it: a user's email, `token:<name>`, `system`, or `anonymous`.
    pub actor: String,
    /// What was done, e.g. `user.roles_changed`.
    pub action: String,
    /// What it was done to, e.g. `user:7`.
    pub target: String,
    /// The state before, as JSON, when there was one.
    pub before: Option<String>,
    /// The state after, as JSON, when there is one.
    pub after: Option<String>,
}

/// A page of the audit log, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    /// The entries on this page.
    pub rows: Vec<AuditRow>,
    /// Pass as `before` to read the next (older) page; `None` on the last page.
    pub older_than: Option<i64>,
}

/// Which audit entries to list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditQuery {
    /// Only actions starting with this text (e.g. `signin`).
    pub action: Option<String>,
    /// Only entries whose actor contains this text.
    pub actor: Option<String>,
    /// Only entries older than this id (paging).
    pub before: Option<i64>,
}

/// A place in the app, with the roles that may use it. The navigation shows only the sections
/// the viewer may use; the server checks the same roles again on every call.
#[derive(Clone, Copy, Debug)]
pub struct Section {
    /// URL path.
    pub path: &'static str,
    /// Name in the navigation.
    pub label: &'static str,
    /// Roles that may open it.
    pub roles: &'static [Role],
}

/// The app's sections, in navigation order, by the job people do there.
pub const SECTIONS: [Section; 7] = [
    Section {
        path: "/exceptions",
        label: "Exceptions",
        roles: &[Role::Operator, Role::Manager],
    },
    Section {
        path: "/orders",
        label: "Orders",
        roles: &[Role::Operator, Role::Manager],
    },
    Section {
        path: "/sku-mappings",
        label: "SKU mappings",
        roles: &[Role::Operator],
    },
    Section {
        path: "/merges",
        label: "Merges",
        roles: &[Role::Steward],
    },
    Section {
        path: "/dashboard",
        label: "Dashboard",
        roles: &[Role::Manager],
    },
    Section {
        path: "/audit",
        label: "Audit",
        roles: &[Role::Admin],
    },
    Section {
        path: "/admin",
        label: "Admin",
        roles: &[Role::Admin],
    },
];

/// The section at `path`.
pub fn section(path: &str) -> Option<&'static Section> {
    SECTIONS.iter().find(|s| s.path == path)
}

/// Open exceptions sharing one cause, as the exception queue shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionGroupView {
    /// Cause fingerprint, e.g. `missing_sku:erp:ABC-123`.
    pub fingerprint: String,
    /// Machine code.
    pub code: String,
    /// `needs_action`, `transient` or `exhausted`.
    pub kind: String,
    /// The suggested action.
    pub action: String,
    /// The newest exception's sentence.
    pub message: String,
    /// Orders waiting on this cause.
    pub open: i64,
    /// How long the oldest has waited, e.g. "3 min".
    pub oldest_age: String,
    /// Destinations affected ("crm", "erp").
    pub destinations: String,
}

/// An order with its state at each destination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    /// Store order id.
    pub store_order_id: i64,
    /// "#1042".
    pub name: String,
    /// Where the order is in its life (paid, fulfilled, …).
    pub lifecycle: String,
    /// "USD 120.50".
    pub total: String,
    /// State at the CRM: synced, pending, retrying, running, blocked, dead, skipped.
    pub crm: String,
    /// State at the ERP.
    pub erp: String,
    /// How long a destination has been waiting for the order's current state ("4 min"), or
    /// `None` when both have it.
    pub waiting: Option<String>,
    /// Last change (UTC, `YYYY-MM-DD HH:MM:SS`).
    pub updated_at: String,
}

/// Which exceptions to show or act on, as the queue's filter bar and the API's query string
/// give it. Empty fields do not filter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionQuery {
    /// `open` (the default), `snoozed`, `resolved`, `skipped` or `all`.
    #[serde(default)]
    pub status: Option<String>,
    /// Only this code.
    #[serde(default)]
    pub code: Option<String>,
    /// Only `crm` or `erp`.
    #[serde(default)]
    pub destination: Option<String>,
    /// Only this cause.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// `me`, `none`, or a user id.
    #[serde(default)]
    pub assignee: Option<String>,
    /// Only those waiting at least this many minutes.
    #[serde(default)]
    pub older_than_minutes: Option<i64>,
    /// Order number, store order id, customer email or SKU.
    #[serde(default)]
    pub q: Option<String>,
}

/// What a triage request acts on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TriageTarget {
    /// These exceptions (a selection, or one).
    Ids {
        /// Exception ids.
        ids: Vec<i64>,
    },
    /// Every open exception with this cause.
    Group {
        /// The cause fingerprint.
        fingerprint: String,
    },
    /// Everything the filter matches (not just the page shown).
    Filter {
        /// The filter.
        query: ExceptionQuery,
    },
}

/// A triage action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum TriageRequest {
    /// Send again now.
    Retry,
    /// Do not send these orders to that destination.
    Skip {
        /// Why (required).
        reason: String,
    },
    /// Dealt with outside SyncDesk.
    Resolve {
        /// What was done (required).
        note: String,
    },
    /// Assign to `me`, `none`, or a user id.
    Assign {
        /// `me`, `none`, or a user id.
        assignee: String,
    },
    /// Hide for this many hours (1 to 2160).
    Snooze {
        /// Hours.
        hours: i64,
    },
}

/// What a triage action did, or in a dry run would do.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriageOutcome {
    /// Open or snoozed exceptions in scope.
    pub matched: u64,
    /// Tasks queued to run now.
    pub queued: u64,
    /// Already at the destination at the order's current version (their exceptions resolved).
    pub already_applied: u64,
    /// Being delivered right now (left alone).
    pub in_flight: u64,
    /// Destination-wide exceptions (rejected credentials) that this action cannot settle.
    pub destination_wide: u64,
    /// Order states the store sent that SyncDesk could not read: a retry has nothing to send
    /// for them (a resync from the store does); skip and resolve close them.
    #[serde(default)]
    pub from_store: u64,
    /// Exceptions closed, assigned or snoozed.
    pub changed: u64,
    /// Whether nothing was changed (a count before confirming).
    pub dry_run: bool,
    /// The outcome as a sentence.
    pub summary: String,
}

/// One exception as the queue lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionRow {
    /// Exception id.
    pub id: i64,
    /// Store order id (none for a destination-wide cause).
    pub store_order_id: Option<i64>,
    /// "#1042".
    pub order_name: Option<String>,
    /// `crm` or `erp`.
    pub destination: String,
    /// Machine code.
    pub code: String,
    /// `needs_action`, `transient` or `exhausted`.
    pub kind: String,
    /// What happened.
    pub message: String,
    /// What to do about it.
    pub action: String,
    /// `open`, `snoozed`, `resolved`, `skipped`.
    pub status: String,
    /// Assigned to (name).
    pub assignee: Option<String>,
    /// How long it has waited, e.g. "3 min".
    pub age: String,
    /// How it was closed, when it was.
    pub resolution: Option<String>,
}

/// A page of exceptions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionPage {
    /// The rows.
    pub rows: Vec<ExceptionRow>,
    /// Pass as `before` for the next page; `None` on the last.
    pub next_before: Option<i64>,
}

/// A person exceptions can be assigned to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignable {
    /// User id.
    pub id: i64,
    /// Name.
    pub name: String,
}

/// A SKU orders wait on because it has no ERP item code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmappedSkuView {
    /// The store SKU.
    pub sku: String,
    /// Orders waiting on it.
    pub orders: i64,
    /// How long the oldest has waited, e.g. "3 min".
    pub oldest_age: String,
}

/// A SKU's ERP item code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuMappingView {
    /// The store SKU.
    pub sku: String,
    /// The ERP item code.
    pub item_code: String,
    /// Last change (UTC, `YYYY-MM-DD HH:MM`).
    pub updated_at: String,
    /// Who made it.
    pub updated_by: String,
}

/// What saving a mapping did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingSaved {
    /// The store SKU.
    pub sku: String,
    /// Its ERP item code now.
    pub item_code: String,
    /// Orders put back in the queue.
    pub released: u64,
    /// The outcome as a sentence.
    pub summary: String,
}

/// What importing a CSV file of SKU mappings did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportOutcome {
    /// The outcome as one or two sentences.
    pub summary: String,
    /// Whether the file was applied (it is all or nothing).
    pub applied: bool,
    /// The rows that kept it from being applied.
    pub rejected: Vec<RejectedMapping>,
}

/// A row of an imported file that is wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedMapping {
    /// Its line in the file (the header is line 1).
    pub line: u64,
    /// The SKU as written.
    pub sku: String,
    /// What is wrong.
    pub reason: String,
}

/// One order's page: its state at each destination, what each gets, and its history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPage {
    /// Store order id.
    pub store_order_id: i64,
    /// "#1042".
    pub name: String,
    /// Where the order is in its life.
    pub lifecycle: String,
    /// "USD 120.50".
    pub total: String,
    /// Our version (states applied).
    pub version: i64,
    /// When the store last changed it (UTC).
    pub store_updated_at: String,
    /// Each destination.
    pub destinations: Vec<OrderDestination>,
    /// Everything that happened, newest first.
    pub timeline: Vec<TimelineEntry>,
    /// Whether the store's Admin API is configured, so the order can be resynced from it.
    #[serde(default)]
    pub can_resync: bool,
}

/// The order at one destination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderDestination {
    /// `crm` or `erp`.
    pub destination: String,
    /// Task state (synced, pending, retrying, running, blocked, dead, skipped).
    pub state: String,
    /// The version it should reach.
    pub target_version: i64,
    /// The version it has acknowledged.
    pub synced_version: Option<i64>,
    /// The destination's id for the order (CRM deal / ERP document number).
    pub external_id: Option<String>,
    /// The payload for the current state, pretty JSON, when it maps: an operator's edit when
    /// one is in force, otherwise the computed one.
    pub payload: Option<String>,
    /// When an edit is in force: who edited and when, as a sentence.
    pub edited: Option<String>,
    /// When an edit is in force: the computed payload it replaces, pretty JSON.
    pub original: Option<String>,
    /// The id of the edit in force (0: none), sent back with a new edit so that one saved by
    /// someone else meanwhile is not undone unseen.
    pub edit_id: i64,
    /// The fingerprint of `payload`, sent back with an edit (see `edit_id`).
    pub payload_digest: String,
    /// What stops it being sent.
    pub problems: Vec<String>,
}

/// An operator's edit of what one destination gets, as the order's page sends it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadEditRequest {
    /// The order.
    pub store_order_id: i64,
    /// `crm` or `erp`.
    pub destination: String,
    /// The order version the page showed.
    pub version: i64,
    /// The edited payload, JSON.
    pub payload: String,
    /// The edit the page showed in force (0: none); `None`: not checked.
    pub based_on: Option<i64>,
    /// The fingerprint of the payload the page showed; `None`: not checked.
    pub shown: Option<String>,
}

/// One line of an order's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// When (UTC, `YYYY-MM-DD HH:MM:SS`), for sorting and reading.
    pub at: String,
    /// `store`, `crm`, `erp`.
    pub source: String,
    /// webhook, attempt, exception.
    pub kind: String,
    /// A short label: the topic, the attempt's outcome, the exception's status.
    pub label: String,
    /// `ok`, `warn`, `bad` or `muted`: how it reads at a glance.
    pub tone: String,
    /// The details in a sentence.
    pub detail: String,
}
