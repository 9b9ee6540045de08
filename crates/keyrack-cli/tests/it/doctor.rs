//! `keyrack doctor`: every line's ok and fail (or warn) case that a test can produce, through
//! the real binary; and the lost host manifest: doctor detects it, `init --recover` rebuilds it.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use keyrack_fake_aws::FakeAws;
use keyrack_testkit::{stderr, stdout, Sandbox};
use serde_json::Value;

fn sandbox() -> Sandbox {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.manifest("org: acme\nenv.test: [A, B, C]\nenv.prod: [P]\n");
    s
}

/// `keyrack --json doctor`: (exit code, report).
fn doctor(s: &Sandbox) -> (i32, Value) {
    s.json(&["doctor"])
}

/// The checks with this id.
fn checks<'a>(v: &'a Value, id: &str) -> Vec<&'a Value> {
    v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["check"] == id)
        .collect()
}

/// The one check with this id.
fn check<'a>(v: &'a Value, id: &str) -> &'a Value {
    let found = checks(v, id);
    assert_eq!(found.len(), 1, "one {id} check in {v:#}");
    found[0]
}

fn assert_status(c: &Value, status: &str) {
    assert_eq!(c["status"], status, "{c:#}");
    if status == "ok" {
        assert!(c["fix"].is_null(), "ok has no fix: {c:#}");
    }
}

#[test]
fn a_healthy_setup_is_all_ok_and_exits_0() {
    let s = sandbox();
    s.init();
    for k in ["A", "B", "C"] {
        s.set(k, "test", &format!("value-{k}"));
    }
    s.set("P", "prod", "value-p");
    s.cmd().args(["unlock", "--env", "test"]).assert().success();
    let (code, v) = doctor(&s);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["status"], "ok", "{v:#}");
    let id = check(&v, "identity");
    assert_status(id, "ok");
    assert_eq!(id["data"]["mode"], "0600");
    assert!(id["message"]
        .as_str()
        .unwrap()
        .contains("x25519, mode 0600"));
    let host = check(&v, "host_manifest");
    assert_status(host, "ok");
    assert_eq!(host["data"]["keys"], 4);
    let r = check(&v, "recipients");
    assert_status(r, "ok");
    assert_eq!(r["data"]["count"], 1);
    assert_eq!(r["data"]["labels"][0], "tester@".to_string() + &hostname());
    assert_status(check(&v, "vault_files"), "ok");
    assert_status(check(&v, "runtime_dir"), "ok");
    let d = check(&v, "daemon");
    assert_status(d, "ok");
    assert_eq!(d["data"]["running"], true);
    assert_eq!(
        d["data"]["socket"].as_str(),
        s.socket().to_str(),
        "which socket"
    );
    assert_eq!(d["data"]["grants"], 3);
    let repo = check(&v, "repo_manifest");
    assert_status(repo, "ok");
    assert!(repo["message"]
        .as_str()
        .unwrap()
        .contains("org acme, envs prod (1), test (3)"));
    for k in checks(&v, "keys") {
        assert_status(k, "ok");
    }
    assert_eq!(checks(&v, "keys").len(), 2);
    assert_status(check(&v, "aws_config"), "ok");
    assert_status(check(&v, "clock"), "ok");

    // human output: one line per check, the counts last
    let o = s.run(&["doctor"], "");
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(
        out.starts_with("keyrack doctor\n"),
        "plain ASCII in a pipe: {out}"
    );
    assert!(out.contains("ok   identity: "), "{out}");
    assert!(out.contains("ok   daemon: running: pid "), "{out}");
    assert!(out.contains(" ok, 0 warn, 0 fail"), "{out}");
    assert_eq!(stderr(&o), "");
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn before_init_identity_and_host_manifest_fail_with_init() {
    let s = sandbox();
    let (code, v) = doctor(&s);
    assert_eq!(code, 2, "{v:#}");
    assert_eq!(v["status"], "fail");
    let id = check(&v, "identity");
    assert_status(id, "fail");
    assert_eq!(id["fix"], "keyrack init");
    let host = check(&v, "host_manifest");
    assert_status(host, "fail");
    assert_eq!(host["fix"], "keyrack init");
    assert!(host["message"]
        .as_str()
        .unwrap()
        .contains("keyrack is not initialised"));
    // nothing is set: every declared key is missing, and fill is the fix
    let test = checks(&v, "keys")
        .into_iter()
        .find(|c| c["data"]["env"] == "test")
        .unwrap();
    assert_status(test, "warn");
    assert_eq!(test["fix"], "keyrack fill --env test");
    assert_eq!(test["data"]["missing"], serde_json::json!(["A", "B", "C"]));
    // human: the fix lines are there and the exit code is 2
    let o = s.run(&["doctor"], "");
    assert_eq!(o.status.code(), Some(2));
    assert!(stdout(&o).contains("fail identity: no identity found"));
    assert!(stdout(&o).contains("fix: keyrack init"));
}

#[test]
fn identity_readable_by_others_fails_with_chmod() {
    let s = sandbox();
    s.init();
    std::fs::set_permissions(s.identity(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, v) = doctor(&s);
    assert_eq!(code, 2);
    let id = check(&v, "identity");
    assert_status(id, "fail");
    assert_eq!(id["data"]["mode"], "0644");
    assert!(id["message"].as_str().unwrap().contains("UNPROTECTED"));
    assert_eq!(
        id["fix"],
        format!("chmod 600 {}", s.identity().display()),
        "{id:#}"
    );
    // the host manifest cannot be checked without it: said, not guessed
    let host = check(&v, "host_manifest");
    assert_status(host, "warn");
    assert!(host["message"].as_str().unwrap().contains("not checked"));
}

#[test]
fn host_manifest_of_another_identity_fails() {
    let s = sandbox();
    s.init();
    let other = s.root.join("other.txt");
    crate::support::age::keygen(&other);
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, v) = s.json(&["--identity", other.to_str().unwrap(), "doctor"]);
    assert_eq!(code, 2);
    assert_status(check(&v, "identity"), "ok");
    let host = check(&v, "host_manifest");
    assert_status(host, "fail");
    assert!(host["message"]
        .as_str()
        .unwrap()
        .contains("not encrypted to your identity"));
    assert!(host["fix"].as_str().unwrap().contains("recipient add"));
}

#[test]
fn recipients_are_counted_and_labelled_and_a_missing_self_is_flagged() {
    let s = sandbox();
    s.init();
    let other = s.root.join("other.txt");
    let o = Command::new("age-keygen")
        .arg("-o")
        .arg(&other)
        .output()
        .unwrap();
    let pubkey = String::from_utf8_lossy(&o.stderr)
        .trim()
        .trim_start_matches("Public key: ")
        .to_string();
    s.cmd()
        .args(["recipient", "add", "--pubkey", &pubkey, "--label", "ci"])
        .assert()
        .success();
    let (_, v) = doctor(&s);
    let r = check(&v, "recipients");
    assert_status(r, "ok");
    assert_eq!(r["data"]["count"], 2);
    assert!(
        r["message"].as_str().unwrap().contains("ci (x25519)"),
        "{r:#}"
    );

    // a host manifest that lists only the other recipient (edited by hand) still decrypts for us,
    // but what keyrack writes next would not: warned, with the command that adds us back
    let host = s.keyrack_home.join("host.age");
    let plain = Command::new("age")
        .args(["-d", "-i"])
        .arg(s.identity())
        .arg(&host)
        .output()
        .unwrap();
    assert!(plain.status.success());
    let mut json: Value = serde_json::from_slice(&plain.stdout).unwrap();
    let recipients = json["recipients"].as_array_mut().unwrap();
    recipients.retain(|r| r["label"] == "ci");
    let edited = s.root.join("host.json");
    std::fs::write(&edited, serde_json::to_vec(&json).unwrap()).unwrap();
    let me = std::fs::read_to_string(s.identity()).unwrap();
    let mine = me
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_string();
    let o = Command::new("age")
        .args(["-a", "-r", &mine, "-o"])
        .arg(&host)
        .arg(&edited)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (code, v) = doctor(&s);
    assert_eq!(code, 0, "a warning is not a failure");
    let r = check(&v, "recipients");
    assert_status(r, "warn");
    assert!(r["fix"]
        .as_str()
        .unwrap()
        .starts_with(&format!("keyrack recipient add --pubkey \"{mine}\"")));
}

#[test]
fn vault_files_lost_copies_and_strays_are_warned() {
    let s = sandbox();
    s.init();
    s.set("A", "test", "a");
    s.set("B", "test", "b");
    let files = s.secure_files();
    std::fs::remove_file(&files[0]).unwrap();
    let (_, v) = doctor(&s);
    let f = check(&v, "vault_files");
    assert_status(f, "warn");
    let lost = f["data"]["lost"][0].as_str().unwrap().to_string();
    let key = lost.rsplit('.').next().unwrap();
    assert_eq!(f["fix"], format!("keyrack set --key {key} --env test"));

    let s = sandbox();
    s.init();
    s.set("A", "test", "a");
    std::fs::write(
        s.keyrack_home.join("inventory/default/0123456789abcdef"),
        "",
    )
    .unwrap();
    let (_, v) = doctor(&s);
    let f = check(&v, "vault_files");
    assert_status(f, "warn");
    assert_eq!(f["data"]["strayMarkers"], 1);
    assert_eq!(f["fix"], "keyrack init --recover");
}

#[test]
fn runtime_dir_that_others_can_enter_or_a_symlink_fails_and_the_daemon_is_not_contacted() {
    let s = sandbox();
    s.init();
    s.set("A", "test", "a");
    s.cmd()
        .args(["unlock", "--env", "test", "--key", "A"])
        .assert()
        .success();
    let dir = s.runtime.join("keyrack");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, v) = doctor(&s);
    assert_eq!(code, 2);
    let r = check(&v, "runtime_dir");
    assert_status(r, "fail");
    assert_eq!(r["data"]["mode"], "0755");
    assert!(
        r["message"].as_str().unwrap().contains("has mode 755"),
        "{r:#}"
    );
    assert!(
        r["fix"]
            .as_str()
            .unwrap()
            .starts_with(&format!("rm -rf '{}'", dir.display())),
        "{r:#}"
    );
    let d = check(&v, "daemon");
    assert_eq!(d["status"], "warn");
    assert!(d["message"].as_str().unwrap().contains("not contacted"));
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    s.cmd().args(["daemon", "prune"]).assert().success();

    let s = sandbox();
    s.init();
    let elsewhere = s.root.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, s.runtime.join("keyrack")).unwrap();
    let (_, v) = doctor(&s);
    let r = check(&v, "runtime_dir");
    assert_status(r, "fail");
    assert_eq!(r["data"]["symlink"], true);
    assert!(r["message"].as_str().unwrap().contains("symbolic link"));
}

#[test]
fn daemon_not_running_is_ok_and_a_garbage_answer_fails() {
    let s = sandbox();
    s.init();
    let (_, v) = doctor(&s);
    let d = check(&v, "daemon");
    assert_status(d, "ok");
    assert_eq!(d["data"]["running"], false);
    assert!(d["message"].as_str().unwrap().contains("not running"));

    // something else answers on the daemon's socket
    let sock = s.socket();
    let dir = sock.parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut server = Command::new("python3")
        .arg("-c")
        .arg(
            "import socket,sys\n\
             s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8)\n\
             print('ready', flush=True)\n\
             for _ in range(8):\n\
             \x20   c,_=s.accept(); c.recv(65536); c.sendall(b'garbage'); c.close()\n",
        )
        .arg(&sock)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    let (code, v) = doctor(&s);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(code, 2, "{v:#}");
    let d = check(&v, "daemon");
    assert_status(d, "fail");
    assert!(
        d["message"].as_str().unwrap().contains("unreadable answer"),
        "{d:#}"
    );
    assert!(d["fix"].as_str().unwrap().contains("keyrack daemon prune"));
}

#[test]
fn repo_manifest_missing_warns_and_invalid_fails_with_its_line() {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.init();
    let (code, v) = doctor(&s);
    assert_eq!(code, 0);
    let r = check(&v, "repo_manifest");
    assert_status(r, "warn");
    assert!(r["fix"].as_str().unwrap().starts_with("keyrack init --org"));
    assert!(checks(&v, "keys").is_empty());

    s.manifest("org: acme\nenv.test:\n  - GOOD\n  - bad-name\n");
    let (code, v) = doctor(&s);
    assert_eq!(code, 2);
    let r = check(&v, "repo_manifest");
    assert_status(r, "fail");
    assert!(
        r["message"].as_str().unwrap().contains("keyrack.yml:4:"),
        "file:line: {r:#}"
    );
}

#[test]
fn keys_the_repo_declares_that_this_host_lacks_are_listed_per_env() {
    let s = sandbox();
    s.init();
    s.set("A", "test", "a");
    let (code, v) = doctor(&s);
    assert_eq!(code, 0);
    let by_env = |env: &str| {
        checks(&v, "keys")
            .into_iter()
            .find(|c| c["data"]["env"] == env)
            .unwrap()
            .clone()
    };
    let test = by_env("test");
    assert_status(&test, "warn");
    assert_eq!(test["data"]["missing"], serde_json::json!(["B", "C"]));
    assert!(test["message"]
        .as_str()
        .unwrap()
        .contains("2 of 3 declared key(s) not set on this host: B, C"));
    assert_eq!(test["fix"], "keyrack fill --env test");
    let prod = by_env("prod");
    assert_eq!(prod["fix"], "keyrack fill --env prod");
    s.set("B", "test", "b");
    s.set("C", "test", "c");
    let (_, v) = doctor(&s);
    let test = checks(&v, "keys")
        .into_iter()
        .find(|c| c["data"]["env"] == "test")
        .unwrap();
    assert_status(test, "ok");
}

#[test]
fn aws_config_file_env_is_honoured_and_a_broken_line_fails_with_its_number() {
    let s = sandbox();
    s.init();
    let cfg = s.root.join("aws-config");
    std::fs::write(
        &cfg,
        "[profile a]\nregion = eu-west-1\ns3 =\n  max_concurrent_requests = 4\n",
    )
    .unwrap();
    let run = |s: &Sandbox| {
        let o = s
            .cmd()
            .env("AWS_CONFIG_FILE", &cfg)
            .args(["--json", "doctor"])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        (o.status.code().unwrap(), v)
    };
    let (_, v) = run(&s);
    let a = check(&v, "aws_config");
    assert_status(a, "ok");
    assert_eq!(a["data"]["fromEnv"], true);
    assert_eq!(a["data"]["path"].as_str(), cfg.to_str());
    assert!(a["message"]
        .as_str()
        .unwrap()
        .contains("($AWS_CONFIG_FILE)"));

    std::fs::write(
        &cfg,
        "[profile a]\nregion = eu-west-1\n[profile b\nregion = x\n",
    )
    .unwrap();
    let (code, v) = run(&s);
    assert_eq!(code, 2);
    let a = check(&v, "aws_config");
    assert_status(a, "fail");
    assert_eq!(
        a["message"],
        format!(
            "{}:3: a section header without its closing ]",
            cfg.display()
        )
    );
    assert!(a["fix"].as_str().unwrap().starts_with("fix line 3 of"));
}

#[test]
fn clock_before_2024_fails() {
    if Command::new("faketime").arg("--version").output().is_err() {
        eprintln!("skipped: faketime is not installed (scripts/test.sh installs it)");
        return;
    }
    let s = sandbox();
    let o = Command::new("faketime")
        .arg("2020-01-01 00:00:00")
        .arg(s.bin())
        .args(["--json", "doctor"])
        .env_clear()
        .envs(s.vars())
        .current_dir(&s.repo)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let c = check(&v, "clock");
    assert_status(c, "fail");
    assert!(c["message"]
        .as_str()
        .unwrap()
        .contains("2020-01-01T00:00:00Z"));
    assert_eq!(o.status.code(), Some(2));
}

/// A world with the loopback fake of AWS, a stand-in browser and AWS_PROFILE set.
fn aws_world() -> (Sandbox, FakeAws) {
    crate::support::aws::signed_in()
}

#[test]
fn sso_session_expiry_is_shown_and_a_signed_out_session_or_missing_profile_is_flagged() {
    let (s, _fake) = aws_world();
    let (code, v) = doctor(&s);
    assert_eq!(code, 0, "{v:#}");
    let a = check(&v, "aws_config");
    assert_status(a, "ok");
    assert!(a["message"]
        .as_str()
        .unwrap()
        .contains("the 1 profile(s) keyrack uses resolve"));
    let sso = check(&v, "sso_session");
    assert_status(sso, "ok");
    assert_eq!(sso["data"]["session"], "acme");
    let expires = sso["data"]["expiresAt"].as_str().unwrap();
    assert!(
        expires.len() == 20 && expires.ends_with('Z') && expires.as_bytes()[10] == b'T',
        "RFC 3339: {expires}"
    );
    assert!(sso["message"]
        .as_str()
        .unwrap()
        .contains("signed in, token expires"));
    assert_eq!(sso["data"]["keys"][0], "acme.test.AWS_PROFILE");

    // signed out: the next unlock needs the browser, and doctor says so with the command
    s.cmd()
        .args(["aws", "logout", "--profile", "acme.test"])
        .assert()
        .success();
    let (_, v) = doctor(&s);
    let sso = check(&v, "sso_session");
    assert_status(sso, "warn");
    assert_eq!(sso["fix"], "keyrack unlock --key AWS_PROFILE --env test");

    // the profile keyrack uses is gone from the config
    let cfg = s.home.join(".aws/config");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("[profile acme.test]", "[profile renamed]"),
    )
    .unwrap();
    let (code, v) = doctor(&s);
    assert_eq!(code, 2);
    let a = check(&v, "aws_config");
    assert_status(a, "fail");
    assert!(a["message"]
        .as_str()
        .unwrap()
        .starts_with("acme.test.AWS_PROFILE: profile 'acme.test' is not in"));
    assert!(a["fix"]
        .as_str()
        .unwrap()
        .contains("keyrack set --key AWS_PROFILE --env test"));
}

#[test]
fn lost_host_manifest_is_detected_and_init_recover_rebuilds_it() {
    let s = sandbox();
    s.init();
    s.set("A", "test", "value-a");
    s.set("P", "prod", "value-p");
    s.cmd()
        .args(["set", "--key", "B", "--env", "test", "--vault", "os.direct"])
        .write_stdin("value-b")
        .assert()
        .success();
    // a key only the inventory remembers (its vault copy is gone too)
    s.set("C", "test", "value-c");
    let c_file = s
        .secure_files()
        .into_iter()
        .find(|p| {
            let plain = Command::new("age")
                .args(["-d", "-i"])
                .arg(s.identity())
                .arg(p)
                .output()
                .unwrap();
            String::from_utf8_lossy(&plain.stdout).contains("acme.test.C")
        })
        .unwrap();
    std::fs::remove_file(c_file).unwrap();
    std::fs::remove_file(s.keyrack_home.join("host.age")).unwrap();

    // before: every command that needs it says what happened and the fix, init included
    let (code, v) = doctor(&s);
    assert_eq!(code, 2);
    let host = check(&v, "host_manifest");
    assert_status(host, "fail");
    assert_eq!(host["fix"], "keyrack init --recover");
    assert_eq!(host["data"]["lost"], true);
    assert_eq!(host["data"]["evidence"]["secureFiles"], 2);
    assert_eq!(host["data"]["evidence"]["directValues"], 1);
    assert_eq!(host["data"]["evidence"]["markers"], 4);
    for args in [&["list"][..], &["init"], &["unlock", "--env", "test"]] {
        let o = s.run(args, "");
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("is missing, but 2 os.secure files, 1 os.direct value and 4 inventory markers remain")
                && stderr(&o).contains("fix: keyrack init --recover"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    assert!(
        !s.keyrack_home.join("host.age").exists(),
        "init created nothing"
    );

    let o = s.run(&["init", "--recover"], "");
    assert_eq!(
        o.status.code(),
        Some(2),
        "C could not be recovered: {}",
        stdout(&o)
    );
    let out = stdout(&o);
    assert!(out.contains("status: rebuilt"), "{out}");
    assert!(out.contains("recovered: 3"), "{out}");
    assert!(
        out.contains("acme.test.A (os.secure, from its os.secure file's header)"),
        "{out}"
    );
    assert!(
        out.contains("acme.test.B (os.direct, from os.direct's direct.json)"),
        "{out}"
    );
    assert!(out.contains("acme.prod.P (os.secure"), "{out}");
    assert!(out.contains("not recovered: 1"), "{out}");
    assert!(out.contains("acme.test.C"), "named from keyrack.yml: {out}");
    assert!(out.contains("fix: keyrack set --key C --env test"), "{out}");

    s.cmd().args(["unlock", "--env", "test"]).assert().code(2); // C: absent, its own row
    assert_eq!(s.get_value("A", "test").1, "value-a");
    assert_eq!(s.get_value("B", "test").1, "value-b");
    s.cmd().args(["unlock", "--env", "prod"]).assert().success();
    assert_eq!(s.get_value("P", "prod").1, "value-p");
    let (code, v) = doctor(&s);
    assert_status(check(&v, "host_manifest"), "ok");
    assert_status(check(&v, "vault_files"), "ok");
    assert_eq!(code, 0, "{v:#}");
    // C's marker went with the report: get says absent, as unlock does
    let o = s.run(&["get", "--key", "C", "--env", "test"], "");
    assert!(stdout(&o).contains("absent"), "{}", stdout(&o));

    // running it again changes nothing
    let (code, v) = s.json(&["init", "--recover"]);
    assert_eq!(code, 0);
    assert_eq!(v["created"], false);
    assert_eq!(v["kept"], 3);
    assert_eq!(v["recovered"], serde_json::json!([]));
}

#[test]
fn recover_names_an_aws_profile_it_cannot_rebuild() {
    let (s, _fake) = aws_world();
    s.set("A", "test", "a"); // (A is not declared: set adds it)
    s.cmd().args(["daemon", "prune"]).assert().success();
    std::fs::remove_file(s.keyrack_home.join("host.age")).unwrap();
    let (code, v) = s.json(&["init", "--recover"]);
    assert_eq!(code, 2, "{v:#}");
    assert_eq!(v["recovered"][0]["slug"], "acme.test.A");
    let u = &v["unrecovered"][0];
    assert_eq!(u["what"], "acme.test.AWS_PROFILE");
    assert!(u["reason"]
        .as_str()
        .unwrap()
        .contains("the profile name is not recoverable"));
    assert_eq!(
        u["fix"],
        "keyrack set --key AWS_PROFILE --env test --exid <profile> (profiles in the AWS config: acme.test)"
    );
}

#[test]
fn recover_takes_an_unlocked_aws_profile_from_the_running_daemon() {
    let (s, _fake) = aws_world();
    s.cmd().args(["unlock", "--env", "test"]).assert().success();
    std::fs::remove_file(s.keyrack_home.join("host.age")).unwrap();
    let (code, v) = s.json(&["init", "--recover"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["recovered"][0]["slug"], "acme.test.AWS_PROFILE");
    assert_eq!(v["recovered"][0]["vault"], "aws.config");
    s.cmd().args(["relock"]).assert().success();
    s.cmd()
        .args(["unlock", "--env", "test", "--no-prompt"])
        .assert()
        .success();
    assert_eq!(s.get_value("AWS_PROFILE", "test").1, "acme.test");
}
