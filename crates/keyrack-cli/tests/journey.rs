//! The main job through the real binary and a real daemon:
//! init → set → unlock → get / source / exec → relock → get says locked.

use keyrack_testkit::{stderr, stdout, Sandbox};

fn sandbox() -> Sandbox {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.manifest("org: acme\nenv.test: []\nenv.prod: []\n");
    s.init();
    s
}

#[test]
fn full_journey() {
    let s = sandbox();
    s.set("XAI_API_KEY", "test", "xai-123\n");
    assert!(s.read_manifest().contains("env.test: [XAI_API_KEY]"));

    let (code, out, err) = s.get_value("XAI_API_KEY", "test");
    assert_eq!(code, 2, "locked before unlock: {out}{err}");
    assert!(err.contains("locked"), "{err}");
    assert!(
        err.contains("fix: keyrack unlock --key XAI_API_KEY --env test"),
        "{err}"
    );

    s.cmd().args(["unlock", "--env", "test"]).assert().success();
    let (code, out, _) = s.get_value("XAI_API_KEY", "test");
    assert_eq!(
        (code, out.as_str()),
        (0, "xai-123"),
        "value without trailing newline"
    );

    let o = s.run(&["source", "--env", "test"], "");
    assert_eq!(stdout(&o), "export XAI_API_KEY='xai-123'\n");

    let o = s.run(
        &[
            "exec",
            "--env",
            "test",
            "--",
            "sh",
            "-c",
            "test \"$XAI_API_KEY\" = xai-123 && exit 7",
        ],
        "",
    );
    assert_eq!(
        o.status.code(),
        Some(7),
        "exec returns the child's status: {}",
        stderr(&o)
    );

    let (code, v) = s.json(&["status"]);
    assert_eq!(code, 0);
    assert_eq!(v["keys"][0]["slug"], "acme.test.XAI_API_KEY");
    assert!(
        !v.to_string().contains("xai-123"),
        "status never shows secrets"
    );

    s.cmd().args(["relock"]).assert().success();
    let (code, _, err) = s.get_value("XAI_API_KEY", "test");
    assert_eq!(code, 2);
    assert!(err.contains("locked"), "{err}");
}

#[test]
fn ttl_expiry_turns_granted_into_locked() {
    let s = sandbox();
    s.set("K", "test", "v");
    s.cmd()
        .args(["unlock", "--env", "test", "--duration", "2s"])
        .assert()
        .success();
    assert_eq!(s.get_value("K", "test").0, 0);
    std::thread::sleep(std::time::Duration::from_millis(2600));
    let (code, _, err) = s.get_value("K", "test");
    assert_eq!(code, 2, "expired grant must not be served");
    assert!(err.contains("locked"), "{err}");
}

#[test]
fn max_duration_caps_the_grant() {
    let s = sandbox();
    s.cmd()
        .args(["set", "--key", "K", "--env", "test", "--max-duration", "1s"])
        .write_stdin("v")
        .assert()
        .success();
    s.cmd().args(["unlock", "--env", "test"]).assert().success();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(
        s.get_value("K", "test").0,
        2,
        "maxDuration 1s caps the default 9h"
    );
}

#[test]
fn relock_one_env_leaves_the_others() {
    let s = sandbox();
    s.set("A", "test", "a");
    s.set("B", "prod", "b");
    s.cmd().args(["unlock", "--env", "test"]).assert().success();
    s.cmd().args(["unlock", "--env", "prod"]).assert().success();
    s.cmd().args(["relock", "--env", "test"]).assert().success();
    assert_eq!(s.get_value("A", "test").0, 2);
    assert_eq!(s.get_value("B", "prod"), (0, "b".into(), String::new()));
}

#[test]
fn key_set_after_unlock_is_locked_until_unlocked_again() {
    let s = sandbox();
    s.set("A", "test", "a");
    s.cmd().args(["unlock", "--env", "test"]).assert().success();
    s.set("B", "test", "b");
    assert_eq!(s.get_value("B", "test").0, 2);
    // re-setting an unlocked key drops the stale grant: no old value is served
    s.set("A", "test", "a2");
    assert_eq!(s.get_value("A", "test").0, 2);
    s.cmd().args(["unlock", "--env", "test"]).assert().success();
    assert_eq!(s.get_value("A", "test").1, "a2");
    assert_eq!(s.get_value("B", "test").1, "b");
}

#[test]
fn unlock_reports_each_key_on_its_own_row() {
    let s = sandbox();
    s.manifest("org: acme\nenv.test: [GOOD, MISSING, BROKEN]\nenv.prod: []\n");
    s.set("GOOD", "test", "g");
    s.set("BROKEN", "test", "b");
    // damage BROKEN's vault file: that row errors, the batch goes on
    let slug_hash = |slug: &str| {
        use sha2::Digest;
        hex::encode(&sha2::Sha256::digest(slug.as_bytes())[..8])
    };
    let broken_file = s.keyrack_home.join(format!(
        "vault/os.secure/default/{}.age",
        slug_hash("acme.test.BROKEN")
    ));
    assert!(broken_file.is_file());
    std::fs::write(&broken_file, "not an age file").unwrap();

    let (code, v) = s.json(&["unlock", "--env", "test"]);
    assert_eq!(code, 2);
    let rows = v["keys"].as_array().unwrap();
    let status = |slug: &str| {
        rows.iter()
            .find(|r| r["slug"] == slug)
            .map(|r| r["status"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(status("acme.test.GOOD"), "granted");
    assert_eq!(status("acme.test.MISSING"), "absent");
    assert_eq!(status("acme.test.BROKEN"), "errored");
    let broken_row = rows
        .iter()
        .find(|r| r["slug"] == "acme.test.BROKEN")
        .unwrap();
    assert!(broken_row["fix"].as_str().unwrap().contains("keyrack set"));
    assert_eq!(s.get_value("GOOD", "test").1, "g");
}

#[test]
fn source_quotes_safely_for_each_shell() {
    let s = sandbox();
    let nasty = "it's a \"test\"\nline2 $HOME `x` \\ end";
    s.set("NASTY", "test", &format!("{nasty}\n"));
    s.cmd().args(["unlock", "--env", "test"]).assert().success();
    for (shell, prog) in [("bash", "bash"), ("fish", "fish")] {
        let o = s.run(&["source", "--env", "test", "--shell", shell], "");
        assert!(o.status.success());
        let script = stdout(&o);
        if which(prog) {
            let check = std::process::Command::new(prog)
                .arg("-c")
                .arg(format!("{script}\nprintf %s \"$NASTY\""))
                .output()
                .unwrap();
            assert_eq!(
                String::from_utf8_lossy(&check.stdout),
                nasty,
                "{shell} round trip of {script}"
            );
        }
    }
}

fn which(p: &str) -> bool {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {p}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn strict_source_prints_nothing_when_a_key_is_missing() {
    let s = sandbox();
    s.manifest("org: acme\nenv.test:\n  - A\n  - key: B\n    is-optional-if-has: B_FALLBACK\nenv.prod: []\n");
    s.set("A", "test", "a");
    s.cmd().args(["unlock", "--env", "test"]).assert().code(2); // B is absent: its own row
    let o = s.run(&["source", "--env", "test"], "");
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stdout(&o), "", "strict prints nothing at all");
    assert!(stderr(&o).contains("acme.test.B"));

    let o = s.run(&["source", "--env", "test", "--lenient"], "");
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "export A='a'\n");

    // is-optional-if-has waives B when B_FALLBACK is set
    let o = s
        .cmd()
        .args(["source", "--env", "test"])
        .env("B_FALLBACK", "1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "export A='a'\n");

    let o = s.run(&["exec", "--env", "test", "--", "true"], "");
    assert_eq!(o.status.code(), Some(2), "exec is strict too");
}

#[test]
fn env_all_fallback_keeps_the_true_slug() {
    let s = sandbox();
    s.manifest("org: acme\nenv.test: []\nenv.prod: []\nenv.all: [SHARED]\n");
    s.cmd()
        .args(["set", "--key", "SHARED", "--env", "all"])
        .write_stdin("shared-v")
        .assert()
        .success();
    s.cmd().args(["unlock", "--env", "prod"]).assert().success();
    let (code, v) = s.json(&["get", "--key", "SHARED", "--env", "prod"]);
    assert_eq!(code, 0);
    assert_eq!(v["keys"][0]["value"], "shared-v");
    assert_eq!(v["keys"][0]["slug"], "acme.prod.SHARED");
    assert_eq!(v["keys"][0]["grantedBy"], "acme.all.SHARED");
}

#[test]
fn machine_wide_and_sudo_keys() {
    let s = sandbox();
    s.cmd()
        .args(["set", "--key", "GLOBAL_TOKEN", "--org", "@all"])
        .write_stdin("g")
        .assert()
        .success();
    s.cmd()
        .args(["set", "--key", "ROOT_PW", "--env", "sudo"])
        .write_stdin("r")
        .assert()
        .success();
    let manifest = s.read_manifest();
    assert!(
        !manifest.contains("GLOBAL_TOKEN") && !manifest.contains("ROOT_PW"),
        "{manifest}"
    );

    let o = s.run(&["unlock", "--env", "sudo"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--key"), "{}", stderr(&o));

    s.cmd().args(["unlock", "--env", "test"]).assert().success();
    let o = s.run(
        &["get", "--key", "GLOBAL_TOKEN", "--org", "@all", "--value"],
        "",
    );
    assert_eq!(stdout(&o), "g");

    let (code, v) = s.json(&["unlock", "--env", "sudo", "--key", "ROOT_PW"]);
    assert_eq!(code, 0, "{v}");
    let left = v["keys"][0]["expiresAt"]
        .as_str()
        .expect("RFC 3339 expiresAt")
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond() as u64
        - jiff::Timestamp::now().as_millisecond() as u64;
    assert!(
        left <= 30 * 60 * 1000 && left > 29 * 60 * 1000,
        "sudo default TTL is 30m: {left}"
    );
    assert_eq!(s.get_value("ROOT_PW", "sudo").1, "r");
}

#[test]
fn get_unlock_flag_unlocks_only_what_is_locked() {
    let s = sandbox();
    s.set("A", "test", "a");
    let o = s.run(
        &["get", "--key", "A", "--env", "test", "--value", "--unlock"],
        "",
    );
    assert_eq!(stdout(&o), "a", "{}", stderr(&o));
}

#[test]
fn get_for_repo_lists_every_declared_key() {
    let s = sandbox();
    s.manifest("org: acme\nenv.test: [A, B]\nenv.prod: []\n");
    s.set("A", "test", "a");
    s.cmd().args(["unlock", "--env", "test"]).assert().code(2);
    let (code, v) = s.json(&["get", "--for", "repo", "--env", "test"]);
    assert_eq!(code, 2);
    let statuses: Vec<&str> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["granted", "absent"]);
}

#[test]
fn os_daemon_keys_live_in_memory_only() {
    let s = sandbox();
    s.cmd()
        .args([
            "set",
            "--key",
            "SESSION_TOKEN",
            "--env",
            "test",
            "--vault",
            "os.daemon",
        ])
        .write_stdin("mem")
        .assert()
        .success();
    assert!(s.secure_files().is_empty(), "nothing on disk");
    assert_eq!(
        s.get_value("SESSION_TOKEN", "test").1,
        "mem",
        "set sends it straight to the daemon"
    );
    s.cmd().args(["daemon", "prune"]).assert().success();
    let (code, v) = s.json(&["unlock", "--env", "test"]);
    assert_eq!(code, 2);
    assert_eq!(v["keys"][0]["status"], "lost", "{v}");
}
