//! `keyrack daemon run`: the server loop.
//!
//! Binds the owner's socket (0600 in a 0700 dir) under an exclusive lock (so a second daemon
//! exits, and a crashed daemon's stale socket is replaced), checks every peer with
//! `SO_PEERCRED`, serves one bounded request per connection on its own thread, sweeps expired
//! grants every second, and exits when it holds nothing and has been idle for the idle window.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use zeroize::Zeroizing;

use super::protocol::{now_ms, read_request, Request, Response};
use super::store::Store;
use super::{socket, DEFAULT_IDLE_SECS, IDLE_ENV};
use crate::error::{Error, Result};
use crate::home::Home;

struct State {
    store: Store,
    last_request: Instant,
    started_at: u64,
}

/// A bound daemon, ready to serve.
pub struct Server {
    listener: UnixListener,
    path: PathBuf,
    _lock: std::fs::File,
    idle: Duration,
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

impl Server {
    /// Binds the socket for `home`'s owner.
    pub fn bind(home: &Home) -> Result<Bound> {
        Self::bind_at(&socket::path(home))
    }

    /// Binds at an explicit socket path.
    pub fn bind_at(path: &Path) -> Result<Bound> {
        let dir = path.parent().expect("socket has a parent");
        socket::prepare_dir(dir)?;
        let lock_path = path.with_extension("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| Error::io("open", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(Bound::AlreadyRunning),
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("lock", &lock_path, e)),
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
            _lock: lock,
            idle: idle_window(),
        }))
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves until idle-exit or shutdown. Returns when the daemon should exit.
    pub fn serve(self) -> Result<()> {
        harden_process();
        let state = Arc::new(Mutex::new(State {
            store: Store::default(),
            last_request: Instant::now(),
            started_at: now_ms(),
        }));
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let path = Arc::new(self.path.clone());
        {
            let state = Arc::clone(&state);
            let idle = self.idle;
            let stop_tx = stop_tx.clone();
            let path = Arc::clone(&path);
            std::thread::spawn(move || loop {
                std::thread::sleep(Duration::from_millis(500));
                let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
                st.store.sweep(now_ms());
                if st.store.is_empty() && st.last_request.elapsed() >= idle {
                    // Unlink first (under the state lock): no new client reaches a dying daemon.
                    let _ = std::fs::remove_file(path.as_path());
                    let _ = stop_tx.send(());
                    return;
                }
            });
        }
        let me = nix::unistd::geteuid().as_raw();
        let my_session = socket::login_session();
        self.listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("configure", &self.path, e))?;
        loop {
            if stop_rx.try_recv().is_ok() {
                break;
            }
            match self.listener.accept() {
                Ok((stream, _)) => {
                    let state = Arc::clone(&state);
                    let stop_tx = stop_tx.clone();
                    let path = Arc::clone(&path);
                    std::thread::spawn(move || {
                        let _ = stream.set_nonblocking(false);
                        if handle(stream, &state, me, my_session, &path) {
                            let _ = stop_tx.send(());
                        }
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    wait_readable(&self.listener, 250);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        // Forget everything before leaving (mirrored SSO tokens included).
        state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .store
            .relock(&super::protocol::RelockScope::All);
        let _ = std::fs::remove_file(&self.path);
        Ok(())
    }
}

fn wait_readable(listener: &UnixListener, timeout_ms: u16) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    let _ = poll(&mut fds, PollTimeout::from(timeout_ms));
}

/// No core dumps, not ptrace-able by other processes of the user.
fn harden_process() {
    use nix::sys::resource::{setrlimit, Resource};
    let _ = setrlimit(Resource::RLIMIT_CORE, 0, 0);
    let _ = nix::sys::prctl::set_dumpable(false);
}

/// Serves one connection; returns true when the daemon was asked to shut down.
fn handle(
    stream: UnixStream,
    state: &Mutex<State>,
    me: u32,
    my_session: Option<u32>,
    socket_path: &Path,
) -> bool {
    let mut stream = stream;
    if let Some(refusal) = check_peer(&stream, me, my_session) {
        reply(&mut stream, &Response::Error { message: refusal });
        return false;
    }
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut buf = Zeroizing::new(Vec::with_capacity(1024));
    let response = match read_request(&stream, &mut buf) {
        Err(e) => Response::Error {
            message: e.to_string(),
        },
        Ok(req) => {
            let shutdown = matches!(req, Request::Shutdown);
            if shutdown {
                let _ = std::fs::remove_file(socket_path);
            }
            let resp = dispatch(req, state);
            if shutdown {
                reply(&mut stream, &resp);
                return true;
            }
            resp
        }
    };
    reply(&mut stream, &response);
    false
}

fn check_peer(stream: &UnixStream, me: u32, my_session: Option<u32>) -> Option<String> {
    let cred = match getsockopt(stream, PeerCredentials) {
        Ok(c) => c,
        Err(e) => return Some(format!("refused: cannot read peer credentials ({e})")),
    };
    if cred.uid() != me {
        return Some(format!(
            "refused: peer uid {} is not the daemon's user (uid {me})",
            cred.uid()
        ));
    }
    if let Some(session) = my_session {
        let peer = socket::login_session_of(&cred.pid().to_string());
        if peer != Some(session) {
            return Some(format!(
                "refused: peer is in login session {peer:?}, the daemon serves session {session}"
            ));
        }
    }
    None
}

fn dispatch(req: Request, state: &Mutex<State>) -> Response {
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    st.last_request = Instant::now();
    match req {
        Request::Unlock { grants } => Response::Stored {
            count: st.store.unlock(grants),
        },
        Request::Get { slugs } => Response::Grants {
            grants: st.store.get(&slugs),
        },
        Request::Status => Response::Status {
            pid: std::process::id(),
            started_at: st.started_at,
            grants: st.store.status(),
        },
        Request::Relock { scope } => Response::Relocked {
            slugs: st.store.relock(&scope),
        },
        Request::AwsProfile { profile } => Response::AwsGrant {
            grant: st.store.aws_profile(&profile).map(Box::new),
        },
        Request::AwsStoreCredentials { slug, credentials } => Response::Stored {
            count: st.store.aws_store_credentials(&slug, credentials),
        },
        Request::AwsForgetSession { session } => Response::Relocked {
            slugs: st.store.aws_forget_session(&session),
        },
        Request::Shutdown => {
            // forget everything now (mirrored SSO tokens included), then say goodbye
            st.store.relock(&super::protocol::RelockScope::All);
            Response::Bye
        }
    }
}

fn reply(stream: &mut UnixStream, resp: &Response) {
    let mut out = Zeroizing::new(serde_json::to_vec(resp).expect("response serialises"));
    out.push(b'\n');
    let _ = stream.write_all(&out);
    let _ = stream.flush();
}
