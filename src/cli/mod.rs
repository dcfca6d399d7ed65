//! The command-line interface, one module per command.

pub mod sim;
