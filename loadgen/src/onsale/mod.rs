//! The on-sale: E events of S seats; users each try to hold up to K seats at once (anywhere, or
//! on a few hot seats), wait for their jobs, and reserve part of what they got — flat out over
//! C concurrent users, or at a target rate of POSTs; for a duration, a number of POSTs, or until
//! every user had one go. Then the invariant check ([`crate::check`]) on what everyone was told
//! and on the state read back through the API.

mod config;
mod readback;
mod report;
mod run;
mod state;
mod trace;
mod user;

pub use config::{OnSale, Waiting};
pub use readback::read_back;
pub use report::OnSaleReport;
pub use run::run;
pub use trace::TRACE_HEADER;
pub use user::report_error;
