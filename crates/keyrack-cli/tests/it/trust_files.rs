//! File handling at the trust boundary: writers serialise their read-modify-write of
//! `keyrack.yml` and the host manifest, killed writers leave no plaintext temp copies, symlinked
//! dotfiles are edited through the link, `extends:` stays inside the repository, and identity
//! files readable by others are refused.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use keyrack_testkit::{stderr, stdout, Sandbox};

fn sandbox() -> Sandbox {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.manifest("org: acme\nenv.test: []\n");
    s.init();
    s
}

/// The keys of `env.test` in keyrack.yml (block or flow list).
fn manifest_keys(s: &Sandbox) -> BTreeSet<String> {
    let text = s.read_manifest();
    let mut keys = BTreeSet::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(k) = t.strip_prefix("- ") {
            keys.insert(k.trim().to_string());
        } else if let Some(rest) = t.strip_prefix("env.test:") {
            let inner = rest.trim().trim_start_matches('[').trim_end_matches(']');
            keys.extend(
                inner
                    .split(',')
                    .map(|k| k.trim().to_string())
                    .filter(|k| !k.is_empty()),
            );
        }
    }
    keys
}

/// The key names of this host's entries in acme.test.
fn host_keys(s: &Sandbox) -> BTreeSet<String> {
    let (code, v) = s.json(&["list"]);
    assert_eq!(code, 0, "{v}");
    v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| {
            k["slug"]
                .as_str()?
                .strip_prefix("acme.test.")
                .map(String::from)
        })
        .collect()
}

fn spawn_set(s: &Sandbox, key: &str, value: &str) -> std::process::Child {
    let mut c = s
        .std_cmd()
        .args(["set", "--key", key, "--env", "test", "--vault", "os.direct"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(value.as_bytes()).unwrap();
    c
}

/// Each round races a `set` and a `del` of its own key (and a `set` of a fresh key against a
/// `del` of another); whatever order the lock gives them, every host entry ends with its manifest
/// line and every manifest line with its host entry.
#[test]
fn parallel_set_and_del_keep_host_entries_and_manifest_lines_in_step() {
    let s = sandbox();
    for i in 0..20 {
        s.cmd()
            .args(["set", "--key", &format!("K_{i}"), "--env", "test"])
            .args(["--vault", "os.direct"])
            .write_stdin(format!("old-{i}"))
            .assert()
            .success();
    }
    let mut children = Vec::new();
    for i in 0..20 {
        children.push(spawn_set(&s, &format!("K_{i}"), &format!("new-{i}")));
        children.push(
            s.std_cmd()
                .args(["del", "--key", &format!("K_{i}"), "--env", "test"])
                .arg("--from-manifest")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        children.push(spawn_set(&s, &format!("N_{i}"), &format!("fresh-{i}")));
    }
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let host = host_keys(&s);
    let manifest = manifest_keys(&s);
    for i in 0..20 {
        assert!(host.contains(&format!("N_{i}")), "N_{i} landed: {host:?}");
    }
    assert_eq!(
        host,
        manifest,
        "every host entry has its manifest line and vice versa:\n{}",
        s.read_manifest()
    );
}

/// `set` reads the recipients before it asks for the secret; a `recipient add` that lands while
/// it waits must still be a recipient of the new file (the host manifest is re-read under the
/// lock).
#[test]
fn a_set_waiting_for_its_secret_encrypts_to_recipients_added_meanwhile() {
    let s = sandbox();
    let laptop = s.root.join("laptop");
    keyrack_testkit::ssh_keygen(&laptop, "ed25519", "");
    let mut c = s
        .std_cmd()
        .args(["set", "--key", "LATE", "--env", "test"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // the set has started and waits for its secret on stdin
    std::thread::sleep(std::time::Duration::from_millis(700));
    let pubkey = std::fs::read_to_string(laptop.with_extension("pub")).unwrap();
    s.cmd()
        .args([
            "recipient",
            "add",
            "--pubkey",
            pubkey.trim(),
            "--label",
            "laptop",
        ])
        .assert()
        .success();
    c.stdin.take().unwrap().write_all(b"late-value").unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let files = s.secure_files();
    assert_eq!(files.len(), 1);
    let o = std::process::Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&laptop)
        .arg(&files[0])
        .output()
        .unwrap();
    // os.secure files carry a one-line binding header, then the value byte for byte
    let plain = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        plain.split_once('\n').map(|(_, v)| v),
        Some("late-value"),
        "the recipient added while set waited can decrypt: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// temp files

const HEX: &str = "0123456789abcdef0123456789abcdef";

fn dead_pid() -> u32 {
    let mut c = std::process::Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

/// Every `.keyrack-tmp-*` file under `dir`.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else if e.file_name().to_string_lossy().starts_with(".keyrack-tmp-") {
                out.push(p);
            }
        }
    }
    out
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else if std::fs::read(&p)
                .map(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
                .unwrap_or(false)
            {
                out.push(p);
            }
        }
    }
    out
}

/// Temp files a killed writer left (a plaintext copy of direct.json among them) are gone after
/// the next write, whatever their name looks like; a pid that was reused does not save them.
#[test]
fn stale_temp_files_are_removed_by_the_next_set() {
    let s = sandbox();
    s.cmd()
        .args([
            "set",
            "--key",
            "FIRST",
            "--env",
            "test",
            "--vault",
            "os.direct",
        ])
        .write_stdin("first")
        .assert()
        .success();
    let direct = s.keyrack_home.join("vault/os.direct/default");
    let secure = s.keyrack_home.join("vault/os.secure/default");
    std::fs::create_dir_all(&secure).unwrap();
    let leftover = "{\"acme.test.FIRST\": \"planted-plaintext\"}";
    let planted = [
        direct.join(format!(".keyrack-tmp-{}-{HEX}", dead_pid())),
        direct.join(".keyrack-tmp-Xy12Ab"), // an older keyrack's name
        direct.join(format!(".keyrack-tmp-1-{HEX}")), // a reused pid (1 always runs)
        secure.join(format!(".keyrack-tmp-{}-{HEX}", dead_pid())),
        s.keyrack_home
            .join(format!(".keyrack-tmp-{}-{HEX}", dead_pid())),
        s.repo.join(format!(".keyrack-tmp-{}-{HEX}", dead_pid())),
    ];
    for p in &planted {
        std::fs::write(p, leftover).unwrap();
    }
    s.cmd()
        .args([
            "set",
            "--key",
            "SECOND",
            "--env",
            "test",
            "--vault",
            "os.direct",
        ])
        .write_stdin("second")
        .assert()
        .success();
    assert_eq!(temp_files(&s.keyrack_home), Vec::<PathBuf>::new());
    assert_eq!(temp_files(&s.repo), Vec::<PathBuf>::new());
    assert!(files_containing(&s.root, "planted-plaintext").is_empty());
}

/// SIGKILL at random points of `set --vault os.direct`, plus the copies such kills leave
/// (planted, since a kill does not always land mid-write): `del` leaves no copy of the value.
#[test]
fn del_leaves_no_copy_of_a_value_after_killed_sets() {
    let s = sandbox();
    let direct = s.keyrack_home.join("vault/os.direct/default");
    for i in 0..20u64 {
        let mut c = spawn_set(&s, "VICTIM", "victim-value-123");
        std::thread::sleep(std::time::Duration::from_micros(i * 1500));
        let _ = c.kill(); // SIGKILL
        let _ = c.wait();
    }
    s.cmd()
        .args([
            "set",
            "--key",
            "VICTIM",
            "--env",
            "test",
            "--vault",
            "os.direct",
        ])
        .write_stdin("victim-value-123")
        .assert()
        .success();
    std::fs::create_dir_all(&direct).unwrap();
    for name in [
        format!(".keyrack-tmp-{}-{HEX}", dead_pid()),
        format!(".keyrack-tmp-1-{HEX}"),
        ".keyrack-tmp-Qw34Er".to_string(),
    ] {
        std::fs::write(
            direct.join(name),
            "{\"acme.test.VICTIM\": \"victim-value-123\"}",
        )
        .unwrap();
    }
    s.cmd()
        .args(["del", "--key", "VICTIM", "--env", "test"])
        .assert()
        .success();
    assert_eq!(temp_files(&s.keyrack_home), Vec::<PathBuf>::new());
    assert_eq!(
        files_containing(&s.keyrack_home, "victim-value-123"),
        Vec::<PathBuf>::new(),
        "no copy of the deleted value anywhere in the keyrack home"
    );
}

// ---------------------------------------------------------------------------------------------
// symlinked dotfiles

fn is_link(p: &Path) -> bool {
    std::fs::symlink_metadata(p)
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(false)
}

#[test]
fn a_symlinked_keyrack_yml_is_edited_through_the_link() {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    let dotfiles = s.root.join("dotfiles/acme");
    std::fs::create_dir_all(&dotfiles).unwrap();
    let target = dotfiles.join("keyrack.yml");
    std::fs::write(&target, "# managed by stow\norg: acme\nenv.test: []\n").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
    let link = s.repo.join("keyrack.yml");
    std::os::unix::fs::symlink("../dotfiles/acme/keyrack.yml", &link).unwrap();
    s.init();
    s.set("LINKED", "test", "v");
    assert!(is_link(&link), "keyrack.yml is still a link");
    let text = std::fs::read_to_string(&target).unwrap();
    assert_eq!(text, "# managed by stow\norg: acme\nenv.test: [LINKED]\n");
    assert_eq!(
        std::fs::metadata(&target).unwrap().permissions().mode() & 0o777,
        0o640
    );
    assert!(temp_files(&s.root).is_empty());
    s.cmd()
        .args(["del", "--key", "LINKED", "--env", "test", "--from-manifest"])
        .assert()
        .success();
    assert!(is_link(&link));
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "# managed by stow\norg: acme\nenv.test: []\n"
    );

    // a link into a directory another user owns is refused before anything is stored
    let foreign = s.root.join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("keyrack.yml"), "org: acme\nenv.test: []\n").unwrap();
    std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(foreign.join("keyrack.yml"), &link).unwrap();
    let o = s.run(&["set", "--key", "OTHER", "--env", "test"], "v");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("owned by uid 65534, not by you"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("fix:"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(foreign.join("keyrack.yml")).unwrap(),
        "org: acme\nenv.test: []\n"
    );
    assert!(!host_keys(&s).contains("OTHER"), "nothing stored");

    // a dangling link is refused by init, not replaced by a regular file
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink("../dotfiles/acme/missing.yml", &link).unwrap();
    let o = s.run(&["init", "--org", "acme"], "");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("dangling link"), "{}", stderr(&o));
    assert!(is_link(&link));
    assert!(!dotfiles.join("missing.yml").exists());
}

fn aws_sandbox(fake: &keyrack_fake_aws::FakeAws) -> Sandbox {
    crate::support::aws::world(fake, &[]).0
}

fn set_aws(s: &Sandbox) -> std::process::Output {
    s.run(&crate::support::aws::SET_TEST, "")
}

#[test]
fn a_symlinked_aws_config_is_edited_through_the_link() {
    let fake = keyrack_fake_aws::FakeAws::start();
    let s = aws_sandbox(&fake);
    let dotfiles = s.root.join("dotfiles/aws");
    std::fs::create_dir_all(&dotfiles).unwrap();
    let target = dotfiles.join("config");
    let original = "# chezmoi\n[default]\nregion = eu-west-1\n";
    std::fs::write(&target, original).unwrap();
    std::fs::create_dir_all(s.home.join(".aws")).unwrap();
    let link = s.home.join(".aws/config");
    std::os::unix::fs::symlink(&target, &link).unwrap();

    let o = set_aws(&s);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(is_link(&link), "~/.aws/config is still a link");
    let text = std::fs::read_to_string(&target).unwrap();
    assert!(text.starts_with(original), "{text}");
    assert!(text.contains("[profile acme.test]"), "{text}");
    s.cmd()
        .args(["del", "--key", "AWS_PROFILE", "--env", "test"])
        .assert()
        .success();
    assert!(is_link(&link));
    assert!(std::fs::read_to_string(&target)
        .unwrap()
        .starts_with(original));
    assert!(temp_files(&s.home).is_empty() && temp_files(&s.root.join("dotfiles")).is_empty());

    // a dangling link is refused and stays a link
    std::fs::remove_file(&target).unwrap();
    let o = set_aws(&s);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("dangling link"), "{}", stderr(&o));
    assert!(is_link(&link));
    assert!(!target.exists());
}

// ---------------------------------------------------------------------------------------------
// extends

#[test]
fn extends_outside_the_repository_is_refused_with_its_position() {
    let s = sandbox();
    std::fs::write(s.root.join("x.yml"), "org: evil\nenv.test: [X]\n").unwrap();
    std::os::unix::fs::symlink(s.root.join("x.yml"), s.repo.join("escape.yml")).unwrap();
    for (entry, reason) in [
        ("/etc/passwd", "it is an absolute path"),
        ("../x.yml", "'..' climbs above the repository root"),
        ("escape.yml", "a symbolic link leads to"),
    ] {
        s.manifest(&format!("org: acme\nenv.test: []\nextends: [{entry}]\n"));
        let o = s.run(&["set", "--key", "A", "--env", "test"], "v");
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!(
                "keyrack.yml:3:11: extends '{entry}' points outside the repository"
            )),
            "{entry}: {err}"
        );
        assert!(err.contains(reason), "{entry}: {err}");
        assert!(err.contains("fix:"), "{err}");
        assert!(
            !err.contains("root:"),
            "nothing of /etc/passwd is shown: {err}"
        );
    }
    assert!(host_keys(&s).is_empty());
}

// ---------------------------------------------------------------------------------------------
// identities

fn assert_unprotected(o: &std::process::Output, path: &Path) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("UNPROTECTED PRIVATE KEY FILE"), "{err}");
    assert!(
        err.contains(&format!("chmod 600 {}", path.display())),
        "{err}"
    );
}

#[test]
fn identity_files_others_can_read_are_refused() {
    let s = sandbox();
    s.set("A", "test", "v");
    let id = s.identity();
    for mode in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(&id, std::fs::Permissions::from_mode(mode)).unwrap();
        let o = s.run(&["list"], "");
        assert_unprotected(&o, &id);
    }
    std::fs::set_permissions(&id, std::fs::Permissions::from_mode(0o600)).unwrap();
    s.cmd().arg("list").assert().success();

    // --identity and KEYRACK_IDENTITY
    let copy = s.root.join("copy.txt");
    std::fs::copy(&id, &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = s.run(&["--identity", copy.to_str().unwrap(), "list"], "");
    assert_unprotected(&o, &copy);
    let o = s
        .cmd()
        .env("KEYRACK_IDENTITY", &copy)
        .arg("list")
        .output()
        .unwrap();
    assert_unprotected(&o, &copy);
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o400)).unwrap();
    s.cmd()
        .args(["--identity", copy.to_str().unwrap(), "list"])
        .assert()
        .success();
}

#[test]
fn a_default_ssh_key_others_can_read_is_refused() {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.manifest("org: acme\nenv.test: []\n");
    let ssh = s.home.join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    let key = ssh.join("id_ed25519");
    keyrack_testkit::ssh_keygen(&key, "ed25519", "");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = s.run(&["init"], "");
    assert_unprotected(&o, &key);
    assert!(
        !s.keyrack_home.join("host.age").exists(),
        "nothing initialised"
    );
}
