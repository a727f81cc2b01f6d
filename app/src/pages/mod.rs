//! One module per job people do in SyncDesk.

mod admin;
mod audit;
mod exceptions;
mod home;
mod login;
mod not_found;
mod orders;
mod sku_mappings;
mod upcoming;

pub use admin::AdminPage;
pub use audit::AuditPage;
pub use exceptions::ExceptionsPage;
pub use home::HomePage;
pub use login::LoginPage;
pub use not_found::NotFound;
pub use orders::{OrderDetailPage, OrdersPage};
pub use sku_mappings::SkuMappingsPage;
pub use upcoming::{DashboardPage, MergesPage};
