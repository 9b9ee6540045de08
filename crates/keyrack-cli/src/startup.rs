//! The process entry point, without Rust's runtime start-up.
//!
//! Before `main`, Rust's runtime locates the main thread's stack by reading and parsing
//! `/proc/self/maps` line by line (`pthread_getattr_np`), only to print "has overflowed its
//! stack" should that ever happen: about 110 000 instructions, a fifth of what a warm
//! `keyrack get` costs in all. The binary is therefore `#![no_main]` and [`init`] does what
//! that start-up does that matters to keyrack, before anything else runs:
//! - each of stdin, stdout and stderr that is closed is opened on `/dev/null`, so no file
//!   keyrack opens later can take descriptor 1 and receive a secret meant for stdout;
//! - SIGPIPE is ignored, so writing to a closed pipe is an error keyrack handles (and the
//!   daemon survives a client that hung up), not a silent death.
//!
//! Arguments and the environment come from the C runtime as usual. What is given up: the
//! stack-overflow message (an overflow still faults on the kernel's guard page) and the name
//! `main` in panic messages.

use nix::libc;

/// Makes the standard descriptors valid and ignores SIGPIPE; aborts if a closed standard
/// descriptor cannot be replaced.
pub fn init() {
    for fd in 0..3 {
        // SAFETY: F_GETFD only reads the descriptor's flags; it fails with EBADF when closed.
        let closed = unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF);
        if closed {
            // The lowest free descriptor is `fd` (those below it are open): /dev/null takes it.
            // SAFETY: a plain open of a constant path.
            let got = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
            if got != fd {
                std::process::abort();
            }
        }
    }
    // SAFETY: ignoring a signal installs no handler.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}
