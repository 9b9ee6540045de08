//! The verbs AWS users reach for, through the real binary against the loopback fake of AWS:
//! `aws sync` (a profile per account × role), `aws console` (a federated console sign-in URL),
//! `aws env` and `exec --aws-profile` (the role credentials as environment variables). The AWS
//! CLI (botocore) reads what they produce.

use std::path::PathBuf;
use std::process::Command;

use keyrack_fake_aws::FakeAws;
use keyrack_testkit::{stderr, stdout, Sandbox};

const URL: &str = "https://d-1234567890.awsapps.com/start";

/// Bytes of an existing config that are not keyrack's: they must survive every sync.
const FOREIGN: &str = "# my own settings\n[default]\nregion = eu-west-1\ns3 =\n  max_concurrent_requests = 20\n\n[profile foreign]\nrole_arn = arn:aws:iam::111111111111:role/x\nsource_profile = default\n\n[services local]\ndynamodb =\n  endpoint_url = http://localhost:8000\n";

struct World {
    s: Sandbox,
    fake: FakeAws,
    browser_log: PathBuf,
}

impl World {
    /// A signed-in world: `set` of AWS_PROFILE for env test (profile acme.test, sso-session
    /// acme, the one browser sign-in), an os.secure key A in test, and foreign config bytes.
    fn new() -> Self {
        Self::start(false)
    }

    /// The same over HTTPS, the fake's test CA passed as `AWS_CA_BUNDLE`.
    fn https() -> Self {
        Self::start(true)
    }

    fn start(https: bool) -> Self {
        let fake = if https {
            FakeAws::start_https()
        } else {
            FakeAws::start()
        };
        let mut s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
        for (k, v) in fake.env() {
            s.env(&k, &v);
        }
        let cacert = if https {
            let ca = fake.ca_file().to_str().unwrap().to_string();
            s.env("AWS_CA_BUNDLE", &ca);
            format!("--cacert {ca} ")
        } else {
            String::new()
        };
        let browser_log = s.root.join("browser.log");
        let script = s.root.join("browser.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$1\" >> {}\nexec curl -s -L {cacert}--max-time 20 -o /dev/null \"$1\"\n",
                browser_log.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        s.env("BROWSER", script.to_str().unwrap());
        s.manifest("org: acme\nenv.test: []\nenv.prod: []\n");
        s.init();
        std::fs::create_dir_all(s.home.join(".aws")).unwrap();
        std::fs::write(s.home.join(".aws/config"), FOREIGN).unwrap();
        let w = World {
            s,
            fake,
            browser_log,
        };
        let o = w.s.run(
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
        w.s.set("A", "test", "value-of-a");
        assert_eq!(w.browser_opens(), 1, "the one browser sign-in, at set");
        w
    }

    fn browser_opens(&self) -> usize {
        std::fs::read_to_string(&self.browser_log)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    fn config_path(&self) -> PathBuf {
        self.s.home.join(".aws/config")
    }

    fn config(&self) -> String {
        std::fs::read_to_string(self.config_path()).unwrap()
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        self.s.run(args, "")
    }

    /// The AWS CLI (botocore) with the sandbox's environment and `extra`.
    fn aws(&self, args: &[&str], extra: &[(&str, &str)]) -> std::process::Output {
        let mut c = Command::new("aws");
        c.env_clear()
            .envs(self.s.vars())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .envs(extra.iter().copied())
            .args(args)
            .current_dir(&self.s.repo);
        c.output()
            .expect("the AWS CLI v1 is installed (pip install awscli)")
    }

    fn unlock(&self) {
        let o = self.run(&["unlock", "--env", "test"]);
        assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    }
}

fn ok(o: &std::process::Output) {
    assert!(
        o.status.success(),
        "exit {:?}\n{}{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
}

/// The six profiles the fake's 3 accounts × 2 roles give with the default template.
const SYNCED: [(&str, &str, &str); 6] = [
    (
        "Acme-Test.AdministratorAccess",
        "123456789012",
        "AdministratorAccess",
    ),
    ("Acme-Test.ReadOnly", "123456789012", "ReadOnly"),
    (
        "Production.AdministratorAccess",
        "222222222222",
        "AdministratorAccess",
    ),
    ("Production.ReadOnly", "222222222222", "ReadOnly"),
    (
        "Sandbox.AdministratorAccess",
        "111111111111",
        "AdministratorAccess",
    ),
    ("Sandbox.ReadOnly", "111111111111", "ReadOnly"),
];

fn section(name: &str, account: &str, role: &str) -> String {
    format!("[profile {name}]\nsso_session = acme\nsso_account_id = {account}\nsso_role_name = {role}\nregion = us-east-1\nkeyrack_generated = acme\n")
}

#[test]
fn sync_writes_every_role_is_a_no_op_again_and_prunes_only_its_own() {
    let w = World::new();
    let before_sync = w.config();
    let o = w.run(&["aws", "sync", "--sso-session", "acme", "--yes"]);
    ok(&o);
    let out = stdout(&o);
    assert!(out.contains("6 added, 0 changed, 0 removed"), "{out}");
    let config = w.config();
    assert!(
        config.starts_with(&before_sync),
        "every byte that was there is kept:\n{config}"
    );
    for (name, account, role) in SYNCED {
        assert!(
            config.contains(&section(name, account, role)),
            "{name} missing:\n{config}"
        );
    }
    assert_eq!(w.browser_opens(), 1, "the live session: no browser");

    // botocore reads every profile from the file
    for (name, account, _) in SYNCED {
        let o = w.aws(
            &["configure", "get", "sso_account_id", "--profile", name],
            &[],
        );
        ok(&o);
        assert_eq!(stdout(&o).trim(), account);
    }

    // again: nothing to change, the file is not even rewritten
    let mtime = std::fs::metadata(w.config_path())
        .unwrap()
        .modified()
        .unwrap();
    let o = w.run(&["aws", "sync", "--sso-session", "acme"]);
    ok(&o);
    assert!(stdout(&o).contains("nothing to change"), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("6 generated profiles already up to date"),
        "{}",
        stdout(&o)
    );
    assert_eq!(w.config(), config);
    assert_eq!(
        std::fs::metadata(w.config_path())
            .unwrap()
            .modified()
            .unwrap(),
        mtime
    );

    // the user adds a setting to a generated profile; the Sandbox admin role goes away
    let edited = config.replace(
        "[profile Sandbox.ReadOnly]\n",
        "[profile Sandbox.ReadOnly]\noutput = json\n",
    );
    std::fs::write(w.config_path(), &edited).unwrap();
    w.fake.set_account_roles("111111111111", &["ReadOnly"]);

    // without --prune it is reported, not removed
    let o = w.run(&["aws", "sync", "--sso-session", "acme", "--yes"]);
    ok(&o);
    assert!(
        stdout(&o).contains("stale: Sandbox.AdministratorAccess (the role AdministratorAccess is no longer assigned to you in account 111111111111)"),
        "{}",
        stdout(&o)
    );
    assert_eq!(w.config(), edited);

    // --prune removes it, and only it
    let (code, v) =
        w.s.json(&["aws", "sync", "--sso-session", "acme", "--prune", "--yes"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["applied"], true);
    assert_eq!(v["changes"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["changes"][0]["kind"], "removed");
    assert_eq!(v["changes"][0]["profile"], "Sandbox.AdministratorAccess");
    let pruned = w.config();
    assert_eq!(
        pruned,
        edited.replace(
            &format!(
                "{}\n",
                section(
                    "Sandbox.AdministratorAccess",
                    "111111111111",
                    "AdministratorAccess"
                )
            ),
            ""
        ),
        "exactly that section went"
    );
    assert!(pruned.starts_with(FOREIGN), "foreign bytes kept:\n{pruned}");
    assert!(pruned.contains("[profile acme.test]"), "set's profile kept");
    assert!(
        pruned.contains("[profile Sandbox.ReadOnly]\noutput = json\n"),
        "the user's own setting kept"
    );
    assert_eq!(w.browser_opens(), 1);

    // a synced profile works for botocore once the session is unlocked
    w.unlock();
    let o = w.aws(
        &[
            "sts",
            "get-caller-identity",
            "--profile",
            "Production.ReadOnly",
            "--output",
            "json",
        ],
        &[],
    );
    ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["Arn"],
        "arn:aws:sts::222222222222:assumed-role/ReadOnly/alice@example.com"
    );
}

#[test]
fn sync_without_a_tty_shows_the_diff_and_names_the_flag() {
    let w = World::new();
    let before = w.config();
    let o = w.run(&["aws", "sync", "--sso-session", "acme", "--prune"]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(
            "added: Acme-Test.AdministratorAccess - Acme Test (123456789012), AdministratorAccess"
        ),
        "{out}"
    );
    assert!(out.contains("+ [profile Production.ReadOnly]"), "{out}");
    assert!(out.contains("+ sso_account_id = 222222222222"), "{out}");
    assert!(out.contains("+ keyrack_generated = acme"), "{out}");
    assert!(out.contains("not written yet: 6 added"), "{out}");
    let err = stderr(&o);
    assert!(
        err.contains("keyrack aws sync --sso-session acme --prune --yes"),
        "{err}"
    );
    assert_eq!(w.config(), before, "nothing written");

    // --json: one document, the plan and the refusal
    let (code, v) = w.s.json(&["aws", "sync", "--sso-session", "acme"]);
    assert_eq!(code, 1);
    assert_eq!(v["error"]["code"], "needs_tty");
    assert_eq!(v["applied"], false);
    assert_eq!(v["changes"].as_array().unwrap().len(), 6);
    assert_eq!(v["changes"][0]["kind"], "added");
    assert_eq!(w.config(), before);

    // an unknown session and a bad template are refused before anything is listed
    let o = w.run(&["aws", "sync", "--sso-session", "nope", "--yes"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("[sso-session nope]"), "{}", stderr(&o));
    let o = w.run(&[
        "aws",
        "sync",
        "--sso-session",
        "acme",
        "--template",
        "{account}.{role_name}",
        "--yes",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("{account} is not a placeholder"),
        "{}",
        stderr(&o)
    );
    assert_eq!(w.config(), before);

    // the SSO session is over: --no-prompt refuses to sign in; without it, one sign-in
    w.fake.revoke_all();
    let o = w.run(&[
        "aws",
        "sync",
        "--sso-session",
        "acme",
        "--yes",
        "--no-prompt",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--no-prompt"), "{}", stderr(&o));
    assert_eq!((w.browser_opens(), w.config()), (1, before.clone()));
    let o = w.run(&["aws", "sync", "--sso-session", "acme", "--yes"]);
    ok(&o);
    assert!(stdout(&o).contains("(signed in now)"), "{}", stdout(&o));
    assert_eq!(w.browser_opens(), 2);
    assert!(w.config().contains("[profile Production.ReadOnly]"));
}

#[test]
fn sync_asks_on_a_tty_before_writing() {
    let w = World::new();
    let before = w.config();
    let spawn = || {
        let mut c = Command::new(w.s.bin());
        c.env_clear()
            .current_dir(&w.s.repo)
            .envs(w.s.vars())
            .env("TERM", "xterm")
            .args(["aws", "sync", "--sso-session", "acme"]);
        rexpect::session::spawn_command(c, Some(30_000)).unwrap()
    };
    let mut p = spawn();
    p.exp_string("added: Sandbox.ReadOnly").unwrap();
    p.exp_string("+ sso_role_name = ReadOnly").unwrap();
    p.exp_string("write these changes to").unwrap();
    p.send_line("n").unwrap();
    let out = p.exp_eof().unwrap();
    assert!(out.contains("nothing written"), "{out}");
    assert_eq!(w.config(), before, "declined: untouched");

    let mut p = spawn();
    p.exp_string("write these changes to").unwrap();
    p.send_line("y").unwrap();
    let out = p.exp_eof().unwrap();
    assert!(out.contains("written to"), "{out}");
    assert!(w
        .config()
        .contains(&section("Sandbox.ReadOnly", "111111111111", "ReadOnly")));
}

#[test]
fn sync_names_collisions_conflicts_and_hostile_portal_values() {
    let w = World::new();
    // a profile of the user's own under a name the template will produce
    let mut text = w.config();
    text.push_str("\n[profile Ops.Admin]\nregion = us-west-2\n");
    std::fs::write(w.config_path(), &text).unwrap();
    w.fake.set_accounts(&[
        ("111111111111", "Acme Test", "a@example.com"),
        ("222222222222", "Acme-Test", "b@example.com"),
        ("333333333333", "Ops", "ops@example.com"),
        ("12", "Short id", "x@example.com"),
        (
            "444444444444",
            "Evil\n[profile pwned]\ncredential_process = /bin/evil",
            "e@example.com",
        ),
    ]);
    w.fake.set_roles(&["Admin", "Bad Role"]);
    let (code, v) = w.s.json(&["aws", "sync", "--sso-session", "acme", "--yes"]);
    assert_eq!(code, 0, "{v}");
    let added: Vec<&str> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["profile"].as_str().unwrap())
        .collect();
    assert_eq!(
        added,
        [
            "Acme-Test.Admin-111111111111",
            "Acme-Test.Admin-222222222222",
            "Evil-profile-pwned-credential_process-/bin/evil.Admin"
        ]
    );
    assert_eq!(v["collisions"][0]["name"], "Acme-Test.Admin");
    assert_eq!(v["conflicts"][0]["profile"], "Ops.Admin");
    let skipped = v["skipped"].to_string();
    assert!(skipped.contains("Short id"), "{skipped}");
    assert!(skipped.contains("Bad Role"), "{skipped}");
    let config = w.config();
    assert!(config.starts_with(&text), "the user's Ops.Admin untouched");
    assert!(!config.contains("\n[profile pwned]"), "{config}");
    assert!(!config.contains("\ncredential_process"), "{config}");
    // botocore still reads the file as intended: no profile or setting was smuggled in
    let o = w.aws(&["configure", "get", "region", "--profile", "pwned"], &[]);
    assert!(!o.status.success(), "{}", stdout(&o));
    let evil = "Evil-profile-pwned-credential_process-/bin/evil.Admin";
    let o = w.aws(
        &["configure", "get", "credential_process", "--profile", evil],
        &[],
    );
    assert!(stdout(&o).trim().is_empty(), "{}", stdout(&o));
    let o = w.aws(
        &["configure", "get", "sso_account_id", "--profile", evil],
        &[],
    );
    ok(&o);
    assert_eq!(stdout(&o).trim(), "444444444444");
    let o = w.aws(
        &[
            "configure",
            "get",
            "sso_account_id",
            "--profile",
            "Acme-Test.Admin-222222222222",
        ],
        &[],
    );
    assert_eq!(stdout(&o).trim(), "222222222222");

    // another template
    let (code, v) = w.s.json(&[
        "aws",
        "sync",
        "--sso-session",
        "acme",
        "--template",
        "{sso_session}.{account_id}.{role_name}",
        "--prune",
        "--yes",
    ]);
    assert_eq!(code, 0, "{v}");
    let config = w.config();
    assert!(config.contains(&section("acme.333333333333.Admin", "333333333333", "Admin")));
    assert!(
        !config.contains("[profile Acme-Test.Admin-111111111111]"),
        "renamed: the old generated names are pruned"
    );
    assert!(config.contains("[profile Ops.Admin]\nregion = us-west-2\n"));
}

fn query(url: &str) -> std::collections::HashMap<String, String> {
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), percent_decode(v)))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn console_gives_a_signin_url_from_the_role_credentials_and_never_leaks_it() {
    let w = World::new();
    w.unlock();
    let signin = [("AWS_ENDPOINT_URL_SIGNIN", w.fake.url.as_str())];
    let console = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = w.s.cmd();
        c.args(["aws", "console", "--profile", "acme.test"])
            .args(args)
            .envs(env.iter().copied());
        c.output().unwrap()
    };

    let o = console(&["--print"], &signin);
    ok(&o);
    let url = stdout(&o).trim_end().to_string();
    assert_eq!(stdout(&o).lines().count(), 1, "only the URL on stdout");
    let prefix = format!(
        "{}/federation?Action=login&Issuer=keyrack&Destination=",
        w.fake.url
    );
    assert!(url.starts_with(&prefix), "{url}");
    let q = query(&url);
    assert_eq!(
        q["Destination"],
        "https://console.aws.amazon.com/console/home?region=us-east-1"
    );
    let issued = w.fake.signins();
    assert_eq!(issued.len(), 1);
    assert_eq!(
        q["SigninToken"], issued[0].token,
        "the token the fake issued"
    );
    assert_eq!(
        (issued[0].account_id.as_str(), issued[0].role_name.as_str()),
        ("123456789012", "AdministratorAccess")
    );
    assert_eq!(
        issued[0].session_duration, None,
        "no --duration: the session lasts as long as the credentials"
    );
    let err = stderr(&o);
    assert!(!err.contains(&issued[0].token), "{err}");
    assert!(
        err.contains("account 123456789012, role AdministratorAccess"),
        "{err}"
    );
    assert_eq!(w.browser_opens(), 1, "--print opens nothing");

    // durations: within AWS's limits and never past the credentials (1 h at the fake)
    let o = console(&["--print", "--duration", "12h"], &signin);
    ok(&o);
    let d = w.fake.signins()[1].session_duration.unwrap();
    assert!((3500..=3600).contains(&d), "{d}");
    assert!(
        stderr(&o).contains("cannot outlive the role credentials"),
        "{}",
        stderr(&o)
    );
    let o = console(&["--print", "--duration", "5m"], &signin);
    ok(&o);
    assert_eq!(w.fake.signins()[2].session_duration, Some(900));
    assert!(stderr(&o).contains("raised to 15m"), "{}", stderr(&o));

    // the catch-all AWS_ENDPOINT_URL is honoured like for the other endpoints
    let o = console(
        &["--print", "--json"],
        &[("AWS_ENDPOINT_URL", w.fake.url.as_str())],
    );
    ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["url"].as_str().unwrap().starts_with(&prefix), "{v}");
    assert_eq!(v["partition"], "aws");
    assert_eq!(w.fake.signins().len(), 4);

    // without --print: opened in the browser (the fake sees the login), never printed
    let o = console(&[], &signin);
    ok(&o);
    assert!(!stdout(&o).contains("SigninToken"), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("opened in your browser"),
        "{}",
        stdout(&o)
    );
    for _ in 0..200 {
        if !w.fake.console_logins().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(w.browser_opens(), 2);
    assert_eq!(
        w.fake.console_logins(),
        ["https://console.aws.amazon.com/console/home?region=us-east-1"]
    );

    // no browser here (no $BROWSER, no display): refused before a token is made, with --print
    let mut c = w.s.cmd();
    c.args(["aws", "console", "--profile", "acme.test"])
        .envs(signin.iter().copied())
        .env_remove("BROWSER");
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--print"), "{}", stderr(&o));
    assert_eq!(w.fake.signins().len(), 5, "no sign-in token made");

    // a failure never shows the request (it carries the credentials)
    let o = console(
        &["--print"],
        &[("AWS_ENDPOINT_URL_SIGNIN", "http://127.0.0.1:9")],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("console sign-in token"), "{err}");
    for leak in ["ASIAFAKE", "%7B", "sessionKey", "secret", "SigninToken="] {
        assert!(!err.contains(leak), "{leak} in: {err}");
    }
    assert!(stdout(&o).is_empty());

    // locked: refused with the unlock command, no browser
    w.s.cmd().arg("relock").assert().success();
    let o = console(&["--print"], &signin);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("keyrack unlock"), "{}", stderr(&o));
    let o = console(&[], &signin);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(w.browser_opens(), 2, "never a browser when locked");
    assert_eq!(w.fake.signins().len(), 5);
}

#[test]
fn env_and_exec_give_the_aws_cli_working_credentials() {
    let w = World::new();
    w.unlock();
    let sts = [("AWS_ENDPOINT_URL_STS", w.fake.url.as_str())];
    let arn = "arn:aws:sts::123456789012:assumed-role/AdministratorAccess/alice@example.com";

    let o = w.run(&["aws", "env", "--profile", "acme.test"]);
    ok(&o);
    let out = stdout(&o);
    for name in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_CREDENTIAL_EXPIRATION",
    ] {
        assert!(out.contains(&format!("export {name}='")), "{out}");
    }
    assert!(out.contains("export AWS_REGION='us-east-1'\n"), "{out}");
    assert!(
        out.contains("export AWS_DEFAULT_REGION='us-east-1'\n"),
        "{out}"
    );

    // evaluated in bash, the AWS CLI works with it (and with AWS_PROFILE pointing nowhere
    // useful it still uses the env credentials)
    let script = format!(
        "eval \"$('{}' aws env --profile acme.test)\" && test -n \"$AWS_CREDENTIAL_EXPIRATION\" && case \"$AWS_CREDENTIAL_EXPIRATION\" in *Z) ;; *) exit 9;; esac && aws sts get-caller-identity --output json",
        w.s.bin().display()
    );
    let mut c = Command::new("bash");
    c.env_clear()
        .envs(w.s.vars())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(sts.iter().copied())
        .args(["-c", &script])
        .current_dir(&w.s.repo);
    let o = c.output().unwrap();
    ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["Arn"], arn);

    // fish quoting and --json
    let o = w.run(&["aws", "env", "--profile", "acme.test", "--shell", "fish"]);
    ok(&o);
    assert!(
        stdout(&o).contains("set -gx AWS_ACCESS_KEY_ID 'ASIAFAKE"),
        "{}",
        stdout(&o)
    );
    let (code, v) = w.s.json(&["aws", "env", "--profile", "acme.test"]);
    assert_eq!(code, 0);
    assert!(v["env"]["AWS_ACCESS_KEY_ID"]
        .as_str()
        .unwrap()
        .starts_with("ASIAFAKE"));
    assert!(v["expiresAt"].as_str().unwrap().ends_with('Z'));

    // exec --aws-profile: the command gets the credentials, not the profile (a profile that
    // does not exist in the parent would make the AWS CLI fail if it were passed on)
    let mut c = w.s.cmd();
    c.args([
        "exec",
        "--aws-profile",
        "acme.test",
        "--",
        "aws",
        "sts",
        "get-caller-identity",
        "--output",
        "json",
    ])
    .env("AWS_PROFILE", "no-such-profile")
    .env("AWS_EC2_METADATA_DISABLED", "true")
    .envs(sts.iter().copied());
    let o = c.output().unwrap();
    ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["Arn"], arn);

    // with --env: the env's keys too; its AWS_PROFILE key is not passed on either
    let o = w.run(&[
        "exec",
        "--aws-profile",
        "acme.test",
        "--env",
        "test",
        "--",
        "sh",
        "-c",
        "echo \"$A ${AWS_ACCESS_KEY_ID%%0*} ${AWS_PROFILE-unset} $AWS_REGION\"",
    ]);
    ok(&o);
    assert_eq!(stdout(&o), "value-of-a ASIAFAKE unset us-east-1\n");

    // locked: refused with the unlock command, never a browser
    w.s.cmd().arg("relock").assert().success();
    let o = w.run(&["aws", "env", "--profile", "acme.test"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("keyrack unlock"), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());
    let o = w.run(&["exec", "--aws-profile", "acme.test", "--", "true"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("keyrack unlock"), "{}", stderr(&o));
    assert_eq!(w.browser_opens(), 1);
}

#[test]
fn sync_console_and_env_work_over_https_with_the_networks_ca() {
    let w = World::https();
    assert!(w.fake.url.starts_with("https://"));
    ok(&w.run(&["aws", "sync", "--sso-session", "acme", "--yes"]));
    assert!(w.config().contains("[profile Production.ReadOnly]"));
    w.unlock();

    let signin = [("AWS_ENDPOINT_URL_SIGNIN", w.fake.url.as_str())];
    let mut c = w.s.cmd();
    c.args(["aws", "console", "--profile", "acme.test", "--print"])
        .envs(signin.iter().copied());
    let o = c.output().unwrap();
    ok(&o);
    let q = query(stdout(&o).trim_end());
    let issued = w.fake.signins();
    assert_eq!(q["SigninToken"], issued[0].token);
    assert_eq!(
        (issued[0].account_id.as_str(), issued[0].role_name.as_str()),
        ("123456789012", "AdministratorAccess")
    );

    // an untrusted certificate (no AWS_CA_BUNDLE): refused, naming it, and nothing leaks
    let mut c = w.s.cmd();
    c.args(["aws", "console", "--profile", "acme.test", "--print"])
        .envs(signin.iter().copied())
        .env_remove("AWS_CA_BUNDLE");
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("AWS_CA_BUNDLE"), "{err}");
    for leak in ["ASIAFAKE", "%7B", "secret"] {
        assert!(!err.contains(leak), "{leak} in: {err}");
    }

    // a synced profile works for botocore over HTTPS
    let o = w.aws(
        &[
            "sts",
            "get-caller-identity",
            "--profile",
            "Production.ReadOnly",
            "--output",
            "json",
        ],
        &[],
    );
    ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["Arn"],
        "arn:aws:sts::222222222222:assumed-role/ReadOnly/alice@example.com"
    );

    // aws env, evaluated, drives the AWS CLI over HTTPS too
    let script = format!(
        "eval \"$('{}' aws env --profile acme.test)\" && aws sts get-caller-identity --output json",
        w.s.bin().display()
    );
    let mut c = Command::new("bash");
    c.env_clear()
        .envs(w.s.vars())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args(["-c", &script])
        .current_dir(&w.s.repo);
    let o = c.output().unwrap();
    ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["Arn"],
        "arn:aws:sts::123456789012:assumed-role/AdministratorAccess/alice@example.com"
    );
    assert_eq!(w.browser_opens(), 1);
}
