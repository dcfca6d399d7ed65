//! `llm-stress-base`: what the `llm-stress` harness and its simulator (`llm-sim`) share, and
//! depends on neither: reading YAML with errors that name file, line, column and key
//! ([`yaml`]), facts about this process and host ([`os`]) and the statistics of one latency
//! metric ([`distribution`]).

pub mod distribution;
pub mod os;
pub mod yaml;
