//! AWS IAM Identity Center through the real binary against a loopback fake of AWS.
//! The browser is a `$BROWSER` program that follows the authorize redirect (curl).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use keyrack_fake_aws::FakeAws;
use keyrack_testkit::{stderr, stdout, Sandbox};

use crate::support::aws::{self as world, SET_TEST, URL};

struct World {
    s: Sandbox,
    fake: FakeAws,
    browser_log: PathBuf,
}

impl World {
    fn new() -> Self {
        Self::with_browser(true)
    }

    fn with_browser(browser: bool) -> Self {
        let fake = FakeAws::start();
        let mut s = world::sandbox(&fake);
        let (script, browser_log) = world::browser_script(&s, "");
        if browser {
            s.env("BROWSER", script.to_str().unwrap());
        }
        s.manifest("org: acme\nenv.test: []\nenv.prod: []\n");
        s.init();
        World {
            s,
            fake,
            browser_log,
        }
    }

    fn browser_opens(&self) -> usize {
        world::browser_opens(&self.browser_log)
    }

    fn config(&self) -> PathBuf {
        self.s.home.join(".aws/config")
    }

    fn cache_file(&self, session: &str) -> PathBuf {
        use sha1_smol_like::hex_sha1;
        self.s
            .home
            .join(".aws/sso/cache")
            .join(format!("{}.json", hex_sha1(session)))
    }

    fn set_flags(&self, extra: &[&str]) -> std::process::Output {
        let mut args = SET_TEST.to_vec();
        args.extend_from_slice(extra);
        self.s.run(&args, "")
    }

    /// A second profile (prod account, read-only role) of the same portal.
    fn set_prod(&self) -> std::process::Output {
        let args = [
            "set",
            "--key",
            "AWS_PROFILE",
            "--env",
            "prod",
            "--sso-start-url",
            URL,
            "--sso-region",
            "us-east-1",
            "--account-id",
            "222222222222",
            "--role-name",
            "ReadOnly",
            "--profile-name",
            "acme.prod",
        ];
        self.s.run(&args, "")
    }

    fn aws(&self, args: &[&str]) -> std::process::Output {
        let mut c = Command::new("aws");
        c.env_clear()
            .envs(self.s.vars())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .args(args)
            .current_dir(&self.s.repo);
        c.output()
            .expect("the AWS CLI v1 is installed (pip install awscli)")
    }
}

/// sha1 via the system's sha1sum (the test checks the cache key keyrack computes).
mod sha1_smol_like {
    pub fn hex_sha1(s: &str) -> String {
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s '{s}' | sha1sum"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)[..40].to_string()
    }
}

#[test]
fn set_consents_once_unlock_never_and_a_dead_session_signs_in_again() {
    let w = World::new();
    let o = w.set_flags(&[]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(w.fake.consents(), 1, "exactly one consent, at set");
    assert_eq!(
        w.fake.consented_clients(),
        ["keyrack"],
        "keyrack's own client, not botocore-client-…"
    );
    assert_eq!(w.browser_opens(), 1);
    assert!(
        stderr(&o).contains("open: "),
        "the URL is always printed: {}",
        stderr(&o)
    );

    let config = std::fs::read_to_string(w.config()).unwrap();
    assert_eq!(
        config,
        format!("[profile acme.test]\nsso_session = acme\nsso_account_id = 123456789012\nsso_role_name = AdministratorAccess\nregion = us-east-1\n\n[sso-session acme]\nsso_start_url = {URL}\nsso_region = us-east-1\nsso_registration_scopes = sso:account:access\n")
    );
    assert!(
        !w.cache_file("acme").exists(),
        "set ends relocked: no token left in ~/.aws/sso/cache"
    );
    let (_, list) = w.s.json(&["list"]);
    let entry = &list["keys"][0];
    assert_eq!(entry["vault"], "aws.config");
    assert_eq!(entry["exid"], "acme.test");
    assert_eq!(entry["meta"]["ssoUser"], "alice@example.com");

    // unlock: valid session → silent, no browser, no consent
    let o = w.s.run(&["unlock", "--env", "test"], "");
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(w.browser_opens(), 1, "no browser while the token lives");
    assert_eq!(w.fake.consents(), 1);
    let cache = std::fs::read_to_string(w.cache_file("acme")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&cache).unwrap();
    for field in [
        "startUrl",
        "region",
        "accessToken",
        "expiresAt",
        "clientId",
        "clientSecret",
        "registrationExpiresAt",
        "refreshToken",
    ] {
        assert!(v.get(field).is_some(), "{field} in {cache}");
    }
    assert!(v["expiresAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(w.s.get_value("AWS_PROFILE", "test").1, "acme.test");
    let (_, st) = w.s.json(&["status"]);
    let left = st["keys"][0]["expiresAt"]
        .as_str()
        .expect("RFC 3339 expiresAt")
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond() as u64
        - jiff::Timestamp::now().as_millisecond() as u64;
    // the token (8 h here) is refreshed in the background: the grant lives its TTL (9 h), and
    // the SSO session's limit is the client registration's expiry (issue 10, part 1)
    assert!(
        left <= 9 * 3600 * 1000 && left > 8 * 3600 * 1000,
        "the grant lives its TTL, not the SSO token's: {left}"
    );
    assert_eq!(st["keys"][0]["limit"]["what"], "sso session", "{st}");

    // relock: the token leaves ~/.aws/sso/cache
    w.s.cmd().arg("relock").assert().success();
    assert!(!w.cache_file("acme").exists());

    // the server kills the session: one browser sign-in, still no consent
    w.fake.revoke_all();
    let o = w.s.run(&["unlock", "--env", "test"], "");
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(w.browser_opens(), 2);
    assert_eq!(w.fake.consents(), 1);
    assert_eq!(
        w.fake.registrations(),
        1,
        "the client registration is cached (encrypted)"
    );
}

#[test]
fn an_expiring_token_is_refreshed_without_a_browser() {
    let w = World::new();
    w.fake
        .set_token_lifetime(std::time::Duration::from_secs(120)); // under the 5-minute floor
    assert!(w.set_flags(&[]).status.success());
    let opens = w.browser_opens();
    w.fake
        .set_token_lifetime(std::time::Duration::from_secs(8 * 3600));
    let o = w.s.run(&["unlock", "--env", "test"], "");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(w.fake.refreshes() >= 1);
    assert_eq!(w.browser_opens(), opens, "refresh, not sign-in");
}

#[test]
fn guided_set_in_a_pty() {
    let w = World::new();
    let mut c = Command::new(w.s.bin());
    c.env_clear()
        .current_dir(&w.s.repo)
        .envs(w.s.vars())
        .env("TERM", "xterm")
        .args(["set", "--key", "AWS_PROFILE", "--env", "test"]);
    let mut p = rexpect::session::spawn_command(c, Some(30_000)).unwrap();
    p.exp_string("start URL:").unwrap();
    p.send_line(URL).unwrap();
    p.exp_string("SSO region:").unwrap();
    p.send_line("").unwrap();
    p.exp_string("sso-session name:").unwrap();
    p.send_line("").unwrap(); // the suggested one: the org
    p.exp_string("account:").unwrap();
    p.send("Acme").unwrap();
    p.exp_string("Acme Test").unwrap();
    p.send_line("").unwrap();
    p.exp_string("role:").unwrap();
    p.send("Admin").unwrap();
    p.exp_string("AdministratorAccess").unwrap();
    p.send_line("").unwrap();
    p.exp_string("profile name:").unwrap();
    p.send_line("").unwrap();
    let out = p.exp_eof().unwrap();
    assert!(out.contains("round trip"), "{out}");
    assert_eq!(w.fake.consents(), 1);
    let config = std::fs::read_to_string(w.config()).unwrap();
    assert!(config.contains("[profile acme.acme-test.admin]\nsso_session = acme\nsso_account_id = 123456789012\nsso_role_name = AdministratorAccess\n"), "{config}");
    w.s.cmd()
        .args(["unlock", "--env", "test"])
        .assert()
        .success();
    assert_eq!(w.fake.consents(), 1);
}

#[test]
fn without_a_tty_and_without_flags_set_names_the_flags() {
    let w = World::new();
    let o =
        w.s.run(&["set", "--key", "AWS_PROFILE", "--env", "test"], "");
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    for flag in [
        "--exid",
        "--sso-start-url",
        "--sso-region",
        "--account-id",
        "--role-name",
        "--profile-name",
    ] {
        assert!(err.contains(flag), "{flag} missing from: {err}");
    }
}

fn spawn_and_approve(w: &World, args: &[&str]) -> std::process::Output {
    let mut child =
        w.s.std_cmd()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let mut line = String::new();
    while err.read_line(&mut line).unwrap() > 0 {
        seen.push_str(&line);
        // the sign-in tree: box drawing on a terminal, ASCII on this pipe
        let l = line.trim();
        if let Some(code) = l
            .strip_prefix("└─ code: ")
            .or_else(|| l.strip_prefix("`- code: "))
        {
            assert!(
                w.fake.approve_device(code.trim()),
                "unknown user code {code}"
            );
        }
        line.clear();
    }
    let mut o = child.wait_with_output().unwrap();
    // stderr is a pipe here: the sign-in tree is ASCII, without emoji, like every other tree
    assert!(
        seen.contains("keyrack sign-in: ") && !seen.contains('🔐') && !seen.contains("└─"),
        "{seen}"
    );
    o.stderr = seen.into_bytes();
    o
}

#[test]
fn device_code_with_pending_polls_and_slow_down() {
    let w = World::with_browser(false); // no $BROWSER, no DISPLAY: device code automatically
    w.fake.set_slow_downs(1);
    w.fake.set_pending_polls(1);
    let start = std::time::Instant::now();
    let o = spawn_and_approve(&w, &SET_TEST);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("/device?user_code="), "{}", stderr(&o));
    assert!(
        start.elapsed() >= std::time::Duration::from_secs(6),
        "slow_down adds 5 s to the interval"
    );
    assert_eq!(w.fake.device_approvals(), 1);
    assert_eq!(w.fake.consents(), 1);
}

#[test]
fn deadline_gives_a_clear_error_and_leaves_nothing_behind() {
    let w = World::with_browser(false); // nobody approves
    let o = w.set_flags(&["--device-code", "--login-timeout", "2s"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("did not complete within 2s"), "{err}");
    assert!(err.contains("fix:"), "{err}");
    assert!(
        !w.config().exists() || std::fs::read_to_string(w.config()).unwrap().is_empty(),
        "the config edit was undone"
    );
    let (_, v) = w.s.json(&["list"]);
    assert_eq!(v["keys"].as_array().unwrap().len(), 0);
    assert!(!w.s.read_manifest().contains("AWS_PROFILE"));
    let dir = w.s.keyrack_home.join("vault/aws.config/default");
    let tokens = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_name().to_string_lossy().starts_with("session-")
                        && e.file_name().to_string_lossy().ends_with(".age")
                })
                .count()
        })
        .unwrap_or(0);
    assert_eq!(tokens, 0, "no token kept");
}

#[test]
fn two_concurrent_unlocks_make_one_sign_in() {
    let w = World::new();
    assert!(w.set_flags(&[]).status.success());
    w.s.cmd().arg("relock").assert().success();
    w.fake.revoke_all();
    let before = w.fake.authorizations();
    let kids: Vec<_> = (0..2)
        .map(|_| {
            w.s.std_cmd()
                .args(["unlock", "--env", "test"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for k in kids {
        let o = k.wait_with_output().unwrap();
        assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    }
    assert_eq!(
        w.fake.authorizations() - before,
        1,
        "the second unlock waited and reused the new token"
    );
}

#[test]
fn a_different_user_is_signed_out_and_refused() {
    let w = World::new();
    assert!(w.set_flags(&[]).status.success());
    w.s.cmd().arg("relock").assert().success();
    w.fake.revoke_all();
    w.fake.set_user("mallory@example.com");
    let (code, v) = w.s.json(&["unlock", "--env", "test"]);
    assert_eq!(code, 2);
    let row = &v["keys"][0];
    assert_eq!(row["status"], "errored");
    let reason = row["reason"].as_str().unwrap();
    assert!(
        reason.contains("mallory@example.com") && reason.contains("alice@example.com"),
        "{reason}"
    );
    assert!(w.fake.logouts() >= 2, "each wrong session was signed out");
    assert!(!w.cache_file("acme").exists());
}

#[test]
fn botocore_uses_our_config_and_token_cache_and_stops_after_relock() {
    let w = World::new();
    assert!(w.set_flags(&[]).status.success());
    w.s.cmd()
        .args(["unlock", "--env", "test"])
        .assert()
        .success();
    let o = w.aws(&[
        "sts",
        "get-caller-identity",
        "--profile",
        "acme.test",
        "--output",
        "json",
    ]);
    assert!(o.status.success(), "aws cli: {}{}", stdout(&o), stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["Arn"],
        "arn:aws:sts::123456789012:assumed-role/AdministratorAccess/alice@example.com"
    );

    // credential_process, served from the daemon
    let mut cfg = std::fs::read_to_string(w.config()).unwrap();
    cfg.push_str(&format!("\n[profile acme.cp]\ncredential_process = {} aws credentials --profile acme.test\nregion = us-east-1\n", w.s.bin().display()));
    std::fs::write(w.config(), cfg).unwrap();
    let o = w.aws(&[
        "sts",
        "get-caller-identity",
        "--profile",
        "acme.cp",
        "--output",
        "json",
    ]);
    assert!(
        o.status.success(),
        "credential_process: {}{}",
        stdout(&o),
        stderr(&o)
    );
    assert!(stdout(&o).contains("alice@example.com"));
    let o =
        w.s.run(&["aws", "credentials", "--profile", "acme.test"], "");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["Version"], 1);
    assert!(v["Expiration"].as_str().unwrap().ends_with('Z'));

    w.s.cmd().arg("relock").assert().success();
    let o = w.aws(&["sts", "get-caller-identity", "--profile", "acme.test"]);
    assert!(!o.status.success(), "after relock botocore has no token");
    let o =
        w.s.run(&["aws", "credentials", "--profile", "acme.test"], "");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("keyrack unlock"), "{}", stderr(&o));
    assert_eq!(w.browser_opens(), 1, "credentials never opens a browser");
}

#[test]
fn config_bytes_we_do_not_own_survive_set_and_del() {
    let w = World::new();
    let original = "# company settings — do not edit by hand\n[default]\nregion = eu-west-1\ns3 =\n  max_concurrent_requests = 20\n  addressing_style = path\n\n[services local-dynamo]\ndynamodb =\n  endpoint_url = http://localhost:8000\n\n; a foreign role chain\n[profile foreign]\nrole_arn = arn:aws:iam::999999999999:role/Thing\nsource_profile = default\n";
    std::fs::create_dir_all(w.config().parent().unwrap()).unwrap();
    std::fs::write(w.config(), original).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(w.config(), std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(w.set_flags(&[]).status.success());
    let after = std::fs::read_to_string(w.config()).unwrap();
    assert!(
        after.starts_with(original),
        "every foreign byte kept:\n{after}"
    );
    assert_eq!(
        std::fs::metadata(w.config()).unwrap().permissions().mode() & 0o777,
        0o640,
        "mode kept"
    );
    w.s.cmd()
        .args(["del", "--key", "AWS_PROFILE", "--env", "test"])
        .assert()
        .success();
    let after_del = std::fs::read_to_string(w.config()).unwrap();
    assert!(after_del.starts_with(original));
    // a second profile of the same portal reuses the sso-session
    let o = w.set_prod();
    assert!(o.status.success(), "{}", stderr(&o));
    let cfg = std::fs::read_to_string(w.config()).unwrap();
    assert_eq!(cfg.matches("[sso-session").count(), 1, "{cfg}");
    assert_eq!(
        w.fake.consents(),
        1,
        "one sign-in covers every role of the portal"
    );
}

#[test]
fn logout_signs_out_and_removes_both_copies() {
    let w = World::new();
    assert!(w.set_flags(&[]).status.success());
    w.s.cmd()
        .args(["unlock", "--env", "test"])
        .assert()
        .success();
    assert!(w.cache_file("acme").exists());
    let o = w.s.run(&["aws", "logout", "--profile", "acme.test"], "");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(w.fake.logouts(), 1);
    assert!(!w.cache_file("acme").exists());
    assert_eq!(
        w.s.get_value("AWS_PROFILE", "test").0,
        2,
        "the grant is gone"
    );
    // the next unlock must sign in again (the encrypted token is gone too)
    let before = w.browser_opens();
    w.s.cmd()
        .args(["unlock", "--env", "test"])
        .assert()
        .success();
    assert_eq!(w.browser_opens(), before + 1);
}

#[test]
fn bad_aws_input_gets_clear_errors() {
    let w = World::new();
    // unknown profile
    let o = w.s.run(
        &[
            "set",
            "--key",
            "AWS_PROFILE",
            "--env",
            "test",
            "--exid",
            "nope",
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("profile 'nope' is not in"),
        "{}",
        stderr(&o)
    );
    // 5xx
    w.fake.fail_next(1);
    let o = w.set_flags(&[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("500") && stderr(&o).contains("fix: AWS had a fault"),
        "{}",
        stderr(&o)
    );
    // malformed JSON
    w.fake.garbage_next(1);
    let o = w.set_flags(&[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("documented JSON"), "{}", stderr(&o));
    // unreachable endpoint
    let o =
        w.s.cmd()
            .args([
                "set",
                "--key",
                "AWS_PROFILE",
                "--env",
                "test",
                "--exid",
                "acme.test",
            ])
            .env("AWS_ENDPOINT_URL_SSO_OIDC", "http://127.0.0.1:9")
            .env("AWS_ENDPOINT_URL_SSO", "http://127.0.0.1:9")
            .output()
            .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let (_, v) = w.s.json(&["list"]);
    assert_eq!(
        v["keys"].as_array().unwrap().len(),
        0,
        "nothing recorded by failed sets"
    );

    // now a good set, then damage: a corrupt mirror is simply rewritten; a corrupt encrypted
    // token is reported with the fix
    assert!(w.set_flags(&[]).status.success());
    std::fs::create_dir_all(w.cache_file("acme").parent().unwrap()).unwrap();
    std::fs::write(w.cache_file("acme"), "{corrupt").unwrap();
    w.s.cmd()
        .args(["unlock", "--env", "test"])
        .assert()
        .success();
    assert!(serde_json::from_str::<serde_json::Value>(
        &std::fs::read_to_string(w.cache_file("acme")).unwrap()
    )
    .is_ok());
    w.s.cmd().arg("relock").assert().success();
    let dir = w.s.keyrack_home.join("vault/aws.config/default");
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("session-")
            && p.extension().is_some_and(|x| x == "age")
        {
            std::fs::write(&p, "garbage").unwrap();
        }
    }
    let (code, v) = w.s.json(&["unlock", "--env", "test"]);
    assert_eq!(code, 2);
    assert_eq!(v["keys"][0]["status"], "errored");
    assert!(v["keys"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("not a readable age file"));
    assert!(v["keys"][0]["fix"].is_string());

    // an unwritable ~/.aws
    let w2 = World::new();
    std::fs::write(w2.s.home.join(".aws"), "i am a file").unwrap();
    let o = w2.set_flags(&[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("fix:"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(w2.s.home.join(".aws")).unwrap(),
        "i am a file"
    );
}

#[test]
fn the_daemon_removes_the_mirrored_token_when_the_grant_expires() {
    let w = World::new();
    assert!(w.set_flags(&[]).status.success());
    w.s.cmd()
        .args(["unlock", "--env", "test", "--duration", "2s"])
        .assert()
        .success();
    assert!(w.cache_file("acme").exists());
    std::thread::sleep(std::time::Duration::from_millis(3200));
    assert!(
        !w.cache_file("acme").exists(),
        "expired grant: the AWS tools lose the token too"
    );
    assert_eq!(w.s.get_value("AWS_PROFILE", "test").0, 2);
}

#[test]
fn the_mirror_stays_while_another_key_of_the_session_is_unlocked() {
    let w = World::new();
    assert!(w.set_flags(&[]).status.success());
    let o = w.set_prod();
    assert!(o.status.success(), "{}", stderr(&o));
    // a bare unlock leaves prod locked: name both envs
    w.s.cmd()
        .args(["unlock", "--env", "test"])
        .assert()
        .success();
    w.s.cmd()
        .args(["unlock", "--env", "prod"])
        .assert()
        .success();
    w.s.cmd()
        .args(["relock", "--env", "test"])
        .assert()
        .success();
    assert!(
        w.cache_file("acme").exists(),
        "acme.prod still uses the session"
    );
    w.s.cmd()
        .args(["relock", "--env", "prod"])
        .assert()
        .success();
    assert!(!w.cache_file("acme").exists());
}

#[test]
fn the_wizard_shows_a_diff_and_asks_before_changing_an_existing_profile() {
    let w = World::new();
    std::fs::create_dir_all(w.config().parent().unwrap()).unwrap();
    let original = format!("[profile acme.acme-test]\nsso_session = acme\nsso_account_id = 123456789012\nsso_role_name = ReadOnly\nregion = us-east-1\n\n[sso-session acme]\nsso_start_url = {URL}\nsso_region = us-east-1\nsso_registration_scopes = sso:account:access\n");
    std::fs::write(w.config(), &original).unwrap();
    let mut c = Command::new(w.s.bin());
    c.env_clear()
        .current_dir(&w.s.repo)
        .envs(w.s.vars())
        .env("TERM", "xterm")
        .args(["set", "--key", "AWS_PROFILE", "--env", "test"]);
    let mut p = rexpect::session::spawn_command(c, Some(30_000)).unwrap();
    p.exp_string("AWS access portal:").unwrap();
    p.send_line("").unwrap(); // the known portal, first in the list
    p.exp_string("account:").unwrap();
    p.send("Acme").unwrap();
    p.exp_string("Acme Test").unwrap();
    p.send_line("").unwrap();
    p.exp_string("role:").unwrap();
    p.send("Admin").unwrap();
    p.exp_string("AdministratorAccess").unwrap();
    p.send_line("").unwrap();
    p.exp_string("profile name:").unwrap();
    p.send_line("acme.acme-test").unwrap(); // the existing profile, not the suggested one
    p.exp_string("- sso_role_name = ReadOnly").unwrap();
    p.exp_string("+ sso_role_name = AdministratorAccess")
        .unwrap();
    p.exp_string("change it?").unwrap();
    p.send_line("n").unwrap();
    p.exp_string("left as it is; choose another name").unwrap();
    p.exp_string("profile name:").unwrap();
    p.send_control('c').unwrap(); // and then nothing at all
    let out = p.exp_eof().unwrap();
    assert!(!out.contains("round trip"), "{out}");
    assert_eq!(
        std::fs::read_to_string(w.config()).unwrap(),
        original,
        "declined: the file is untouched"
    );
    let (_, v) = w.s.json(&["list"]);
    assert_eq!(v["keys"].as_array().unwrap().len(), 0);
}

#[test]
fn the_aws_cli_driver_runs_sso_login_with_the_profile_and_imports_its_token() {
    let mut w = World::new();
    assert!(w.set_flags(&[]).status.success());
    w.s.cmd()
        .args(["unlock", "--env", "test"])
        .assert()
        .success();
    let stash = w.s.root.join("token.json");
    std::fs::copy(w.cache_file("acme"), &stash).unwrap();
    w.s.cmd().arg("relock").assert().success();
    // forget keyrack's own copy so the next unlock must sign in
    for e in std::fs::read_dir(w.s.keyrack_home.join("vault/aws.config/default")).unwrap() {
        let p = e.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("session-")
            && p.extension().is_some_and(|x| x == "age")
        {
            std::fs::remove_file(p).unwrap();
        }
    }
    // a stand-in `aws` (the AWS CLI v1 here has no `sso login`): records its arguments, prints
    // like the real one, and writes the token cache file as `aws sso login` would
    let bin = w.s.root.join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let args_log = w.s.root.join("aws-args.log");
    std::fs::write(
        bin.join("aws"),
        format!(
            "#!/bin/sh\necho \"$@\" > {}\necho 'Attempting to automatically open the SSO authorization page'\nmkdir -p \"$HOME/.aws/sso/cache\"\ncp {} {}\n",
            args_log.display(),
            stash.display(),
            w.cache_file("acme").display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("aws"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    w.s.env("PATH", &path);
    let o = w.s.run(
        &["unlock", "--env", "test", "--login-driver", "aws-cli"],
        "",
    );
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(
        std::fs::read_to_string(&args_log).unwrap().trim(),
        "sso login --profile acme.test",
        "never --sso-session"
    );
    assert!(
        stderr(&o).contains("running: aws sso login --profile acme.test"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("Attempting to automatically open"),
        "its output is streamed: {}",
        stderr(&o)
    );
    assert!(
        !stdout(&o).contains("Attempting"),
        "…to stderr, never into stdout"
    );
    assert_eq!(w.s.get_value("AWS_PROFILE", "test").1, "acme.test");
    assert_eq!(w.fake.consents(), 1);
}

#[test]
fn no_prompt_fails_fast_while_another_keyrack_signs_in() {
    let w = World::new();
    assert!(w.set_flags(&[]).status.success());
    // another keyrack holds the session's sign-in lock (flock, as keyrack takes it)
    let digest = {
        let o = Command::new("sh")
            .arg("-c")
            .arg("printf %s acme | sha1sum")
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)[..20].to_string()
    };
    let lock =
        w.s.keyrack_home
            .join(format!("vault/aws.config/default/session-{digest}.lock"));
    assert!(
        lock.exists(),
        "set used the per-session lock at {}",
        lock.display()
    );
    let mut holder = Command::new("flock")
        .arg(&lock)
        .args(["sleep", "2"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let start = std::time::Instant::now();
    let (code, v) = w.s.json(&["unlock", "--env", "test", "--no-prompt"]);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(3),
        "fails fast instead of waiting"
    );
    assert_eq!(code, 2);
    assert!(
        v["keys"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("signing in"),
        "{v}"
    );
    holder.wait().unwrap(); // (its child holds the lock until it exits)
    let (code, _) = w.s.json(&["unlock", "--env", "test", "--no-prompt"]);
    assert_eq!(
        code, 0,
        "with the lock free, a valid session needs no prompt"
    );
}

#[test]
fn aws_config_file_is_honoured() {
    let mut w = World::new();
    let custom = w.s.root.join("custom-aws-config");
    w.s.env("AWS_CONFIG_FILE", custom.to_str().unwrap());
    let o = w.set_flags(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read_to_string(&custom)
        .unwrap()
        .contains("[profile acme.test]"));
    assert!(!w.config().exists(), "~/.aws/config untouched");
    w.s.cmd()
        .args(["unlock", "--env", "test"])
        .assert()
        .success();
    let o = w.aws(&["sts", "get-caller-identity", "--profile", "acme.test"]);
    assert!(
        o.status.success(),
        "botocore reads the same file: {}",
        stderr(&o)
    );
}
