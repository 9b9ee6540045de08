//! The session daemon: one per (user, keyrack home, owner, login session). It holds unlocked
//! grants in memory for a bounded time and answers `get` in one socket round trip.
//!
//! - [`protocol`]: the wire format (one JSON request line, one JSON response line).
//! - [`store`]: the in-memory grant store with expiry.
//! - [`server`]: `keyrack daemon run`: socket, peer checks, sweep, idle exit.
//! - [`client`]: connecting, starting on demand, typed calls.
//! - [`socket`]: where the socket lives and the login-session id.

pub mod client;
mod grants_line;
pub mod protocol;
pub mod server;
pub mod socket;
pub mod store;

/// Environment variable: seconds the daemon waits, empty and unused, before exiting.
pub const IDLE_ENV: &str = "KEYRACK_DAEMON_IDLE_SECS";
/// Default idle window before an empty daemon exits.
pub const DEFAULT_IDLE_SECS: u64 = 600;
/// Largest request the daemon reads.
pub const MAX_REQUEST_BYTES: usize = 4 << 20;
