//! Interactive prompts through a real pty (rexpect): the hidden secret prompt of `set`, and the
//! passphrase of an encrypted SSH key. Without a TTY, the same commands fail with the flags that
//! avoid the prompt.

use std::process::Command;

use keyrack_testkit::{ssh_keygen, stderr, Sandbox};
use rexpect::session::spawn_command;

use crate::support::pty::cmd as pty_cmd;

#[test]
fn set_prompts_for_a_hidden_secret_on_a_tty() {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.manifest("org: acme\nenv.test: []\n");
    s.init();
    let mut p = spawn_command(
        pty_cmd(&s, &["set", "--key", "TYPED", "--env", "test"]),
        Some(20_000),
    )
    .unwrap();
    p.exp_string("TYPED:").unwrap();
    p.send_line("typed-secret-value").unwrap();
    let rest = p.exp_eof().unwrap();
    assert!(rest.contains("round trip"), "{rest}");
    assert!(
        !rest.contains("typed-secret-value"),
        "the secret is never echoed: {rest}"
    );
    s.cmd().args(["unlock", "--env", "test"]).assert().success();
    assert_eq!(s.get_value("TYPED", "test").1, "typed-secret-value");
}

#[test]
fn passphrase_protected_ssh_key_asks_once_on_the_terminal() {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.manifest("org: acme\nenv.test: []\n");
    let ssh = s.home.join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    let key = ssh.join("id_ed25519");
    ssh_keygen(&key, "ed25519", "correct horse");

    let mut p = spawn_command(pty_cmd(&s, &["init"]), Some(20_000)).unwrap();
    p.exp_string("passphrase for").unwrap();
    p.send_line("correct horse").unwrap();
    let out = p.exp_eof().unwrap();
    assert!(out.contains("created"), "{out}");

    // a wrong passphrase is asked again, three times in all, then a clear error
    let mut p = spawn_command(pty_cmd(&s, &["list"]), Some(20_000)).unwrap();
    let mut out = String::new();
    for _ in 0..3 {
        out += &p.exp_string("passphrase for").unwrap();
        p.send_line("wrong").unwrap();
    }
    out += &p.exp_eof().unwrap();
    assert!(out.contains("wrong passphrase (3 tries)"), "{out}");
    assert_eq!(out.matches("try again").count(), 2, "{out}");

    // without any controlling terminal (setsid, as in a daemon or CI): fail with the way
    // around the prompt
    let mut c = s.std_cmd();
    c.arg("list").stdin(std::process::Stdio::null());
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe and allocates nothing.
    unsafe {
        c.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("needs a terminal"), "{}", stderr(&o));
    assert!(stderr(&o).contains("--identity"), "{}", stderr(&o));

    // many keys, one passphrase: set asks once (not again under the lock), unlock asks once
    for (key, value) in [("A", "value-a"), ("B", "value-b")] {
        let mut p = spawn_command(
            pty_cmd(&s, &["set", "--key", key, "--env", "test"]),
            Some(20_000),
        )
        .unwrap();
        p.exp_string("passphrase for").unwrap();
        p.send_line("correct horse").unwrap();
        p.exp_string(&format!("{key}:")).unwrap();
        p.send_line(value).unwrap();
        let out = p.exp_eof().unwrap();
        assert!(!out.contains("passphrase for"), "asked twice: {out}");
        assert!(out.contains("round trip"), "{out}");
    }
    let mut p = spawn_command(pty_cmd(&s, &["unlock", "--env", "test"]), Some(20_000)).unwrap();
    p.exp_string("passphrase for").unwrap();
    p.send_line("correct horse").unwrap();
    let out = p.exp_eof().unwrap();
    // (inquire redraws the answered prompt line before the tree; a second ask would follow it)
    let after = &out[out.find("keyrack unlock").expect("tree printed")..];
    assert!(
        !after.contains("passphrase for"),
        "unlock of 2 keys asked twice: {out}"
    );
    assert_eq!(out.matches("granted").count(), 2, "{out}");
    // and the hot path never asks: no TTY needed
    assert_eq!(s.get_value("B", "test").1, "value-b");
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.manifest("org: acme\nenv.test: [K]\n");
    s.init();
    s.set("K", "test", "v");
    let mut c = Command::new(s.bin());
    c.env_clear()
        .current_dir(&s.repo)
        .envs(s.vars())
        .env_remove("NO_COLOR")
        .env("TERM", "xterm")
        .args(["get", "--key", "K", "--env", "test"]);
    let mut p = spawn_command(c, Some(10_000)).unwrap();
    let out = p.exp_eof().unwrap();
    assert!(out.contains("\u{1b}[33m"), "coloured on a TTY: {out:?}");
    let mut c = Command::new(s.bin());
    c.env_clear()
        .current_dir(&s.repo)
        .envs(s.vars())
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .args(["get", "--key", "K", "--env", "test"]);
    let mut p = spawn_command(c, Some(10_000)).unwrap();
    let out = p.exp_eof().unwrap();
    assert!(
        out.contains("locked") && !out.contains("\u{1b}["),
        "NO_COLOR: {out:?}"
    );
    // piped: never coloured
    let o = s
        .cmd()
        .env_remove("NO_COLOR")
        .args(["get", "--key", "K", "--env", "test"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&o.stdout).contains('\u{1b}'));
}
