//! Everyday verbs, through the real binary: the passphrase of an SSH key asked on the controlling
//! terminal when stdin is a pipe, `init --org` from a subdirectory, a bare `unlock` that leaves
//! `prod` and `sudo` alone, `get KEY` resolved by the only unlocked env, and `del` that keeps the
//! team's keyrack.yml. (The same situations as they look on screen: tests/cmd/*.md.)

use std::os::unix::process::CommandExt;
use std::process::Command;

use keyrack_testkit::{ssh_keygen, stderr, stdout, Sandbox};
use rexpect::session::spawn_command;

fn sandbox(manifest: &str) -> Sandbox {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.manifest(manifest);
    s
}

/// A shell command line in the sandbox, run in a fresh pty (its controlling terminal).
fn pty_shell(s: &Sandbox, line: &str) -> Command {
    let dir = s.bin().parent().unwrap().display().to_string();
    let mut c = Command::new("sh");
    c.env_clear()
        .current_dir(&s.repo)
        .envs(s.vars())
        .env("PATH", format!("{dir}:{}", std::env::var("PATH").unwrap()))
        .env("TERM", "xterm")
        .args(["-c", line]);
    c
}

/// Makes `c` start in a new session: no controlling terminal at all.
fn without_terminal(c: &mut Command) {
    // SAFETY: setsid is async-signal-safe and allocates nothing.
    unsafe {
        c.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
}

fn passphrase_sandbox() -> Sandbox {
    let s = sandbox("org: acme\nenv.test: []\n");
    let ssh = s.home.join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    ssh_keygen(&ssh.join("id_ed25519"), "ed25519", "correct horse");
    let mut p = spawn_command(pty_shell(&s, "keyrack init"), Some(20_000)).unwrap();
    p.exp_string("passphrase for").unwrap();
    p.send_line("correct horse").unwrap();
    let out = p.exp_eof().unwrap();
    assert!(out.contains("created"), "{out}");
    s
}

#[test]
fn a_piped_set_asks_the_passphrase_on_the_terminal_wrong_once_then_right() {
    let s = passphrase_sandbox();
    // stdin is the pipe (the secret); the passphrase comes from the terminal, as ssh asks it
    let mut p = spawn_command(
        pty_shell(
            &s,
            "printf piped-secret | keyrack set --key PIPED --env test",
        ),
        Some(20_000),
    )
    .unwrap();
    p.exp_string("passphrase for").unwrap();
    p.send_line("wrong horse").unwrap();
    p.exp_string("wrong passphrase, try again").unwrap();
    p.exp_string("passphrase for").unwrap();
    p.send_line("correct horse").unwrap();
    let out = p.exp_eof().unwrap();
    assert!(out.contains("round trip"), "{out}");
    assert!(
        !out.contains("piped-secret"),
        "the secret is never shown: {out}"
    );
    assert!(
        !out.contains("correct horse") && !out.contains("wrong horse"),
        "the passphrase is not echoed: {out}"
    );

    let mut p = spawn_command(
        pty_shell(&s, "keyrack unlock --env test </dev/null"),
        Some(20_000),
    )
    .unwrap();
    p.exp_string("passphrase for").unwrap();
    p.send_line("correct horse").unwrap();
    let out = p.exp_eof().unwrap();
    assert!(out.contains("granted"), "{out}");
    assert_eq!(s.get_value("PIPED", "test").1, "piped-secret");
}

#[test]
fn with_no_controlling_terminal_a_passphrase_key_fails_with_the_flags() {
    let s = passphrase_sandbox();
    let mut c = s.std_cmd();
    c.args(["set", "--key", "K", "--env", "test"]);
    without_terminal(&mut c);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    // keyrack may refuse (and exit) before it reads stdin: a closed pipe here is not a failure
    let _ = child.stdin.take().unwrap().write_all(b"v");
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("needs a terminal"), "{}", stderr(&o));
    assert!(stderr(&o).contains("--identity"), "{}", stderr(&o));
}

#[test]
fn init_org_in_a_subdirectory_writes_keyrack_yml_at_the_repository_root() {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    let sub = s.repo.join("services/api");
    std::fs::create_dir_all(&sub).unwrap();
    let o = s
        .cmd()
        .current_dir(&sub)
        .args(["init", "--org", "acme"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(s.repo.join("keyrack.yml").is_file(), "{}", stdout(&o));
    assert!(!sub.join("keyrack.yml").exists());
    assert!(
        stdout(&o).contains(&format!("{}/keyrack.yml (created)", s.repo.display())),
        "{}",
        stdout(&o)
    );
    // and from there, the repository's keys are found
    let o = s
        .cmd()
        .current_dir(&sub)
        .args(["set", "--key", "K", "--env", "test"])
        .write_stdin("v")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        s.read_manifest().contains("env.test: [K]\n"),
        "{}",
        s.read_manifest()
    );

    // another org on the existing manifest is refused, and nothing changes
    let before = s.read_manifest();
    let o = s
        .cmd()
        .current_dir(&sub)
        .args(["init", "--org", "other"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("already declares org 'acme'"),
        "{}",
        stderr(&o)
    );
    assert_eq!(s.read_manifest(), before);
}

#[test]
fn a_bare_unlock_leaves_prod_sudo_and_machine_wide_prod_keys_locked() {
    let s = sandbox("org: acme\nenv.test: [T]\nenv.prod: [P]\n");
    s.init();
    s.set("T", "test", "t");
    s.set("P", "prod", "p");
    s.set("ROOT_PW", "sudo", "r");
    let o = s.run(
        &["set", "--key", "MW_PROD", "--env", "prod", "--org", "@all"],
        "mw",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = s.run(
        &["set", "--key", "MW_ANY", "--env", "all", "--org", "@all"],
        "any",
    );
    assert!(o.status.success(), "{}", stderr(&o));

    let (code, v) = s.json(&["unlock"]);
    assert_eq!(code, 0, "{v}");
    let slugs: Vec<&str> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["acme.test.T", "@all.all.MW_ANY"], "{v}");
    let skipped: Vec<&str> = v["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["env"].as_str().unwrap())
        .collect();
    assert_eq!(skipped, ["prod", "sudo"], "{v}");
    assert_eq!(v["skipped"][0]["fix"], "keyrack unlock --env prod");
    assert_eq!(s.get_value("P", "prod").0, 2, "prod stays locked");
    assert_eq!(s.get_value("ROOT_PW", "sudo").0, 2, "sudo stays locked");

    // naming a key without an env does not reach into prod either
    let (code, v) = s.json(&["unlock", "--key", "P"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["keys"].as_array().unwrap().len(), 0, "{v}");
    assert_eq!(v["skipped"][0]["fix"], "keyrack unlock --env prod --key P");
    // named, it is unlocked
    let (code, _) = s.json(&["unlock", "--env", "prod"]);
    assert_eq!(code, 0);
    assert_eq!(s.get_value("P", "prod").1, "p");
}

#[test]
fn get_resolves_the_env_by_the_only_unlocked_one() {
    let s = sandbox("org: acme\nenv.test: [DB]\nenv.dev: [DB]\nenv.prod: [DB]\n");
    s.init();
    for env in ["test", "dev", "prod"] {
        s.set("DB", env, &format!("{env}-db"));
    }
    let o = s.run(&["get", "DB", "--value"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("fix: pass one of: --env dev | --env test | --env prod"),
        "every candidate, prod last: {}",
        stderr(&o)
    );
    s.cmd().args(["unlock", "--env", "dev"]).assert().success();
    let o = s.run(&["get", "DB", "--value"], "");
    assert_eq!(stdout(&o), "dev-db", "{}", stderr(&o));
    let (code, v) = s.json(&["get", "DB"]);
    assert_eq!(code, 0);
    assert_eq!(v["keys"][0]["env"], "dev");
    // --env still decides when given
    assert_eq!(s.get_value("DB", "prod").0, 2);
}

#[test]
fn del_keeps_the_manifest_line_unless_from_manifest() {
    let s = sandbox("org: acme\nenv.test: [K]\n");
    s.init();
    s.set("K", "test", "v");
    let (code, v) = s.json(&["del", "--key", "K", "--env", "test"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["manifestUpdated"], serde_json::Value::Null);
    assert_eq!(
        v["manifestKept"],
        s.repo.join("keyrack.yml").display().to_string()
    );
    assert_eq!(s.read_manifest(), "org: acme\nenv.test: [K]\n");
    let (code, v) = s.json(&["del", "--key", "K", "--env", "test", "--from-manifest"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(s.read_manifest(), "org: acme\nenv.test: []\n");
}
