//! Driving the binary on a terminal (rexpect).

use std::process::Command;

use keyrack_testkit::Sandbox;
use rexpect::process::WaitStatus;
use rexpect::session::PtySession;

/// The binary with `args`, in the sandbox's repo and environment, on an `xterm`.
pub fn cmd(s: &Sandbox, args: &[&str]) -> Command {
    let mut c = Command::new(s.bin());
    c.env_clear()
        .current_dir(&s.repo)
        .envs(s.vars())
        .env("TERM", "xterm")
        .args(args);
    c
}

/// The exit code of a session's process (which must have exited).
pub fn exit_code(p: &mut PtySession) -> i32 {
    match p.process().wait().unwrap() {
        WaitStatus::Exited(_, code) => code,
        other => panic!("not exited: {other:?}"),
    }
}
