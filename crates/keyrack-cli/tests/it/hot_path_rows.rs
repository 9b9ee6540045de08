//! The hot path's rows through the real binary, with every kind of answer in one request: the
//! GET line is written and read by hand (not serde), a grant of a slug asked for reuses that
//! slug while an `org.all` fallback is parsed, the scope of `--env` is resolved once for all
//! keys, and `exec` explains a failure from sizes kept after the values are wiped.

use keyrack_testkit::{stderr, stdout, Sandbox};

/// `test` declares granted keys around a fallback (SHARED_T, set in `env.all`), a locked and an
/// absent key; `env.all` also declares SHARED, set nowhere.
fn mixed() -> Sandbox {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    let declared = "org: acme\nenv.test: [A0, SHARED_T, A1, LOCKED, A2, ABSENT, A3]\nenv.prod: []\nenv.all: [SHARED, SHARED_T]\n";
    s.manifest(declared);
    s.init();
    for (k, v) in [
        ("A0", "zero"),
        ("A1", "o'ne"),
        ("A2", "two"),
        ("A3", "three"),
    ] {
        s.set(k, "test", v);
    }
    s.set("LOCKED", "test", "locked-v");
    s.set("SHARED_T", "all", "shared-v");
    // (exit 2: ABSENT and SHARED are set nowhere)
    let o = s.run(&["unlock", "--env", "test"], "");
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    s.cmd()
        .args(["relock", "--key", "LOCKED", "--env", "test"])
        .assert()
        .success();
    s
}

#[test]
fn one_request_with_every_kind_of_answer_keeps_each_row_in_its_place() {
    let s = mixed();
    let (code, v) = s.json(&["get", "--for", "repo", "--env", "test"]);
    assert_eq!(code, 2, "{v}");
    let rows = v["keys"].as_array().unwrap();
    let got: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["slug"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
                r["value"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("acme.test.A0", "granted", "zero"),
            ("acme.test.SHARED_T", "granted", "shared-v"),
            ("acme.test.A1", "granted", "o'ne"),
            ("acme.test.LOCKED", "locked", "-"),
            ("acme.test.A2", "granted", "two"),
            ("acme.test.ABSENT", "absent", "-"),
            ("acme.test.A3", "granted", "three"),
            ("acme.test.SHARED", "absent", "-"),
        ]
    );
    // the fallback grant says where it came from; a grant of the slug asked for does not
    assert_eq!(rows[1]["grantedBy"], "acme.all.SHARED_T");
    assert!(rows[0].get("grantedBy").is_none(), "{}", rows[0]);
    assert_eq!(rows[3]["fix"], "keyrack unlock --key LOCKED --env test");
    assert_eq!(rows[5]["fix"], "keyrack set --key ABSENT --env test");

    // lenient source: the granted values in manifest order, quoted
    let o = s.run(&["source", "--env", "test", "--lenient"], "");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "export A0='zero'\nexport SHARED_T='shared-v'\nexport A1='o'\\''ne'\nexport A2='two'\nexport A3='three'\n"
    );
}

#[test]
fn keys_by_name_share_their_scope_and_each_is_checked() {
    let s = mixed();
    let (code, v) = s.json(&["get", "--key", "A1", "--key", "A3", "--env", "test"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["keys"][0]["value"], "o'ne");
    assert_eq!(v["keys"][1]["value"], "three");
    // a bad name after a good one is still refused, with the error about that name
    let o = s.run(
        &["get", "--key", "A1", "--key", "9BAD", "--env", "test"],
        "",
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("9BAD"), "{}", stderr(&o));
    // a key the env does not declare: refused without a lookup, its neighbours granted
    let (code, v) = s.json(&["get", "--key", "A0", "--key", "OTHER", "--env", "test"]);
    assert_eq!(code, 2, "{v}");
    assert_eq!(v["keys"][0]["status"], "granted");
    assert_eq!(v["keys"][1]["status"], "absent");
    assert!(
        v["keys"][1]["reason"]
            .as_str()
            .unwrap()
            .contains("not declared for env test"),
        "{v}"
    );
}

#[test]
fn exec_that_cannot_start_names_what_it_passed_without_values() {
    let s = mixed();
    let o = s.run(
        &[
            "--json",
            "exec",
            "--key",
            "A0",
            "--key",
            "A2",
            "--env",
            "test",
            "--",
            "/nonexistent/keyrack-test-command",
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    let out = stdout(&o);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["error"]["exitCode"], 127, "{v}");
    assert!(!out.contains("zero") && !out.contains("two"), "{out}");

    // the command runs with the values in its environment, and only the granted ones
    let o = s.run(&["exec", "--env", "test", "--lenient", "--", "env"], "");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let env = stdout(&o);
    for line in ["A0=zero", "A1=o'ne", "A3=three", "SHARED_T=shared-v"] {
        assert!(env.lines().any(|l| l == line), "{line} in {env}");
    }
    assert!(!env.lines().any(|l| l.starts_with("LOCKED=")), "{env}");
}
