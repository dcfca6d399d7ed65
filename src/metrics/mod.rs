//! What was measured: per-request records and the summary computed from them.

pub mod accumulate;
pub mod consistency;
pub mod drift;
pub mod goodput;
pub mod prefix;
pub mod record;
pub mod server_known;
pub mod server_timing;
pub mod summary;
pub mod turns;
pub mod windows;

pub use llm_stress_base::distribution;

pub use accumulate::Accumulator;
pub use consistency::Consistency;
pub use distribution::Distribution;
pub use drift::Drift;
pub use goodput::RequestSlo;
pub use prefix::PrefixSummary;
pub use record::{ErrorClass, RequestRecord, SessionEnd};
pub use server_timing::{ServerTiming, ServerTimingSummary};
pub use summary::Summary;
pub use turns::TurnSummary;
