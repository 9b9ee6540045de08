//! `keyrack daemon run`: the server loop.
//!
//! **Binding.** The runtime dir is checked as clients check it (a private directory of this user,
//! see [`socket`]); then the daemon takes an exclusive lock next to the socket. When another
//! process holds the lock and the socket answers, a daemon is running and this one exits; when
//! the socket does not answer, the holder is a daemon still exiting, so this one waits for the
//! lock (up to a few seconds) instead of giving up. Holding the lock, it replaces any stale
//! socket file and binds a new one, 0600.
//!
//! **Serving.** Every peer is checked with `SO_PEERCRED`. At most [`MAX_CONNECTIONS`] connections
//! are served at once, each on its own thread (a thread that cannot be started drops its
//! connection, never the daemon); more get a quick [`Response::Busy`]. A request must arrive
//! whole within [`REQUEST_DEADLINE`], is at most [`MAX_REQUEST_BYTES`], and is buffered against
//! one budget of [`MAX_IN_FLIGHT_BYTES`] shared by all connections. Grants expiring later than
//! [`MAX_GRANT_TTL`] from now are refused. Expired grants are swept every half second.
//!
//! **Renewing.** The daemon knows no vault: whoever starts it hands [`Server::serve`] a
//! [`Renewer`]. The sweep calls it for each grant whose renewal deadline passed, outside the
//! store's lock (a renewal may take a network round trip), and applies the outcome: a renewed
//! grant, no change (asked again a minute later), or the end of the grant, remembered with its
//! reason.
//!
//! **Exiting** (idle and empty for the idle window — a grant that ended by itself counts until
//! a GET or STATUS has said why, see [`Store::is_idle`] — or SHUTDOWN): stop answering, unlink the
//! socket, forget every grant (removing the files they carried), and only then release the
//! lock — so a new daemon waiting for the lock binds a fresh socket that nobody unlinks.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use jiff::Timestamp;

use super::ledger::Ledger;
use super::protocol::{RelockScope, Request, Response};
use super::store::Store;
use super::{
    platform, socket, DEFAULT_IDLE_SECS, IDLE_ENV, MAX_CONNECTIONS, MAX_GRANT_TTL,
    MAX_IN_FLIGHT_BYTES, MAX_REQUEST_BYTES, REQUEST_DEADLINE,
};
use crate::error::{Error, Result};
use crate::grant::{time, Grant, Renewer};
use crate::home::Home;

/// How long a starting daemon waits for an exiting one to release the lock.
const LOCK_WAIT: Duration = Duration::from_secs(3);
/// Stack of a connection thread (a request is parsed on it; serde_json caps nesting at 128).
const CONNECTION_STACK: usize = 512 << 10;
/// Clock slack allowed on a grant's expiry beyond [`MAX_GRANT_TTL`].
const EXPIRY_SLACK: Duration = Duration::from_secs(60);

struct State {
    store: Store,
    last_request: Instant,
    started_at: Timestamp,
    /// Set once the daemon decided to exit: requests are dropped unanswered (the client retries
    /// and finds the next daemon).
    closing: bool,
}

/// A bound daemon, ready to serve.
pub struct Server {
    listener: UnixListener,
    path: PathBuf,
    lock: std::fs::File,
    idle: Duration,
    ledger: Option<Ledger>,
}

/// Outcome of [`Server::bind`].
pub enum Bound {
    /// This process owns the socket now.
    Ready(Server),
    /// Another live daemon already serves this socket.
    AlreadyRunning,
}

fn idle_window() -> Duration {
    let secs = std::env::var(IDLE_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(DEFAULT_IDLE_SECS);
    Duration::from_secs(secs)
}

/// Whether something listens at `path` (a full backlog — a stopped daemon — counts: it is there).
fn answers(path: &Path) -> bool {
    match platform::connect(path, Instant::now() + Duration::from_millis(200)) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::TimedOut,
    }
}

impl Server {
    /// Binds the socket for `home`'s owner (and keeps its release ledger).
    pub fn bind(home: &Home) -> Result<Bound> {
        let path = socket::path(home);
        Ok(match Self::bind_at(&path)? {
            Bound::Ready(mut s) => {
                s.ledger = Some(Ledger::for_socket(home, &path));
                Bound::Ready(s)
            }
            Bound::AlreadyRunning => Bound::AlreadyRunning,
        })
    }

    /// Binds at an explicit socket path.
    pub(crate) fn bind_at(path: &Path) -> Result<Bound> {
        let dir = path.parent().expect("socket has a parent");
        socket::check_path_len(path)?;
        socket::prepare_dir(dir)?;
        let lock_path = path.with_extension("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&lock_path)
            .map_err(|e| Error::io("open", &lock_path, e))?;
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    if answers(path) {
                        return Ok(Bound::AlreadyRunning);
                    }
                    if Instant::now() >= deadline {
                        return Err(Error::Daemon {
                            source: super::DaemonError::LockHeld {
                                lock: lock_path.clone(),
                                socket: path.to_path_buf(),
                                secs: LOCK_WAIT.as_secs(),
                            },
                            hint: format!(
                                "find it with: fuser -v {} (or lsof {0}); stop it with kill <pid>, then retry",
                                lock_path.display()
                            ),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(Error::io("lock", &lock_path, e))
                }
            }
        }
        // We hold the lock: any socket file left here belongs to a dead daemon.
        crate::fsio::remove_if_exists(path)?;
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
        let listener = UnixListener::bind(path);
        nix::sys::stat::umask(old);
        let listener = listener.map_err(|e| Error::io("bind", path, e))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io("set permissions on", path, e))?;
        Ok(Bound::Ready(Server {
            listener,
            path: path.to_path_buf(),
            lock,
            idle: idle_window(),
            ledger: None,
        }))
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves until idle-exit or shutdown, renewing grants through `renewer`. Returns when the
    /// daemon should exit.
    pub fn serve(self, renewer: impl Renewer + 'static) -> Result<()> {
        harden_process();
        platform::return_freed_memory();
        let store = match &self.ledger {
            Some(l) => Store::with_ledger(l.clone()),
            None => Store::default(),
        };
        let state = Arc::new(Mutex::new(State {
            store,
            last_request: Instant::now(),
            started_at: time::now(),
            closing: false,
        }));
        let stop = Arc::new(
            Stopper::new().map_err(|e| Error::io("create a pipe for", self.path.clone(), e))?,
        );
        let path = Arc::new(self.path.clone());
        let sweeper = Sweeper {
            state: Arc::clone(&state),
            stop: Arc::clone(&stop),
            path: Arc::clone(&path),
            idle: self.idle,
            renewer,
        };
        std::thread::Builder::new()
            .name("keyrack-sweep".into())
            .spawn(move || sweeper.run())
            .map_err(|e| Error::io("start a thread for", self.path.clone(), e))?;
        self.accept_until_stopped(&state, &stop, &path)?;
        // Stop answering, unlink, forget everything (released files included) ...
        {
            let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
            st.closing = true;
            let _ = std::fs::remove_file(&self.path);
            st.store.relock(&RelockScope::All, time::now());
        }
        // ... and only then let a new daemon take the lock.
        drop(self.listener);
        let _ = self.lock.unlock();
        Ok(())
    }

    /// Accepts connections, each served on its own thread, until a stop is asked.
    fn accept_until_stopped(
        &self,
        state: &Arc<Mutex<State>>,
        stop: &Arc<Stopper>,
        path: &Arc<PathBuf>,
    ) -> Result<()> {
        let me = platform::euid();
        let my_session = socket::login_session();
        let active = Arc::new(AtomicUsize::new(0));
        let budget = Arc::new(AtomicUsize::new(0));
        self.listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("configure", &self.path, e))?;
        while !stop.stopped() {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    let Some(permit) = Permit::take(&active) else {
                        busy(stream);
                        continue;
                    };
                    let state = Arc::clone(state);
                    let stop = Arc::clone(stop);
                    let path = Arc::clone(path);
                    let budget = Arc::clone(&budget);
                    // If the thread cannot start (a process or memory limit), the closure
                    // (stream and permit) is dropped: that client is told we are busy through a
                    // second handle on its socket, and the daemon keeps serving.
                    let spare = stream.try_clone().ok();
                    let spawned = std::thread::Builder::new()
                        .name("keyrack-conn".into())
                        .stack_size(CONNECTION_STACK)
                        .spawn(move || {
                            let _permit = permit;
                            let _ = stream.set_nonblocking(false);
                            if handle(stream, &state, me, my_session, &path, &budget) {
                                stop.stop();
                            }
                        });
                    if let (Err(_), Some(spare)) = (spawned, spare) {
                        busy(spare);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    stop.wait_for(&self.listener, 250);
                }
                // out of descriptors or memory: the connection waits in the backlog
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        Ok(())
    }
}

/// The sweep thread: every half second, drops expired grants, decides an idle exit, and renews
/// the grants that are due (outside the state lock: requests are answered meanwhile).
struct Sweeper<R> {
    state: Arc<Mutex<State>>,
    stop: Arc<Stopper>,
    path: Arc<PathBuf>,
    idle: Duration,
    renewer: R,
}

impl<R: Renewer> Sweeper<R> {
    fn run(self) {
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let Some(due) = self.sweep() else {
                return;
            };
            for d in due {
                let outcome = self.renewer.renew(&d.grant);
                let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                // Even when closing: the store no longer holds the grant then, and a renewal
                // that outlived its grant releases the files it may have rewritten.
                st.store.renewed(&d, outcome, time::now());
                if st.closing {
                    return;
                }
            }
        }
    }

    /// One sweep; the grants due for renewal, or `None` once the daemon is closing.
    fn sweep(&self) -> Option<Vec<super::store::Due>> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.closing {
            return None;
        }
        let now = time::now();
        st.store.sweep(now);
        if st.store.is_idle() && st.last_request.elapsed() >= self.idle {
            // Decide under the state lock: no request is answered after this.
            st.closing = true;
            let _ = std::fs::remove_file(self.path.as_path());
            self.stop.stop();
            return None;
        }
        Some(st.store.due(now))
    }
}

/// One of [`MAX_CONNECTIONS`] connection slots, released when dropped.
struct Permit(Arc<AtomicUsize>);

impl Permit {
    fn take(active: &Arc<AtomicUsize>) -> Option<Permit> {
        active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_CONNECTIONS).then_some(n + 1)
            })
            .ok()
            .map(|_| Permit(Arc::clone(active)))
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Bytes of the shared in-flight budget held by one request, returned when dropped.
struct Reservation<'a> {
    budget: &'a AtomicUsize,
    bytes: usize,
}

impl Reservation<'_> {
    fn grow(&mut self, more: usize) -> bool {
        let ok = self
            .budget
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used + more <= MAX_IN_FLIGHT_BYTES).then_some(used + more)
            })
            .is_ok();
        if ok {
            self.bytes += more;
        }
        ok
    }

    fn shrink(&mut self, less: usize) {
        let less = less.min(self.bytes);
        self.budget.fetch_sub(less, Ordering::AcqRel);
        self.bytes -= less;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.budget.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

fn busy(mut stream: UnixStream) {
    // a fresh socket's send buffer is empty: this small write never blocks the accept loop
    let _ = stream.set_nonblocking(true);
    reply(&mut stream, &Response::Busy);
}

/// Tells the accept loop to stop, and wakes it at once (a byte on a pipe it polls), so the lock
/// a new daemon waits for is released without delay.
struct Stopper {
    flag: std::sync::atomic::AtomicBool,
    wake_rx: std::os::fd::OwnedFd,
    wake_tx: std::fs::File,
}

impl Stopper {
    fn new() -> std::io::Result<Stopper> {
        use nix::fcntl::OFlag;
        let (rx, tx) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
            .map_err(std::io::Error::from)?;
        Ok(Stopper {
            flag: std::sync::atomic::AtomicBool::new(false),
            wake_rx: rx,
            wake_tx: std::fs::File::from(tx),
        })
    }

    fn stop(&self) {
        self.flag.store(true, Ordering::Release);
        let _ = (&self.wake_tx).write(&[1]);
    }

    fn stopped(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// Waits until the listener has a connection, a stop was asked, or `timeout_ms` passed.
    fn wait_for(&self, listener: &UnixListener, timeout_ms: u16) {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let mut fds = [
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.wake_rx.as_fd(), PollFlags::POLLIN),
        ];
        let _ = poll(&mut fds, PollTimeout::from(timeout_ms));
    }
}

/// No core dumps, not ptrace-able by other processes of the user.
fn harden_process() {
    use nix::sys::resource::{setrlimit, Resource};
    let _ = setrlimit(Resource::RLIMIT_CORE, 0, 0);
    let _ = nix::sys::prctl::set_dumpable(false);
}

/// Why a request could not be read.
enum ReadFail {
    TooLarge,
    Incomplete,
    TimedOut,
    Busy,
    Io(std::io::Error),
}

/// Reads one request line: within `deadline` for the whole line, never more than
/// [`MAX_REQUEST_BYTES`], growing the buffer only as bytes arrive (each growth reserved from the
/// shared budget; the old buffer is zeroized).
fn read_request<'a>(
    mut stream: &UnixStream,
    budget: &'a AtomicUsize,
    deadline: Instant,
) -> std::result::Result<(Zeroizing<Vec<u8>>, Reservation<'a>), ReadFail> {
    let mut held = Reservation { budget, bytes: 0 };
    let mut buf: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::new());
    let mut chunk = Zeroizing::new([0u8; 16 << 10]);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ReadFail::TimedOut);
        }
        let _ = stream.set_read_timeout(Some(left));
        let n = match stream.read(&mut chunk[..]) {
            Ok(0) => return Err(ReadFail::Incomplete),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(ReadFail::TimedOut)
            }
            Err(e) => return Err(ReadFail::Io(e)),
        };
        let (take, done) = match chunk[..n].iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (n, false),
        };
        let need = buf.len() + take;
        if need > MAX_REQUEST_BYTES {
            return Err(ReadFail::TooLarge);
        }
        if need > buf.capacity() {
            let cap = (buf.capacity() * 2)
                .max(need)
                .clamp(4096, MAX_REQUEST_BYTES);
            // both buffers live during the copy: reserve the new one whole, return the old one
            if !held.grow(cap) {
                return Err(ReadFail::Busy);
            }
            let mut bigger = Zeroizing::new(Vec::with_capacity(cap));
            bigger.extend_from_slice(&buf);
            let old = buf.capacity();
            buf = bigger;
            held.shrink(old);
        }
        buf.extend_from_slice(&chunk[..take]);
        if done {
            return Ok((buf, held));
        }
    }
}

/// Serves one connection; returns true when the daemon was asked to shut down.
fn handle(
    stream: UnixStream,
    state: &Mutex<State>,
    me: u32,
    my_session: Option<u32>,
    socket_path: &Path,
    budget: &AtomicUsize,
) -> bool {
    let mut stream = stream;
    if let Some(refusal) = check_peer(&stream, me, my_session) {
        reply(&mut stream, &Response::Error { message: refusal });
        return false;
    }
    let _ = stream.set_write_timeout(Some(REQUEST_DEADLINE));
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let response = match read_request(&stream, budget, deadline) {
        Err(ReadFail::TooLarge) => Response::Error {
            message: format!("request larger than {MAX_REQUEST_BYTES} bytes"),
        },
        Err(ReadFail::Incomplete) => Response::Error {
            message: "incomplete request: the stream ended before the end of the line".into(),
        },
        Err(ReadFail::TimedOut) => Response::Error {
            message: format!(
                "incomplete request: no whole line within {} s",
                REQUEST_DEADLINE.as_secs()
            ),
        },
        Err(ReadFail::Busy) => Response::Busy,
        Err(ReadFail::Io(e)) => Response::Error {
            message: format!("could not read the request: {e}"),
        },
        Ok((buf, _held)) => match super::protocol::decode_request(&buf) {
            Err(e) => Response::Error {
                message: e.to_string(),
            },
            Ok(req) => {
                let shutdown = matches!(req, Request::Shutdown);
                // None: the daemon is exiting; close without an answer so the client retries.
                let Some(resp) = dispatch(req, state, socket_path) else {
                    return false;
                };
                reply(&mut stream, &resp);
                return shutdown;
            }
        },
    };
    reply(&mut stream, &response);
    false
}

fn check_peer(stream: &UnixStream, me: u32, my_session: Option<u32>) -> Option<String> {
    let peer = match platform::peer(stream) {
        Ok(c) => c,
        Err(e) => return Some(format!("refused: cannot read peer credentials ({e})")),
    };
    if peer.uid != me {
        return Some(format!(
            "refused: peer uid {} is not the daemon's user (uid {me})",
            peer.uid
        ));
    }
    if let Some(session) = my_session {
        let theirs = socket::login_session_of(&peer.pid.to_string());
        if theirs != Some(session) {
            return Some(format!(
                "refused: peer is in login session {theirs:?}, the daemon serves session {session}"
            ));
        }
    }
    None
}

/// Refuses grants that would outlive [`MAX_GRANT_TTL`] (whatever the client computed).
fn check_expiry(grants: &[Grant], now: Timestamp) -> std::result::Result<(), String> {
    let cap = now
        .checked_add(MAX_GRANT_TTL + EXPIRY_SLACK)
        .unwrap_or(Timestamp::MAX);
    for g in grants {
        if let Some(t) = g.expires_at.filter(|t| *t > cap) {
            return Err(format!(
                "refused: the grant of {} would expire in {} h, beyond the {} h limit; nothing was stored",
                g.slug,
                t.duration_since(now).as_secs() / 3600,
                MAX_GRANT_TTL.as_secs() / 3600
            ));
        }
    }
    Ok(())
}

fn dispatch(req: Request, state: &Mutex<State>, socket_path: &Path) -> Option<Response> {
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    if st.closing {
        return None;
    }
    st.last_request = Instant::now();
    let now = time::now();
    Some(match req {
        Request::Unlock { grants } => match check_expiry(&grants, now) {
            Err(message) => Response::Error { message },
            Ok(()) => Response::Stored {
                count: st.store.unlock(grants),
            },
        },
        Request::Get { slugs } => {
            let (grants, ended) = st.store.get(&slugs, now);
            Response::Grants { grants, ended }
        }
        Request::GetByLabel { name, value } => Response::Labelled {
            grants: st.store.by_label(&name, &value, now),
        },
        Request::Update {
            slug,
            payload,
            replaces,
            renew_at,
        } => Response::Stored {
            count: st.store.update(&slug, payload, replaces.as_ref(), renew_at),
        },
        Request::Status => {
            let (grants, ended) = st.store.status(now);
            Response::Status {
                pid: std::process::id(),
                started_at: st.started_at,
                grants,
                ended,
            }
        }
        Request::Relock { scope } => Response::Relocked {
            slugs: st.store.relock(&scope, now),
        },
        Request::Shutdown => {
            // no new client reaches us; forget everything now (released files included)
            st.closing = true;
            let _ = std::fs::remove_file(socket_path);
            st.store.relock(&RelockScope::All, now);
            Response::Bye
        }
    })
}

fn reply(stream: &mut UnixStream, resp: &Response) {
    let mut out = Zeroizing::new(serde_json::to_vec(resp).expect("response serialises"));
    out.push(b'\n');
    let _ = stream.write_all(&out);
    let _ = stream.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::{Mech, VaultKind};
    use crate::secret::Secret;
    use crate::slug::Slug;

    fn grant(expires_at: Timestamp) -> Grant {
        let mut g = Grant::new(
            Slug::parse("a.test.K").unwrap(),
            Secret::new("v".into()),
            VaultKind::OsSecure,
            Mech::Replica,
        );
        g.expires_at = Some(expires_at);
        g
    }

    #[test]
    fn grants_beyond_the_ttl_cap_are_refused() {
        let now = time::now();
        let hours = |h: i64| jiff::SignedDuration::from_hours(h);
        assert!(check_expiry(&[grant(now + hours(9))], now).is_ok());
        assert!(check_expiry(&[grant(now.checked_add(MAX_GRANT_TTL).unwrap())], now).is_ok());
        let e =
            check_expiry(&[grant(now + hours(9)), grant(now + hours(30 * 24))], now).unwrap_err();
        assert!(e.contains("beyond the 24 h limit"), "{e}");
    }

    #[test]
    fn permits_are_bounded_and_returned() {
        let active = Arc::new(AtomicUsize::new(0));
        let held: Vec<Permit> = (0..MAX_CONNECTIONS)
            .map(|_| Permit::take(&active).unwrap())
            .collect();
        assert!(Permit::take(&active).is_none());
        drop(held);
        assert_eq!(active.load(Ordering::Acquire), 0);
        assert!(Permit::take(&active).is_some());
    }

    #[test]
    fn the_in_flight_budget_is_shared_and_returned() {
        let budget = AtomicUsize::new(0);
        let mut a = Reservation {
            budget: &budget,
            bytes: 0,
        };
        assert!(a.grow(MAX_IN_FLIGHT_BYTES));
        let mut b = Reservation {
            budget: &budget,
            bytes: 0,
        };
        assert!(!b.grow(1));
        drop(a);
        assert!(b.grow(1));
        drop(b);
        assert_eq!(budget.load(Ordering::Acquire), 0);
    }
}
