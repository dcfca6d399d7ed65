//! What the simulator knows about one request.

/// The longest prompt or output the simulator accepts, tokens (so that a prompt plus its
/// generated tokens always fits in 32 bits).
pub const MAX_TOKENS: u32 = 100_000_000;

/// One request offered to the simulated server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimRequest {
    /// Virtual time it arrives, seconds.
    pub arrival_s: f64,
    /// Prompt length, tokens (at least 1).
    pub prompt_tokens: u32,
    /// Tokens it will generate (at least 1); the simulator stops it after exactly this many.
    pub output_tokens: u32,
    /// What a length predictor says it will generate; the multi-bin scheduler bins on this.
    pub predicted_output_tokens: u32,
}

impl SimRequest {
    /// A request whose predicted output length is its real one.
    pub fn new(arrival_s: f64, prompt_tokens: u32, output_tokens: u32) -> SimRequest {
        SimRequest {
            arrival_s,
            prompt_tokens,
            output_tokens,
            predicted_output_tokens: output_tokens,
        }
    }
}
