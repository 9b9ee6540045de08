//! The `github.app` mech through the real binary against a loopback fake of the GitHub API that
//! verifies every JWT's signature with the app's public key: set (with its minted round trip) →
//! unlock → get hands out an installation token whose grant expires with it; `GITHUB_API_URL`
//! is honoured; a bad key, a 401, a 404 or an unreachable API is that key's row with the fix;
//! the private key never shows up in argv, output, the daemon or the keyrack home in clear.

use std::path::{Path, PathBuf};
use std::process::Output;

use keyrack_fake_github::FakeGitHub;
use keyrack_testkit::{stderr, stdout, Sandbox};

const APP_ID: &str = "12345";
const INSTALLATION: u64 = 678;

/// An RSA key pair made by ssh-keygen: the private key (`-m PEM` = PKCS#1 as GitHub issues it,
/// `-m PKCS8`) and the public key as SPKI PEM (all the fake ever sees).
struct AppKey {
    private: PathBuf,
    public_pem: String,
}

impl AppKey {
    fn new(dir: &Path, name: &str, format: &str) -> Self {
        let private = dir.join(name);
        let st = std::process::Command::new("ssh-keygen")
            .args([
                "-q", "-t", "rsa", "-b", "2048", "-m", format, "-N", "", "-C", "app", "-f",
            ])
            .arg(&private)
            .status()
            .expect("ssh-keygen is installed");
        assert!(st.success());
        let public = std::process::Command::new("ssh-keygen")
            .args(["-e", "-m", "PKCS8", "-f"])
            .arg(private.with_extension("pem.pub"))
            .output()
            .expect("ssh-keygen -e");
        assert!(public.status.success(), "{}", stderr(&public));
        AppKey {
            private,
            public_pem: String::from_utf8(public.stdout).unwrap(),
        }
    }

    fn pem(&self) -> String {
        std::fs::read_to_string(&self.private).unwrap()
    }

    /// Lines of the key's body: none may ever appear anywhere but in the key file.
    fn body_lines(&self) -> Vec<String> {
        self.pem()
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 20)
            .map(str::to_string)
            .collect()
    }
}

struct World {
    s: Sandbox,
    gh: FakeGitHub,
    key: AppKey,
}

fn world(manifest: &str) -> World {
    let mut s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    let gh = FakeGitHub::start();
    s.env("GITHUB_API_URL", &gh.url);
    s.manifest(manifest);
    s.init();
    let key = AppKey::new(&s.root, "app.pem", "PEM");
    gh.add_app(APP_ID, &key.public_pem, &[INSTALLATION]);
    World { s, gh, key }
}

fn set_app(w: &World, key: &str, extra: &[&str]) -> Output {
    let installation = INSTALLATION.to_string();
    let pem = w.key.private.display().to_string();
    let mut args = vec![
        "set",
        "--key",
        key,
        "--env",
        "test",
        "--mech",
        "github.app",
        "--app-id",
        APP_ID,
        "--installation-id",
        &installation,
        "--private-key",
        &pem,
    ];
    args.extend_from_slice(extra);
    w.s.run(&args, "")
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn rfc3339_secs(v: &serde_json::Value) -> i64 {
    let s = v.as_str().unwrap_or_else(|| panic!("a time: {v}"));
    let o = std::process::Command::new("date")
        .args(["-u", "-d", s, "+%s"])
        .output()
        .unwrap();
    String::from_utf8(o.stdout).unwrap().trim().parse().unwrap()
}

fn assert_no_key_material(w: &World, what: &str, text: &str) {
    for line in w.key.body_lines() {
        assert!(
            !text.contains(&line),
            "{what} shows the private key: {text}"
        );
    }
}

/// Every file under `dir`, read as bytes.
fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(all_files(&p));
        } else if let Ok(b) = std::fs::read(&p) {
            out.push((p, b));
        }
    }
    out
}

#[test]
fn set_unlock_get_hands_out_a_minted_installation_token_that_expires_with_it() {
    let w = world("org: acme\nenv.test: [GITHUB_TOKEN]\n");
    w.gh.set_token_lifetime(1800);
    let o = set_app(&w, "GITHUB_TOKEN", &[]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("mech: github.app"), "{}", stdout(&o));
    assert_no_key_material(&w, "set", &(stdout(&o) + &stderr(&o)));

    // the round trip at set minted once, with a JWT the fake verified against the public key
    let seen = w.gh.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let jwt = &seen[0];
    assert_eq!(jwt.status, 201, "{jwt:?}");
    assert_eq!(
        jwt.request,
        format!("POST /app/installations/{INSTALLATION}/access_tokens")
    );
    assert_eq!(jwt.iss.as_deref(), Some(APP_ID));
    let (iat, exp) = (jwt.iat.unwrap(), jwt.exp.unwrap());
    assert!(
        (55..=70).contains(&(jwt.at - iat)),
        "iat is 60 s in the past: {jwt:?}"
    );
    assert!(exp - iat <= 600 && exp > jwt.at, "{jwt:?}");
    assert!(jwt.user_agent.starts_with("keyrack"), "{jwt:?}");

    // unlock mints again; get hands out that token
    let (c, v) = w.s.json(&["unlock", "--env", "test"]);
    assert_eq!(c, 0, "{v}");
    let row = &v["keys"][0];
    assert_eq!(row["status"], "granted", "{v}");
    let issued = w.gh.issued();
    assert_eq!(issued.len(), 2);
    let (c, token, err) = w.s.get_value("GITHUB_TOKEN", "test");
    assert_eq!(c, 0, "{err}");
    assert_eq!(token, issued[1]);
    assert!(token.starts_with("ghs_") && token.len() == 40, "{token}");

    // the grant expires with the token (30 min here), not after the default 9 h
    let expires = rfc3339_secs(&row["expiresAt"]);
    let token_expiry = now() + 1800;
    assert!(
        (token_expiry - 30..=token_expiry + 1).contains(&expires),
        "grant expires at {expires}, token at about {token_expiry}"
    );
    let (_, st) = w.s.json(&["status"]);
    assert_eq!(st["keys"][0]["expiresAt"], row["expiresAt"], "{st}");
    // a shorter TTL wins over the token's expiry
    let (_, v) = w.s.json(&["unlock", "--env", "test", "--duration", "10m"]);
    let short = rfc3339_secs(&v["keys"][0]["expiresAt"]);
    assert!((now() + 590..=now() + 601).contains(&short), "{v}");

    // the private key is nowhere: not in output, not in the daemon, not in clear in the home
    for args in [
        vec!["list"],
        vec!["--json", "list"],
        vec!["status"],
        vec!["get", "GITHUB_TOKEN", "--env", "test", "--json"],
    ] {
        let o = w.s.run(&args, "");
        assert_no_key_material(&w, &format!("{args:?}"), &(stdout(&o) + &stderr(&o)));
    }
    let pid = w.s.daemon_pid().expect("a daemon holds the grant");
    for f in ["cmdline", "environ"] {
        let bytes = std::fs::read(format!("/proc/{pid}/{f}")).unwrap_or_default();
        assert_no_key_material(&w, f, &String::from_utf8_lossy(&bytes));
    }
    for (path, bytes) in all_files(&w.s.keyrack_home) {
        assert_no_key_material(
            &w,
            &path.display().to_string(),
            &String::from_utf8_lossy(&bytes),
        );
    }
}

#[test]
fn a_pkcs8_key_and_a_client_id_work_and_long_tokens_pass_the_firewall() {
    let w = world("org: acme\nenv.test: [GH_APP_TOKEN]\n");
    let key8 = AppKey::new(&w.s.root, "app8.pem", "PKCS8");
    assert!(key8.pem().starts_with("-----BEGIN PRIVATE KEY-----"));
    w.gh.add_app("Iv23liTEST", &key8.public_pem, &[99]);
    w.gh.set_long_tokens(true);
    let pem = key8.private.display().to_string();
    let o = w.s.run(
        &[
            "set",
            "--key",
            "GH_APP_TOKEN",
            "--env",
            "test",
            "--app-id",
            "Iv23liTEST",
            "--installation-id",
            "99",
            "--private-key",
            &pem,
        ],
        "",
    );
    assert_eq!(
        code(&o),
        0,
        "the flags imply --mech github.app: {}",
        stderr(&o)
    );
    assert_eq!(w.gh.seen()[0].iss.as_deref(), Some("Iv23liTEST"));
    let o = w.s.run(&["unlock", "--env", "test"], "");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let (c, token, err) = w.s.get_value("GH_APP_TOKEN", "test");
    assert_eq!(c, 0, "the firewall lets the stateless form through: {err}");
    assert_eq!(token, *w.gh.issued().last().unwrap());
    assert!(token.starts_with("ghs_") && token.contains('.') && token.len() > 100);
}

#[test]
fn set_refuses_what_cannot_mint_and_keeps_nothing() {
    let w = world("org: acme\nenv.test: [GITHUB_TOKEN]\n");
    // not a private key: refused before anything is stored or sent
    let bogus = w.s.root.join("bogus.pem");
    std::fs::write(
        &bogus,
        "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
    )
    .unwrap();
    let o = w.s.run(
        &[
            "set",
            "--key",
            "GITHUB_TOKEN",
            "--env",
            "test",
            "--mech",
            "github.app",
            "--app-id",
            APP_ID,
            "--installation-id",
            "678",
            "--private-key",
            bogus.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("OpenSSH key"), "{}", stderr(&o));
    assert!(stderr(&o).contains("fix:"), "{}", stderr(&o));
    assert!(w.gh.seen().is_empty(), "nothing was sent");

    // a wrong installation: the proof's 404 fails set with the fix, nothing kept
    let o = set_app(&w, "GITHUB_TOKEN", &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let before = w.s.secure_files();
    let o = w.s.run(
        &[
            "set",
            "--key",
            "GITHUB_TOKEN",
            "--env",
            "test",
            "--mech",
            "github.app",
            "--app-id",
            APP_ID,
            "--installation-id",
            "999",
            "--private-key",
            w.key.private.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("404") && err.contains("nothing was kept"),
        "{err}"
    );
    assert!(
        err.contains("fix:") && err.contains("installation id"),
        "{err}"
    );
    assert_no_key_material(&w, "set", &(stdout(&o) + &err));
    let after = w.s.secure_files();
    assert_eq!(before, after);
    let o = w.s.run(&["unlock", "--env", "test"], "");
    assert_eq!(code(&o), 0, "the first set is intact: {}", stderr(&o));

    // without a terminal and without the flags, set names them
    let o = w.s.run(
        &[
            "set",
            "--key",
            "OTHER",
            "--env",
            "test",
            "--mech",
            "github.app",
        ],
        "",
    );
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("--installation-id"), "{}", stderr(&o));
    // a vault that cannot keep the credentials is refused before anything is asked
    let o = w.s.run(
        &[
            "set",
            "--key",
            "OTHER",
            "--env",
            "test",
            "--mech",
            "github.app",
            "--vault",
            "os.daemon",
        ],
        "",
    );
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("does not keep GitHub App credentials"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn each_failure_is_that_keys_row_with_the_fix() {
    let w = world("org: acme\nenv.test: [GITHUB_TOKEN, PLAIN]\n");
    let o = set_app(&w, "GITHUB_TOKEN", &["--vault", "os.direct"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    w.s.set("PLAIN", "test", "plain-value");
    let row = |v: &serde_json::Value, key: &str| -> serde_json::Value {
        v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == key)
            .cloned()
            .unwrap_or_else(|| panic!("{key} in {v}"))
    };
    let unlock = |w: &World, extra: &[(&str, &str)]| {
        let mut c = w.s.cmd();
        for (k, v) in extra {
            c.env(k, v);
        }
        let o = c
            .args(["--json", "unlock", "--env", "test"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_no_key_material(w, "unlock", &(stdout(&o) + &stderr(&o)));
        (code(&o), v)
    };

    // 401: the app's key was replaced on GitHub (the stored one no longer verifies)
    let other = AppKey::new(&w.s.root, "other.pem", "PEM");
    w.gh.add_app(APP_ID, &other.public_pem, &[INSTALLATION]);
    let (c, v) = unlock(&w, &[]);
    assert_eq!(c, 2, "{v}");
    assert_eq!(
        row(&v, "PLAIN")["status"],
        "granted",
        "the other key unlocks: {v}"
    );
    let r = row(&v, "GITHUB_TOKEN");
    assert_eq!(r["status"], "errored", "{v}");
    assert!(r["reason"].as_str().unwrap().contains("401"), "{r}");
    let fix = r["fix"].as_str().unwrap();
    assert!(
        fix.contains("app id") && fix.contains("private key"),
        "{fix}"
    );
    assert!(
        fix.contains("keyrack set --key GITHUB_TOKEN --env test --mech github.app"),
        "{fix}"
    );

    // 404: the app was uninstalled
    w.gh.add_app(APP_ID, &w.key.public_pem, &[]);
    let (c, v) = unlock(&w, &[]);
    assert_eq!(c, 2);
    let r = row(&v, "GITHUB_TOKEN");
    assert!(r["reason"].as_str().unwrap().contains("404"), "{r}");
    assert!(
        r["fix"].as_str().unwrap().contains("installation id"),
        "{r}"
    );

    // the API cannot be reached, or GITHUB_API_URL is not acceptable: nothing else is affected
    w.gh.add_app(APP_ID, &w.key.public_pem, &[INSTALLATION]);
    let (c, v) = unlock(&w, &[("GITHUB_API_URL", "http://127.0.0.1:1")]);
    assert_eq!(c, 2);
    let r = row(&v, "GITHUB_TOKEN");
    assert!(
        r["reason"].as_str().unwrap().contains("cannot reach"),
        "{r}"
    );
    assert!(r["fix"].as_str().unwrap().contains("GITHUB_API_URL"), "{r}");
    assert_eq!(row(&v, "PLAIN")["status"], "granted");
    let (_, v) = unlock(&w, &[("GITHUB_API_URL", "http://ghe.example.com/api/v3")]);
    let r = row(&v, "GITHUB_TOKEN");
    assert!(r["reason"].as_str().unwrap().contains("plain http"), "{r}");
    let (c, v) = unlock(&w, &[]);
    assert_eq!(c, 0, "all good again: {v}");

    // a damaged private key in the vault
    let direct = w.s.keyrack_home.join("vault/os.direct/default/direct.json");
    let mut store: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&direct).unwrap()).unwrap();
    let slot = &mut store["acme.test.GITHUB_TOKEN"];
    let mut bundle: serde_json::Value = serde_json::from_str(slot.as_str().unwrap()).unwrap();
    assert_eq!(
        bundle["appId"], 12345,
        "the bundle: {{appId, installationId, privateKeyPem}}"
    );
    assert_eq!(bundle["installationId"], INSTALLATION);
    bundle["privateKeyPem"] =
        "-----BEGIN RSA PRIVATE KEY-----\nnot base64!\n-----END RSA PRIVATE KEY-----".into();
    *slot = bundle.to_string().into();
    std::fs::write(&direct, serde_json::to_vec(&store).unwrap()).unwrap();
    let (c, v) = unlock(&w, &[]);
    assert_eq!(c, 2);
    let r = row(&v, "GITHUB_TOKEN");
    assert_eq!(r["status"], "errored");
    assert!(r["reason"].as_str().unwrap().contains("private key"), "{r}");
    assert!(r["fix"].as_str().unwrap().contains("--private-key"), "{r}");
    assert_eq!(row(&v, "PLAIN")["status"], "granted");
}

#[test]
fn guided_set_on_a_tty_asks_for_what_the_flags_do_not_give() {
    let w = world("org: acme\nenv.test: [GITHUB_TOKEN]\n");
    let mut c = std::process::Command::new(w.s.bin());
    c.env_clear()
        .current_dir(&w.s.repo)
        .envs(w.s.vars())
        .env("TERM", "xterm")
        .args([
            "set",
            "--key",
            "GITHUB_TOKEN",
            "--env",
            "test",
            "--mech",
            "github.app",
        ]);
    let mut p = rexpect::session::spawn_command(c, Some(20_000)).unwrap();
    p.exp_string("GitHub App id").unwrap();
    p.send_line(APP_ID).unwrap();
    p.exp_string("installation id").unwrap();
    p.send_line(&INSTALLATION.to_string()).unwrap();
    p.exp_string("private key").unwrap();
    p.send_line(w.key.private.to_str().unwrap()).unwrap();
    let rest = p.exp_eof().unwrap();
    assert!(rest.contains("round trip"), "{rest}");
    assert_no_key_material(&w, "the terminal", &rest);
    assert_eq!(w.gh.issued().len(), 1, "set's proof minted");
    w.s.cmd()
        .args(["unlock", "--env", "test"])
        .assert()
        .success();
    assert_eq!(w.s.get_value("GITHUB_TOKEN", "test").1, w.gh.issued()[1]);
}
