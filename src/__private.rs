//! What the macros' expansions name (`linkme`, the registration slice, insta); not for use by
//! hand.

#[cfg(feature = "insta")]
pub use insta;
pub use linkme;

pub use crate::trial::TRIALS;
