//! The session daemon: one per (user, keyrack home, owner, login session). It holds unlocked
//! grants in memory for a bounded time and answers `get` in one socket round trip.
//!
//! - [`protocol`]: the wire format (one JSON request line, one JSON response line).
//! - [`store`]: the in-memory grant store with expiry.
//! - [`server`]: `keyrack daemon run`: socket, peer checks, bounded connections, sweep, idle exit.
//! - [`client`]: trust checks, connecting, starting on demand, typed calls ([`DaemonError`]).
//! - [`socket`]: where the socket lives and whether that place can be trusted.
//! - [`ledger`]: files (mirrored tokens) to remove when the daemon that held them is gone.
//! - [`platform`]: what is asked of the OS (peer credentials, login sessions, runtime dir).

use std::time::Duration;

pub(crate) use error::DaemonError;

pub mod client;
mod error;
mod grants_line;
pub(crate) mod ledger;
pub mod platform;
pub mod protocol;
pub mod server;
pub(crate) mod socket;
pub(crate) mod store;

/// Environment variable: seconds the daemon waits, empty and unused, before exiting.
pub(crate) const IDLE_ENV: &str = "KEYRACK_DAEMON_IDLE_SECS";
/// Default idle window before an empty daemon exits.
pub(crate) const DEFAULT_IDLE_SECS: u64 = 600;
/// Largest request the daemon reads.
pub const MAX_REQUEST_BYTES: usize = 4 << 20;
/// The longest a grant may live: the daemon refuses a grant expiring later than this from now
/// (and `unlock --duration` refuses longer durations).
pub(crate) const MAX_GRANT_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a client waits for one request (connect, send, answer) before it gives up.
pub(crate) const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// Connections the daemon serves at once; more get a quick "busy" answer.
pub(crate) const MAX_CONNECTIONS: usize = 64;
/// Request bytes the daemon buffers across all connections at once.
pub(crate) const MAX_IN_FLIGHT_BYTES: usize = 3 * MAX_REQUEST_BYTES;
/// How long the daemon waits for a whole request once a connection is accepted.
pub(crate) const REQUEST_DEADLINE: Duration = Duration::from_secs(3);
