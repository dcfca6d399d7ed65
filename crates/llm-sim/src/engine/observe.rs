//! What the incremental API reports: events in virtual time and a snapshot of the engine.

/// A request's handle, in the order requests were pushed (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub usize);

/// Something that happened to a request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EngineEvent {
    /// It entered a replica's batch (again, after a preemption), at the start of a step.
    Admitted {
        /// The request.
        id: RequestId,
        /// The replica.
        replica: usize,
        /// Virtual time, seconds.
        at_s: f64,
    },
    /// Its token `index` (0: the first token) was generated, at the end of a step.
    Token {
        /// The request.
        id: RequestId,
        /// 0-based position in its output.
        index: u32,
        /// Virtual time, seconds.
        at_s: f64,
    },
    /// Its last token was generated (reported after that token).
    Finished {
        /// The request.
        id: RequestId,
        /// Virtual time, seconds.
        at_s: f64,
    },
    /// It lost its KV cache and went back to the head of its queue; its prefill (prompt and
    /// tokens generated so far) will be redone, and generation resumes where it stopped.
    Preempted {
        /// The request.
        id: RequestId,
        /// Virtual time, seconds.
        at_s: f64,
    },
    /// It was refused at arrival: prompt plus output would not fit in a replica's KV cache.
    Rejected {
        /// The request.
        id: RequestId,
        /// Virtual time, seconds.
        at_s: f64,
    },
}

impl EngineEvent {
    /// When it happened.
    pub fn at_s(&self) -> f64 {
        match *self {
            EngineEvent::Admitted { at_s, .. }
            | EngineEvent::Token { at_s, .. }
            | EngineEvent::Finished { at_s, .. }
            | EngineEvent::Preempted { at_s, .. }
            | EngineEvent::Rejected { at_s, .. } => at_s,
        }
    }
}

/// One replica at an instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplicaSnapshot {
    /// Requests waiting for it (its own queue; 0 for a shared multi-bin pool).
    pub queued: usize,
    /// Requests admitted and not finished.
    pub running: usize,
    /// KV blocks in use.
    pub kv_used_blocks: u64,
    /// Whether a step is in progress.
    pub busy: bool,
}

/// The engine at an instant, for a Prometheus-style view.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineSnapshot {
    /// Virtual time, seconds.
    pub now_s: f64,
    /// Requests pushed whose arrival time has not come.
    pub pending: usize,
    /// Requests arrived and waiting for admission.
    pub queued: usize,
    /// Requests admitted and not finished.
    pub running: usize,
    /// Requests finished.
    pub finished: usize,
    /// Requests rejected.
    pub rejected: usize,
    /// KV blocks in use over all replicas.
    pub kv_used_blocks: u64,
    /// KV blocks over all replicas.
    pub kv_capacity_blocks: u64,
    /// Tokens per block.
    pub kv_block_size: u32,
    /// Per replica.
    pub replicas: Vec<ReplicaSnapshot>,
}
