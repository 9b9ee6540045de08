//! Bad input never panics and loses nothing; every error says why and how to fix it.

use std::process::Command;

use keyrack_testkit::{stderr, stdout, Sandbox};

fn sandbox() -> Sandbox {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.manifest("org: acme\nenv.test: []\nenv.prod: []\n");
    s.init();
    s
}

fn assert_clear_error(o: &std::process::Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "{err}");
    assert!(err.contains(needle), "expected {needle:?} in:\n{err}");
    assert!(err.contains("fix:"), "every error has a fix line:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn assert_usage_error(o: &std::process::Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(needle), "expected {needle:?} in:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn malformed_yaml_names_file_line_and_column() {
    let s = sandbox();
    s.manifest("org: acme\nenv.test: [A\n");
    let o = s.run(&["get", "--key", "A", "--env", "test"], "");
    assert_clear_error(&o, 1, "keyrack.yml:");
    assert!(stderr(&o).contains("invalid YAML"), "{}", stderr(&o));

    s.manifest("org: acme\nenv.test:\n  - 9LIVES\n");
    let o = s.run(&["get", "--key", "A", "--env", "test"], "");
    assert_clear_error(&o, 1, "keyrack.yml:3:");
}

#[test]
fn foreign_yaml_and_old_format_are_rejected_with_the_new_format_named() {
    let s = sandbox();
    s.manifest("services:\n  web:\n    image: nginx\n");
    let o = s.run(&["set", "--key", "A", "--env", "test"], "v");
    assert_clear_error(&o, 1, "unknown top-level field 'services'");
    s.manifest("org: acme\nkeys:\n  A: replica\n");
    let o = s.run(&["set", "--key", "A", "--env", "test"], "v");
    assert_clear_error(&o, 1, "old format");
    assert!(stderr(&o).contains("env.test:"), "{}", stderr(&o));
    assert_eq!(
        s.read_manifest(),
        "org: acme\nkeys:\n  A: replica\n",
        "nothing rewritten"
    );
}

#[test]
fn truncated_host_manifest_is_reported_and_never_overwritten() {
    let s = sandbox();
    s.set("A", "test", "v");
    let path = s.keyrack_home.join("host.age");
    let full = std::fs::read(&path).unwrap();
    std::fs::write(&path, &full[..full.len() / 2]).unwrap();
    let damaged = std::fs::read(&path).unwrap();
    let o = s.run(&["list"], "");
    assert_clear_error(&o, 1, "not a readable age file");
    let o = s.run(&["set", "--key", "B", "--env", "test"], "v");
    assert_clear_error(&o, 1, "not a readable age file");
    let o = s.run(&["init"], "");
    assert_eq!(
        o.status.code(),
        Some(1),
        "init does not overwrite a damaged manifest"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        damaged,
        "the damaged file is left for recovery"
    );
}

#[test]
fn foreign_age_file_as_host_manifest() {
    let s = sandbox();
    let path = s.keyrack_home.join("host.age");
    let other = s.root.join("other.txt");
    crate::support::age::keygen(&other);
    let o = Command::new("age")
        .args(["-a", "-e", "-i"])
        .arg(&other)
        .arg("-o")
        .arg(&path)
        .arg("/etc/hostname")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = s.run(&["list"], "");
    assert_clear_error(&o, 1, "not encrypted to your identity");

    // an age file to us that is not a host manifest
    let me = std::fs::read_to_string(s.identity()).unwrap();
    let pubkey = me
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_string();
    let o = Command::new("age")
        .args(["-a", "-e", "-r", &pubkey, "-o"])
        .arg(&path)
        .arg("/etc/hostname")
        .output()
        .unwrap();
    assert!(o.status.success());
    let o = s.run(&["list"], "");
    assert_clear_error(&o, 1, "not a keyrack host manifest");
}

#[test]
fn wrong_identity() {
    let s = sandbox();
    s.set("A", "test", "v");
    let other = s.root.join("other.txt");
    Command::new("age-keygen")
        .arg("-o")
        .arg(&other)
        .output()
        .unwrap();
    let o = s.run(&["--identity", other.to_str().unwrap(), "list"], "");
    assert_clear_error(&o, 1, "is not encrypted to your identity");
    assert!(stderr(&o).contains("recipient add"), "{}", stderr(&o));
    let o = s.run(&["--identity", "/nonexistent/key", "list"], "");
    assert_clear_error(&o, 1, "cannot use identity");
    std::fs::write(&other, "garbage\n").unwrap();
    let o = s.run(&["--identity", other.to_str().unwrap(), "list"], "");
    assert_clear_error(&o, 1, "cannot use identity");
}

#[test]
fn unknown_flag_values() {
    let s = sandbox();
    let o = s.run(
        &["set", "--key", "A", "--env", "test", "--vault", "os.nope"],
        "v",
    );
    // checked by the argument parser: the usage error names the real choices
    assert_usage_error(&o, "invalid value 'os.nope' for '--vault <VAULT>'");
    assert!(
        stderr(&o).contains(
            "os.secure, os.direct, os.daemon, os.envvar, aws.config, aws.params, 1password, os.keychain"
        ),
        "{}",
        stderr(&o)
    );
    let o = s.run(&["set", "--key", "A", "--env", "staging"], "v");
    assert_clear_error(&o, 1, "declares envs: prod, test");
    assert!(stderr(&o).contains("env.staging: []"), "{}", stderr(&o));
    let o = s.run(&["set", "--key", "A", "--env", "Bad"], "v");
    assert_clear_error(&o, 1, "invalid env");
    let o = s.run(
        &["set", "--key", "A", "--env", "test", "--mech", "magic"],
        "v",
    );
    assert_usage_error(&o, "invalid value 'magic' for '--mech <MECH>'");
    assert!(
        stderr(&o).contains("replica, reference, session, aws.sso"),
        "{}",
        stderr(&o)
    );
    let o = s.run(&["unlock", "--duration", "forever"], "");
    assert_usage_error(&o, "invalid value 'forever' for '--duration <DURATION>'");
    assert!(stderr(&o).contains("9h, 30m or 1h30m"), "{}", stderr(&o));
    assert_eq!(s.read_manifest(), "org: acme\nenv.test: []\nenv.prod: []\n");
}

#[test]
fn non_utf8_and_empty_secrets_leave_nothing_behind() {
    let s = sandbox();
    let o = s
        .cmd()
        .args(["set", "--key", "BIN", "--env", "test"])
        .write_stdin(vec![0xff, 0xfe, 0x00, 0x41])
        .output()
        .unwrap();
    assert_clear_error(&o, 1, "not valid UTF-8");
    assert!(stderr(&o).contains("base64"));
    let o = s.run(&["set", "--key", "EMPTY", "--env", "test"], "\n");
    assert_clear_error(&o, 1, "empty");
    assert!(s.secure_files().is_empty());
    let (_, v) = s.json(&["list"]);
    assert_eq!(v["keys"].as_array().unwrap().len(), 0);
    assert!(
        !s.keyrack_home.join("inventory/default").exists()
            || std::fs::read_dir(s.keyrack_home.join("inventory/default"))
                .unwrap()
                .count()
                == 0
    );
    assert_eq!(s.read_manifest(), "org: acme\nenv.test: []\nenv.prod: []\n");
}

#[test]
fn unwritable_home() {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    let file = s.root.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let o = s
        .cmd()
        .arg("init")
        .env("KEYRACK_HOME", file.join("keyrack"))
        .output()
        .unwrap();
    assert_clear_error(&o, 1, "cannot create directory");

    if nix_is_root() {
        // as an unprivileged user, a home inside a root-owned directory
        use std::os::unix::fs::PermissionsExt;
        for d in [&s.root, &s.home, &s.repo] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let ro = s.root.join("ro");
        std::fs::create_dir(&ro).unwrap();
        let o = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(s.bin())
            .arg("init")
            .env_clear()
            .env("HOME", &ro)
            .env("KEYRACK_HOME", ro.join("keyrack"))
            .env("NO_COLOR", "1")
            .current_dir(&ro)
            .output()
            .unwrap();
        assert_clear_error(&o, 1, "Permission denied");
        assert!(stderr(&o).contains("writable"), "{}", stderr(&o));
    }
}

fn nix_is_root() -> bool {
    String::from_utf8_lossy(&Command::new("id").arg("-u").output().unwrap().stdout).trim() == "0"
}

#[test]
fn corrupt_os_direct_store_is_reported() {
    let s = sandbox();
    s.cmd()
        .args(["set", "--key", "D", "--env", "test", "--vault", "os.direct"])
        .write_stdin("v")
        .assert()
        .success();
    let f = s.keyrack_home.join("vault/os.direct/default/direct.json");
    std::fs::write(&f, "{ not json").unwrap();
    let (code, v) = s.json(&["unlock", "--env", "test"]);
    assert_eq!(code, 2);
    assert_eq!(v["keys"][0]["status"], "errored");
    assert!(v["keys"][0]["fix"]
        .as_str()
        .unwrap()
        .contains("direct.json"));
    let o = s.run(
        &["set", "--key", "E", "--env", "test", "--vault", "os.direct"],
        "v",
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        std::fs::read_to_string(&f).unwrap(),
        "{ not json",
        "not overwritten"
    );
    let _ = stdout(&o);
}
