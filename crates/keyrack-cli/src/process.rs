//! Process hardening: a keyrack process holds secrets in memory, so it never leaves a core file.
//!
//! [`harden`] runs first thing in `main`, before anything reads a secret:
//!
//! - `RLIMIT_CORE` soft limit 0. The **hard** limit is kept on purpose: an unprivileged process
//!   can lower its hard limit but never raise it again, so a hard limit of 0 would make it
//!   impossible for `exec` to hand the user's command the core limit it had. The kernel writes a
//!   core file according to the soft limit, so soft 0 is what stops it.
//! - `PR_SET_DUMPABLE` 0. This also stops core dumps that ignore `RLIMIT_CORE` (a `core_pattern`
//!   pipe such as systemd-coredump), makes `/proc/<pid>/` of keyrack root-owned (no reading its
//!   `environ`/`mem` by other processes of the user) and refuses same-uid `ptrace` attach.
//!
//! `exec` gives the command it runs the core limit (soft and hard) keyrack started with, in the
//! process between the last secret-free step and `execve` ([`give_back_core_limit`]). The dumpable
//! flag needs no restoring: `execve` resets it for an ordinary (readable, not set-id) program.

use std::os::unix::process::CommandExt;
use std::sync::OnceLock;

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::sys::signal::{signal, SigHandler, Signal};

type Limit = nix::libc::rlim_t;

/// The core limit (soft, hard) keyrack was started with.
static STARTED_WITH: OnceLock<(Limit, Limit)> = OnceLock::new();

/// No core files, not dumpable. Call once, first thing in `main`.
#[cfg_attr(test, allow(dead_code))] // (the test harness has its own entry point)
pub fn harden() {
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_CORE) {
        let _ = STARTED_WITH.set((soft, hard));
        // Lowering the soft limit is always allowed.
        let _ = setrlimit(Resource::RLIMIT_CORE, 0, hard);
    }
    let _ = nix::sys::prctl::set_dumpable(false);
}

/// Makes `cmd`, when it replaces this process, start with the core limit keyrack started with.
pub fn give_back_core_limit(cmd: &mut std::process::Command) {
    let Some(&(soft, hard)) = STARTED_WITH.get() else {
        return;
    };
    // SAFETY: the closure only makes one raw syscall (setrlimit) and allocates nothing. It runs
    // right before execve; if restoring fails the command keeps a core limit of 0 (the safe side).
    unsafe {
        cmd.pre_exec(move || {
            let _ = setrlimit(Resource::RLIMIT_CORE, soft, hard);
            Ok(())
        });
    }
}

/// Gives this process back the core limit keyrack started with, right before it `execve`s a
/// program itself (without `Command`); [`after_failed_exec`] takes it away again.
pub fn give_back_core_limit_now() {
    if let Some(&(soft, hard)) = STARTED_WITH.get() {
        let _ = setrlimit(Resource::RLIMIT_CORE, soft, hard);
    }
}

/// Undoes what a failed `execve` attempt changed in this process: std resets `SIGPIPE` to its
/// default and our hook restored the core limit, both before it found out the exec failed.
pub fn after_failed_exec() {
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_CORE) {
        let _ = setrlimit(Resource::RLIMIT_CORE, 0, hard);
    }
    // SAFETY: SIG_IGN installs no handler code; this is the disposition Rust's runtime sets at
    // start-up, so writes to a closed pipe return EPIPE (handled by `ui`) instead of killing us.
    unsafe {
        let _ = signal(Signal::SIGPIPE, SigHandler::SigIgn);
    }
}

/// `MAX_ARG_STRLEN`: the most bytes one argument or `KEY=value` environment entry may have on
/// Linux (32 pages, NUL included).
pub fn max_arg_strlen() -> usize {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|p| usize::try_from(p).ok())
        .unwrap_or(4096);
    32 * page
}

/// `ARG_MAX`: the most bytes the arguments and environment of a new program may take together.
pub fn arg_max() -> Option<usize> {
    nix::unistd::sysconf(nix::unistd::SysconfVar::ARG_MAX)
        .ok()
        .flatten()
        .and_then(|p| usize::try_from(p).ok())
}
