//! The guided AWS set-up tells you what it made (issue 10, part 4), on a real terminal (rexpect)
//! against the loopback fake of AWS:
//!
//! - the sso-session of a new portal can be named (a prompt with the org as default, or
//!   `--sso-session` without the guide); a portal keeps the one it has;
//! - the suggested profile name carries the role (`<org>.<account>.<role>`), so the Admin and
//!   ReadOnly roles of one account do not collide;
//! - the result shows profile, account (name and id), role, sso-session and the line that uses
//!   it; `list` and `status` show the profile of aws.config keys;
//! - "no" to changing an existing profile asks for another name and keeps every other pick.

use std::path::PathBuf;
use std::process::Command;

use keyrack_fake_aws::FakeAws;
use keyrack_testkit::{stderr, stdout, Sandbox};
use rexpect::process::WaitStatus;
use rexpect::session::{spawn_command, PtySession};

const URL: &str = "https://d-1234567890.awsapps.com/start";

struct World {
    s: Sandbox,
    fake: FakeAws,
}

impl World {
    fn new() -> Self {
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
        s.manifest("org: acme\nenv.test: []\nenv.prod: []\n");
        s.init();
        World { s, fake }
    }

    fn config(&self) -> PathBuf {
        self.s.home.join(".aws/config")
    }

    fn guided_set(&self, env: &str) -> PtySession {
        let mut c = Command::new(self.s.bin());
        c.env_clear()
            .current_dir(&self.s.repo)
            .envs(self.s.vars())
            .env("TERM", "xterm")
            .args(["set", "--key", "AWS_PROFILE", "--env", env]);
        spawn_command(c, Some(30_000)).unwrap()
    }
}

fn exit_code(p: &mut PtySession) -> i32 {
    match p.process().wait().unwrap() {
        WaitStatus::Exited(_, code) => code,
        other => panic!("not exited: {other:?}"),
    }
}

/// Picks the entry that `typed` narrows the list to.
fn pick(p: &mut PtySession, prompt: &str, typed: &str, expect: &str) {
    p.exp_string(prompt).unwrap();
    p.send(typed).unwrap();
    p.exp_string(expect).unwrap();
    p.send_line("").unwrap();
}

#[test]
fn the_guide_names_the_session_suggests_the_role_and_shows_what_it_made() {
    let w = World::new();
    let mut p = w.guided_set("test");
    p.exp_string("start URL:").unwrap();
    p.send_line(URL).unwrap();
    p.exp_string("SSO region:").unwrap();
    p.send_line("").unwrap();
    p.exp_string("sso-session name:").unwrap();
    p.exp_string("acme").unwrap(); // the suggested default: the org
    p.send_line("work").unwrap();
    pick(&mut p, "account:", "Acme", "Acme Test");
    pick(&mut p, "role:", "Admin", "AdministratorAccess");
    p.exp_string("profile name:").unwrap();
    p.exp_string("acme.acme-test.admin").unwrap();
    p.send_line("").unwrap();
    let out = p.exp_eof().unwrap();
    assert_eq!(exit_code(&mut p), 0, "{out}");
    for line in [
        "profile: acme.acme-test.admin",
        "account: Acme Test (123456789012)",
        "role: AdministratorAccess",
        &format!("sso-session: work ({URL})"),
        "export AWS_PROFILE=acme.acme-test.admin",
    ] {
        assert!(out.contains(line), "{line} in:\n{out}");
    }
    let config = std::fs::read_to_string(w.config()).unwrap();
    assert!(
        config.contains("[profile acme.acme-test.admin]\nsso_session = work\n")
            && config.contains(&format!("[sso-session work]\nsso_start_url = {URL}\n")),
        "{config}"
    );

    // the other role of the same account: the portal keeps its session (not asked), and the
    // suggested name does not collide with the admin profile
    let mut p = w.guided_set("prod");
    p.exp_string("AWS access portal:").unwrap();
    p.send_line("").unwrap();
    pick(&mut p, "account:", "Acme", "Acme Test");
    pick(&mut p, "role:", "Read", "ReadOnly");
    p.exp_string("profile name:").unwrap();
    p.exp_string("acme.acme-test.readonly").unwrap();
    p.send_line("").unwrap();
    let out = p.exp_eof().unwrap();
    assert_eq!(exit_code(&mut p), 0, "{out}");
    assert!(!out.contains("sso-session name:"), "{out}");
    assert!(!out.contains("change it?"), "no collision: {out}");
    assert!(
        out.contains("export AWS_PROFILE=acme.acme-test.readonly"),
        "{out}"
    );
    let config = std::fs::read_to_string(w.config()).unwrap();
    assert!(
        config.contains("[profile acme.acme-test.admin]"),
        "{config}"
    );
    assert!(config.contains("[profile acme.acme-test.readonly]\nsso_session = work\n"));
    assert_eq!(config.matches("[sso-session").count(), 1, "{config}");
    assert_eq!(
        w.fake.browser_authorizations(),
        1,
        "one sign-in covers both"
    );

    // list and status show each key's profile
    let list = stdout(&w.s.run(&["list"], ""));
    assert!(
        list.contains("profile: acme.acme-test.admin")
            && list.contains("profile: acme.acme-test.readonly"),
        "{list}"
    );
    let (_, v) = w.s.json(&["list", "--env", "prod"]);
    assert_eq!(v["keys"][0]["profile"], "acme.acme-test.readonly");
    w.s.cmd()
        .args(["unlock", "--env", "test"])
        .assert()
        .success();
    let status = stdout(&w.s.run(&["status"], ""));
    assert!(status.contains("profile: acme.acme-test.admin"), "{status}");
    let (_, v) = w.s.json(&["status"]);
    assert_eq!(v["keys"][0]["profile"], "acme.acme-test.admin");
}

#[test]
fn no_to_changing_a_profile_asks_another_name_and_keeps_every_pick() {
    let w = World::new();
    std::fs::create_dir_all(w.config().parent().unwrap()).unwrap();
    let original = format!("[profile acme.acme-test]\nsso_session = acme\nsso_account_id = 123456789012\nsso_role_name = ReadOnly\nregion = us-east-1\n\n[sso-session acme]\nsso_start_url = {URL}\nsso_region = us-east-1\nsso_registration_scopes = sso:account:access\n");
    std::fs::write(w.config(), &original).unwrap();
    let mut p = w.guided_set("test");
    p.exp_string("AWS access portal:").unwrap();
    p.send_line("").unwrap();
    pick(&mut p, "account:", "Acme", "Acme Test");
    pick(&mut p, "role:", "Admin", "AdministratorAccess");
    p.exp_string("profile name:").unwrap();
    p.send_line("acme.acme-test").unwrap();
    p.exp_string("- sso_role_name = ReadOnly").unwrap();
    p.exp_string("change it?").unwrap();
    p.send_line("n").unwrap();
    p.exp_string("left as it is; choose another name").unwrap();
    // asked again, with a free name as the default; account and role are kept
    p.exp_string("profile name:").unwrap();
    p.exp_string("acme.acme-test-2").unwrap();
    p.send_line("").unwrap();
    let out = p.exp_eof().unwrap();
    assert_eq!(exit_code(&mut p), 0, "{out}");
    assert!(out.contains("profile: acme.acme-test-2"), "{out}");
    assert!(out.contains("role: AdministratorAccess"), "{out}");
    let config = std::fs::read_to_string(w.config()).unwrap();
    assert!(
        config.starts_with(&original),
        "the declined profile is untouched:\n{config}"
    );
    assert!(
        config.contains("[profile acme.acme-test-2]\nsso_session = acme\nsso_account_id = 123456789012\nsso_role_name = AdministratorAccess\n"),
        "{config}"
    );
    assert_eq!(w.fake.browser_authorizations(), 1);
}

#[test]
fn sso_session_flag_names_a_new_portals_session_and_refuses_a_second_one() {
    let w = World::new();
    let set = |env: &str, profile: &str, session: &str| {
        w.s.run(
            &[
                "set",
                "--key",
                "AWS_PROFILE",
                "--env",
                env,
                "--sso-start-url",
                URL,
                "--sso-region",
                "us-east-1",
                "--account-id",
                "123456789012",
                "--role-name",
                "ReadOnly",
                "--profile-name",
                profile,
                "--sso-session",
                session,
            ],
            "",
        )
    };
    let o = set("test", "acme.ro", "corp");
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains(&format!("sso-session: corp ({URL})")));
    assert!(stdout(&o).contains("export AWS_PROFILE=acme.ro"));
    let config = std::fs::read_to_string(w.config()).unwrap();
    assert!(config.contains("[sso-session corp]"), "{config}");

    // the portal has its session: another name is refused, naming the one to pass
    let o = set("prod", "acme.ro2", "other");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("already has [sso-session corp]")
            && stderr(&o).contains("fix: pass --sso-session corp"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_to_string(w.config()).unwrap(), config);

    // JSON: what was made
    let (code, v) = w.s.json(&[
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
        "123456789012",
        "--role-name",
        "AdministratorAccess",
        "--profile-name",
        "acme.admin",
    ]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["aws"]["profile"], "acme.admin");
    assert_eq!(v["aws"]["accountId"], "123456789012");
    assert_eq!(v["aws"]["roleName"], "AdministratorAccess");
    assert_eq!(v["aws"]["ssoSession"], "corp");
    assert_eq!(v["aws"]["export"], "export AWS_PROFILE=acme.admin");
}
