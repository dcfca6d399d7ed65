//! Load generation: drivers that send requests and collect one record per request.

pub mod closed;

pub use closed::{ClosedLoop, LoadOutcome};
