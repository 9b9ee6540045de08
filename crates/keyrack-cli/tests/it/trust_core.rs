//! Issue 7, vault and grant semantics: value admission (size, NUL, firewall) at `set` and at
//! `unlock`, vault files bound to their key, the process environment never standing in for a key
//! this host holds, key names that are shell identifiers, `--max-duration` kept by a re-`set`.

use std::path::PathBuf;
use std::process::{Command, Output};

use keyrack_testkit::{stderr, stdout, Sandbox};

const GHP: &str = "ghp_0123456789abcdefghijklmnopqrstuvwxyz";

fn sandbox(manifest: &str) -> Sandbox {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.manifest(manifest);
    s.init();
    s
}

fn run_env(s: &Sandbox, args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Output {
    let mut c = s.cmd();
    c.args(args).write_stdin(stdin.to_vec());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run keyrack")
}

fn json_of(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(o), stderr(o)))
}

fn rows_by_slug(v: &serde_json::Value) -> std::collections::BTreeMap<String, serde_json::Value> {
    v["keys"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| (r["slug"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

fn direct_json(s: &Sandbox) -> PathBuf {
    s.keyrack_home.join("vault/os.direct/default/direct.json")
}

fn secure_file(s: &Sandbox, slug: &str) -> PathBuf {
    use sha2::Digest;
    let h = hex::encode(&sha2::Sha256::digest(slug.as_bytes())[..8]);
    s.keyrack_home
        .join("vault/os.secure/default")
        .join(format!("{h}.age"))
}

// ---------------------------------------------------------------- item 5: size and NUL

#[test]
fn oversized_value_is_refused_at_set_with_the_limit_and_nothing_is_kept() {
    let s = sandbox("org: acme\nenv.test: []\n");
    let big = "x".repeat(5 * 1024 * 1024);
    let o = s.run(&["set", "--key", "BIG", "--env", "test"], &big);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("5242880 bytes") && err.contains("262144"),
        "names the size and the limit: {err}"
    );
    assert!(err.contains("fix:"), "{err}");
    assert!(!err.contains("xxxxxxxx"), "never echoes the value");
    assert!(s.secure_files().is_empty(), "nothing stored");
    let (_, v) = s.json(&["list"]);
    assert_eq!(v["keys"].as_array().unwrap().len(), 0, "no host entry: {v}");
    // exactly at the limit is fine (os.direct keeps the test fast)
    let limit = "y".repeat(256 * 1024);
    let o = s.run(
        &[
            "set",
            "--key",
            "EDGE",
            "--env",
            "test",
            "--vault",
            "os.direct",
        ],
        &limit,
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn an_oversized_value_in_a_vault_is_its_own_row_and_the_other_keys_unlock() {
    let s = sandbox("org: acme\nenv.test: []\n");
    s.set("GOOD", "test", "good-value");
    let o = s.run(
        &[
            "set",
            "--key",
            "HUGE",
            "--env",
            "test",
            "--vault",
            "os.direct",
        ],
        "small",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = s.run(
        &[
            "set",
            "--key",
            "NUL",
            "--env",
            "test",
            "--vault",
            "os.direct",
        ],
        "small",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // the vault now holds what an older keyrack (or a hand edit) could have put there
    let path = direct_json(&s);
    let mut map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    map.insert("acme.test.HUGE".into(), "z".repeat(5 * 1024 * 1024).into());
    map.insert("acme.test.NUL".into(), "a\u{0}b".into());
    std::fs::write(&path, serde_json::to_vec(&map).unwrap()).unwrap();

    let o = s.run(&["--json", "unlock", "--env", "test"], "");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let rows = rows_by_slug(&json_of(&o));
    assert_eq!(rows["acme.test.GOOD"]["status"], "granted", "{rows:?}");
    let huge = &rows["acme.test.HUGE"];
    assert_eq!(huge["status"], "errored", "{huge}");
    assert!(
        huge["reason"].as_str().unwrap().contains("over the limit"),
        "{huge}"
    );
    assert!(huge["fix"].as_str().is_some(), "{huge}");
    let nul = &rows["acme.test.NUL"];
    assert_eq!(nul["status"], "errored", "{nul}");
    assert!(nul["reason"].as_str().unwrap().contains("NUL"), "{nul}");
    // the good key really is in the daemon
    assert_eq!(s.get_value("GOOD", "test").1, "good-value");
    let (code, _, _) = s.get_value("HUGE", "test");
    assert_eq!(code, 2, "the refused key is not granted");
}

#[test]
fn nul_in_a_value_is_refused_at_set() {
    let s = sandbox("org: acme\nenv.test: []\n");
    let o = s.run(&["set", "--key", "K", "--env", "test"], "before\0after");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("NUL byte"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("after"), "never echoes the value");
    assert!(s.secure_files().is_empty());
}

// ---------------------------------------------------------------- item 9: binding

#[test]
fn swapped_secure_files_are_each_keys_error_not_the_other_value() {
    let s = sandbox("org: acme\nenv.test: []\n");
    s.set("ALPHA", "test", "alpha-value");
    s.set("BETA", "test", "beta-value");
    let (a, b) = (
        secure_file(&s, "acme.test.ALPHA"),
        secure_file(&s, "acme.test.BETA"),
    );
    let (ab, bb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    std::fs::write(&a, &bb).unwrap();
    std::fs::write(&b, &ab).unwrap();

    let o = s.run(&["--json", "unlock", "--env", "test"], "");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let rows = rows_by_slug(&json_of(&o));
    for (key, other) in [("ALPHA", "BETA"), ("BETA", "ALPHA")] {
        let r = &rows[&format!("acme.test.{key}")];
        assert_eq!(r["status"], "errored", "{r}");
        let reason = r["reason"].as_str().unwrap();
        assert!(
            reason.contains(&format!("holds the value of acme.test.{other}")),
            "{reason}"
        );
        assert!(
            r["fix"]
                .as_str()
                .unwrap()
                .contains(&format!("keyrack set --key {key} --env test")),
            "{r}"
        );
        let (code, value, _) = s.get_value(key, "test");
        assert_eq!(code, 2);
        assert_eq!(value, "", "never the other key's value");
    }
    // human output names the reason and the fix too
    let o = s.run(&["unlock", "--env", "test", "--key", "ALPHA"], "");
    assert!(
        stdout(&o).contains("errored")
            && stdout(&o).contains("holds the value of acme.test.BETA")
            && stdout(&o).contains("keyrack set --key ALPHA --env test"),
        "{}",
        stdout(&o)
    );
    // the fix works
    s.set("ALPHA", "test", "alpha-again");
    let o = s.run(&["unlock", "--env", "test", "--key", "ALPHA"], "");
    assert!(o.status.success(), "{}", stdout(&o));
    assert_eq!(s.get_value("ALPHA", "test").1, "alpha-again");
}

#[test]
fn an_age_file_without_the_keyrack_binding_is_refused() {
    let s = sandbox("org: acme\nenv.test: []\n");
    s.set("K", "test", "real");
    let f = secure_file(&s, "acme.test.K");
    // any valid age file encrypted to this identity, e.g. from the age CLI or an older keyrack
    let plain = s.root.join("plain");
    std::fs::write(&plain, "planted").unwrap();
    let o = Command::new("age")
        .args(["-e", "-a", "-i"])
        .arg(s.identity())
        .arg("-o")
        .arg(&f)
        .arg(&plain)
        .output()
        .expect("the age CLI is installed (apt-get install age)");
    assert!(o.status.success(), "{}", stderr(&o));
    let o = s.run(&["--json", "unlock", "--env", "test"], "");
    assert_eq!(o.status.code(), Some(2));
    let rows = rows_by_slug(&json_of(&o));
    let r = &rows["acme.test.K"];
    assert_eq!(r["status"], "errored", "{r}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("not bound to any key"),
        "{r}"
    );
    assert!(r["fix"]
        .as_str()
        .unwrap()
        .contains("keyrack set --key K --env test"));
    assert_eq!(s.get_value("K", "test").1, "");
}

// ---------------------------------------------------------------- item 10: env fallback

#[test]
fn a_locked_key_is_never_replaced_by_the_process_environment() {
    let s = sandbox("org: acme\nenv.test: [API_KEY]\nenv.prod: [API_KEY]\n");
    s.set("API_KEY", "test", "test-value");
    s.set("API_KEY", "prod", "prod-value");
    // eval "$(keyrack source --env prod)"
    s.cmd().args(["unlock", "--env", "prod"]).assert().success();
    let o = s.run(&["source", "--env", "prod"], "");
    assert_eq!(
        stdout(&o),
        "export API_KEY='prod-value'\n",
        "{}",
        stderr(&o)
    );
    let exported = [("API_KEY", "prod-value")];
    // keyrack relock --env prod
    s.cmd().args(["relock", "--env", "prod"]).assert().success();

    // get: locked, with the unlock fix, never the prod value
    let o = run_env(
        &s,
        &["get", "--key", "API_KEY", "--env", "test"],
        &exported,
        b"",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stdout(&o).contains("locked"), "{}", stdout(&o));
    assert!(stdout(&o).contains("fix: keyrack unlock --key API_KEY --env test"));
    assert!(!stdout(&o).contains("granted"), "{}", stdout(&o));
    let o = run_env(
        &s,
        &["--json", "get", "--key", "API_KEY", "--env", "test"],
        &exported,
        b"",
    );
    let v = json_of(&o);
    assert_eq!(v["keys"][0]["status"], "locked", "{v}");
    assert!(v["keys"][0].get("value").is_none());
    let o = run_env(
        &s,
        &["get", "--key", "API_KEY", "--env", "test", "--value"],
        &exported,
        b"",
    );
    assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(2), ""));

    // source: strict, prints nothing
    let o = run_env(&s, &["source", "--env", "test"], &exported, b"");
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stdout(&o), "");
    assert!(stderr(&o).contains("locked"), "{}", stderr(&o));

    // exec: strict refuses; lenient runs without the stale value
    let probe = ["sh", "-c", "printf %s \"${API_KEY-unset}\""];
    let mut args = vec!["exec", "--env", "test", "--"];
    args.extend(probe);
    let o = run_env(&s, &args, &exported, b"");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(stdout(&o), "", "the command did not run");
    assert!(stderr(&o).contains("locked"), "{}", stderr(&o));
    let mut args = vec!["exec", "--env", "test", "--lenient", "--"];
    args.extend(probe);
    let o = run_env(&s, &args, &exported, b"");
    assert_eq!(stdout(&o), "unset", "{}", stderr(&o));

    // once test is unlocked, its own value wins over the environment
    s.cmd().args(["unlock", "--env", "test"]).assert().success();
    let mut args = vec!["exec", "--env", "test", "--"];
    args.extend(probe);
    let o = run_env(&s, &args, &exported, b"");
    assert_eq!(stdout(&o), "test-value", "{}", stderr(&o));
}

#[test]
fn a_key_this_host_does_not_hold_comes_from_the_environment_labelled() {
    let s = sandbox("org: acme\nenv.test: [CI_TOKEN]\n");
    let env = [("CI_TOKEN", "from-ci")];
    let o = run_env(
        &s,
        &["get", "--key", "CI_TOKEN", "--env", "test"],
        &env,
        b"",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("vault: os.envvar (from the process environment)"),
        "{}",
        stdout(&o)
    );
    let o = run_env(
        &s,
        &["--json", "get", "--key", "CI_TOKEN", "--env", "test"],
        &env,
        b"",
    );
    let v = json_of(&o);
    assert_eq!(v["keys"][0]["status"], "granted");
    assert_eq!(v["keys"][0]["source"], "env", "{v}");
    assert_eq!(v["keys"][0]["vault"], "os.envvar");
    let o = run_env(&s, &["--json", "source", "--env", "test"], &env, b"");
    assert_eq!(json_of(&o)["keys"][0]["source"], "env");
    let o = run_env(
        &s,
        &[
            "exec",
            "--env",
            "test",
            "--",
            "sh",
            "-c",
            "printf %s \"$CI_TOKEN\"",
        ],
        &env,
        b"",
    );
    assert_eq!(stdout(&o), "from-ci", "{}", stderr(&o));
    // a daemon grant says where it came from too
    s.set("CI_TOKEN", "test", "from-vault");
    s.cmd().args(["unlock", "--env", "test"]).assert().success();
    let o = run_env(
        &s,
        &["--json", "get", "--key", "CI_TOKEN", "--env", "test"],
        &env,
        b"",
    );
    let v = json_of(&o);
    assert_eq!(v["keys"][0]["source"], "daemon", "{v}");
    assert_eq!(v["keys"][0]["value"], "from-vault");
}

// ---------------------------------------------------------------- item 11: names, max-duration

#[test]
fn key_names_that_are_not_shell_identifiers_are_refused() {
    let s = sandbox("org: acme\nenv.test: []\n");
    for bad in ["A.B", "1A", "A-B"] {
        let o = s.run(&["set", "--key", bad, "--env", "test"], "v");
        assert_eq!(o.status.code(), Some(1), "{bad}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("invalid key '{bad}'"))
                && stderr(&o).contains("letters, digits and '_'"),
            "{bad}: {}",
            stderr(&o)
        );
    }
    assert!(s.secure_files().is_empty());
    assert_eq!(
        s.read_manifest(),
        "org: acme\nenv.test: []\n",
        "manifest untouched"
    );
    // a manifest declaring one gets a clear error naming the line, not broken exports
    s.manifest("org: acme\nenv.test:\n  - GOOD\n  - A.B\n");
    let o = s.run(&["source", "--env", "test"], "");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).contains("keyrack.yml:4:") && stderr(&o).contains("invalid key 'A.B'"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn re_set_keeps_max_duration_unless_it_is_given() {
    let s = sandbox("org: acme\nenv.test: []\n");
    let max = |s: &Sandbox| {
        let (_, v) = s.json(&["list"]);
        v["keys"][0]["maxDuration"].clone()
    };
    let o = s.run(
        &["set", "--key", "K", "--env", "test", "--max-duration", "1h"],
        "v1",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    s.set("K", "test", "v2");
    assert_eq!(max(&s), "1h", "kept by a set without --max-duration");
    let o = s.run(&["--json", "unlock", "--env", "test"], "");
    let exp = json_of(&o)["keys"][0]["expiresAt"]
        .as_str()
        .expect("RFC 3339 expiresAt")
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond() as u64;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(exp <= now + 3600 * 1000, "the grant is still capped at 1h");
    let o = s.run(
        &["set", "--key", "K", "--env", "test", "--max-duration", "2h"],
        "v3",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(max(&s), "2h", "changed when given");
}

// ---------------------------------------------------------------- item 11: firewall

#[test]
fn decorated_long_lived_tokens_are_refused_at_set_and_blocked_at_unlock() {
    let s = sandbox("org: acme\nenv.test: []\n");
    let variants: [(&str, String, &str); 7] = [
        ("BOM", format!("\u{FEFF}{GHP}"), "ghp_"),
        ("ZWSP", format!("\u{200B}{GHP}"), "ghp_"),
        ("QUOTED", format!("\"{GHP}\""), "ghp_"),
        ("BEARER", format!("Bearer {GHP}"), "ghp_"),
        ("NEWLINE", format!("\n{GHP}"), "ghp_"),
        ("SECOND_LINE", format!("user: me\ntoken: {GHP}"), "ghp_"),
        ("LOWER_AKIA", "akiaiosfodnn7example".into(), "AKIA"),
    ];
    for (key, value, pattern) in &variants {
        let o = s.run(&["set", "--key", key, "--env", "test"], value);
        assert_eq!(o.status.code(), Some(2), "{key}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains(pattern), "{key}: names the pattern: {err}");
        assert!(
            err.contains(&format!(
                "fix: store a short-lived credential instead, or if this one really must be kept: keyrack set --key {key} --env test --allow-dangerous"
            )),
            "{key}: {err}"
        );
    }
    assert!(
        s.secure_files().is_empty(),
        "nothing stored without the flag"
    );

    for (key, value, _) in &variants {
        let o = s.run(
            &["set", "--key", key, "--env", "test", "--allow-dangerous"],
            value,
        );
        assert!(o.status.success(), "{key}: {}", stderr(&o));
        assert!(stdout(&o).contains("warning:"), "{key}: {}", stdout(&o));
    }
    let o = s.run(&["--json", "unlock", "--env", "test"], "");
    assert_eq!(o.status.code(), Some(2), "blocked is not granted");
    let rows = rows_by_slug(&json_of(&o));
    for (key, value, pattern) in &variants {
        let r = &rows[&format!("acme.test.{key}")];
        assert_eq!(r["status"], "blocked", "{key}: {r}");
        assert!(
            r["reason"].as_str().unwrap().contains(pattern),
            "{key}: {r}"
        );
        // every read path agrees with unlock
        let (code, out, _) = s.get_value(key, "test");
        assert_eq!((code, out.as_str()), (2, ""), "{key}");
        let o = s.run(
            &[
                "get",
                "--key",
                key,
                "--env",
                "test",
                "--value",
                "--allow-dangerous",
            ],
            "",
        );
        assert_eq!(stdout(&o), value.trim_end_matches('\n'), "{key}");
    }
    let o = s.run(&["unlock", "--env", "test", "--key", "BOM"], "");
    assert!(stdout(&o).contains("blocked"), "{}", stdout(&o));
    assert!(!stdout(&o).contains("granted"), "{}", stdout(&o));

    // temporary AWS keys (ASIA…) are not long-lived: allowed
    let o = s.run(
        &["set", "--key", "TEMP", "--env", "test"],
        "asiaiosfodnn7example",
    );
    assert!(o.status.success(), "{}", stderr(&o));
}
