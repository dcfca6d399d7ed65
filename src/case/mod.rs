//! Cases and model specs: schema, loading and validation.

pub mod schema;

pub use schema::*;
