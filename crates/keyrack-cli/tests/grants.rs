//! The core shapes, through the real binary: the generic daemon (grants carry labels, files to
//! release, an opaque vault payload and a renewal deadline; the daemon renews through the vault
//! renewer it was started with and remembers why a grant ended), one scope resolver for every
//! command, and the typed host manifest reading the files written before it.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keyrack_fake_aws::FakeAws;
use keyrack_testkit::{stderr, stdout, Sandbox};

const URL: &str = "https://d-1234567890.awsapps.com/start";

struct World {
    s: Sandbox,
    fake: FakeAws,
}

fn world() -> World {
    let fake = FakeAws::start();
    let mut s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    for (k, v) in fake.env() {
        s.env(&k, &v);
    }
    let script = s.root.join("browser.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nexec curl -s -L --max-time 20 -o /dev/null \"$1\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    s.env("BROWSER", script.to_str().unwrap());
    s.manifest("org: acme\nenv.test: []\n");
    s.init();
    let o = s.run(
        &[
            "set",
            "--key",
            "AWS_PROFILE",
            "--env",
            "test",
            "--sso-start-url",
            URL,
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
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    World { s, fake }
}

impl World {
    fn mirror(&self) -> PathBuf {
        // sha1("acme"), the sso-session's token-cache key
        self.s
            .home
            .join(".aws/sso/cache/293abb6b76d7791c0732cc517d38c4b5c734b87f.json")
    }
}

/// One raw request to the daemon, its JSON answer.
fn ask(socket: &Path, line: &str) -> serde_json::Value {
    let mut c = UnixStream::connect(socket).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(line.as_bytes()).unwrap();
    c.write_all(b"\n").unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    serde_json::from_str(&out).unwrap()
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_aws_grant_is_found_by_label_and_carries_its_mirror_as_a_file_to_release() {
    let w = world();
    w.s.cmd()
        .args(["unlock", "--env", "test"])
        .assert()
        .success();
    let v = ask(
        &w.s.socket(),
        r#"{"op":"get_by_label","name":"aws.profile","value":"acme.test"}"#,
    );
    assert_eq!(v["status"], "labelled", "{v}");
    let g = &v["grants"][0];
    assert_eq!(g["slug"], "acme.test.AWS_PROFILE");
    assert_eq!(g["labels"]["aws.session"], "acme");
    assert_eq!(g["release"][0], w.mirror().to_str().unwrap());
    assert!(
        g["payload"].is_string(),
        "the vault's payload is opaque: {g}"
    );
    assert!(g["renewAt"].is_u64());
    let none = ask(
        &w.s.socket(),
        r#"{"op":"get_by_label","name":"aws.profile","value":"other"}"#,
    );
    assert_eq!(none["grants"], serde_json::json!([]));

    // STATUS shows labels and files, never the payload or the value
    let st = ask(&w.s.socket(), r#"{"op":"status"}"#);
    let held = &st["grants"][0];
    assert_eq!(held["labels"]["aws.profile"], "acme.test");
    assert!(held.get("payload").is_none() && held.get("secret").is_none());

    // relock by label (what `aws logout` does) removes the mirror with the last grant
    assert!(w.mirror().exists());
    let r = ask(
        &w.s.socket(),
        r#"{"op":"relock","scope":{"kind":"label","name":"aws.session","value":"acme"}}"#,
    );
    assert_eq!(r["slugs"][0], "acme.test.AWS_PROFILE");
    assert!(!w.mirror().exists());
}

#[test]
fn the_daemon_renews_role_credentials_and_ends_the_grant_when_the_session_is_over() {
    let w = world();
    // role credentials that live 4 s: the grant asks to be renewed halfway through
    w.fake.set_role_credential_lifetime(Duration::from_secs(4));
    w.s.cmd()
        .args(["unlock", "--env", "test"])
        .assert()
        .success();
    let before = w.fake.role_credential_calls();
    // nobody runs keyrack now: the daemon renews by itself (it was started with a clean
    // environment: the portal's address travels in the grant's payload)
    wait_for("a renewal by the daemon", Duration::from_secs(8), || {
        w.fake.role_credential_calls() > before
    });
    let o =
        w.s.run(&["aws", "credentials", "--profile", "acme.test"], "");
    assert!(o.status.success(), "{}", stderr(&o));

    // the portal refuses the session: the next renewal ends the grant, says why, and the
    // mirrored token goes with it
    w.fake.revoke_all();
    wait_for("the grant to end", Duration::from_secs(8), || {
        !w.mirror().exists()
    });
    let (_, st) = w.s.json(&["status"]);
    assert_eq!(st["keys"], serde_json::json!([]), "{st}");
    let ended = &st["ended"][0];
    assert_eq!(ended["slug"], "acme.test.AWS_PROFILE");
    assert_eq!(ended["why"]["kind"], "ended");
    assert!(
        ended["why"]["reason"]
            .as_str()
            .unwrap()
            .contains("the SSO session ended"),
        "{ended}"
    );
    // GET says so too, as data
    let v = ask(
        &w.s.socket(),
        r#"{"op":"get","slugs":["acme.test.AWS_PROFILE"]}"#,
    );
    assert_eq!(v["grants"][0], serde_json::Value::Null);
    assert_eq!(v["ended"][0]["why"]["kind"], "ended");
    // and `get` shows it on the locked row
    let (code, v) = w.s.json(&["get", "--key", "AWS_PROFILE", "--env", "test"]);
    assert_eq!(code, 2, "locked now: {v}");
    assert_eq!(v["keys"][0]["status"], "locked");
    assert_eq!(v["keys"][0]["ended"]["why"]["kind"], "ended", "{v}");
    assert!(v["keys"][0]["ended"]["at"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn expired_and_relocked_grants_are_remembered_with_why() {
    let mut s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.env("KEYRACK_DAEMON_IDLE_SECS", "30");
    s.manifest("org: acme\nenv.test: [A, B]\n");
    s.init();
    s.set("A", "test", "a-value");
    s.set("B", "test", "b-value");
    s.cmd()
        .args(["unlock", "--env", "test", "--key", "A", "--duration", "1s"])
        .assert()
        .success();
    s.cmd()
        .args(["unlock", "--env", "test", "--key", "B"])
        .assert()
        .success();
    s.cmd()
        .args(["relock", "--env", "test", "--key", "B"])
        .assert()
        .success();
    std::thread::sleep(Duration::from_millis(1500));
    let v = ask(
        &s.socket(),
        r#"{"op":"get","slugs":["acme.test.A","acme.test.B"]}"#,
    );
    assert_eq!(v["grants"], serde_json::json!([null, null]), "{v}");
    let why = |slug: &str| {
        v["ended"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["slug"] == slug)
            .map(|e| e["why"]["kind"].clone())
    };
    assert_eq!(why("acme.test.A"), Some("expired".into()));
    assert_eq!(why("acme.test.B"), Some("relocked".into()));
    // unlocking again forgets the record
    s.cmd()
        .args(["unlock", "--env", "test", "--key", "B"])
        .assert()
        .success();
    let (_, st) = s.json(&["status"]);
    let ended: Vec<&str> = st["ended"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["slug"].as_str().unwrap())
        .collect();
    assert_eq!(ended, ["acme.test.A"]);
}

#[test]
fn get_set_and_del_resolve_a_key_the_same_way() {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.manifest("org: acme\nenv.test: [A]\nenv.prod: [A]\n");
    s.init();
    // a foreign --org is refused by every command with the same message (get used to ignore it)
    let mut messages = Vec::new();
    for cmd in [
        vec!["get", "--key", "A", "--env", "test", "--org", "other"],
        vec!["set", "--key", "A", "--env", "test", "--org", "other"],
        vec!["del", "--key", "A", "--env", "test", "--org", "other"],
    ] {
        let o = s.run(&cmd, "v\n");
        assert_eq!(o.status.code(), Some(1), "{cmd:?}: {}", stderr(&o));
        let e = stderr(&o);
        let line = e
            .lines()
            .find(|l| l.contains("invalid org 'other'"))
            .unwrap_or_else(|| panic!("{cmd:?}: {e}"))
            .trim()
            .to_string();
        messages.push(line);
    }
    assert!(messages.windows(2).all(|w| w[0] == w[1]), "{messages:?}");
    // an undeclared env: the same refusal with its near miss
    for cmd in [
        vec!["get", "--key", "A", "--env", "tset"],
        vec!["set", "--key", "A", "--env", "tset"],
        vec!["del", "--key", "A", "--env", "tset"],
    ] {
        let o = s.run(&cmd, "v\n");
        assert_eq!(o.status.code(), Some(1), "{cmd:?}");
        assert!(
            stderr(&o).contains("did you mean --env test"),
            "{cmd:?}: {}",
            stderr(&o)
        );
    }
}

/// Decrypts the default owner's host manifest of `s` as JSON.
fn host_json(s: &Sandbox) -> serde_json::Value {
    let id = keyrack::identity::Identity::load(&s.identity(), &keyrack::interact::NonInteractive)
        .unwrap();
    let path = s.keyrack_home.join("host.age");
    let plain = keyrack::crypto::decrypt(&path, &std::fs::read(&path).unwrap(), &id).unwrap();
    serde_json::from_slice(&plain).unwrap()
}

/// Encrypts `v` as the host manifest of `s`, to the manifest's own recipients.
fn write_host_json(s: &Sandbox, v: &serde_json::Value) {
    let recipients: Vec<keyrack::crypto::RecipientKey> = v["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| keyrack::crypto::RecipientKey::parse(r["pubkey"].as_str().unwrap()).unwrap())
        .collect();
    let sealed =
        keyrack::crypto::encrypt(&recipients, serde_json::to_string(v).unwrap().as_bytes())
            .unwrap();
    std::fs::write(s.keyrack_home.join("host.age"), sealed).unwrap();
}

#[test]
fn a_host_manifest_written_before_entries_were_typed_still_loads() {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.manifest("org: acme\nenv.test: [A, B]\n");
    s.init();
    s.set("A", "test", "a-value");
    // the earlier file form: meta a string map (aws.config under its old alias), maxDuration as
    // written, times with an offset
    let mut v = host_json(&s);
    let a = &mut v["hosts"]["acme.test.A"];
    a["maxDuration"] = "90m".into();
    a["createdAt"] = "2024-05-01T12:00:00+02:00".into();
    let aws_meta = serde_json::json!({
        "accountId": "123456789012", "roleName": "Admin", "ssoRegion": "us-east-1",
        "ssoSession": "acme", "ssoStartUrl": "https://d-1.awsapps.com/start", "ssoUser": "alice"
    });
    v["hosts"]["acme.test.AWS_PROFILE"] = serde_json::json!({
        "slug": "acme.test.AWS_PROFILE", "vault": "aws.iam.sso", "mech": "aws.sso",
        "exid": "acme.test", "env": "test", "org": "acme", "meta": aws_meta,
        "createdAt": "2024-05-01T10:00:00Z", "updatedAt": "2024-05-01T10:00:00Z"
    });
    write_host_json(&s, &v);

    let (code, list) = s.json(&["list"]);
    assert_eq!(code, 0, "{list}");
    let row = |slug: &str| {
        list["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["slug"] == slug)
            .cloned()
            .unwrap_or_else(|| panic!("{slug} in {list}"))
    };
    assert_eq!(row("acme.test.A")["maxDuration"], "1h30m");
    assert_eq!(row("acme.test.A")["createdAt"], "2024-05-01T10:00:00Z");
    assert_eq!(row("acme.test.AWS_PROFILE")["meta"], aws_meta);
    assert_eq!(row("acme.test.AWS_PROFILE")["vault"], "aws.config");

    // it unlocks, capped by the recorded maxDuration
    let (code, u) = s.json(&["unlock", "--env", "test", "--key", "A"]);
    assert_eq!(code, 0, "{u}");
    assert_eq!(s.get_value("A", "test").1, "a-value");

    // a later write keeps every entry and its data
    s.set("B", "test", "b-value");
    let after = host_json(&s);
    assert_eq!(after["hosts"]["acme.test.AWS_PROFILE"]["meta"], aws_meta);
    assert_eq!(after["hosts"]["acme.test.A"]["maxDuration"], "1h30m");
    assert_eq!(
        after["hosts"]["acme.test.A"]["createdAt"],
        "2024-05-01T10:00:00Z"
    );
    assert!(after["hosts"]["acme.test.B"].is_object());
}
