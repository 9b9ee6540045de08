//! What can go wrong between a client and the session daemon, as data: the source of
//! [`crate::Error::Daemon`] (which adds the fix).

use std::path::PathBuf;

use super::platform::MAX_SOCKET_PATH;
use super::{CLIENT_TIMEOUT, MAX_REQUEST_BYTES};

/// A failure talking to, or starting, the session daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The request would be larger than the daemon reads; nothing was sent.
    #[error("the request is {bytes} bytes, over the daemon's limit of {MAX_REQUEST_BYTES}; nothing was sent")]
    RequestTooLarge {
        /// Its size.
        bytes: usize,
    },
    /// Every try within the client's deadline was answered "busy".
    #[error("the daemon stayed busy for {} s (too many connections at once)", CLIENT_TIMEOUT.as_secs())]
    Busy,
    /// The socket could not be connected to.
    #[error("cannot connect to {}: {source}", path.display())]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Sending the request or reading the answer failed.
    #[error("talking to the daemon failed: {0}")]
    Talk(#[source] std::io::Error),
    /// Nothing came back within the deadline.
    #[error("the daemon{} at {} did not answer within {} s: it is stopped or stuck", pid.map(|p| format!(" (pid {p})")).unwrap_or_default(), path.display(), CLIENT_TIMEOUT.as_secs())]
    NotAnswering {
        /// The process serving the socket, when known.
        pid: Option<i32>,
        /// The socket.
        path: PathBuf,
    },
    /// The answer is not a response of the protocol.
    #[error("unreadable answer ({bytes} bytes)")]
    Unreadable {
        /// Its size.
        bytes: usize,
    },
    /// The daemon refused the request (its own words).
    #[error("{0}")]
    Refused(String),
    /// The daemon answered with a response of another request.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
    /// The daemon could not be started.
    #[error("cannot {doing}: {source}")]
    Start {
        /// What was being done ("start the daemon").
        doing: &'static str,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// The daemon started, and reported why it could not serve.
    #[error("the daemon could not start: {0}")]
    StartFailed(String),
    /// The daemon exited before it answered, without a report.
    #[error("the daemon exited at start ({status}) without saying why")]
    ExitedAtStart {
        /// How it exited.
        status: String,
    },
    /// The daemon did not answer in time after it was started.
    #[error("the daemon did not answer within {} s of starting", secs)]
    StartTimeout {
        /// The wait, in seconds.
        secs: u64,
    },
    /// Each daemon started exited before it took the request.
    #[error("the daemon exited each time it was started, before it took the grants")]
    KeptExiting,
    /// The socket path is longer than Unix sockets allow.
    #[error("the daemon's socket path {} is {len} bytes; Unix sockets allow at most {MAX_SOCKET_PATH}", path.display())]
    SocketPathTooLong {
        /// The path.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
    /// Another process holds the daemon's lock and does not answer on the socket.
    #[error("another process has held {} for {secs} s without answering on {}", lock.display(), socket.display())]
    LockHeld {
        /// The lock file.
        lock: PathBuf,
        /// The socket.
        socket: PathBuf,
        /// How long it was waited for.
        secs: u64,
    },
}
