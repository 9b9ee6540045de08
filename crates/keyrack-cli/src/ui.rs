//! The one place the CLI writes to stdout and stderr.
//!
//! Rust ignores `SIGPIPE`, so writing to a pipe whose reader has gone returns `EPIPE`
//! (`BrokenPipe`). That is not an error of keyrack's: the reader took what it wanted (`| head -1`).
//! [`out`] treats it as the end of the output — the rest is dropped quietly and the command ends
//! with its own exit code (0 when it succeeded), as ripgrep does — never a panic. Any other write
//! error (a full disk behind `> file`) is reported as [`Failure::Output`] and exits 1, so a
//! truncated result is never mistaken for a complete one.
//!
//! stderr carries progress and errors only; failing to write it is ignored (there is nowhere left
//! to report it), also without panicking. The sign-in notices and the spinner of
//! [`crate::interact`] draw through [`err`]; only the prompts (inquire) draw on the terminal
//! themselves, and `aws sso login` (opt-in driver) writes to a copy of stderr.

use std::io::{ErrorKind, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Why a command did not finish.
#[derive(Debug)]
pub enum Failure {
    /// The library refused or failed.
    Keyrack(keyrack::Error),
    /// The command already showed the outcome (e.g. the rows of keys that are not granted);
    /// only the error's exit code is left to give.
    Shown(keyrack::Error),
    /// stdout could not be written (other than a closed reader).
    Output(std::io::Error),
}

impl From<keyrack::Error> for Failure {
    fn from(e: keyrack::Error) -> Self {
        Failure::Keyrack(e)
    }
}

/// A command's result: its exit code, or why it failed.
pub type Result<T> = std::result::Result<T, Failure>;

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes `bytes` to stdout and flushes. A closed reader ends the output quietly.
pub fn out(bytes: impl AsRef<[u8]>) -> Result<()> {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_all(bytes.as_ref())
        .and_then(|()| stdout.flush());
    match written {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        Err(e) => Err(Failure::Output(e)),
    }
}

/// Writes `v` as pretty JSON (keys sorted) and a newline to stdout.
pub fn json(v: &impl serde::Serialize) -> Result<()> {
    let mut s = serde_json::to_value(v)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .map_err(|e| Failure::Output(e.into()))?;
    s.push('\n');
    out(s)
}

/// Writes `text` to stderr, ignoring failure.
pub fn err(text: impl AsRef<[u8]>) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text.as_ref());
    let _ = stderr.flush();
}

/// Whether stdin is a terminal (someone can answer a prompt).
pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// Whether stderr is a terminal (a spinner can be drawn).
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// A copy of stderr for a helper program whose own output the person must follow (it is never
/// given stdout, which carries `--json`).
pub fn stderr_for_child() -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::AsFd;
    std::io::stderr().as_fd().try_clone_to_owned()
}
