//! Defects the fuzz targets (`fuzz/`, `crates/keyrack-fuzz`) found, reproduced through the real
//! binary.

use keyrack_fake_aws::FakeAws;
use keyrack_testkit::{stderr, Sandbox};

/// `[profile acme.test]` listing a key twice: keyrack's reader takes the last line, its writer
/// used to change only the first, so `set` wrote account 123456789012 and then signed in to the
/// stale 999999999999 (found by the `aws_config` target, corpus file `duplicate_keys.ini`).
#[test]
fn set_rewrites_every_duplicate_line_of_a_profile_key() {
    let fake = FakeAws::start();
    let mut s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    for (k, v) in fake.env() {
        s.env(&k, &v);
    }
    let browser = s.root.join("browser.sh");
    std::fs::write(
        &browser,
        "#!/bin/sh\nexec curl -s -L --max-time 20 -o /dev/null \"$1\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&browser, std::fs::Permissions::from_mode(0o755)).unwrap();
    s.env("BROWSER", browser.to_str().unwrap());
    s.manifest("org: acme\nenv.test: []\n");
    s.init();
    let config = s.home.join(".aws/config");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let foreign = "# mine\n[profile acme.test]\nsso_account_id = 999999999999\nsso_role_name = Gone\n; an old paste\nsso_account_id = 999999999999\n";
    std::fs::write(&config, foreign).unwrap();
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
    let after = std::fs::read_to_string(&config).unwrap();
    assert!(o.status.success(), "{}\n{after}", stderr(&o));
    assert!(
        !after.contains("999999999999"),
        "a stale account line is left:\n{after}"
    );
    assert_eq!(
        after.matches("sso_account_id = 123456789012").count(),
        2,
        "{after}"
    );
    assert!(
        after.starts_with("# mine\n[profile acme.test]\n"),
        "{after}"
    );
    assert!(after.contains("; an old paste\n"), "{after}");
}

/// A `keyrack.yml` using YAML tags: the line editor used to append `  - NEW` after a tagged flow
/// list (`env.dev: !!seq [C]`), writing a file that no longer parses (found by a mutation run of
/// the manifest editor, 23 of 110 sampled edits). Every edit is now re-parsed and written only
/// when exactly that one key changed.
#[test]
fn an_edit_keyrack_cannot_make_safely_leaves_keyrack_yml_untouched() {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    let text = "org: acme\nenv.test: [A]\nenv.dev: !!seq [C]\n";
    s.manifest(text);
    s.init();
    let o = s.run(&["set", "--key", "NEW", "--env", "dev"], "value");
    assert!(!o.status.success(), "the edit is refused");
    let err = stderr(&o);
    assert!(err.contains("cannot edit this file safely"), "{err}");
    assert!(err.contains("by hand"), "the fix says what to do: {err}");
    let path = s.repo.join("keyrack.yml");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "byte for byte"
    );
    // an ordinary edit of the same file still works
    let o = s.run(&["set", "--key", "B", "--env", "test"], "value");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .contains("env.test: [A, B]"));
}
