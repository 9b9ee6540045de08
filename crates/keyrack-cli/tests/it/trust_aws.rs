//! Trust boundary, AWS and recipients (issue 7, items 2, 8 and part of 11), through the real
//! binary against the loopback fake of AWS:
//!
//! - every AWS name that enters keyrack (flags, the guided set-up, portal answers, an existing
//!   `~/.aws/config`) is validated: no value can add a line to the config file, and no region
//!   can move the SSO bearer token to another host;
//! - a recipient change re-encrypts every file keyrack encrypted (AWS tokens included);
//! - the aws.config vault's encrypted files are bound to their session;
//! - recipient labels are plain text.
//!
//! Exit codes: a refused flag is bad usage (1); a refused profile at `unlock` is that key's row
//! (`errored`), and an unlock with a key not granted exits 2.

use std::path::PathBuf;
use std::process::{Command, Output};

use keyrack_fake_aws::{FakeAws, Trap};
use keyrack_testkit::{stderr, stdout, Sandbox};

use crate::support::aws::URL;
/// The overrides a hostile SSO region would otherwise be masked by (portal and OIDC URLs are
/// built from it); STS keeps pointing at the fake.
const SSO_VARS: &[&str] = &["AWS_ENDPOINT_URL_SSO", "AWS_ENDPOINT_URL_SSO_OIDC"];
/// The override a hostile profile region would be masked by (STS is called in it).
const STS_VARS: &[&str] = &["AWS_ENDPOINT_URL_STS"];

struct World {
    s: Sandbox,
    fake: FakeAws,
}

impl World {
    fn new() -> Self {
        let fake = FakeAws::start();
        let (s, _) = crate::support::aws::world(&fake, &["prod"]);
        World { s, fake }
    }

    fn config(&self) -> PathBuf {
        self.s.home.join(".aws/config")
    }

    /// `set --key AWS_PROFILE --env ENV --flag=value…` (the `=` form lets a value start with `-`).
    fn set_args(env: &str, flags: &[(&str, &str)]) -> Vec<String> {
        let mut args: Vec<String> = ["set", "--key", "AWS_PROFILE", "--env", env]
            .iter()
            .map(|a| a.to_string())
            .collect();
        args.extend(flags.iter().map(|(f, v)| format!("{f}={v}")));
        args
    }

    /// `set` of AWS_PROFILE for `env` from flags.
    fn set(&self, env: &str, flags: &[(&str, &str)]) -> Output {
        let args = Self::set_args(env, flags);
        self.s
            .run(&args.iter().map(String::as_str).collect::<Vec<_>>(), "")
    }

    /// Runs keyrack with some AWS endpoint overrides removed: those URLs are built from the
    /// region (a host that is not AWS's would then be reached; never the internet, as every
    /// other service still points at the fake, and the region is refused before any call).
    fn run_without<S: AsRef<std::ffi::OsStr>>(&self, vars: &[&str], args: &[S]) -> Output {
        let mut c = self.s.cmd();
        for k in vars {
            c.env_remove(k);
        }
        c.args(args).output().unwrap()
    }
}

fn good_flags() -> Vec<(&'static str, &'static str)> {
    vec![
        ("--sso-start-url", URL),
        ("--sso-region", "us-east-1"),
        ("--account-id", "123456789012"),
        ("--role-name", "AdministratorAccess"),
        ("--profile-name", "acme.test"),
    ]
}

/// Every file under `dir` whose name ends in `.age`.
#[test]
fn every_aws_flag_refuses_injection_and_the_config_stays_byte_for_byte() {
    let w = World::new();
    let trap = Trap::start();
    let redirect = format!("x@127.0.0.1:{}/#", trap.port);
    let trap_url = format!(
        "https://d-1234567890.awsapps.com@127.0.0.1:{}/start",
        trap.port
    );
    std::fs::create_dir_all(w.config().parent().unwrap()).unwrap();
    let original = "# mine\n[default]\nregion = eu-west-1\n";
    std::fs::write(w.config(), original).unwrap();
    let inject = "\ncredential_process = /bin/sh -c 'touch /tmp/pwned'\n[profile x";
    let none: &[&str] = &[];
    let cases: Vec<(&str, String, &[&str])> = vec![
        ("--sso-start-url", format!("{URL}{inject}"), none),
        ("--sso-start-url", trap_url, none),
        ("--sso-start-url", "acme".into(), none),
        (
            "--sso-start-url",
            "http://d-1234567890.awsapps.com/start".into(),
            none,
        ),
        ("--sso-region", format!("us-east-1{inject}"), none),
        ("--sso-region", redirect.clone(), SSO_VARS),
        ("--sso-region", redirect.clone(), none),
        ("--sso-region", "us-east-1.evil.example/#".into(), none),
        ("--account-id", format!("123456789012{inject}"), none),
        ("--account-id", "12345".into(), none),
        ("--role-name", format!("AdministratorAccess{inject}"), none),
        ("--role-name", "Admin Access".into(), none),
        ("--profile-name", format!("acme.test]{inject}"), none),
        ("--profile-name", "acme test".into(), none),
        ("--profile-name", "-acme".into(), none),
        ("--region", format!("us-east-1{inject}"), none),
        ("--region", redirect.clone(), STS_VARS),
    ];
    for (flag, value, unset) in &cases {
        let mut flags: Vec<(&str, &str)> = good_flags()
            .into_iter()
            .filter(|(f, _)| f != flag)
            .collect();
        flags.push((flag, value));
        // with `unset`: a region that moved the host would reach the trap
        let o = w.run_without(unset, &World::set_args("test", &flags));
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{flag} {value:?}: {err}");
        assert!(
            err.contains(&format!("invalid {flag}")),
            "{flag} {value:?}: the flag is named: {err}"
        );
        assert!(
            err.contains("fix: pass "),
            "{flag} {value:?}: the expected form is given: {err}"
        );
        assert!(
            !err.contains("\ncredential_process"),
            "{flag}: the value is shown escaped: {err}"
        );
        assert_eq!(
            std::fs::read_to_string(w.config()).unwrap(),
            original,
            "{flag} {value:?}: the config file is unchanged byte for byte"
        );
    }
    // --exid names an existing profile: the same grammar
    let o = w.set(
        "test",
        &[("--exid", "acme.test\ncredential_process = /bin/sh")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("invalid --exid"), "{}", stderr(&o));

    assert_eq!(std::fs::read_to_string(w.config()).unwrap(), original);
    assert_eq!(
        trap.connections(),
        0,
        "no connection to the redirected host"
    );
    assert_eq!(w.fake.registrations(), 0, "nothing was sent to AWS");
    assert_eq!(w.fake.bearer_requests(), 0, "no bearer token was sent");
    let (_, list) = w.s.json(&["list"]);
    assert_eq!(
        list["keys"].as_array().unwrap().len(),
        0,
        "nothing recorded"
    );

    // the valid flags still work, and write only valid lines
    let o = w.set("test", &good_flags());
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let cfg = std::fs::read_to_string(w.config()).unwrap();
    assert!(cfg.starts_with(original), "{cfg}");
    assert!(!cfg.contains("credential_process"), "{cfg}");
}

#[test]
fn a_hostile_region_in_an_existing_config_is_refused_at_unlock_and_the_token_goes_nowhere() {
    let w = World::new();
    let o = w.set("test", &good_flags());
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let good = std::fs::read_to_string(w.config()).unwrap();
    assert_eq!(
        good.lines().nth(8),
        Some("sso_region = us-east-1"),
        "line 9 of:\n{good}"
    );
    assert_eq!(
        good.lines().nth(4),
        Some("region = us-east-1"),
        "line 5 of:\n{good}"
    );
    let trap = Trap::start();
    let hostile = format!("x@127.0.0.1:{}/#", trap.port);
    let mirror_dir = w.s.home.join(".aws/sso/cache");
    for (line, from, to, unset) in [
        (
            9,
            "sso_region = us-east-1",
            format!("sso_region = {hostile}"),
            SSO_VARS,
        ),
        (
            5,
            "region = us-east-1",
            format!("region = {hostile}"),
            STS_VARS,
        ),
        (
            9,
            "sso_region = us-east-1",
            "sso_region = us-east-1.evil.example/#".to_string(),
            SSO_VARS,
        ),
        (
            3,
            "sso_account_id = 123456789012",
            "sso_account_id = 123456789012 ; x".to_string(),
            &[][..],
        ),
    ] {
        let key = from.split(' ').next().unwrap();
        std::fs::write(w.config(), good.replacen(from, &to, 1)).unwrap();
        let bearer_before = w.fake.bearer_requests();
        // with the overrides (the token would have gone to the fake) and without them (the
        // URL built from the region would have gone to the trap)
        for o in [
            w.s.run(&["--json", "unlock", "--env", "test"], ""),
            w.run_without(unset, &["--json", "unlock", "--env", "test"]),
        ] {
            assert_eq!(o.status.code(), Some(2), "{to}: {}", stderr(&o));
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            let row = &v["keys"][0];
            assert_eq!(row["status"], "errored", "{to}: {v}");
            let reason = row["reason"].as_str().unwrap();
            assert!(
                reason.contains(&format!(".aws/config:{line}: {key} = ")),
                "{to}: the file and line are named: {reason}"
            );
            assert!(
                row["fix"].as_str().unwrap().contains(&format!(":{line}")),
                "{v}"
            );
        }
        assert_eq!(
            w.fake.bearer_requests(),
            bearer_before,
            "{to}: the bearer token was not sent"
        );
        assert_eq!(trap.connections(), 0, "{to}: nothing reached the trap");
        assert!(
            !mirror_dir.exists() || std::fs::read_dir(&mirror_dir).unwrap().next().is_none(),
            "{to}: no token was mirrored"
        );
    }
    // logout of that profile does not send the token either
    std::fs::write(
        w.config(),
        good.replacen(
            "sso_region = us-east-1",
            &format!("sso_region = {hostile}"),
            1,
        ),
    )
    .unwrap();
    let o = w.run_without(SSO_VARS, &["aws", "logout", "--profile", "acme.test"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(".aws/config:9: sso_region"),
        "{}",
        stderr(&o)
    );
    assert_eq!(trap.connections(), 0);
    assert_eq!(w.fake.logouts(), 0);

    // fixed file: unlock works again
    std::fs::write(w.config(), &good).unwrap();
    let o = w.s.run(&["unlock", "--env", "test"], "");
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn portal_answers_with_hostile_names_never_reach_the_config() {
    let w = World::new();
    w.fake.set_accounts(&[
        (
            "123456789012",
            "Acme \u{1b}]0;pwned\u{7}Test",
            "test@example.com",
        ),
        ("12345678901\n2", "Evil", "evil@example.com"),
    ]);
    w.fake.set_roles(&[
        "AdministratorAccess\ncredential_process = /bin/sh -c 'touch /tmp/pwned'",
        "ReadOnly",
    ]);
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
    p.exp_string("skipped an account the portal listed")
        .unwrap();
    p.exp_string("account:").unwrap();
    p.send_line("").unwrap();
    // the one valid role is taken without asking; the other was refused, with the reason
    p.exp_string("skipped a role the portal listed").unwrap();
    p.exp_string("profile name:").unwrap();
    p.send_line("").unwrap();
    let out = p.exp_eof().unwrap();
    assert!(out.contains("round trip"), "{out}");
    assert!(
        !out.contains("\u{1b}]0;pwned"),
        "the account name's escape sequence is not passed to the terminal"
    );
    let config = std::fs::read_to_string(w.config()).unwrap();
    assert!(!config.contains("credential_process"), "{config}");
    assert!(
        config.contains("sso_account_id = 123456789012\nsso_role_name = ReadOnly\n"),
        "{config}"
    );
    for line in config.lines().filter(|l| !l.is_empty()) {
        assert!(
            line.starts_with('[') || ["sso_", "region = "].iter().any(|p| line.starts_with(p)),
            "only keyrack's own settings: {line:?}"
        );
        assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
    }
}

#[test]
fn recipient_remove_leaves_no_file_readable_by_the_removed_identity() {
    let w = World::new();
    let o = w.set("test", &good_flags());
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    w.s.set("API_KEY", "test", "s3cret-value");
    let aws_dir = w.s.keyrack_home.join("vault/aws.config/default");
    assert_eq!(
        crate::support::age::files(&aws_dir).len(),
        2,
        "an SSO token and a client registration"
    );

    let laptop = w.s.root.join("laptop.key");
    let pubkey = crate::support::age::keygen(&laptop);

    let (code, v) = w.s.json(&[
        "recipient",
        "add",
        "--pubkey",
        pubkey.trim(),
        "--label",
        "laptop",
    ]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["reencrypted"]["aws.config"], 2, "{v}");
    assert_eq!(v["reencrypted"]["os.secure"], 1, "{v}");
    assert_eq!(v["reencryptedFiles"], 3, "{v}");
    let all = crate::support::age::files(&w.s.keyrack_home);
    assert!(all.len() >= 4, "host manifest + 3 vault files: {all:?}");
    for f in &all {
        assert!(
            crate::support::age::decrypts(&laptop, f),
            "the added key reads {}",
            f.display()
        );
    }

    let o = w.s.run(&["recipient", "remove", "--label", "laptop"], "");
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for line in [
        "re-encrypted: host manifest + 3 vault file(s)",
        "aws.config: 2 file(s)",
        "os.secure: 1 file(s)",
    ] {
        assert!(out.contains(line), "{line} in:\n{out}");
    }
    let all = crate::support::age::files(&w.s.keyrack_home);
    assert!(all.len() >= 4, "{all:?}");
    for f in &all {
        assert!(
            !crate::support::age::decrypts(&laptop, f),
            "the removed key can no longer read {}",
            f.display()
        );
    }
    // the remaining identity still reads everything: unlock without a new sign-in
    let regs = w.fake.registrations();
    let o = w.s.run(&["unlock", "--env", "test", "--no-prompt"], "");
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(w.s.get_value("API_KEY", "test").1, "s3cret-value");
    assert_eq!(w.s.get_value("AWS_PROFILE", "test").1, "acme.test");
    assert_eq!(w.fake.registrations(), regs);
}

#[test]
fn aws_token_files_are_bound_to_their_session() {
    let w = World::new();
    let o = w.set("test", &good_flags());
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let other = "https://d-2222222222.awsapps.com/start";
    let o = w.set(
        "prod",
        &[
            ("--sso-start-url", other),
            ("--sso-region", "us-east-1"),
            ("--account-id", "222222222222"),
            ("--role-name", "ReadOnly"),
            ("--profile-name", "acme.prod"),
        ],
    );
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let dir = w.s.keyrack_home.join("vault/aws.config/default");
    let sessions: Vec<PathBuf> = crate::support::age::files(&dir)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("session-")
        })
        .collect();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    // swap the two sessions' encrypted tokens
    let (a, b) = (
        std::fs::read(&sessions[0]).unwrap(),
        std::fs::read(&sessions[1]).unwrap(),
    );
    std::fs::write(&sessions[0], &b).unwrap();
    std::fs::write(&sessions[1], &a).unwrap();
    let (code, v) = w.s.json(&["unlock", "--env", "test", "--no-prompt"]);
    assert_eq!(code, 2, "{v}");
    let row = &v["keys"][0];
    assert_eq!(row["status"], "errored", "{v}");
    let reason = row["reason"].as_str().unwrap();
    assert!(
        reason.contains(
            "holds the SSO session token of 'acme-2', not the SSO session token of 'acme'"
        ),
        "{reason}"
    );
    assert!(row["fix"].as_str().unwrap().contains("rm "), "{v}");
    assert!(
        !w.s.home.join(".aws/sso/cache").exists()
            || std::fs::read_dir(w.s.home.join(".aws/sso/cache"))
                .unwrap()
                .next()
                .is_none(),
        "the swapped token was not mirrored"
    );
}

#[test]
fn recipient_labels_with_control_or_bidi_characters_are_refused() {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.init();
    let key = s.root.join("k.key");
    let pubkey = crate::support::age::keygen(&key);
    let host = std::fs::read(s.keyrack_home.join("host.age")).unwrap();
    for (label, why) in [
        ("lap\ntop", "a line break (U+000A)"),
        ("lap\rtop", "a line break (U+000D)"),
        ("lap\u{1b}[2Jtop", "a terminal escape (U+001B)"),
        ("lap\u{7}top", "a control character (U+0007)"),
        ("lap\ttop", "a control character (U+0009)"),
        ("lap\u{9b}top", "a control character (U+009B)"),
        ("lap\u{202e}pot", "a bidi control character (U+202E)"),
        ("lap\u{2067}top", "a bidi control character (U+2067)"),
        (
            "lap\u{200b}top",
            "an invisible formatting character (U+200B)",
        ),
    ] {
        let o = s.run(
            &[
                "recipient",
                "add",
                "--pubkey",
                pubkey.trim(),
                "--label",
                label,
            ],
            "",
        );
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{label:?}: {err}");
        assert!(err.contains("invalid label"), "{label:?}: {err}");
        assert!(err.contains(why), "{label:?}: {why} in {err}");
        assert!(
            !err.contains(label),
            "{label:?}: the label is not echoed raw: {err}"
        );
        let (_, v) = s.json(&["recipient", "list"]);
        assert_eq!(v["recipients"].as_array().unwrap().len(), 1, "{label:?}");
    }
    assert_eq!(
        std::fs::read(s.keyrack_home.join("host.age")).unwrap(),
        host,
        "the host manifest is untouched"
    );
    // a plain label (unicode letters included) is fine
    let o = s.run(
        &[
            "recipient",
            "add",
            "--pubkey",
            pubkey.trim(),
            "--label",
            "Zoë's laptop",
        ],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // init --label follows the same rule
    let s2 = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    let o = s2.run(&["init", "--label", "me\u{1b}]0;x\u{7}"], "");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(!s2.keyrack_home.join("host.age").exists());
}
