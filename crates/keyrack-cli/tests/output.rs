//! Honest, quiet output, through the real binary: `--json` as a contract (one document, one row
//! shape, RFC 3339 times) for every command, plain ASCII off a terminal, prompts that say
//! "cancelled" and refuse an empty answer, `--help` that lists the real choices, and messages
//! that say one true thing (`aws logout` twice). The on-screen forms are in tests/cmd/*.md.

use std::process::Command;

use keyrack_fake_aws::FakeAws;
use keyrack_testkit::{stderr, stdout, Sandbox};
use rexpect::session::spawn_command;
use serde_json::Value;

fn sandbox(manifest: &str) -> Sandbox {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.manifest(manifest);
    s
}

fn pty_cmd(s: &Sandbox, args: &[&str]) -> Command {
    let mut c = Command::new(s.bin());
    c.env_clear()
        .current_dir(&s.repo)
        .envs(s.vars())
        .env("TERM", "xterm")
        .args(args);
    c
}

// ---------------------------------------------------------------------------------------------
// --json: the contract of docs/json.md

/// The fields every key row has (docs/json.md), `null` where they do not apply.
const ROW_FIELDS: [&str; 9] = [
    "slug",
    "key",
    "env",
    "org",
    "vault",
    "status",
    "expiresAt",
    "reason",
    "fix",
];
const STATUSES: [&str; 6] = ["granted", "locked", "absent", "blocked", "lost", "errored"];

fn is_rfc3339(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.ends_with('Z') && s.contains('T') && s.parse::<jiff::Timestamp>().is_ok()
    })
}

/// Every timestamp field anywhere in `v` is RFC 3339 (or null).
fn check_times(v: &Value, path: &str) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k.ends_with("At") || k == "Expiration" {
                    assert!(
                        x.is_null() || is_rfc3339(x),
                        "{path}.{k} is not RFC 3339: {x}"
                    );
                }
                check_times(x, &format!("{path}.{k}"));
            }
        }
        Value::Array(a) => a.iter().for_each(|x| check_times(x, path)),
        _ => {}
    }
}

/// Runs keyrack with `args`; asserts stdout is exactly one JSON document (an object), that
/// every key row has the documented fields, that times are RFC 3339, and that an error document
/// has code, message, fix and exit code matching the process's. Returns (exit code, document).
fn one_document(s: &Sandbox, args: &[&str], stdin: &str) -> (i32, Value) {
    let o = s.run(args, stdin);
    let code = o.status.code().unwrap_or(-1);
    let mut docs = serde_json::Deserializer::from_slice(&o.stdout).into_iter::<Value>();
    let first = match docs.next() {
        Some(Ok(v)) => v,
        other => panic!(
            "{args:?}: stdout is not a JSON document ({other:?}):\n{}\nstderr: {}",
            stdout(&o),
            stderr(&o)
        ),
    };
    assert!(
        docs.next().is_none(),
        "{args:?}: more than one document on stdout:\n{}",
        stdout(&o)
    );
    assert!(first.is_object(), "{args:?}: {first}");
    if let Some(rows) = first.get("keys") {
        for row in rows.as_array().expect("keys is a list of rows") {
            for f in ROW_FIELDS {
                assert!(row.get(f).is_some(), "{args:?}: row without {f}: {row}");
            }
            assert!(
                STATUSES.contains(&row["status"].as_str().unwrap_or("")),
                "{args:?}: {row}"
            );
            let slug = row["slug"].as_str().unwrap();
            assert!(slug.ends_with(&format!(".{}", row["key"].as_str().unwrap())));
            assert!(slug.starts_with(row["org"].as_str().unwrap()));
        }
    }
    if let Some(e) = first.get("error") {
        for f in ["code", "message", "fix", "exitCode"] {
            assert!(e.get(f).is_some(), "{args:?}: error without {f}: {e}");
        }
        assert_eq!(e["exitCode"], code, "{args:?}: {e}");
        assert_ne!(code, 0, "{args:?}: an error document exits non-zero");
    }
    check_times(&first, "$");
    (code, first)
}

fn json(s: &Sandbox, args: &[&str]) -> (i32, Value) {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    one_document(s, &full, "")
}

#[test]
fn every_command_prints_exactly_one_json_document() {
    let s = sandbox("org: acme\nenv.test: [A, B]\nenv.prod: [A]\n");
    // before init: refusals
    assert_eq!(json(&s, &["list"]).0, 1);
    assert_eq!(json(&s, &["unlock"]).0, 1);
    // usage errors found by the argument parser, wherever --json is
    assert_eq!(json(&s, &[]).0, 1);
    assert_eq!(json(&s, &["get", "A", "--nope"]).0, 1);
    assert_eq!(
        one_document(&s, &["get", "A", "--value", "--json"], "").0,
        1
    );
    assert_eq!(json(&s, &["set", "--key", "A", "--vault", "os.nope"]).0, 1);
    assert_eq!(json(&s, &["unlock", "--duration", "forever"]).0, 1);
    assert_eq!(json(&s, &["frobnicate"]).0, 1);
    let (code, help) = json(&s, &["get", "--help"]);
    assert_eq!(code, 0);
    assert!(help["help"].as_str().unwrap().contains("--value"));

    let (code, v) = json(&s, &["init"]);
    assert_eq!(code, 0, "{v}");
    let (code, v) = json(&s, &["recipient", "list"]);
    assert_eq!(code, 0);
    assert!(is_rfc3339(&v["recipients"][0]["addedAt"]), "{v}");
    assert_eq!(json(&s, &["recipient", "remove", "--label", "nobody"]).0, 2);
    assert_eq!(
        json(
            &s,
            &["recipient", "add", "--pubkey", "nope", "--label", "x"]
        )
        .0,
        1
    );

    let (code, v) = one_document(&s, &["--json", "set", "--key", "A", "--env", "test"], "a");
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["slug"], "acme.test.A");
    let (code, v) = one_document(&s, &["--json", "set", "--key", "9A", "--env", "test"], "a");
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (1, Some("invalid_input"))
    );

    // locked: rows, exit 2
    let (code, v) = json(&s, &["get", "A", "--env", "test"]);
    assert_eq!((code, v["keys"][0]["status"].as_str()), (2, Some("locked")));
    let (code, v) = json(&s, &["get", "A"]);
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (1, Some("env_ambiguous"))
    );
    let (code, v) = json(&s, &["source", "--env", "test"]);
    assert_eq!(code, 2);
    assert!(v["keys"][0].get("value").is_none(), "strict: no values");
    assert_eq!(json(&s, &["exec", "--env", "test", "--", "true"]).0, 2);

    let (code, v) = json(&s, &["unlock"]);
    assert_eq!(code, 2, "B is absent: {v}");
    assert_eq!(v["keys"][0]["status"], "granted");
    assert!(is_rfc3339(&v["keys"][0]["expiresAt"]));
    assert_eq!(v["keys"][1]["status"], "absent");
    assert!(v["skipped"].is_array());

    let (code, v) = json(&s, &["get", "A", "--env", "test"]);
    assert_eq!(code, 0);
    assert_eq!(v["keys"][0]["value"], "a");
    let (code, v) = json(&s, &["source", "--env", "test", "--lenient"]);
    assert_eq!(code, 0);
    assert_eq!(v["keys"][0]["value"], "a");
    let (code, v) = json(&s, &["status"]);
    assert_eq!(code, 0);
    assert!(is_rfc3339(&v["daemon"]["startedAt"]), "{v}");
    assert_eq!(v["keys"][0]["status"], "granted");
    let (code, v) = json(&s, &["list"]);
    assert_eq!(code, 0);
    assert_eq!(
        v["keys"][0]["status"], "granted",
        "list says it is unlocked"
    );
    assert!(is_rfc3339(&v["keys"][0]["createdAt"]), "{v}");
    let (code, v) = json(&s, &["daemon", "status"]);
    assert_eq!((code, &v["running"]), (0, &Value::Bool(true)));
    let (code, v) = json(&s, &["relock"]);
    assert_eq!(code, 0);
    assert_eq!(v["keys"][0]["status"], "locked");
    assert_eq!(v["keys"][0]["vault"], "os.secure");
    assert_eq!(json(&s, &["daemon", "prune"]).0, 0);

    let (code, v) = json(&s, &["aws", "credentials", "--profile", "nope"]);
    assert_eq!((code, v["error"]["code"].as_str()), (2, Some("locked")));
    assert_eq!(json(&s, &["aws", "logout", "--profile", "nope"]).0, 1);
    let (code, v) = json(&s, &["completions", "bash"]);
    assert_eq!(code, 0);
    assert!(v["script"].as_str().unwrap().contains("keyrack"));

    let (code, v) = json(&s, &["del", "--key", "A", "--env", "test"]);
    assert_eq!(code, 0, "{v}");
    let (code, v) = json(&s, &["del", "--key", "A", "--env", "test"]);
    assert_eq!((code, v["error"]["code"].as_str()), (2, Some("not_set")));

    // exec that runs its command: the command owns stdout (documented exception)
    let o = s.run(
        &["--json", "exec", "--env", "test", "--lenient", "--", "true"],
        "",
    );
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "");
    // exec that cannot start its command: one error document with the shell's exit code
    let (code, v) = json(
        &s,
        &["exec", "--env", "test", "--lenient", "--", "/nonexistent"],
    );
    assert_eq!((code, v["error"]["exitCode"].as_i64()), (127, Some(127)));
}

// ---------------------------------------------------------------------------------------------
// plain ASCII off a terminal, NO_COLOR, TERM=dumb; --color

fn is_plain(out: &str) -> bool {
    out.is_ascii() && !out.contains('\u{1b}')
}

#[test]
fn no_color_and_dumb_terminals_get_plain_ascii_unless_color_always() {
    let s = sandbox("org: acme\nenv.test: [K]\n");
    s.init();
    s.set("K", "test", "v");
    let run_pty = |extra_env: &[(&str, &str)], args: &[&str]| {
        let mut c = pty_cmd(&s, args);
        c.env_remove("NO_COLOR");
        for (k, v) in extra_env {
            c.env(k, v);
        }
        let mut p = spawn_command(c, Some(10_000)).unwrap();
        // rexpect reads the pty byte by byte as Latin-1: put the UTF-8 back together
        let bytes: Vec<u8> = p.exp_eof().unwrap().chars().map(|c| c as u8).collect();
        String::from_utf8(bytes).unwrap()
    };
    let get = ["get", "K", "--env", "test"];
    // a terminal: colour, emoji, box drawing
    let out = run_pty(&[], &get);
    assert!(
        out.contains("└─") && out.contains('🔐') && out.contains("\u{1b}["),
        "{out:?}"
    );
    // NO_COLOR on a terminal: plain ASCII
    let out = run_pty(&[("NO_COLOR", "1")], &get);
    assert!(is_plain(&out), "NO_COLOR: {out:?}");
    assert!(
        out.contains("`- ") && out.contains("status: locked"),
        "{out:?}"
    );
    // TERM=dumb: plain ASCII
    let out = run_pty(&[("TERM", "dumb")], &get);
    assert!(is_plain(&out), "TERM=dumb: {out:?}");
    // --color never on a terminal
    let mut args = get.to_vec();
    args.push("--color=never");
    let out = run_pty(&[], &args);
    assert!(is_plain(&out), "--color never: {out:?}");
    // not a terminal: plain ASCII, errors included
    let o = s.cmd().env_remove("NO_COLOR").args(get).output().unwrap();
    assert!(is_plain(&stdout(&o)), "{}", stdout(&o));
    let o = s
        .cmd()
        .env_remove("NO_COLOR")
        .args(["get", "K", "--env", "nope"])
        .output()
        .unwrap();
    assert!(
        is_plain(&stderr(&o)) && stderr(&o).contains("`- error:"),
        "{}",
        stderr(&o)
    );
    // --color always in a pipe: colour and emoji
    let o = s
        .cmd()
        .args(["--color", "always", "get", "K", "--env", "test"])
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains("🔐 keyrack get") && stdout(&o).contains("\u{1b}[33m"),
        "{}",
        stdout(&o)
    );
}

// ---------------------------------------------------------------------------------------------
// prompts: Ctrl-C says cancelled (130); an empty answer is refused in the prompt

fn exit_status(p: &rexpect::session::PtySession) -> i32 {
    match p.process().wait().unwrap() {
        rexpect::process::WaitStatus::Exited(_, code) => code,
        other => panic!("{other:?}"),
    }
}

#[test]
fn ctrl_c_in_a_prompt_exits_130_and_says_cancelled() {
    let s = sandbox("org: acme\nenv.test: []\n");
    s.init();
    let mut p = spawn_command(
        pty_cmd(&s, &["set", "--key", "TYPED", "--env", "test"]),
        Some(20_000),
    )
    .unwrap();
    p.exp_string("TYPED:").unwrap();
    p.send_control('c').unwrap();
    let out = p.exp_eof().unwrap();
    assert!(out.contains("cancelled"), "{out}");
    assert!(!out.contains("needs a terminal"), "{out}");
    assert_eq!(exit_status(&p), 130);
    assert!(!s.read_manifest().contains("TYPED"), "nothing was declared");

    // the passphrase prompt of an SSH key, on /dev/tty
    let ssh = s.home.join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    keyrack_testkit::ssh_keygen(&ssh.join("id_ed25519"), "ed25519", "pw");
    let mut p = spawn_command(
        pty_cmd(
            &s,
            &[
                "--identity",
                ssh.join("id_ed25519").to_str().unwrap(),
                "list",
            ],
        ),
        Some(20_000),
    )
    .unwrap();
    p.exp_string("passphrase for").unwrap();
    p.send_control('c').unwrap();
    let out = p.exp_eof().unwrap();
    assert!(out.contains("cancelled"), "{out}");
    assert_eq!(exit_status(&p), 130);
}

#[test]
fn an_empty_answer_is_refused_before_it_is_accepted() {
    let s = sandbox("org: acme\nenv.test: []\n");
    s.init();
    let mut p = spawn_command(
        pty_cmd(&s, &["set", "--key", "TYPED", "--env", "test"]),
        Some(20_000),
    )
    .unwrap();
    p.exp_string("TYPED:").unwrap();
    p.send_line("").unwrap();
    let before = p.exp_string("the value is empty").unwrap();
    assert!(
        !before.contains("********"),
        "an empty answer is never shown as accepted: {before:?}"
    );
    p.send_line("typed-value").unwrap();
    let out = p.exp_eof().unwrap();
    assert!(out.contains("round trip"), "{out}");
    assert_eq!(exit_status(&p), 0);
}

// ---------------------------------------------------------------------------------------------
// --help lists the real choices

#[test]
fn help_lists_every_vault_mech_driver_and_shell() {
    let s = sandbox("org: acme\nenv.test: []\n");
    let help = |args: &[&str]| stdout(&s.run(args, ""));
    let set = help(&["set", "--help"]);
    for v in [
        "os.secure",
        "os.direct",
        "os.daemon",
        "os.envvar",
        "aws.config",
        "1password",
        "os.keychain",
        "--op-vault",
        "replica",
        "reference",
        "session",
        "aws.sso",
        "github.app",
        "--app-id",
        "--installation-id",
        "--private-key",
        "native",
        "aws-cli",
    ] {
        assert!(set.contains(v), "set --help lists {v}:\n{set}");
    }
    let source = help(&["source", "--help"]);
    assert!(
        source.contains("[possible values: bash, zsh, fish]"),
        "{source}"
    );
    let unlock = help(&["unlock", "--help"]);
    assert!(
        unlock.contains("native") && unlock.contains("aws-cli"),
        "{unlock}"
    );
    // and the aliases of the spec still parse
    let o = s.run(
        &[
            "set",
            "--key",
            "K",
            "--env",
            "test",
            "--vault",
            "aws.iam.sso",
            "--mech",
            "nope",
        ],
        "",
    );
    assert!(
        stderr(&o).contains("invalid value 'nope' for '--mech"),
        "{}",
        stderr(&o)
    );
    let o = s.run(
        &[
            "set",
            "--key",
            "K",
            "--env",
            "test",
            "--mech",
            "PERMANENT_VIA_REPLICA",
            "--max-duration",
            "0s",
        ],
        "",
    );
    assert!(
        stderr(&o).contains("invalid value '0s' for '--max-duration"),
        "{}",
        stderr(&o)
    );
}

// ---------------------------------------------------------------------------------------------
// aws logout, twice

#[test]
fn aws_logout_twice_says_one_thing_each_time() {
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
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    s.env("BROWSER", script.to_str().unwrap());
    s.manifest("org: acme\nenv.test: []\n");
    s.init();
    let o = s.run(
        &[
            "set",
            "--key",
            "AWS_PROFILE",
            "--env",
            "test",
            "--sso-start-url",
            "https://d-1234567890.awsapps.com/start",
            "--sso-region",
            "us-east-1",
            "--account-id",
            "123456789012",
            "--role-name",
            "AdministratorAccess",
            "--profile-name",
            "acme.test",
        ],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    s.cmd().args(["unlock", "--env", "test"]).assert().success();

    let first = s.run(&["aws", "logout", "--profile", "acme.test"], "");
    assert!(first.status.success(), "{}", stderr(&first));
    let first = stdout(&first);
    assert!(first.contains("signed out server-side"), "{first}");
    assert!(!first.contains("already signed out"), "{first}");

    let second = s.run(&["aws", "logout", "--profile", "acme.test"], "");
    assert!(second.status.success(), "{}", stderr(&second));
    let second = stdout(&second);
    assert!(second.contains("already signed out"), "{second}");
    assert!(
        !second.contains("removed") && !second.contains("signed out server-side"),
        "the second run does not claim to remove what was not there: {second}"
    );
    assert_eq!(fake.logouts(), 1);
}
