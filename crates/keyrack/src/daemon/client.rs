//! Talking to the daemon: one connection per request, started on demand by `unlock`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::protocol::{HeldGrant, RelockScope, Request, Response};
use super::socket;
use crate::error::{Error, Result};
use crate::home::Home;
use crate::slug::Slug;
use crate::vault::Grant;

/// One try at a request.
enum Attempt {
    Done(Result<Option<Response>>),
    /// The connection closed without an answer (a daemon exiting as we connected).
    Retry,
}

/// A client for one owner's daemon.
#[derive(Clone, Debug)]
pub struct Client {
    path: PathBuf,
    home: Home,
}

/// What STATUS reports.
#[derive(Debug, Clone)]
pub struct DaemonStatus {
    /// The daemon's pid.
    pub pid: u32,
    /// When it started (unix ms).
    pub started_at: u64,
    /// The grants it holds.
    pub grants: Vec<HeldGrant>,
}

impl Client {
    /// A client for `home`'s owner in this login session.
    pub fn new(home: &Home) -> Self {
        Client {
            path: socket::path(home),
            home: home.clone(),
        }
    }

    /// The socket path.
    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    /// Sends a request. `Ok(None)` when no daemon is running.
    pub fn call(&self, req: &Request) -> Result<Option<Response>> {
        match self.call_once(req) {
            // We met a daemon in the middle of exiting: ask once more (a new one, or none).
            Attempt::Retry => {
                std::thread::sleep(Duration::from_millis(20));
                match self.call_once(req) {
                    Attempt::Done(r) => r,
                    Attempt::Retry => Ok(None),
                }
            }
            Attempt::Done(r) => r,
        }
    }

    fn call_once(&self, req: &Request) -> Attempt {
        let mut stream = match UnixStream::connect(&self.path) {
            Ok(s) => s,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Attempt::Done(Ok(None))
            }
            Err(e) => {
                return Attempt::Done(Err(
                    self.err(format!("cannot connect to {}: {e}", self.path.display()))
                ))
            }
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
        let mut line = Zeroizing::new(serde_json::to_vec(req).expect("request serialises"));
        line.push(b'\n');
        let mut buf = Zeroizing::new(Vec::with_capacity(512));
        if let Err(e) = stream
            .write_all(&line)
            .and_then(|_| stream.read_to_end(&mut buf))
        {
            let reset = matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            );
            return if reset && buf.is_empty() {
                Attempt::Retry
            } else {
                Attempt::Done(Err(self.err(format!("talking to the daemon failed: {e}"))))
            };
        }
        if buf.is_empty() {
            return Attempt::Retry;
        }
        Attempt::Done(match Response::from_json(&buf) {
            Ok(Response::Error { message }) => Err(self.err(message)),
            Ok(r) => Ok(Some(r)),
            Err(e) => Err(self.err(format!("unreadable answer ({e})"))),
        })
    }

    fn err(&self, message: String) -> Error {
        Error::Daemon {
            message,
            hint: format!(
                "keyrack daemon prune{}; then keyrack unlock",
                self.home.owner().flag()
            ),
        }
    }

    fn unexpected(&self, r: Response) -> Error {
        self.err(format!("unexpected answer: {r:?}"))
    }

    /// Whether a daemon answers.
    pub fn is_running(&self) -> bool {
        matches!(self.call(&Request::Status), Ok(Some(_)))
    }

    /// Starts the daemon (a detached `keyrack daemon run` of the same binary) unless one runs.
    pub fn ensure_running(&self) -> Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let exe = std::env::current_exe().map_err(|e| {
            self.err(format!(
                "cannot find the keyrack binary to start the daemon: {e}"
            ))
        })?;
        let root = std::path::absolute(self.home.root())
            .unwrap_or_else(|_| self.home.root().to_path_buf());
        let mut cmd = std::process::Command::new(exe);
        cmd.args(["daemon", "run"])
            .env("KEYRACK_HOME", root)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some(o) = self.home.owner().name() {
            cmd.args(["--owner", o]);
        }
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe; it detaches the daemon from the terminal session.
        unsafe {
            cmd.pre_exec(|| {
                let _ = nix::unistd::setsid();
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| self.err(format!("cannot start the daemon: {e}")))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.is_running() {
                // reap the child in the background: it lives on as the daemon
                std::thread::spawn(move || child.wait());
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                if self.is_running() {
                    return Ok(());
                }
                return Err(self.err(format!("the daemon exited at start ({status})")));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Err(self.err("the daemon did not answer within 5 s of starting".into()))
    }

    /// Pushes grants. Starts nothing: call [`Client::ensure_running`] first.
    pub fn unlock(&self, grants: Vec<Grant>) -> Result<usize> {
        match self.call(&Request::Unlock { grants })? {
            Some(Response::Stored { count }) => Ok(count),
            Some(r) => Err(self.unexpected(r)),
            None => Err(self.err("the daemon is not running".into())),
        }
    }

    /// Looks slugs up (with the `org.all` fallback). `None` when no daemon runs.
    pub fn get(&self, slugs: Vec<Slug>) -> Result<Option<Vec<Option<Grant>>>> {
        match self.call(&Request::Get { slugs })? {
            Some(Response::Grants { grants }) => Ok(Some(grants)),
            Some(r) => Err(self.unexpected(r)),
            None => Ok(None),
        }
    }

    /// What the daemon holds. `None` when no daemon runs.
    pub fn status(&self) -> Result<Option<DaemonStatus>> {
        match self.call(&Request::Status)? {
            Some(Response::Status {
                pid,
                started_at,
                grants,
            }) => Ok(Some(DaemonStatus {
                pid,
                started_at,
                grants,
            })),
            Some(r) => Err(self.unexpected(r)),
            None => Ok(None),
        }
    }

    /// Forgets grants; returns the slugs forgotten (empty when no daemon runs).
    pub fn relock(&self, scope: RelockScope) -> Result<Vec<Slug>> {
        match self.call(&Request::Relock { scope })? {
            Some(Response::Relocked { slugs }) => Ok(slugs),
            Some(r) => Err(self.unexpected(r)),
            None => Ok(vec![]),
        }
    }

    /// The aws.config grant of `profile`. `None` when not unlocked (or no daemon).
    pub fn aws_profile(&self, profile: &str) -> Result<Option<Grant>> {
        match self.call(&Request::AwsProfile {
            profile: profile.into(),
        })? {
            Some(Response::AwsGrant { grant }) => Ok(grant.map(|g| *g)),
            Some(r) => Err(self.unexpected(r)),
            None => Ok(None),
        }
    }

    /// Caches renewed role credentials with a grant.
    pub fn aws_store_credentials(
        &self,
        slug: &Slug,
        credentials: crate::aws::portal::RoleCredentials,
    ) -> Result<()> {
        match self.call(&Request::AwsStoreCredentials {
            slug: slug.clone(),
            credentials,
        })? {
            Some(_) | None => Ok(()),
        }
    }

    /// Forgets every grant of an SSO session.
    pub fn aws_forget_session(&self, session: &str) -> Result<Vec<Slug>> {
        match self.call(&Request::AwsForgetSession {
            session: session.into(),
        })? {
            Some(Response::Relocked { slugs }) => Ok(slugs),
            Some(r) => Err(self.unexpected(r)),
            None => Ok(vec![]),
        }
    }

    /// Stops the daemon; `false` when none was running.
    pub fn shutdown(&self) -> Result<bool> {
        match self.call(&Request::Shutdown)? {
            Some(Response::Bye) => Ok(true),
            Some(r) => Err(self.unexpected(r)),
            None => Ok(false),
        }
    }
}
