//! One module per job people do in SyncDesk.

mod admin;
mod audit;
mod home;
mod login;
mod not_found;
mod upcoming;

pub use admin::AdminPage;
pub use audit::AuditPage;
pub use home::HomePage;
pub use login::LoginPage;
pub use not_found::NotFound;
pub use upcoming::{DashboardPage, ExceptionsPage, MergesPage, OrdersPage, SkuMappingsPage};
