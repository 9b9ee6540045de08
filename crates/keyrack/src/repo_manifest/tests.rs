use super::edit::{add_key, remove_key};
use super::*;

fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

fn load(text: &str) -> Result<RepoManifest> {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "keyrack.yml", text);
    RepoManifest::load(&p)
}

#[test]
fn parses_all_entry_forms() {
    let m = load(
        "org: acme\nenv.test:\n  - XAI_API_KEY\n  - key: AWS_PROFILE\n    is-optional-if-has: AWS_ACCESS_KEY_ID\n  - LEGACY: ephemeral\nenv.prod: []\nenv.all: [SHARED]\n",
    )
    .unwrap();
    assert_eq!(m.org, "acme");
    let test: Vec<_> = m.keys_for("test").iter().map(|k| k.key.clone()).collect();
    assert_eq!(test, ["XAI_API_KEY", "AWS_PROFILE", "LEGACY", "SHARED"]);
    assert_eq!(m.keys_for("prod").len(), 1);
    assert_eq!(
        m.envs["test"][1].optional_if_has.as_deref(),
        Some("AWS_ACCESS_KEY_ID")
    );
    assert!(m.allows("prod", "SHARED"));
    assert!(!m.allows("prod", "XAI_API_KEY"));
    assert!(!m.allows("nope", "SHARED"));
}

#[test]
fn errors_name_line_and_column() {
    let e = load("org: acme\nenv.test:\n  - 1BAD\n").unwrap_err();
    match e {
        Error::Manifest { line, .. } => assert_eq!(line, 3),
        other => panic!("{other:?}"),
    }
    let e = load("org: acme\nkeys:\n  A: b\n").unwrap_err();
    assert!(e.to_string().contains("old format"), "{e}");
    assert!(e.to_string().contains(":2:"), "{e}");
    let e = load("org: acme\nenv.test: [A\n").unwrap_err();
    assert!(e.to_string().contains("invalid YAML"), "{e}");
    let e = load("env.test: []\n").unwrap_err();
    assert!(e.to_string().contains("org"), "{e}");
    let e = load("org: acme\nenv.all: [A]\n").unwrap_err();
    assert!(e.to_string().contains("env.all needs"), "{e}");
    let e = load("- a\n- b\n").unwrap_err();
    assert!(e.to_string().contains("mapping"), "{e}");
}

#[test]
fn extends_reslugs_and_detects_cycles_not_diamonds() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "a.yml",
        "org: other\nextends: [c.yml]\nenv.test: [A]\n",
    );
    write(
        d.path(),
        "b.yml",
        "org: other2\nextends: [c.yml]\nenv.test: [B]\n",
    );
    write(
        d.path(),
        "c.yml",
        "org: base\nenv.test: [C]\nenv.prod: [P]\n",
    );
    let root = write(
        d.path(),
        "keyrack.yml",
        "org: acme\nextends: [a.yml, b.yml]\nenv.test: [R]\n",
    );
    let m = RepoManifest::load(&root).unwrap();
    assert_eq!(m.org, "acme");
    let mut test: Vec<_> = m.keys_for("test").iter().map(|k| k.key.clone()).collect();
    test.sort();
    assert_eq!(test, ["A", "B", "C", "R"]);
    assert!(m.allows("prod", "P"));

    write(
        d.path(),
        "c.yml",
        "org: base\nextends: [keyrack.yml]\nenv.test: [C]\n",
    );
    let e = RepoManifest::load(&root).unwrap_err();
    assert!(e.to_string().contains("cycle"), "{e}");
}

#[test]
fn add_and_remove_keep_other_bytes() {
    let text = "# top comment\norg: acme  # org\n\nenv.test:\n  # keys for tests\n  - A # first\n  - key: B\n    is-optional-if-has: C\n\n# between\nenv.prod: [X, Y] # flow\n";
    let added = add_key(text, "test", "NEW").unwrap();
    assert_eq!(
        added,
        "# top comment\norg: acme  # org\n\nenv.test:\n  # keys for tests\n  - A # first\n  - key: B\n    is-optional-if-has: C\n  - NEW\n\n# between\nenv.prod: [X, Y] # flow\n"
    );
    assert_eq!(remove_key(&added, "test", "NEW").unwrap(), text);
    assert!(add_key(text, "test", "A").is_none());
    assert!(add_key(text, "test", "B").is_none());

    let flow = add_key(text, "prod", "Z").unwrap();
    assert!(flow.contains("env.prod: [X, Y, Z] # flow\n"));
    assert_eq!(remove_key(&flow, "prod", "Z").unwrap(), text);

    let removed_b = remove_key(text, "test", "B").unwrap();
    assert!(!removed_b.contains("is-optional-if-has"));
    assert!(removed_b.contains("  - A # first\n\n# between"));

    let new_section = add_key("org: acme", "dev", "K").unwrap();
    assert_eq!(new_section, "org: acme\nenv.dev:\n  - K\n");
    // files whose last line has no newline
    assert_eq!(
        add_key("org: a\nenv.t:", "t", "K").unwrap(),
        "org: a\nenv.t:\n  - K"
    );
    assert_eq!(
        add_key("org: a\nenv.t:\n  - A", "t", "K").unwrap(),
        "org: a\nenv.t:\n  - A\n  - K"
    );
    let empty = add_key("org: acme\nenv.test:\nenv.prod: []\n", "test", "K").unwrap();
    assert_eq!(empty, "org: acme\nenv.test:\n  - K\nenv.prod: []\n");
    assert_eq!(
        remove_key("org: a\nenv.t: [K]\n", "t", "K").unwrap(),
        "org: a\nenv.t: []\n"
    );
}

#[test]
fn edited_files_still_parse_to_the_expected_keys() {
    let text = "org: acme\nenv.test:\n  - A\nenv.prod: []\n";
    let t2 = add_key(&add_key(text, "test", "B").unwrap(), "prod", "C").unwrap();
    let m = load(&t2).unwrap();
    assert!(m.allows("test", "B"));
    assert!(m.allows("prod", "C"));
}

use crate::testgen::Lcg;

fn generated_manifest(r: &mut Lcg) -> (String, Vec<String>) {
    let mut t = String::new();
    if r.next().is_multiple_of(2) {
        t.push_str("# generated\n");
    }
    t.push_str("org: acme\n");
    let mut envs = Vec::new();
    for e in ["test", "prod", "dev"]
        .iter()
        .take(1 + (r.next() % 3) as usize)
    {
        envs.push(e.to_string());
        if r.next().is_multiple_of(3) {
            t.push('\n');
        }
        let keys: Vec<String> = (0..r.next() % 4)
            .map(|i| format!("{}_{i}", r.pick(&["A", "B", "KEY", "TOKEN"])))
            .collect();
        let mut keys = keys;
        keys.dedup();
        keys.sort();
        keys.dedup();
        match r.next() % 3 {
            0 => t.push_str(&format!(
                "env.{e}: [{}]{}\n",
                keys.join(", "),
                if r.next().is_multiple_of(2) {
                    " # flow"
                } else {
                    ""
                }
            )),
            _ => {
                t.push_str(&format!("env.{e}:\n"));
                for k in &keys {
                    match r.next() % 4 {
                        0 => t.push_str(&format!("  - key: {k}\n    is-optional-if-has: OTHER\n")),
                        1 => t.push_str(&format!("  - {k} # note\n")),
                        2 => t.push_str(&format!("  # about {k}\n  - {k}\n")),
                        _ => t.push_str(&format!("  - {k}\n")),
                    }
                }
            }
        }
    }
    (t, envs)
}

#[test]
fn edits_of_generated_manifests_keep_every_other_byte() {
    let mut r = Lcg(42);
    for case in 0..400 {
        let (text, envs) = generated_manifest(&mut r);
        let before = load(&text)
            .unwrap_or_else(|e| panic!("case {case}: generated manifest must parse: {e}\n{text}"));
        let env = &envs[(r.next() as usize) % envs.len()];
        let key = "NEW_KEY";
        let added = add_key(&text, env, key).expect("new key is added");
        let after = load(&added)
            .unwrap_or_else(|e| panic!("case {case}: edited manifest must parse: {e}\n{added}"));
        assert!(after.allows(env, key), "case {case}:\n{added}");
        for (e, keys) in &before.envs {
            for k in keys {
                assert!(
                    after.allows(e, &k.key),
                    "case {case}: {e}.{} lost\n{added}",
                    k.key
                );
            }
        }
        assert_eq!(
            remove_key(&added, env, key).as_deref(),
            Some(text.as_str()),
            "case {case}: remove undoes add"
        );
        // removing an existing key leaves a manifest that parses and lacks only that key
        if let Some(k) = before.envs.get(env).and_then(|v| v.first()) {
            let removed = remove_key(&text, env, &k.key).expect("listed key is removed");
            let m = load(&removed).unwrap_or_else(|e| panic!("case {case}: {e}\n{removed}"));
            assert!(
                !m.envs[env].iter().any(|s| s.key == k.key),
                "case {case}:\n{removed}"
            );
            assert_eq!(
                m.envs[env].len(),
                before.envs[env].len() - 1,
                "case {case}:\n{removed}"
            );
        }
    }
}

#[test]
fn extends_never_leaves_the_repository() {
    let outer = tempfile::tempdir().unwrap();
    let repo = outer.path().join("repo");
    write(outer.path(), "x.yml", "org: evil\nenv.test: [X]\n");
    write(&repo, "shared/ok.yml", "org: base\nenv.test: [OK]\n");
    std::os::unix::fs::symlink(outer.path().join("x.yml"), repo.join("link.yml")).unwrap();
    std::os::unix::fs::symlink(outer.path(), repo.join("up")).unwrap();
    for (entry, reason) in [
        ("/etc/passwd", "absolute path"),
        ("../x.yml", "'..' climbs above"),
        ("shared/../../x.yml", "'..' climbs above"),
        ("link.yml", "symbolic link leads to"),
        ("up/x.yml", "symbolic link leads to"),
    ] {
        let p = write(
            &repo,
            "keyrack.yml",
            &format!("org: acme\nenv.test: []\nextends:\n  - {entry}\n"),
        );
        let e = RepoManifest::load(&p).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!(
                "{}:4:5: extends '{entry}' points outside the repository",
                p.display()
            )),
            "{entry}: {msg}"
        );
        assert!(msg.contains(reason), "{entry}: {msg}");
    }
    // inside the root, `..` that does not climb out is fine
    let p = write(
        &repo,
        "keyrack.yml",
        "org: acme\nenv.test: []\nextends: [shared/../shared/ok.yml]\n",
    );
    assert!(RepoManifest::load(&p).unwrap().allows("test", "OK"));
}

#[test]
fn everyday_envs_default_to_all_but_prod_and_can_be_declared() {
    let m = load("org: acme\nenv.test: [A]\nenv.dev: [B]\nenv.prod: [P]\n").unwrap();
    assert_eq!(m.everyday, None);
    assert_eq!(m.everyday_envs(), ["dev", "test"]);
    assert!(!m.is_everyday("prod") && !m.is_everyday("sudo") && m.is_everyday("all"));

    let m =
        load("org: acme\nenv.test: [A]\nenv.dev: [B]\nenv.prod: [P]\neveryday: [test]\n").unwrap();
    assert_eq!(m.everyday_envs(), ["test"]);
    assert!(!m.is_everyday("dev"));
    // a repo may make prod everyday on purpose, never sudo
    let m = load("org: acme\nenv.prod: [P]\neveryday: prod\n").unwrap();
    assert_eq!(m.everyday_envs(), ["prod"]);
    let e = load("org: acme\nenv.test: []\neveryday: [sudo]\n").unwrap_err();
    assert!(e.to_string().contains(":3:"), "{e}");
    let e = load("org: acme\nenv.test: []\neveryday: [staging]\n").unwrap_err();
    assert!(e.to_string().contains("not declared"), "{e}");
    assert!(e.to_string().contains(":3:"), "{e}");
    let e = load("org: acme\nenv.test: []\neveryday: {a: b}\n").unwrap_err();
    assert!(e.to_string().contains("list of env names"), "{e}");
}

#[test]
fn the_line_editor_keeps_an_everyday_line() {
    let text = "org: acme\neveryday: [test]\nenv.test: [A]\nenv.prod:\n  - P\n";
    let added = add_key(text, "test", "B").unwrap();
    assert_eq!(
        added,
        "org: acme\neveryday: [test]\nenv.test: [A, B]\nenv.prod:\n  - P\n"
    );
    let added = add_key(text, "dev", "D").unwrap();
    assert_eq!(added, format!("{text}env.dev:\n  - D\n"));
    let removed = remove_key(text, "prod", "P").unwrap();
    assert_eq!(
        removed,
        "org: acme\neveryday: [test]\nenv.test: [A]\nenv.prod:\n"
    );
    let text = "org: acme\nenv.test:\n  - A\neveryday:\n  - test\n";
    assert_eq!(
        add_key(text, "test", "B").unwrap(),
        "org: acme\nenv.test:\n  - A\n  - B\neveryday:\n  - test\n"
    );
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "keyrack.yml",
        &add_key(text, "test", "B").unwrap(),
    );
    let m = RepoManifest::load(&p).unwrap();
    assert_eq!(m.everyday_envs(), ["test"]);
    assert!(m.allows("test", "B"));
}
