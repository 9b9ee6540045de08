//! Talking to the daemon: one connection per request, started on demand by `unlock`.
//!
//! Before a byte is written, every request checks where it is going: the runtime dir must be a
//! private directory of this user (no symlink, not another user's, mode 0700) and the process
//! serving the socket must run as this user (`SO_PEERCRED`). A request (connect, send, answer)
//! gets [`CLIENT_TIMEOUT`] in all. A client that finds no daemon removes the files a dead
//! daemon left behind (see [`super::ledger`]).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::ledger;
use super::protocol::{HeldGrant, RelockScope, Request, Response};
use super::DaemonError;
use super::{platform, socket, CLIENT_TIMEOUT, MAX_REQUEST_BYTES};
use crate::error::{Error, Result};
use crate::grant::{Ended, Grant};
use crate::home::Home;
use crate::secret::{Secret, SecretBytes};
use crate::slug::Slug;

/// How long a starter waits for a new daemon to bind (it may first wait for an exiting one).
const START_TIMEOUT: Duration = Duration::from_secs(8);
/// Bytes of a request around its grants: `{"op":"unlock","grants":[` … `]}` and the newline.
const UNLOCK_FRAME_BYTES: usize = 64;

/// One try at a request.
enum Attempt {
    Done(Result<Option<Response>>),
    /// The connection closed without an answer (a daemon exiting as we connected).
    Retry,
    /// The daemon is at its connection or memory limit.
    Busy,
}

/// A client for one owner's daemon.
#[derive(Clone, Debug)]
pub struct Client {
    path: PathBuf,
    home: Home,
    /// Files removed because the daemon that held them is gone (`None`: not looked yet).
    released: Arc<Mutex<Option<Vec<PathBuf>>>>,
}

/// What STATUS reports.
#[derive(Debug, Clone)]
pub struct DaemonStatus {
    /// The daemon's pid.
    pub pid: u32,
    /// When it started.
    pub started_at: jiff::Timestamp,
    /// The grants it holds.
    pub grants: Vec<HeldGrant>,
    /// The grants that ended lately, and why.
    pub ended: Vec<Ended>,
}

/// What GET answers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Lookup {
    /// One per slug asked for, in order: the grant, or `None`.
    pub grants: Vec<Option<Grant>>,
    /// For the slugs not granted: their grants that ended lately, and why.
    pub ended: Vec<Ended>,
}

/// Serialises `req` as one request line, refusing one the daemon would not read.
fn encode(req: &Request) -> Result<SecretBytes> {
    let mut line = match req {
        Request::Get { slugs } => encode_get(slugs),
        _ => SecretBytes::from(serde_json::to_vec(req).expect("request serialises")),
    };
    line.push(b'\n');
    if line.len() > MAX_REQUEST_BYTES {
        return Err(Error::Daemon {
            source: DaemonError::RequestTooLarge { bytes: line.len() },
            hint: "unlock fewer keys at once (keyrack unlock --key <KEY>), or store smaller values"
                .into(),
        });
    }
    Ok(line)
}

/// A GET request as `serde_json::to_vec` writes it, without serde: a slug's characters never
/// need escaping in JSON (letters, digits, `_`, `-`, `.`, `@`; checked here all the same).
fn encode_get(slugs: &[Slug]) -> SecretBytes {
    let plain = |s: &Slug| {
        s.as_str()
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    };
    if !slugs.iter().all(plain) {
        return SecretBytes::from(
            serde_json::to_vec(&Request::Get {
                slugs: slugs.to_vec(),
            })
            .expect("request serialises"),
        );
    }
    const HEAD: &[u8] = b"{\"op\":\"get\",\"slugs\":[";
    let size = HEAD.len() + 3 + slugs.iter().map(|s| s.as_str().len() + 3).sum::<usize>();
    let mut line = SecretBytes::with_capacity(size);
    line.extend_from_slice(HEAD);
    for (i, s) in slugs.iter().enumerate() {
        if i > 0 {
            line.push(b',');
        }
        line.push(b'"');
        line.extend_from_slice(s.as_str().as_bytes());
        line.push(b'"');
    }
    line.extend_from_slice(b"]}");
    line
}

/// The size of one grant on the wire.
fn wire_size(g: &Grant) -> usize {
    SecretBytes::from(serde_json::to_vec(g).expect("grant serialises")).len()
}

/// Refuses a grant too large to reach the daemon in any request.
pub(crate) fn check_grant_size(g: &Grant) -> Result<()> {
    let n = wire_size(g);
    if n + UNLOCK_FRAME_BYTES > MAX_REQUEST_BYTES {
        return Err(Error::InvalidInput {
            what: "value",
            value: g.slug.to_string(),
            reason: format!(
                "it takes {n} bytes on the way to the session daemon, which reads at most {MAX_REQUEST_BYTES} per request"
            ),
            hint: Some(format!(
                "store a smaller value (a path or a reference instead of the content): keyrack set --key {} --env {}",
                g.slug.key(),
                g.slug.env()
            )),
        });
    }
    Ok(())
}

/// Splits grants into batches that each fit in one request.
fn batches(grants: Vec<Grant>) -> Result<Vec<Vec<Grant>>> {
    let budget = MAX_REQUEST_BYTES - UNLOCK_FRAME_BYTES;
    let mut out: Vec<Vec<Grant>> = Vec::new();
    let mut current: Vec<Grant> = Vec::new();
    let mut used = 0;
    for g in grants {
        check_grant_size(&g)?;
        let n = wire_size(&g) + 1; // and its comma
        if !current.is_empty() && used + n > budget {
            out.push(std::mem::take(&mut current));
            used = 0;
        }
        used += n;
        current.push(g);
    }
    if !current.is_empty() {
        out.push(current);
    }
    Ok(out)
}

impl Client {
    /// A client for `home`'s owner in this login session.
    pub fn new(home: &Home) -> Self {
        Client {
            path: socket::path(home),
            home: home.clone(),
            released: Arc::new(Mutex::new(None)),
        }
    }

    /// The socket path.
    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    /// Removes the files left by daemons that are gone (once per client; see
    /// [`super::ledger::reap`]) and returns them.
    pub(crate) fn release_leftovers(&self) -> Vec<PathBuf> {
        let mut done = self.released.lock().unwrap_or_else(|p| p.into_inner());
        done.get_or_insert_with(|| ledger::reap(&self.home).unwrap_or_default())
            .clone()
    }

    /// Sends a request. `Ok(None)` when no daemon is running.
    pub(crate) fn call(&self, req: &Request) -> Result<Option<Response>> {
        let line = encode(req)?;
        // a GET answer names the slugs asked for: the reader takes them from here
        let asked = match req {
            Request::Get { slugs } => slugs.as_slice(),
            _ => &[],
        };
        let deadline = Instant::now() + CLIENT_TIMEOUT;
        let mut retried = false;
        let mut pause = Duration::from_millis(5);
        let result = loop {
            match self.call_once(&line, asked, deadline) {
                Attempt::Done(r) => break r,
                // We met a daemon in the middle of exiting: ask once more (a new one, or none).
                Attempt::Retry if !retried => {
                    retried = true;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Attempt::Retry => break Ok(None),
                Attempt::Busy => {
                    if Instant::now() + pause >= deadline {
                        break Err(self.err(DaemonError::Busy));
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
            }
        };
        if matches!(result, Ok(None)) {
            self.release_leftovers();
        }
        result
    }

    fn call_once(&self, line: &[u8], asked: &[Slug], deadline: Instant) -> Attempt {
        let dir = self.path.parent().unwrap_or(Path::new("/"));
        match socket::check_runtime_dir(dir) {
            Ok(true) => {}
            Ok(false) => return Attempt::Done(Ok(None)),
            Err(e) => return Attempt::Done(Err(e)),
        }
        if let Err(e) = socket::check_path_len(&self.path) {
            return Attempt::Done(Err(e));
        }
        let mut stream = match platform::connect(&self.path, deadline) {
            Ok(s) => s,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Attempt::Done(Ok(None))
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                return Attempt::Done(Err(self.not_answering(None)))
            }
            Err(e) => {
                return Attempt::Done(Err(self.err(DaemonError::Connect {
                    path: self.path.clone(),
                    source: e,
                })))
            }
        };
        // Who is listening? Not a byte goes to anyone but this user.
        let pid = match socket::check_server(&stream, &self.path) {
            Ok(pid) => pid,
            Err(e) => return Attempt::Done(Err(e)),
        };
        let sent = write_within(&mut stream, line, deadline);
        // (an answer of one key is a few hundred bytes; of 50, about 6 KiB)
        let mut buf = SecretBytes::with_capacity(4096);
        let read = read_within(&mut stream, &mut buf, deadline);
        // Read the answer even when sending failed: a refusal explains why.
        if let Ok(r) = Response::from_json_for(&buf, asked) {
            return match r {
                Response::Busy => Attempt::Busy,
                Response::Error { message } => {
                    Attempt::Done(Err(self.err(DaemonError::Refused(message))))
                }
                r => Attempt::Done(Ok(Some(r))),
            };
        }
        let timed_out = |e: &std::io::Error| {
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            )
        };
        match (sent, read) {
            (Err(e), _) | (_, Err(e)) if timed_out(&e) => {
                Attempt::Done(Err(self.not_answering(Some(pid))))
            }
            (Err(e), _) | (_, Err(e))
                if buf.is_empty()
                    && matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                    ) =>
            {
                Attempt::Retry
            }
            (Err(e), _) | (_, Err(e)) => Attempt::Done(Err(self.err(DaemonError::Talk(e)))),
            (Ok(()), Ok(())) if buf.is_empty() => Attempt::Retry,
            (Ok(()), Ok(())) => {
                Attempt::Done(Err(self.err(DaemonError::Unreadable { bytes: buf.len() })))
            }
        }
    }

    fn err(&self, source: DaemonError) -> Error {
        Error::Daemon {
            source,
            hint: format!(
                "keyrack daemon prune{}; then keyrack unlock",
                self.home.owner().flag()
            ),
        }
    }

    fn not_answering(&self, pid: Option<i32>) -> Error {
        Error::Daemon {
            source: DaemonError::NotAnswering {
                pid,
                path: self.path.clone(),
            },
            hint: match pid {
                Some(p) => format!(
                    "kill -CONT {p} if you paused it; otherwise end it with kill {p} and run keyrack unlock (a new daemon starts)"
                ),
                None => format!(
                    "find it with: fuser -v {} (or lsof); end it with kill <pid>, then keyrack unlock",
                    self.path.display()
                ),
            },
        }
    }

    fn unexpected(&self, r: Response) -> Error {
        self.err(DaemonError::Unexpected(format!("{r:?}")))
    }

    /// Starts the daemon (a detached `keyrack daemon run` of the same binary) unless one runs.
    ///
    /// The daemon starts with a clean environment: `KEYRACK_HOME` (absolute), the variables that
    /// place its socket (`XDG_RUNTIME_DIR`, `TMPDIR`) and the idle window, nothing else —
    /// the starter's environment may hold exported secrets, and the daemon runs no program (no
    /// `PATH`) and derives no path from `HOME` (the files it releases are recorded absolute).
    /// What a vault's renewal needs from the unlock's environment (the endpoints it resolved, a
    /// CA bundle, where the system trust store is, proxies) travels in the grant's payload instead, so a daemon started from
    /// another shell renews each grant as its own unlock would have. It
    /// runs in `/`, in a session of its own, with every descriptor above 2 closed on exec. Until
    /// it is ready it reports on its stdout, a pipe read here, so a daemon that cannot start says
    /// why; once bound it points stdio at `/dev/null`, which ends the pipe.
    pub(crate) fn ensure_running(&self) -> Result<()> {
        if self.call(&Request::Status)?.is_some() {
            return Ok(());
        }
        let (report_rx, report_tx) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| {
                self.err(DaemonError::Start {
                    doing: "create a pipe to start the daemon",
                    source: e.into(),
                })
            })?;
        let mut cmd = self.daemon_command(report_tx)?;
        let mut child = cmd.spawn().map_err(|e| {
            self.err(DaemonError::Start {
                doing: "start the daemon",
                source: e,
            })
        })?;
        // our copy of the write end must go, or the pipe never reaches end of file
        drop(cmd);
        let deadline = Instant::now() + START_TIMEOUT;
        let report = read_report(report_rx, deadline);
        if !report.is_empty() {
            let _ = child.wait();
            return Err(self.start_failure(&report));
        }
        self.wait_until_ready(child, deadline)
    }

    /// `keyrack daemon run` of this binary, with the clean environment, directory, session and
    /// descriptors [`Client::ensure_running`] describes; it reports on `report`.
    fn daemon_command(&self, report: std::os::fd::OwnedFd) -> Result<std::process::Command> {
        let exe = std::env::current_exe().map_err(|e| {
            self.err(DaemonError::Start {
                doing: "find the keyrack binary to start the daemon",
                source: e,
            })
        })?;
        let root = std::path::absolute(self.home.root())
            .unwrap_or_else(|_| self.home.root().to_path_buf());
        let mut cmd = std::process::Command::new(exe);
        cmd.args(["--json", "daemon", "run"])
            .env_clear()
            .env("KEYRACK_HOME", root)
            .current_dir("/")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::from(report))
            .stderr(std::process::Stdio::null());
        for var in platform::RUNTIME_ENV.iter().chain([&super::IDLE_ENV]) {
            if let Some(v) = std::env::var_os(var) {
                cmd.env(var, v);
            }
        }
        if let Some(o) = self.home.owner().name() {
            cmd.args(["--owner", o]);
        }
        use std::os::unix::process::CommandExt;
        // SAFETY: both calls are async-signal-safe: a new session (detached from the terminal)
        // and close-on-exec for every inherited descriptor above 2.
        unsafe {
            cmd.pre_exec(|| {
                platform::detach_session();
                platform::cloexec_inherited_fds();
                Ok(())
            });
        }
        Ok(cmd)
    }

    /// Waits until the started daemon answers (or `deadline`), reaping it in the background.
    fn wait_until_ready(&self, mut child: std::process::Child, deadline: Instant) -> Result<()> {
        loop {
            if self.call(&Request::Status)?.is_some() {
                // reap the child in the background: it lives on as the daemon
                std::thread::spawn(move || child.wait());
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                if self.call(&Request::Status)?.is_some() {
                    return Ok(());
                }
                return Err(Error::Daemon {
                    source: DaemonError::ExitedAtStart {
                        status: status.to_string(),
                    },
                    hint: format!(
                        "run it in the foreground to see the error: keyrack{} daemon run",
                        self.home.owner().flag()
                    ),
                });
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                return Err(Error::Daemon {
                    source: DaemonError::StartTimeout {
                        secs: START_TIMEOUT.as_secs(),
                    },
                    hint: format!(
                        "run it in the foreground to see what it waits for: keyrack{} daemon run",
                        self.home.owner().flag()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The error a daemon reported on its way up (the JSON error of `keyrack --json`).
    fn start_failure(&self, report: &[u8]) -> Error {
        let v: serde_json::Value = serde_json::from_slice(report).unwrap_or_default();
        let e = &v["error"];
        let message = e["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(report).trim().to_string());
        let hint = e["fix"].as_str().map(str::to_string).unwrap_or_else(|| {
            format!(
                "run it in the foreground to see the error: keyrack{} daemon run",
                self.home.owner().flag()
            )
        });
        if e["code"] == "daemon_untrusted" {
            Error::DaemonUntrusted {
                message: format!("the daemon could not start: {message}"),
                hint,
            }
        } else {
            Error::Daemon {
                source: DaemonError::StartFailed(message),
                hint,
            }
        }
    }

    /// Pushes grants, in as many requests as their size needs. Call [`Client::ensure_running`]
    /// first (a daemon that exits meanwhile is started again).
    pub fn unlock(&self, grants: Vec<Grant>) -> Result<usize> {
        let mut count = 0;
        for batch in batches(grants)? {
            let req = Request::Unlock { grants: batch };
            let mut restarts = 0;
            loop {
                match self.call(&req)? {
                    Some(Response::Stored { count: n }) => {
                        count += n;
                        break;
                    }
                    Some(r) => return Err(self.unexpected(r)),
                    // it exited (idle) between our check and this request: start another
                    None if restarts < 3 => {
                        restarts += 1;
                        self.ensure_running()?;
                    }
                    None => return Err(self.err(DaemonError::KeptExiting)),
                }
            }
        }
        Ok(count)
    }

    /// Looks slugs up (with the `org.all` fallback). `None` when no daemon runs.
    pub(crate) fn get(&self, slugs: Vec<Slug>) -> Result<Option<Vec<Option<Grant>>>> {
        Ok(self.lookup(slugs)?.map(|l| l.grants))
    }

    /// Looks slugs up (with the `org.all` fallback), with why those not granted ended. `None`
    /// when no daemon runs.
    pub(crate) fn lookup(&self, slugs: Vec<Slug>) -> Result<Option<Lookup>> {
        self.lookup_keeping(slugs).1
    }

    /// [`Client::lookup`], handing the slugs back (the hot path needs them after the answer,
    /// and copying them costs an allocation each).
    pub(crate) fn lookup_keeping(&self, slugs: Vec<Slug>) -> (Vec<Slug>, Result<Option<Lookup>>) {
        let req = Request::Get { slugs };
        let answer = match self.call(&req) {
            Ok(Some(Response::Grants { grants, ended })) => Ok(Some(Lookup { grants, ended })),
            Ok(Some(r)) => Err(self.unexpected(r)),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        let Request::Get { slugs } = req else {
            unreachable!("built above as a GET")
        };
        (slugs, answer)
    }

    /// The grants carrying label `name` = `value` (none when no daemon runs).
    pub(crate) fn by_label(&self, name: &str, value: &str) -> Result<Vec<Grant>> {
        match self.call(&Request::GetByLabel {
            name: name.into(),
            value: value.into(),
        })? {
            Some(Response::Labelled { grants }) => Ok(grants),
            Some(r) => Err(self.unexpected(r)),
            None => Ok(vec![]),
        }
    }

    /// Replaces the vault payload (and renewal deadline) of a held grant; `false` when it is not
    /// held (or no daemon runs).
    pub(crate) fn update(
        &self,
        slug: &Slug,
        payload: Secret,
        replaces: Option<Secret>,
        renew_at: Option<jiff::Timestamp>,
    ) -> Result<bool> {
        match self.call(&Request::Update {
            slug: slug.clone(),
            payload,
            replaces,
            renew_at,
        })? {
            Some(Response::Stored { count }) => Ok(count > 0),
            Some(r) => Err(self.unexpected(r)),
            None => Ok(false),
        }
    }

    /// What the daemon holds. `None` when no daemon runs.
    pub fn status(&self) -> Result<Option<DaemonStatus>> {
        match self.call(&Request::Status)? {
            Some(Response::Status {
                pid,
                started_at,
                grants,
                ended,
            }) => Ok(Some(DaemonStatus {
                pid,
                started_at,
                grants,
                ended,
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

    /// Stops the daemon; `false` when none was running.
    pub fn shutdown(&self) -> Result<bool> {
        match self.call(&Request::Shutdown)? {
            Some(Response::Bye) => Ok(true),
            Some(r) => Err(self.unexpected(r)),
            None => Ok(false),
        }
    }
}

fn timeout_error() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "deadline passed")
}

fn left(deadline: Instant) -> std::io::Result<Duration> {
    let d = deadline.saturating_duration_since(Instant::now());
    if d.is_zero() {
        Err(timeout_error())
    } else {
        Ok(d)
    }
}

fn write_within(
    stream: &mut std::os::unix::net::UnixStream,
    mut bytes: &[u8],
    deadline: Instant,
) -> std::io::Result<()> {
    while !bytes.is_empty() {
        stream.set_write_timeout(Some(left(deadline)?))?;
        match stream.write(bytes) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn read_within(
    stream: &mut std::os::unix::net::UnixStream,
    buf: &mut SecretBytes,
    deadline: Instant,
) -> std::io::Result<()> {
    // Read straight into `buf`'s spare room (no separate chunk to fill and wipe each call).
    loop {
        if buf.capacity() - buf.len() < 1024 {
            // grow by copying, so no stale copy of an answer is left in freed memory
            let cap = (buf.capacity() * 2).max(buf.len() + 4096);
            let mut bigger = SecretBytes::with_capacity(cap);
            bigger.extend_from_slice(buf);
            *buf = bigger;
        }
        stream.set_read_timeout(Some(left(deadline)?))?;
        match recv_into_spare(stream, buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// One `recv` from `stream` into `buf`'s spare capacity, which is not zero-filled first (as a
/// `Read::read` into a resized buffer would need: a `memset` of the room on every call).
fn recv_into_spare(
    stream: &std::os::unix::net::UnixStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let spare = buf.spare_capacity_mut();
    // SAFETY: `recv` writes at most `spare.len()` bytes at `spare`, memory owned by `buf` that
    // nothing else refers to while it runs.
    let got = unsafe {
        nix::libc::recv(
            stream.as_raw_fd(),
            spare.as_mut_ptr().cast(),
            spare.len(),
            0,
        )
    };
    let Ok(got) = usize::try_from(got) else {
        return Err(std::io::Error::last_os_error());
    };
    // SAFETY: `recv` initialised the first `got` bytes of the spare capacity (never more than
    // it was given).
    unsafe { buf.set_len(buf.len() + got) };
    Ok(got)
}

/// Reads what a starting daemon reports on its stdout until it closes it (ready, or exited).
fn read_report(rx: std::os::fd::OwnedFd, deadline: Instant) -> Vec<u8> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut file = std::fs::File::from(rx);
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Ok(left) = left(deadline) else {
            return out;
        };
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => continue,
            Ok(_) => match file.read(&mut chunk) {
                Ok(0) => return out,
                Ok(n) if out.len() < 64 << 10 => out.extend_from_slice(&chunk[..n]),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return out,
            },
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::{Mech, VaultKind};

    /// The GET line written by hand is the one serde writes, for every kind of slug.
    #[test]
    fn a_get_request_is_encoded_as_serde_would() {
        let mut r = crate::testgen::Lcg(5);
        for n in 0..40 {
            let slugs: Vec<Slug> = (0..n % 7)
                .map(|_| {
                    Slug::parse(&format!(
                        "{}.{}.{}",
                        r.pick(&["acme", "@all", "o-1", "O_2"]),
                        r.pick(&["test", "all", "ci-1", "a_b"]),
                        r.pick(&["K", "XAI_API_KEY", "A.B", "_x9"])
                    ))
                    .unwrap()
                })
                .collect();
            let req = Request::Get { slugs };
            let mut serde = serde_json::to_vec(&req).unwrap();
            serde.push(b'\n');
            assert_eq!(*encode(&req).unwrap(), serde);
        }
    }

    fn grant(key: &str, bytes: usize) -> Grant {
        let mut g = Grant::new(
            Slug::parse(&format!("a.test.{key}")).unwrap(),
            Secret::new("x".repeat(bytes)),
            VaultKind::OsSecure,
            Mech::Replica,
        );
        g.expires_at = Some(jiff::Timestamp::from_millisecond(1).unwrap());
        g
    }

    #[test]
    fn many_large_grants_split_into_requests_that_fit() {
        let grants: Vec<Grant> = (0..30)
            .map(|i| grant(&format!("K{i}"), 200 << 10))
            .collect();
        let b = batches(grants).unwrap();
        assert!(b.len() >= 2, "6 MB cannot go in one request");
        assert_eq!(b.iter().map(Vec::len).sum::<usize>(), 30);
        for batch in b {
            let line = encode(&Request::Unlock { grants: batch }).unwrap();
            assert!(line.len() <= MAX_REQUEST_BYTES);
        }
    }

    #[test]
    fn a_grant_too_large_for_any_request_is_a_clear_error() {
        let e = batches(vec![grant("SMALL", 10), grant("HUGE", 5 << 20)]).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("a.test.HUGE"), "{text}");
        assert!(!text.contains("not running"), "{text}");
    }
}
