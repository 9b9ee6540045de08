//! Everything the daemon and its clients ask of the operating system that is not plain POSIX:
//! where the runtime dir lives, who is at the other end of a socket, login sessions, process
//! identity, and how a detached child drops what it inherited. This is the Linux version; a
//! port (macOS: `getpeereid`/`LOCAL_PEERPID`, no `/proc`) replaces this one file.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::libc;

/// Environment variables that decide where the runtime dir is. A daemon started with a clean
/// environment gets exactly these (when set), so it binds where its starter looks.
pub(crate) const RUNTIME_ENV: &[&str] = &["XDG_RUNTIME_DIR", "TMPDIR"];

/// The longest socket path `bind`/`connect` accept (`sun_path` is 108 bytes with its NUL).
pub(crate) const MAX_SOCKET_PATH: usize = 107;

/// The process's effective uid.
pub(crate) fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// A user's name, for messages ("uid 65534 (nobody)").
pub(crate) fn describe_uid(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => format!("uid {uid} ({})", u.name),
        _ => format!("uid {uid}"),
    }
}

fn absolute(v: Option<std::ffi::OsString>) -> Option<PathBuf> {
    v.filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

/// The directory that holds this user's sockets: `$XDG_RUNTIME_DIR/keyrack` when that is set
/// (an absolute path), else `<base>/keyrack-<uid>` where `<base>` is `$TMPDIR` when set to an
/// absolute path and `/tmp` otherwise. The fallback lives in a shared directory: clients and the
/// daemon check it (see [`super::socket::check_runtime_dir`]) before trusting anything in it.
pub(crate) fn runtime_dir() -> PathBuf {
    runtime_dir_from(
        std::env::var_os("XDG_RUNTIME_DIR"),
        std::env::var_os("TMPDIR"),
        euid(),
    )
}

fn runtime_dir_from(
    xdg: Option<std::ffi::OsString>,
    tmpdir: Option<std::ffi::OsString>,
    uid: u32,
) -> PathBuf {
    match absolute(xdg) {
        Some(d) => d.join("keyrack"),
        None => absolute(tmpdir)
            .unwrap_or_else(|| PathBuf::from("/tmp"))
            .join(format!("keyrack-{uid}")),
    }
}

/// The kernel's audit login session id, when it reports one.
pub(crate) fn login_session() -> Option<u32> {
    login_session_of("self")
}

/// The login session of process `pid` ("self" for this one).
pub(crate) fn login_session_of(pid: &str) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/sessionid")).ok()?;
    match text.trim().parse::<u32>() {
        Ok(u32::MAX) | Err(_) => None,
        Ok(id) => Some(id),
    }
}

/// Who is at the other end of a connected Unix socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Peer {
    /// The peer's effective uid (for a client: the uid that bound the listening socket).
    pub uid: u32,
    /// The peer's pid.
    pub pid: i32,
}

/// The credentials of the peer of `stream` (`SO_PEERCRED`).
pub(crate) fn peer(stream: &UnixStream) -> io::Result<Peer> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let c = getsockopt(stream, PeerCredentials).map_err(io::Error::from)?;
    Ok(Peer {
        uid: c.uid(),
        pid: c.pid(),
    })
}

/// Connects to the socket at `path`, giving up at `deadline` (a listener whose backlog is full,
/// e.g. a stopped daemon, makes a blocking connect wait forever). Errors keep their kind:
/// `NotFound` and `ConnectionRefused` mean nobody listens; `TimedOut` that nobody answered.
pub(crate) fn connect(path: &Path, deadline: Instant) -> io::Result<UnixStream> {
    use nix::errno::Errno;
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let addr = UnixAddr::new(path).map_err(io::Error::from)?;
    let fd: OwnedFd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(io::Error::from)?;
    loop {
        match nix::sys::socket::connect(fd.as_raw_fd(), &addr) {
            Ok(()) => break,
            Err(Errno::EINTR) => continue,
            // Unix sockets say EAGAIN when the listener's backlog is full.
            Err(Errno::EAGAIN) | Err(Errno::EINPROGRESS) => {
                if Instant::now() >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the listener's queue stayed full",
                    ));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(io::Error::from(e)),
        }
    }
    let stream = UnixStream::from(fd);
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// An identity for a running process that survives pid reuse and reboots: the boot id and the
/// process's start time. `None` when the process does not exist or has exited (a zombie).
pub(crate) fn process_token(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name (field 2) may hold spaces and parentheses: fields resume after the last ')'
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // field 3: the state; Z (zombie) and X (dead) have exited
    if matches!(fields.next(), Some("Z") | Some("X") | None) {
        return None;
    }
    // the start time is field 22
    let start = fields.nth(18)?;
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    Some(format!("{}:{start}", boot.trim()))
}

/// Marks every descriptor above 2 close-on-exec. Called between `fork` and `exec` of the daemon
/// (async-signal-safe: only `syscall`, `getrlimit` and `fcntl`), so the daemon never holds a
/// pipe or file its starter inherited (`keyrack unlock 3>&1 | cat` must not wait for it).
pub(crate) fn cloexec_inherited_fds() {
    // SAFETY: plain syscalls on integers; no memory is touched but the rlimit struct.
    unsafe {
        if libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        ) == 0
        {
            return;
        }
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur.min(1 << 16) as libc::c_int
        } else {
            1024
        };
        for fd in 3..max {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

/// Closes every descriptor above 2 that this process inherited. The daemon calls it first thing
/// (a second line behind [`cloexec_inherited_fds`], for a daemon started by hand).
pub fn close_inherited_fds() {
    let fds: Vec<i32> = match std::fs::read_dir("/proc/self/fd") {
        Ok(rd) => rd
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => return,
    };
    for fd in fds.into_iter().filter(|fd| *fd > 2) {
        // SAFETY: nothing in this process owns these descriptors yet (the read_dir handle is
        // already closed; closing it twice only returns EBADF).
        unsafe {
            libc::close(fd);
        }
    }
}

/// Points stdin, stdout and stderr at `/dev/null`. A daemon calls it once it is ready: its
/// starter reads stdout until end of file, so this is also the "ready" signal.
pub fn detach_stdio() -> io::Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for target in 0..=2 {
        // SAFETY: dup2 onto the standard descriptors, which stay open (now on /dev/null).
        if unsafe { libc::dup2(null.as_raw_fd(), target) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Makes freed request buffers go back to the OS: with glibc, buffers of 128 KiB and more are
/// mapped and unmapped on their own (instead of the adaptive threshold that keeps them in
/// per-thread arenas), and at most two arenas exist. The daemon's memory then follows the bytes
/// it holds in flight, not the worst moment it has seen. A no-op elsewhere.
pub(crate) fn return_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets allocator parameters; called before the daemon starts threads.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Starts a new session for a detached child (called between `fork` and `exec`).
pub(crate) fn detach_session() {
    let _ = nix::unistd::setsid();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_stable_token_and_a_dead_pid_has_none() {
        let me = std::process::id();
        assert!(process_token(me).is_some());
        assert_eq!(process_token(me), process_token(me));
        assert!(process_token(u32::MAX - 1).is_none());
    }

    #[test]
    fn runtime_dir_prefers_xdg_then_tmpdir_then_tmp() {
        let s = |v: &str| Some(std::ffi::OsString::from(v));
        assert_eq!(
            runtime_dir_from(s("/run/user/7"), s("/var/t"), 7),
            Path::new("/run/user/7/keyrack")
        );
        assert_eq!(
            runtime_dir_from(None, s("/var/t"), 7),
            Path::new("/var/t/keyrack-7")
        );
        assert_eq!(runtime_dir_from(None, None, 7), Path::new("/tmp/keyrack-7"));
        // empty or relative values are ignored: the default stays /tmp
        assert_eq!(
            runtime_dir_from(s(""), s("rel/tmp"), 7),
            Path::new("/tmp/keyrack-7")
        );
    }
}
