//! Cases and model specs: schema, loading and validation.

mod accuracy;
pub mod answer;
pub mod fault;
pub mod files;
pub mod gate;
pub mod lengths;
pub mod limits;
pub mod load;
pub mod overrides;
pub mod request;
pub mod requirement;
pub mod schema;
pub mod sim;
pub mod slo;
pub mod traffic;

pub use lengths::LengthDist;
pub use load::{
    CaseError, LoadedCase, YamlError, discover, discover_with, load_case, load_case_with,
    load_model,
};
pub use overrides::Overrides;
pub use schema::*;
pub use slo::{Op, ServerStat, Slo, SloError, SloMetric};
