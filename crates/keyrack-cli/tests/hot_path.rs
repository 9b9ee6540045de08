//! The hot path through the real binary: the cached allowlist (edits seen at once, large
//! manifests, corrupt or widened cache files refused) and the process start-up (closed
//! standard descriptors, closed pipes).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use keyrack_testkit::{stderr, stdout, Sandbox};

/// A sandbox whose daemon holds `test` keys A and B (values `value-A`, `value-B`).
fn unlocked(manifest: &str) -> Sandbox {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.manifest("org: acme\nenv.test: []\n");
    s.init();
    s.set("A", "test", "value-A");
    s.set("B", "test", "value-B");
    s.cmd().args(["unlock", "--env", "test"]).assert().success();
    s.manifest(manifest);
    s
}

/// Waits out the settle window, so the next `get` caches what it parses.
fn settle() {
    std::thread::sleep(Duration::from_millis(2100));
}

/// The allowlist cache files of the sandbox.
fn cache_files(s: &Sandbox) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(s.keyrack_home.join("cache"))
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "allow"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The one cache file, asserting there is one.
fn cache_file(s: &Sandbox) -> PathBuf {
    let v = cache_files(s);
    assert_eq!(v.len(), 1, "one cache file: {v:?}");
    v.into_iter().next().unwrap()
}

#[test]
fn an_edit_of_keyrack_yml_between_two_gets_is_seen() {
    let s = unlocked("org: acme\nenv.test: [A, B]\n");
    settle();
    assert_eq!(s.get_value("B", "test").1, "value-B");
    let cached = std::fs::read(cache_file(&s)).unwrap();
    assert_eq!(s.get_value("B", "test").1, "value-B"); // warm
    assert_eq!(
        std::fs::read(cache_file(&s)).unwrap(),
        cached,
        "a warm get rewrites nothing"
    );
    // B leaves the allowlist (the file keeps its size)
    s.manifest("org: acme\nenv.test: [A, C]\n");
    let (code, out, err) = s.get_value("B", "test");
    assert_eq!(code, 2, "{err}");
    assert_eq!(out, "");
    assert!(err.contains("not declared"), "{err}");
    assert_eq!(s.get_value("A", "test").1, "value-A");
    // and comes back
    s.manifest("org: acme\nenv.test: [A, B]\n");
    assert_eq!(s.get_value("B", "test").1, "value-B");
}

#[test]
fn an_edit_of_an_extended_file_between_two_gets_is_seen() {
    let s = unlocked("org: acme\nextends: [shared/keyrack.yml]\nenv.test: [A]\n");
    let shared = s.repo.join("shared/keyrack.yml");
    std::fs::create_dir_all(shared.parent().unwrap()).unwrap();
    std::fs::write(&shared, "org: shared\nenv.test: [B]\n").unwrap();
    settle();
    assert_eq!(s.get_value("B", "test").1, "value-B");
    cache_file(&s);
    assert_eq!(s.get_value("B", "test").1, "value-B"); // warm
    std::fs::write(&shared, "org: shared\nenv.test: [C]\n").unwrap();
    let (code, _, err) = s.get_value("B", "test");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not declared"), "{err}");
}

#[test]
fn a_20000_key_manifest_get_works_cold_and_warm() {
    let mut text = String::from("org: acme\nenv.test:\n  - A\n");
    for i in 1..20_000 {
        text.push_str(&format!("  - DECLARED_{i}\n"));
    }
    text.push_str("env.prod: []\n");
    let s = unlocked(&text);
    let (code, out, err) = s.get_value("A", "test"); // cold: parsed
    assert_eq!((code, out.as_str()), (0, "value-A"), "{err}");
    settle();
    assert_eq!(s.get_value("A", "test").1, "value-A"); // parsed, and cached
    cache_file(&s);
    let o = s.run(&["get", "--key", "DECLARED_19999", "--env", "test"], ""); // warm
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).is_empty() && stdout(&o).contains("not set on this host"));
    let o = s.run(&["get", "--key", "UNDECLARED", "--env", "test"], "");
    assert!(stdout(&o).contains("not declared"), "{}", stdout(&o));
}

#[test]
fn a_corrupt_cache_file_is_ignored_and_rewritten() {
    let s = unlocked("org: acme\nenv.test: [A]\n");
    settle();
    assert_eq!(s.get_value("A", "test").1, "value-A");
    let path = cache_file(&s);
    let good = std::fs::read(&path).unwrap();
    for corrupt in [
        b"garbage".to_vec(),
        Vec::new(),
        good[..good.len() / 2].to_vec(),
    ] {
        std::fs::write(&path, &corrupt).unwrap();
        assert_eq!(s.get_value("A", "test").1, "value-A");
        let (code, _, err) = s.get_value("B", "test");
        assert_eq!(code, 2, "{err}");
        let rewritten = std::fs::read(&path).unwrap();
        assert_ne!(rewritten, corrupt, "the cache is rewritten");
        assert!(rewritten.len() > 100);
    }
}

#[test]
fn a_cache_widened_by_hand_grants_nothing_more() {
    let s = unlocked("org: acme\nenv.test: [A]\n");
    settle();
    assert_eq!(s.get_value("A", "test").1, "value-A");
    let path = cache_file(&s);
    let text = String::from_utf8(std::fs::read(&path).unwrap()).unwrap();
    assert!(text.contains("\nkey A\n"), "{text}");
    std::fs::write(&path, text.replace("\nkey A\n", "\nkey A\nkey B\n")).unwrap();
    let (code, out, err) = s.get_value("B", "test");
    assert_eq!(
        (code, out.as_str()),
        (2, ""),
        "a widened cache was believed"
    );
    assert!(err.contains("not declared"), "{err}");
}

#[test]
fn a_read_only_get_creates_no_keyrack_home() {
    let mut s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.manifest("org: acme\nenv.test: [CI_KEY]\n");
    s.env("CI_KEY", "from-env");
    settle();
    assert_eq!(s.get_value("CI_KEY", "test").1, "from-env");
    assert!(!s.keyrack_home.exists());
}

#[test]
fn closed_standard_descriptors_are_reopened_on_dev_null() {
    let s = unlocked("org: acme\nenv.test: [A]\n");
    // keyrack starts with stdout closed; the command it runs inherits what keyrack made of it
    // (a closed descriptor 1 would have been taken by whatever keyrack opened first)
    let o = Command::new("sh")
        .arg("-c")
        .arg(r#"exec 1>&-; exec "$0" exec --env test -- sh -c 'test /proc/$$/fd/1 -ef /dev/null && test "$A" = value-A'"#)
        .arg(s.bin())
        .env_clear()
        .envs(s.vars())
        .current_dir(&s.repo)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // --value with no stdout at all still exits cleanly
    let o = Command::new("sh")
        .arg("-c")
        .arg(r#"exec 1>&- 2>&- <&-; exec "$0" get --key A --env test --value"#)
        .arg(s.bin())
        .env_clear()
        .envs(s.vars())
        .current_dir(&s.repo)
        .status()
        .unwrap();
    assert_eq!(o.code(), Some(0));
}

#[test]
fn writing_into_a_closed_pipe_is_not_fatal() {
    let s = unlocked("org: acme\nenv.test: [A, B]\n");
    for args in [
        &["source", "--env", "test"][..],
        &["get", "--key", "A", "--env", "test", "--value"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader); // nobody will ever read: a write gets EPIPE (or SIGPIPE)
        let status = s
            .std_cmd()
            .args(args)
            .stdout(Stdio::from(writer))
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(0), "{args:?}: {status:?}");
    }
}
