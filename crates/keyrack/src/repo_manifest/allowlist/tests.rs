use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::cache::{testing, Cache};
use super::*;
use crate::error::Error;
use crate::slug::Owner;
use crate::testgen::Lcg;

/// A repo and a keyrack home in one temp dir.
struct World {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    home: Home,
}

impl World {
    fn new() -> Self {
        Self::with_repo_named(std::ffi::OsStr::new("repo"))
    }

    fn with_repo_named(name: &std::ffi::OsStr) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join(name);
        fs::create_dir_all(repo.join(".git")).unwrap();
        let root = dir.path().join("keyrack-home");
        fs::create_dir(&root).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).unwrap();
        World {
            home: Home::at(root, Owner::default()),
            repo,
            _dir: dir,
        }
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.repo.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, text).unwrap();
        p
    }

    fn manifest(&self) -> PathBuf {
        self.repo.join("keyrack.yml")
    }

    /// Loads with no settle window, so what was just written is cached.
    fn load(&self) -> Allowlist {
        Allowlist::load_settled(&self.home, &self.manifest(), Duration::ZERO).unwrap()
    }

    fn cache(&self) -> Cache {
        Cache::new(&self.home, &self.manifest())
    }

    fn cached(&self) -> Option<Allowlist> {
        self.cache().read()
    }
}

fn keys(list: &Allowlist, env: &str) -> Vec<String> {
    list.keys_for(env)
        .iter()
        .map(|k| k.key.to_string())
        .collect()
}

/// Sets a file's mtime to `secs` after the epoch.
fn set_mtime(p: &Path, secs: u64) {
    fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

const ENVS: [&str; 4] = ["test", "prod", "dev", "ci"];
const KEYS: [&str; 8] = ["A", "B", "C", "D", "E", "F", "G", "H_1"];

/// A random manifest (with an extended file half the time), its text and the extended text.
fn generated(r: &mut Lcg) -> (String, Option<String>) {
    let section = |r: &mut Lcg, name: &str| {
        let mut t = format!("{name}:\n");
        let mut used = Vec::new();
        for _ in 0..r.next() % 5 {
            let k = r.pick(&KEYS);
            if used.contains(&k) {
                continue;
            }
            used.push(k);
            if r.next().is_multiple_of(3) {
                t.push_str(&format!("  - key: {k}\n    is-optional-if-has: OTHER\n"));
            } else {
                t.push_str(&format!("  - {k}\n"));
            }
        }
        if used.is_empty() {
            t = format!("{name}: []\n");
        }
        t
    };
    let mut main = String::from("org: acme\n");
    let extended = if r.next().is_multiple_of(2) {
        main.push_str("extends: [shared/keyrack.yml]\n");
        let mut s = String::from("org: shared\n");
        for e in ENVS {
            if r.next().is_multiple_of(2) {
                s.push_str(&section(r, &format!("env.{e}")));
            }
        }
        s.push_str("env.base: []\n");
        if r.next().is_multiple_of(2) {
            s.push_str(&section(r, "env.all"));
        }
        Some(s)
    } else {
        None
    };
    for e in ENVS {
        if r.next().is_multiple_of(2) {
            main.push_str(&section(r, &format!("env.{e}")));
        }
    }
    main.push_str("env.last: []\n");
    if r.next().is_multiple_of(3) {
        main.push_str(&section(r, "env.all"));
    }
    (main, extended)
}

/// Every answer of `list` equals the parsed manifest's.
fn assert_same_answers(list: &Allowlist, m: &RepoManifest, case: &str) {
    assert_eq!(list.org(), m.org, "{case}");
    assert_eq!(list.path(), m.path, "{case}");
    assert_eq!(list.env_names(), m.env_names(), "{case}");
    let probe_envs = ENVS.iter().chain(&["base", "last", "all", "sudo", "nope"]);
    let probe_keys = KEYS.iter().chain(&["OTHER", "NOPE"]);
    for env in probe_envs {
        assert_eq!(list.has_env(env), m.has_env(env), "{case} has_env {env}");
        let ours: Vec<(String, Option<String>)> = list
            .keys_for(env)
            .iter()
            .map(|k| (k.key.to_string(), k.optional_if_has.map(Into::into)))
            .collect();
        let theirs: Vec<(String, Option<String>)> = m
            .keys_for(env)
            .iter()
            .map(|k| (k.key.clone(), k.optional_if_has.clone()))
            .collect();
        assert_eq!(ours, theirs, "{case} keys_for {env}");
        for key in probe_keys.clone() {
            assert_eq!(
                list.allows(env, key),
                m.allows(env, key),
                "{case} allows {env} {key}"
            );
        }
    }
    for key in probe_keys {
        assert_eq!(
            list.envs_declaring(key),
            m.envs_declaring(key),
            "{case} envs_declaring {key}"
        );
    }
}

#[test]
fn index_and_cache_answer_exactly_like_the_parsed_manifest() {
    let mut r = Lcg(8);
    for case in 0..100 {
        let w = World::new();
        let (main, extended) = generated(&mut r);
        w.write("keyrack.yml", &main);
        if let Some(s) = &extended {
            w.write("shared/keyrack.yml", s);
        }
        let case = format!("case {case}:\n{main}\n--- shared:\n{extended:?}");
        let m = RepoManifest::load(&w.manifest()).unwrap();
        assert_same_answers(&Allowlist::from_manifest(&m), &m, &case);
        // cold (parsed and cached), then warm (from the cache)
        assert_same_answers(&w.load(), &m, &case);
        let warm = w.cached().unwrap_or_else(|| panic!("{case}: cached"));
        assert_same_answers(&warm, &m, &case);
    }
}

#[test]
fn a_warm_load_comes_from_the_cache_file() {
    let w = World::new();
    w.write("keyrack.yml", "org: acme\nenv.test: [A, B]\n");
    assert!(w.cached().is_none());
    let cold = w.load();
    let path = w.cache().path().to_path_buf();
    let meta = fs::symlink_metadata(&path).unwrap();
    assert!(meta.is_file());
    assert_eq!(meta.mode() & 0o7777, 0o600);
    let dir = fs::symlink_metadata(path.parent().unwrap()).unwrap();
    assert_eq!(dir.mode() & 0o777, 0o700);
    let warm = w.load();
    assert_eq!(keys(&warm, "test"), keys(&cold, "test"));
    // the warm load did not rewrite the file
    assert_eq!(fs::metadata(&path).unwrap().ino(), meta.ino());
    assert_eq!(
        fs::metadata(&path).unwrap().modified().unwrap(),
        meta.modified().unwrap()
    );
}

#[test]
fn an_edit_of_the_manifest_invalidates_the_cache() {
    let w = World::new();
    w.write("keyrack.yml", "org: acme\nenv.test: [A, B]\n");
    w.load();
    assert!(w.cached().is_some());
    w.write("keyrack.yml", "org: acme\nenv.test: [A]\n");
    assert!(w.cached().is_none(), "a stale cache must not be used");
    let list = w.load();
    assert!(!list.allows("test", "B"));
    assert_eq!(keys(&w.cached().unwrap(), "test"), ["A"]);
}

#[test]
fn a_same_size_edit_with_a_new_mtime_invalidates_the_cache() {
    let w = World::new();
    let p = w.write("keyrack.yml", "org: acme\nenv.test: [AAA]\n");
    set_mtime(&p, 1_000_000);
    w.load();
    assert!(w.cached().unwrap().allows("test", "AAA"));
    let ino = fs::metadata(&p).unwrap().ino();
    fs::write(&p, "org: acme\nenv.test: [BBB]\n").unwrap(); // same size, same inode
    set_mtime(&p, 1_000_001);
    assert_eq!(fs::metadata(&p).unwrap().ino(), ino);
    assert!(w.cached().is_none());
    let list = w.load();
    assert!(list.allows("test", "BBB") && !list.allows("test", "AAA"));
}

#[test]
fn an_edit_of_an_extended_file_invalidates_the_cache() {
    let w = World::new();
    w.write(
        "keyrack.yml",
        "org: acme\nextends: [shared/keyrack.yml]\nenv.test: [A]\n",
    );
    let shared = w.write("shared/keyrack.yml", "org: s\nenv.test: [SHARED]\n");
    assert!(w.load().allows("test", "SHARED"));
    assert!(w.cached().is_some());
    fs::write(&shared, "org: s\nenv.test: [OTHER]\n").unwrap();
    assert!(w.cached().is_none());
    let list = w.load();
    assert!(!list.allows("test", "SHARED"));
    assert!(list.allows("test", "OTHER"));
}

#[test]
fn a_replaced_extended_file_invalidates_the_cache() {
    let w = World::new();
    w.write(
        "keyrack.yml",
        "org: acme\nextends: [shared/keyrack.yml]\nenv.test: [A]\n",
    );
    let shared = w.write("shared/keyrack.yml", "org: s\nenv.test: [KEEP]\n");
    set_mtime(&shared, 1_000_000);
    w.load();
    assert!(w.cached().is_some());
    // same size, same mtime, renamed into place: only the inode (and ctime) tell
    let fresh = w.write("shared/new.yml", "org: s\nenv.test: [GONE]\n");
    set_mtime(&fresh, 1_000_000);
    fs::rename(&fresh, &shared).unwrap();
    assert!(w.cached().is_none());
    assert!(w.load().allows("test", "GONE"));
}

#[test]
fn a_retargeted_symlink_invalidates_the_cache() {
    let w = World::new();
    w.write(
        "keyrack.yml",
        "org: acme\nextends: [shared/keyrack.yml]\nenv.test: [A]\n",
    );
    w.write("one/keyrack.yml", "org: s\nenv.test: [ONE]\n");
    w.write("two/keyrack.yml", "org: s\nenv.test: [TWO]\n");
    symlink("one", w.repo.join("shared")).unwrap();
    assert!(w.load().allows("test", "ONE"));
    assert!(w.cached().is_some());
    fs::remove_file(w.repo.join("shared")).unwrap();
    symlink("two", w.repo.join("shared")).unwrap();
    assert!(w.cached().is_none());
    let list = w.load();
    assert!(list.allows("test", "TWO") && !list.allows("test", "ONE"));
}

#[test]
fn a_tampered_cache_that_widens_the_allowlist_is_refused() {
    let w = World::new();
    w.write("keyrack.yml", "org: acme\nenv.test: [A]\nenv.prod: []\n");
    w.load();
    let path = w.cache().path().to_path_buf();
    let original = fs::read(&path).unwrap();
    let body = String::from_utf8(testing::body(&original)).unwrap();
    assert!(body.contains("env test\nkey A\n"), "{body}");
    let widened = body.replace("env test\nkey A\n", "env test\nkey A\nkey STOLEN\n");
    let widened_org = body.replace("org acme\n", "org victim\n");
    for forged in [
        // the body edited under the old tag
        original
            .clone()
            .into_iter()
            .take(original.len() - body.len())
            .chain(widened.bytes())
            .collect::<Vec<u8>>(),
        // the org swapped under the old tag
        original
            .clone()
            .into_iter()
            .take(original.len() - body.len())
            .chain(widened_org.bytes())
            .collect(),
        // a well-formed file sealed with another key
        testing::seal_with_key(&[7; 32], widened.as_bytes()),
        // truncated
        original[..original.len() - 4].to_vec(),
        // garbage
        b"not a cache\n".to_vec(),
        Vec::new(),
    ] {
        fs::write(&path, &forged).unwrap();
        assert!(w.cached().is_none(), "forged cache accepted");
        let list = w.load();
        assert!(!list.allows("test", "STOLEN"));
        assert_eq!(list.org(), "acme");
        // ...and rewritten from the YAML
        assert_eq!(keys(&w.cached().unwrap(), "test"), ["A"]);
    }
}

#[test]
fn a_cache_is_bound_to_its_manifest_path_and_sources() {
    let w = World::new();
    w.write("keyrack.yml", "org: acme\nenv.test: [A, B, C]\n");
    w.load();
    let mine = fs::read(w.cache().path()).unwrap();
    // the same file, properly sealed, offered for another manifest of the same home
    let other = w.repo.join("sub");
    fs::create_dir_all(other.join(".git")).unwrap();
    fs::write(other.join("keyrack.yml"), "org: acme\nenv.test: [A]\n").unwrap();
    let theirs = Cache::new(&w.home, &other.join("keyrack.yml"));
    fs::write(theirs.path(), &mine).unwrap();
    fs::set_permissions(theirs.path(), fs::Permissions::from_mode(0o600)).unwrap();
    assert!(theirs.read().is_none());
    // a sealed body whose manifest line names the other path but whose sources are mine
    let body = String::from_utf8(testing::body(&mine)).unwrap();
    let rebound = body.replacen(
        &format!("manifest {}", w.manifest().display()),
        &format!("manifest {}", other.join("keyrack.yml").display()),
        1,
    );
    assert_ne!(rebound, body);
    fs::write(
        theirs.path(),
        testing::seal_with_home_key(&theirs, rebound.as_bytes()),
    )
    .unwrap();
    assert!(theirs.read().is_none(), "first source must be the manifest");
}

#[test]
fn a_symlinked_foreign_loose_or_linked_cache_is_ignored() {
    let w = World::new();
    w.write("keyrack.yml", "org: acme\nenv.test: [A]\n");
    w.load();
    let path = w.cache().path().to_path_buf();
    let good = fs::read(&path).unwrap();
    let elsewhere = w.repo.join("planted");

    // a symlink to a valid cache file
    fs::write(&elsewhere, &good).unwrap();
    fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o600)).unwrap();
    fs::remove_file(&path).unwrap();
    symlink(&elsewhere, &path).unwrap();
    assert!(w.cached().is_none(), "symlinked cache accepted");
    w.load();
    assert!(!fs::symlink_metadata(&path).unwrap().is_symlink());
    assert_eq!(
        fs::read(&elsewhere).unwrap(),
        good,
        "the link target is untouched"
    );
    assert!(w.cached().is_some());

    // group/other-readable
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    assert!(w.cached().is_none(), "0644 cache accepted");
    w.load();
    assert!(w.cached().is_some());

    // a second link to the file
    let link = w.repo.join("hardlink");
    fs::hard_link(&path, &link).unwrap();
    assert!(w.cached().is_none(), "hard-linked cache accepted");
    fs::remove_file(&link).unwrap();
    assert!(w.cached().is_some());

    // owned by someone else (needs root to give it away; CI runs as root)
    if nix::unistd::geteuid().is_root() {
        let nobody = Some(nix::unistd::Uid::from_raw(65534));
        nix::unistd::chown(&path, nobody, None).unwrap();
        assert!(w.cached().is_none(), "foreign-owned cache accepted");
        w.load();
        assert_eq!(fs::metadata(&path).unwrap().uid(), 0);
        assert!(w.cached().is_some());
        // a foreign key file invalidates every cache
        let key = path.parent().unwrap().join("key");
        nix::unistd::chown(&key, nobody, None).unwrap();
        assert!(w.cached().is_none(), "foreign key accepted");
    }
}

#[test]
fn files_changed_within_the_settle_window_are_not_cached() {
    let w = World::new();
    w.write("keyrack.yml", "org: acme\nenv.test: [A]\n");
    let list = Allowlist::load(&w.home, &w.manifest()).unwrap();
    assert!(list.allows("test", "A"));
    assert!(
        !w.cache().path().exists(),
        "a just-written manifest was cached"
    );
}

#[test]
fn no_cache_is_written_into_a_missing_keyrack_home() {
    let w = World::new();
    w.write("keyrack.yml", "org: acme\nenv.test: [A]\n");
    let absent = Home::at(w.repo.join("no-home"), Owner::default());
    let list = Allowlist::load_settled(&absent, &w.manifest(), Duration::ZERO).unwrap();
    assert!(list.allows("test", "A"));
    assert!(!absent.root().exists());
}

#[test]
fn a_cache_miss_reports_manifest_errors_with_their_position() {
    let w = World::new();
    w.write("keyrack.yml", "org: acme\nenv.test:\n  - 1BAD\n");
    match Allowlist::load_settled(&w.home, &w.manifest(), Duration::ZERO) {
        Err(Error::Manifest { line, path, .. }) => {
            assert_eq!(line, 3);
            assert_eq!(path, w.manifest());
        }
        other => panic!("{other:?}"),
    }
    assert!(!w.cache().path().exists());
    // a valid cache does not hide a manifest that broke since
    w.write("keyrack.yml", "org: acme\nenv.test: [A]\n");
    w.load();
    w.write("keyrack.yml", "org: acme\nenv.test: [A\n");
    assert!(matches!(
        Allowlist::load_settled(&w.home, &w.manifest(), Duration::ZERO),
        Err(Error::Manifest { .. })
    ));
}

#[test]
fn a_large_manifest_is_indexed_in_linear_time() {
    let w = World::new();
    let mut text = String::from("org: acme\nenv.test:\n");
    for i in 0..20_000 {
        text.push_str(&format!("  - K_{i}\n"));
    }
    text.push_str("env.prod: [K_7]\nenv.all: [K_19999, SHARED]\n");
    w.write("keyrack.yml", &text);
    let cold = w.load();
    let warm = w.cached().expect("cached");
    for list in [&cold, &warm] {
        assert_eq!(list.keys_for("test").len(), 20_001);
        assert!(list.allows("test", "K_12345"));
        assert!(list.allows("prod", "SHARED") && !list.allows("prod", "K_8"));
        assert_eq!(list.envs_declaring("K_7"), ["prod", "test"]);
    }
}

#[test]
fn paths_with_spaces_percents_newlines_and_non_utf8_bytes_are_cached() {
    use std::os::unix::ffi::OsStrExt;
    let w = World::with_repo_named(std::ffi::OsStr::from_bytes(b"re po%41\n\xff"));
    w.write(
        "keyrack.yml",
        "org: acme\nextends: [sh ared/k%.yml]\nenv.test: [A]\n",
    );
    w.write("sh ared/k%.yml", "org: s\nenv.test: [B]\n");
    w.load();
    let warm = w.cached().expect("cached");
    assert!(warm.allows("test", "A") && warm.allows("test", "B"));
    assert_eq!(warm.path(), w.manifest());
    w.write("sh ared/k%.yml", "org: s\nenv.test: [C]\n");
    assert!(w.cached().is_none());
    assert!(w.load().allows("test", "C"));
}

#[test]
fn a_source_reached_through_another_path_invalidates_the_cache() {
    // the same file (one inode, two links) reached through a retargeted symlink: nothing about
    // the file changed, only where the manifest's `extends` resolves — which path-based checks
    // of the parse (e.g. "inside the repository") depend on
    let w = World::new();
    w.write(
        "keyrack.yml",
        "org: acme\nextends: [shared/keyrack.yml]\nenv.test: [A]\n",
    );
    let one = w.write("one/keyrack.yml", "org: s\nenv.test: [ONE]\n");
    fs::create_dir_all(w.repo.join("two")).unwrap();
    fs::hard_link(&one, w.repo.join("two/keyrack.yml")).unwrap();
    symlink("one", w.repo.join("shared")).unwrap();
    w.load();
    assert!(w.cached().is_some());
    fs::remove_file(w.repo.join("shared")).unwrap();
    symlink("two", w.repo.join("shared")).unwrap();
    assert!(w.cached().is_none(), "the canonical path changed");
    assert!(w.load().allows("test", "ONE"));
}

#[test]
fn a_cache_written_by_another_keyrack_binary_is_refused() {
    // an upgrade may parse manifests differently: its caches start afresh
    let w = World::new();
    w.write("keyrack.yml", "org: acme\nenv.test: [A]\n");
    w.load();
    let cache = w.cache();
    let body = String::from_utf8(testing::body(&fs::read(cache.path()).unwrap())).unwrap();
    let exe_line = body.lines().nth(1).unwrap().to_string();
    assert!(exe_line.starts_with("exe "), "{body}");
    let mut fields: Vec<String> = exe_line.split(' ').map(String::from).collect();
    fields[2] = (fields[2].parse::<u64>().unwrap() + 1).to_string(); // another inode
    let other = body.replacen(&exe_line, &fields.join(" "), 1);
    fs::write(
        cache.path(),
        testing::seal_with_home_key(&cache, other.as_bytes()),
    )
    .unwrap();
    assert!(w.cached().is_none());
    // the same body as written is accepted again
    fs::write(
        cache.path(),
        testing::seal_with_home_key(&cache, body.as_bytes()),
    )
    .unwrap();
    assert!(w.cached().is_some());
}
