//! Servers under test: the embedded simulated server and attached servers.
