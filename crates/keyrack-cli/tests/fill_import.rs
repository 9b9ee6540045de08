//! Missing keys: `keyrack fill` asks for each declared key this host lacks (a real pty, through
//! rexpect) and proves each one through `set`'s path; `keyrack import` sets many from dotenv
//! lines, each key on its own row.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use keyrack_fake_aws::FakeAws;
use keyrack_testkit::{stderr, stdout, Sandbox};
use rexpect::process::WaitStatus;
use rexpect::session::spawn_command;

fn pty_cmd(s: &Sandbox, args: &[&str]) -> Command {
    let mut c = Command::new(s.bin());
    c.env_clear()
        .current_dir(&s.repo)
        .envs(s.vars())
        .env("TERM", "xterm")
        .args(args);
    c
}

fn exit_code(p: &mut rexpect::session::PtySession) -> i32 {
    match p.process().wait().unwrap() {
        WaitStatus::Exited(_, code) => code,
        other => panic!("not exited: {other:?}"),
    }
}

#[test]
fn fill_asks_for_each_missing_key_hidden_and_proves_each() {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.manifest("org: acme\nenv.test: [A, B, C]\nenv.prod: []\nenv.all: [S]\n");
    s.init();
    s.set("A", "test", "already-here");
    let mut p = spawn_command(pty_cmd(&s, &["fill", "--env", "test"]), Some(20_000)).unwrap();
    p.exp_string("3 not set on this host").unwrap();
    p.exp_string("[1/3] B:").unwrap();
    p.send_line("value-of-b").unwrap();
    p.exp_string("[2/3] C:").unwrap();
    // a value the firewall refuses is asked for again, with the reason
    p.send_line(&format!("ghp_{}", "x".repeat(36))).unwrap();
    p.exp_string("refused:").unwrap();
    p.send_line("").unwrap(); // skip C
    p.exp_string("[3/3] S:").unwrap();
    p.send_line("shared-value").unwrap();
    let out = p.exp_eof().unwrap();
    assert_eq!(exit_code(&mut p), 2, "C is still missing: {out}");
    assert!(
        !out.contains("value-of-b") && !out.contains("shared-value"),
        "never echoed: {out}"
    );
    assert!(out.contains("acme.test.B"), "{out}");
    // (rexpect reads the pty as Latin-1: only ASCII is compared)
    assert_eq!(out.matches("status: set").count(), 2, "{out}");
    assert!(out.contains("relock proven)"), "{out}");
    assert!(
        out.contains("acme.all.S"),
        "an env.all key is set under all: {out}"
    );
    assert!(out.contains("status: skipped"), "{out}");
    assert!(out.contains("fix: keyrack set --key C --env test"), "{out}");

    s.cmd().args(["unlock", "--env", "test"]).assert().code(2); // C: absent
    assert_eq!(
        s.get_value("A", "test").1,
        "already-here",
        "not asked again"
    );
    assert_eq!(s.get_value("B", "test").1, "value-of-b");
    assert_eq!(s.get_value("S", "test").1, "shared-value");
    assert_eq!(s.get_value("C", "test").0, 2);

    // only C is left; Ctrl-C stops with 130 and says so
    let mut p = spawn_command(pty_cmd(&s, &["fill", "--env", "test"]), Some(20_000)).unwrap();
    p.exp_string("[1/1] C:").unwrap();
    p.send_control('c').unwrap();
    let out = p.exp_eof().unwrap();
    assert_eq!(exit_code(&mut p), 130, "{out}");
    assert!(out.contains("cancelled"), "{out}");
    assert!(out.contains("not asked (stopped)"), "{out}");

    // nothing missing: nothing asked, no terminal needed, exit 0
    s.set("C", "test", "c");
    let o = s.run(&["fill", "--env", "test"], "");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("env test: all 4 declared key(s) are set on this host"));
}

#[test]
fn fill_without_a_terminal_fails_with_the_flags_to_use() {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.manifest("org: acme\nenv.test: [A, B]\nenv.prod: []\n");
    s.init();
    let o = s.run(&["fill", "--env", "test"], "piped\n");
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains(
            "keyrack fill (it asks for the keys missing in env test: A, B) needs a terminal"
        ),
        "{err}"
    );
    assert!(
        err.contains("fix: keyrack import --env test < .env"),
        "{err}"
    );
    assert!(
        err.contains("printf %s \"$VALUE\" | keyrack set --key A --env test"),
        "{err}"
    );
    assert_eq!(stdout(&o), "");
    assert!(s.secure_files().is_empty(), "nothing set");
    // --json: one error document, nothing else
    let (code, v) = s.json(&["fill", "--env", "test"]);
    assert_eq!(code, 1);
    assert_eq!(v["error"]["code"], "needs_tty");
    assert!(v["error"]["fix"]
        .as_str()
        .unwrap()
        .starts_with("keyrack import --env test < .env"));
}

#[test]
fn fill_sets_aws_profile_through_the_sso_wizard() {
    let fake = FakeAws::start();
    let mut s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    for (k, v) in fake.env() {
        s.env(&k, &v);
    }
    let script = s.root.join("browser.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nexec curl -s -L --max-time 20 -o /dev/null \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    s.env("BROWSER", script.to_str().unwrap());
    s.manifest("org: acme\nenv.test: [AWS_PROFILE]\nenv.prod: []\n");
    s.init();
    let mut p = spawn_command(pty_cmd(&s, &["fill", "--env", "test"]), Some(30_000)).unwrap();
    p.exp_string("[1/1] AWS_PROFILE: set up an AWS SSO profile now?")
        .unwrap();
    p.send_line("y").unwrap();
    p.exp_string("start URL:").unwrap();
    p.send_line("https://d-1234567890.awsapps.com/start")
        .unwrap();
    p.exp_string("SSO region:").unwrap();
    p.send_line("").unwrap();
    p.exp_string("sso-session name:").unwrap();
    p.send_line("").unwrap(); // the suggested one: the org
    p.exp_string("account:").unwrap();
    p.send("Acme").unwrap();
    p.exp_string("Acme Test").unwrap();
    p.send_line("").unwrap();
    p.exp_string("role:").unwrap();
    p.send("Admin").unwrap();
    p.exp_string("AdministratorAccess").unwrap();
    p.send_line("").unwrap();
    p.exp_string("profile name:").unwrap();
    p.send_line("").unwrap();
    let out = p.exp_eof().unwrap();
    assert_eq!(exit_code(&mut p), 0, "{out}");
    assert!(out.contains("acme.test.AWS_PROFILE"), "{out}");
    assert!(out.contains("vault: aws.config"), "{out}");
    assert_eq!(fake.consents(), 1);
    s.cmd()
        .args(["unlock", "--env", "test", "--no-prompt"])
        .assert()
        .success();
    assert_eq!(s.get_value("AWS_PROFILE", "test").1, "acme.acme-test.admin");
}

/// A .env with everything a real one has: comments, `export`, quotes of both kinds, escapes,
/// a multi-line value, CRLF line ends, a duplicate, an undeclared key, refused names and values.
const TRICKY: &str = "# app settings\r\n\
export API_KEY=plain-value   # trailing comment\r\n\
DB_URL='postgres://u:p@h/db?x=1#frag'\n\
\n\
GREETING=\"say \\\"hi\\\"\\tthen\\\\n \\$HOME\"\n\
PEM=\"-----BEGIN KEY-----\n\
line two\n\
-----END KEY-----\"\n\
TOKEN = first\n\
TOKEN=second\n\
PORT=8080\n\
9LIVES=cat\n\
GH=ghp_abcdefghijklmnopqrstuvwxyz0123456789\n\
EMPTY=\n";

fn tricky_sandbox() -> Sandbox {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.manifest(
        "# the team's keys\norg: acme\nenv.test: [API_KEY, DB_URL, GREETING, PEM, TOKEN, GH, EMPTY]\nenv.prod: []\n",
    );
    s.init();
    s
}

#[test]
fn import_sets_each_key_of_a_tricky_dotenv_on_its_own_row() {
    let s = tricky_sandbox();
    let before = s.read_manifest();
    let o = s.run(&["--json", "import", "--env", "test"], TRICKY);
    assert_eq!(
        o.status.code(),
        Some(2),
        "some rows are refused: {}",
        stderr(&o)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = v["rows"].as_array().unwrap();
    let row = |key: &str, line: u64| {
        rows.iter()
            .find(|r| r["key"] == key && r["line"] == line)
            .unwrap_or_else(|| panic!("row {key}:{line} in {v:#}"))
            .clone()
    };
    for (key, line) in [
        ("API_KEY", 2),
        ("DB_URL", 3),
        ("GREETING", 5),
        ("PEM", 6),
        ("TOKEN", 10),
    ] {
        let r = row(key, line);
        assert_eq!(r["status"], "set", "{r:#}");
        assert_eq!(r["vault"], "os.secure");
        assert_eq!(r["slug"], format!("acme.test.{key}"));
    }
    let dup = row("TOKEN", 9);
    assert_eq!(dup["status"], "skipped");
    assert_eq!(dup["reason"], "line 10 sets it again");
    let port = row("PORT", 11);
    assert_eq!(port["status"], "skipped");
    assert!(port["reason"]
        .as_str()
        .unwrap()
        .starts_with("not declared for env test in"));
    assert!(port["fix"].as_str().unwrap().contains("--declare"));
    let bad = row("9LIVES", 12);
    assert_eq!(bad["status"], "refused");
    assert!(bad["reason"]
        .as_str()
        .unwrap()
        .contains("invalid key '9LIVES'"));
    let gh = row("GH", 13);
    assert_eq!(gh["status"], "refused");
    assert!(
        gh["fix"].as_str().unwrap().contains("--allow-dangerous"),
        "{gh:#}"
    );
    assert!(
        !o.stdout.windows(10).any(|w| w == b"ghp_abcdef"),
        "no value in the output"
    );
    let empty = row("EMPTY", 14);
    assert_eq!(empty["status"], "refused");
    assert!(empty["reason"].as_str().unwrap().contains("empty"));
    assert_eq!(rows.len(), 10);
    assert_eq!(
        s.read_manifest(),
        before,
        "keyrack.yml untouched without --declare"
    );

    s.cmd().args(["unlock", "--env", "test"]).assert().code(2); // GH and EMPTY are absent
    assert_eq!(s.get_value("API_KEY", "test").1, "plain-value");
    assert_eq!(
        s.get_value("DB_URL", "test").1,
        "postgres://u:p@h/db?x=1#frag"
    );
    assert_eq!(
        s.get_value("GREETING", "test").1,
        "say \"hi\"\tthen\\n $HOME"
    );
    assert_eq!(
        s.get_value("PEM", "test").1,
        "-----BEGIN KEY-----\nline two\n-----END KEY-----"
    );
    assert_eq!(s.get_value("TOKEN", "test").1, "second");

    // human output: a tree with a row per key, a fix per refusal
    let o = s.run(&["import", "--env", "test"], "TOKEN=third\n");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("acme.test.TOKEN (line 1)"), "{out}");
    assert!(
        out.contains("set (replaced the previous value; proven)"),
        "{out}"
    );
}

#[test]
fn import_declare_adds_undeclared_keys_and_a_file_argument_works() {
    let s = tricky_sandbox();
    let env_file = s.repo.join("extra.env");
    std::fs::write(&env_file, "PORT=8080\nAPI_KEY=k\n").unwrap();
    let o = s.run(
        &[
            "import",
            "--env",
            "test",
            "--declare",
            "--vault",
            "os.direct",
            "extra.env",
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("declared in keyrack.yml"));
    let m = s.read_manifest();
    assert!(
        m.starts_with("# the team's keys\norg: acme\n"),
        "other bytes kept: {m}"
    );
    assert!(m.contains("PORT"), "{m}");
    s.cmd()
        .args(["unlock", "--env", "test", "--key", "PORT"])
        .assert()
        .success();
    assert_eq!(s.get_value("PORT", "test").1, "8080");
}

#[test]
fn import_of_a_broken_file_sets_nothing_and_names_the_line() {
    let s = tricky_sandbox();
    let o = s.run(
        &["import", "--env", "test"],
        "API_KEY=fine\nPEM=\"never closed\nDB_URL=x\n",
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("standard input:2")
            && err.contains("the double quote opened here is never closed"),
        "{err}"
    );
    assert!(
        err.contains("fix: fix line 2 of standard input; nothing was imported"),
        "{err}"
    );
    assert!(s.secure_files().is_empty(), "nothing was set");
}
