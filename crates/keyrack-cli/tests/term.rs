//! What moved out of the library in the "no terminal in the library" change, seen through the
//! real binary: durations keep their syntax (now parsed with jiff, not humantime), times are
//! still RFC 3339 in UTC to the second, and a secret without a terminal still comes from stdin.
//! (The prompts, the wizard and the sign-in tree are in `prompt.rs`, `aws.rs`, `trust_aws.rs`.)

use keyrack_testkit::{stderr, Sandbox};

/// Seconds until the first key row's `expiresAt` (RFC 3339) of `status --json`.
fn seconds_left(s: &Sandbox) -> i64 {
    let (_, v) = s.json(&["status"]);
    let at: jiff::Timestamp = v["keys"][0]["expiresAt"]
        .as_str()
        .unwrap_or_else(|| panic!("an expiry: {v}"))
        .parse()
        .unwrap();
    at.as_second() - jiff::Timestamp::now().as_second()
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
fn is_rfc3339_seconds_utc(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

#[test]
fn durations_keep_their_syntax() {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.manifest("org: acme\nenv.test: [K]\n");
    s.init();
    s.set("K", "test", "v");
    for (d, secs) in [
        ("9h", 9 * 3600),
        ("30m", 1800),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        ("90s", 90),
        ("1d", 86400),
    ] {
        let o = s.run(&["unlock", "--env", "test", "--duration", d], "");
        assert!(o.status.success(), "{d}: {}", stderr(&o));
        let left = seconds_left(&s);
        assert!(
            (left - secs).abs() < 15,
            "{d}: {left} s left, expected about {secs} s"
        );
    }
    for d in ["0s", "-1h", "forever", "1h30", "1mo"] {
        let flag = format!("--duration={d}");
        let o = s.run(&["unlock", "--env", "test", &flag], "");
        assert_eq!(o.status.code(), Some(1), "{d}");
        let err = stderr(&o);
        assert!(
            err.contains(&format!("invalid value '{d}' for '--duration <DURATION>'")),
            "{err}"
        );
        assert!(err.contains("use e.g. 9h, 30m or 1h30m"), "{err}");
    }
    // a key's maxDuration caps the grant, in the same syntax
    let o = s.run(
        &[
            "set",
            "--key",
            "K",
            "--env",
            "test",
            "--max-duration",
            "1h 30m",
        ],
        "v2",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    s.cmd().args(["unlock", "--env", "test"]).assert().success();
    let left = seconds_left(&s);
    assert!((left - 5400).abs() < 15, "{left}");
    let o = s.run(
        &["set", "--key", "K", "--env", "test", "--max-duration", "0s"],
        "v3",
    );
    assert!(
        stderr(&o).contains("invalid value '0s' for '--max-duration <DURATION>'"),
        "{}",
        stderr(&o)
    );
    let o = s.run(&["unlock", "--env", "test", "--login-timeout", "soon"], "");
    assert!(
        stderr(&o).contains("invalid value 'soon' for '--login-timeout <DURATION>'"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn times_stay_rfc3339_utc_to_the_second() {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.manifest("org: acme\nenv.test: []\n");
    s.init();
    let generated = std::fs::read_to_string(s.identity()).unwrap();
    let created = generated
        .lines()
        .find_map(|l| l.strip_prefix("# created by keyrack: "))
        .expect("a header line");
    assert!(is_rfc3339_seconds_utc(created), "{created}");
    let (_, v) = s.json(&["recipient", "list"]);
    let added = v["recipients"][0]["addedAt"].as_str().unwrap();
    assert!(is_rfc3339_seconds_utc(added), "{v}");
}

#[test]
fn without_a_terminal_the_secret_comes_from_stdin() {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.manifest("org: acme\nenv.test: []\n");
    s.init();
    let o = s.run(&["set", "--key", "PIPED", "--env", "test"], "piped-value\n");
    assert!(o.status.success(), "{}", stderr(&o));
    s.cmd().args(["unlock", "--env", "test"]).assert().success();
    assert_eq!(s.get_value("PIPED", "test").1, "piped-value");
    // nothing piped: the empty value is refused with the pipe to use, nothing asked
    let o = s.run(&["set", "--key", "EMPTY", "--env", "test"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("the secret is empty"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("| keyrack set --key EMPTY"),
        "{}",
        stderr(&o)
    );
}
