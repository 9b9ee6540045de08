//! set / get / list / del, the allowlist, the firewall, recipients, owners, manifest editing.

use std::process::Command;

use keyrack_testkit::{ssh_keygen, stderr, stdout, Sandbox};

fn sandbox() -> Sandbox {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.manifest("org: acme\nenv.test: []\nenv.prod: []\n");
    s.init();
    s
}

#[test]
fn init_is_idempotent_and_creates_a_manifest_with_org() {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    let o = s.run(&["init", "--org", "acme"], "");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("(generated)"));
    assert!(s.read_manifest().contains("org: acme"));
    let before = std::fs::read(s.keyrack_home.join("host.age")).unwrap();
    let (code, v) = s.json(&["init", "--org", "acme"]);
    assert_eq!(code, 0);
    assert_eq!(v["created"], false);
    assert_eq!(v["identityGenerated"], false);
    assert_eq!(
        before,
        std::fs::read(s.keyrack_home.join("host.age")).unwrap(),
        "idempotent: untouched"
    );
}

#[test]
fn files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let s = sandbox();
    s.set("K", "test", "v");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&s.keyrack_home), 0o700);
    assert_eq!(mode(&s.keyrack_home.join("host.age")), 0o600);
    assert_eq!(mode(&s.identity()), 0o600);
    for f in s.secure_files() {
        assert_eq!(mode(&f), 0o600);
        assert_eq!(mode(f.parent().unwrap()), 0o700);
    }
    let armored = std::fs::read_to_string(s.keyrack_home.join("host.age")).unwrap();
    assert!(armored.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
    // file names are 16 hex digits of sha256(slug): they never reveal key names
    for f in s.secure_files() {
        let name = f.file_name().unwrap().to_str().unwrap().to_string();
        let stem = name.strip_suffix(".age").unwrap();
        assert_eq!(stem.len(), 16);
        assert!(stem.chars().all(|c| c.is_ascii_hexdigit()), "{name}");
    }
}

#[test]
fn allowlist_answers_the_same_whether_or_not_the_host_has_the_key() {
    let s = sandbox();
    s.set("HIDDEN", "test", "secret");
    // take it out of the repo manifest: the host still has it
    s.manifest("org: acme\nenv.test: []\nenv.prod: []\n");
    s.cmd().args(["unlock", "--env", "test"]).assert().success();
    let a = s.run(&["get", "--key", "HIDDEN", "--env", "test"], "");
    let b = s.run(&["get", "--key", "NEVERSET", "--env", "test"], "");
    assert_eq!(a.status.code(), Some(2));
    assert_eq!(b.status.code(), Some(2));
    assert_eq!(
        stdout(&a).replace("HIDDEN", "X"),
        stdout(&b).replace("NEVERSET", "X")
    );
    assert!(!stdout(&a).contains("secret"));
}

#[test]
fn firewall_blocks_long_lived_tokens_unless_allowed() {
    let s = sandbox();
    // set refuses it without the flag, names the pattern and the flag
    let o = s.run(
        &["set", "--key", "GH_TOKEN", "--env", "test"],
        "ghp_0123456789abcdefghijklmnopqrstuvwxyz",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("ghp_") && stderr(&o).contains("--allow-dangerous"),
        "{}",
        stderr(&o)
    );
    s.cmd()
        .args([
            "set",
            "--key",
            "GH_TOKEN",
            "--env",
            "test",
            "--allow-dangerous",
        ])
        .write_stdin("ghp_0123456789abcdefghijklmnopqrstuvwxyz")
        .assert()
        .success();
    // unlock says what every read path will do: blocked
    let o = s.run(&["unlock", "--env", "test"], "");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stdout(&o).contains("blocked") && stdout(&o).contains("ghp_"),
        "{}",
        stdout(&o)
    );
    let o = s.run(
        &["get", "--key", "GH_TOKEN", "--env", "test", "--value"],
        "",
    );
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).contains("blocked") && stderr(&o).contains("ghp_"),
        "{}",
        stderr(&o)
    );
    let o = s.run(
        &[
            "get",
            "--key",
            "GH_TOKEN",
            "--env",
            "test",
            "--value",
            "--allow-dangerous",
        ],
        "",
    );
    assert_eq!(stdout(&o), "ghp_0123456789abcdefghijklmnopqrstuvwxyz");
    // the env-var path is guarded too
    let o = s
        .cmd()
        .args([
            "get", "--key", "AWS_KEY", "--env", "test", "--org", "@all", "--json",
        ])
        .env("AWS_KEY", "AKIAIOSFODNN7EXAMPLE")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["keys"][0]["status"], "blocked");
    assert!(v["keys"][0]["reason"].as_str().unwrap().contains("AKIA"));
    assert!(v["keys"][0].get("value").is_none());
}

#[test]
fn process_env_is_the_ci_path() {
    let s = sandbox();
    s.manifest("org: acme\nenv.test: [CI_TOKEN]\nenv.prod: []\n");
    let o = s
        .cmd()
        .args(["get", "--key", "CI_TOKEN", "--value"])
        .env("CI_TOKEN", "from-ci")
        .output()
        .unwrap();
    assert_eq!(stdout(&o), "from-ci", "{}", stderr(&o));
    let o = s
        .cmd()
        .args(["--json", "get", "--key", "CI_TOKEN"])
        .env("CI_TOKEN", "from-ci")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["keys"][0]["vault"], "os.envvar");
    // os.envvar stores nothing
    let o = s.run(
        &[
            "set",
            "--key",
            "CI_TOKEN",
            "--env",
            "test",
            "--vault",
            "os.envvar",
        ],
        "v",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("fix:"), "{}", stderr(&o));
}

#[test]
fn env_is_inferred_only_when_unambiguous() {
    let s = sandbox();
    let o = s.run(&["set", "--key", "NEWKEY"], "v");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("fix: pass one of: --env"),
        "{}",
        stderr(&o)
    );
    s.set("ONLY_TEST", "test", "v");
    let o = s.run(&["set", "--key", "ONLY_TEST"], "v2");
    assert!(o.status.success(), "declared in one env: {}", stderr(&o));
    assert!(stdout(&o).contains("acme.test.ONLY_TEST"));
}

#[test]
fn set_and_del_keep_every_other_byte_of_the_manifest() {
    let s = sandbox();
    let original = "# acme keys\norg: acme # the org\n\nenv.test:\n  # llm\n  - EXISTING # keep me\n  - key: AWS_PROFILE\n    is-optional-if-has: AWS_ACCESS_KEY_ID\n\nenv.prod: [] # later\n";
    s.manifest(original);
    s.set("NEW_KEY", "test", "v");
    let after_set = s.read_manifest();
    assert_eq!(
        after_set,
        original.replace(
            "    is-optional-if-has: AWS_ACCESS_KEY_ID\n",
            "    is-optional-if-has: AWS_ACCESS_KEY_ID\n  - NEW_KEY\n"
        )
    );
    s.cmd()
        .args([
            "del",
            "--key",
            "NEW_KEY",
            "--env",
            "test",
            "--from-manifest",
        ])
        .assert()
        .success();
    assert_eq!(s.read_manifest(), original);
    s.set("P", "prod", "v");
    assert!(s.read_manifest().contains("env.prod: [P] # later\n"));
}

#[test]
fn del_removes_everything_and_refuses_unknown_keys() {
    let s = sandbox();
    s.set("K", "test", "v");
    s.cmd().args(["unlock", "--env", "test"]).assert().success();
    let (code, v) = s.json(&["del", "--key", "K", "--env", "test"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["secretDestroyed"], true);
    assert_eq!(v["grantDropped"], true);
    assert!(s.secure_files().is_empty());
    assert_eq!(
        std::fs::read_dir(s.keyrack_home.join("inventory/default"))
            .unwrap()
            .count(),
        0
    );
    let (code, v) = s.json(&["list"]);
    assert_eq!(code, 0);
    assert_eq!(v["keys"].as_array().unwrap().len(), 0);
    assert_eq!(s.get_value("K", "test").0, 2);
    let o = s.run(&["del", "--key", "NOPE", "--env", "test"], "");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("fix: see what is set with: keyrack list"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn list_shows_no_secrets() {
    let s = sandbox();
    s.set("A", "test", "very-secret-value");
    s.cmd()
        .args(["set", "--key", "B", "--env", "prod", "--vault", "os.direct"])
        .write_stdin("plain-value")
        .assert()
        .success();
    let o = s.run(&["list"], "");
    let out = stdout(&o);
    assert!(
        out.contains("acme.test.A") && out.contains("acme.prod.B") && out.contains("os.direct")
    );
    assert!(!out.contains("very-secret-value") && !out.contains("plain-value"));
    let (_, v) = s.json(&["list"]);
    assert!(!v.to_string().contains("secret-value"));
}

#[test]
fn os_direct_round_trip_and_mode() {
    use std::os::unix::fs::PermissionsExt;
    let s = sandbox();
    s.cmd()
        .args(["set", "--key", "D", "--env", "test", "--vault", "os.direct"])
        .write_stdin("direct-v")
        .assert()
        .success();
    let f = s.keyrack_home.join("vault/os.direct/default/direct.json");
    assert_eq!(
        std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
        0o600
    );
    s.cmd().args(["unlock", "--env", "test"]).assert().success();
    assert_eq!(s.get_value("D", "test").1, "direct-v");
    // moving the key to os.secure removes the plaintext copy
    s.set("D", "test", "secure-v");
    assert!(!std::fs::read_to_string(&f).unwrap().contains("direct-v"));
}

fn age_decrypts(identity: &std::path::Path, file: &std::path::Path) -> Option<String> {
    let o = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(identity)
        .arg(file)
        .output()
        .unwrap();
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

#[test]
fn recipient_changes_reencrypt_every_secret_file() {
    let s = sandbox();
    s.set("A", "test", "a-value");
    s.set("B", "prod", "b-value");
    let laptop = s.root.join("laptop");
    ssh_keygen(&laptop, "ed25519", "");
    let pubkey = std::fs::read_to_string(laptop.with_extension("pub")).unwrap();
    let (code, v) = s.json(&[
        "recipient",
        "add",
        "--pubkey",
        pubkey.trim(),
        "--label",
        "laptop",
    ]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["reencryptedFiles"], 2);
    for f in s.secure_files() {
        assert!(
            age_decrypts(&laptop, &f).is_some(),
            "laptop can read {}",
            f.display()
        );
    }
    // the laptop's key can now drive keyrack too
    let o = s.run(&["--identity", laptop.to_str().unwrap(), "list"], "");
    assert!(o.status.success(), "{}", stderr(&o));

    let o = s.run(
        &[
            "recipient",
            "add",
            "--pubkey",
            pubkey.trim(),
            "--label",
            "again",
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(2), "duplicate key refused");

    s.cmd()
        .args(["recipient", "remove", "--label", "laptop"])
        .assert()
        .success();
    for f in s.secure_files() {
        assert!(
            age_decrypts(&laptop, &f).is_none(),
            "removed recipient can no longer read {}",
            f.display()
        );
        assert!(age_decrypts(&s.identity(), &f).is_some());
    }
    let o = s.run(&["recipient", "remove", "--label", "tester@nowhere"], "");
    assert_eq!(o.status.code(), Some(2));
    let (_, v) = s.json(&["recipient", "list"]);
    let label = v["recipients"][0]["label"].as_str().unwrap().to_string();
    let o = s.run(&["recipient", "remove", "--label", &label], "");
    assert_eq!(o.status.code(), Some(2), "the last recipient stays");
    assert!(stderr(&o).contains("last recipient"), "{}", stderr(&o));
}

#[test]
fn owners_are_separate_and_default_means_none() {
    let s = sandbox();
    s.set("HUMAN_KEY", "test", "h");
    s.cmd()
        .args(["--owner", "robot", "init"])
        .assert()
        .success();
    s.cmd()
        .args([
            "--owner",
            "robot",
            "set",
            "--key",
            "ROBOT_KEY",
            "--env",
            "test",
        ])
        .write_stdin("r")
        .assert()
        .success();
    assert!(s.keyrack_home.join("host.robot.age").is_file());
    let (_, human) = s.json(&["list"]);
    let (_, default) = s.json(&["--owner", "default", "list"]);
    let (_, robot) = s.json(&["--owner", "robot", "list"]);
    assert_eq!(human, default, "--owner default is no owner");
    assert_eq!(human["keys"].as_array().unwrap().len(), 1);
    assert_eq!(robot["keys"][0]["slug"], "acme.test.ROBOT_KEY");
    s.cmd()
        .args(["--owner", "robot", "unlock", "--env", "test"])
        .assert()
        .code(2); // HUMAN_KEY absent for robot
    let o = s.run(
        &[
            "--owner",
            "robot",
            "get",
            "--key",
            "ROBOT_KEY",
            "--env",
            "test",
            "--value",
        ],
        "",
    );
    assert_eq!(stdout(&o), "r");
    assert_eq!(
        s.get_value("ROBOT_KEY", "test").0,
        2,
        "the human's daemon does not hold robot keys"
    );
    let _ = s.run(&["--owner", "robot", "daemon", "prune"], "");
}

#[test]
fn manifest_is_found_from_subdirectories_and_in_dot_agent() {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    std::fs::create_dir_all(s.repo.join(".agent")).unwrap();
    std::fs::write(
        s.repo.join(".agent/keyrack.yml"),
        "org: agents\nenv.test: [K]\n",
    )
    .unwrap();
    s.init();
    std::fs::create_dir_all(s.repo.join("src/deep")).unwrap();
    let o = s
        .cmd()
        .current_dir(s.repo.join("src/deep"))
        .args(["set", "--key", "K"])
        .write_stdin("v")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("agents.test.K"));
}

#[test]
fn completions_and_help() {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    for sh in ["bash", "zsh", "fish"] {
        let o = s.run(&["completions", sh], "");
        assert!(o.status.success());
        // the script asks the binary on each TAB (tests/it/getting_started.rs drives it)
        assert!(stdout(&o).contains("COMPLETE="), "{}", stdout(&o));
    }
    let o = s.run(&["--help"], "");
    assert!(o.status.success());
    assert!(stdout(&o).contains("unlock"));
    let o = s.run(&["set", "--bogus"], "");
    assert_eq!(o.status.code(), Some(1), "bad usage is exit 1");
}

#[test]
fn json_mode_prints_only_json_even_for_errors() {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    let o = s.run(&["--json", "list"], "");
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json on stdout");
    assert_eq!(v["error"]["code"], "not_initialised");
    assert_eq!(v["error"]["fix"], "keyrack init");
    assert_eq!(stderr(&o), "");
}

#[test]
fn an_age_x25519_recipient_can_be_added() {
    let s = sandbox();
    s.set("A", "test", "a-value");
    let other = s.root.join("other.txt");
    crate::support::age::keygen(&other);
    let text = std::fs::read_to_string(&other).unwrap();
    let pubkey = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap();
    let (code, v) = s.json(&["recipient", "add", "--pubkey", pubkey, "--label", "ci-bot"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["recipient"]["kind"], "x25519");
    assert_eq!(
        age_decrypts(&other, &s.secure_files()[0]).as_deref(),
        Some("{\"keyrack\":\"os.secure\",\"v\":1,\"slug\":\"acme.test.A\"}\na-value")
    );
    let o = s.run(
        &[
            "recipient",
            "add",
            "--pubkey",
            "age1notakey",
            "--label",
            "x",
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("fix:"), "{}", stderr(&o));
}
