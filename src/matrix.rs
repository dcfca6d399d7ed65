//! Parameter matrix generation (placeholder, being written).
