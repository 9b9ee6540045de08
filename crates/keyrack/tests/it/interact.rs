//! The library behind a scripted person (`keyrack_testkit::Scripted`, a fake of [`Interact`]):
//! the AWS sign-in flows, the guided AWS set-up's library half and `set`'s secret go through the
//! trait, never a terminal. AWS is the loopback fake (`keyrack-fake-aws`); the "browser" follows
//! the link as a signed-in user would.
//!
//! Every test points the process environment (AWS endpoints, `AWS_CONFIG_FILE`, `HOME`) at its
//! own world, so they run one at a time.

use std::path::PathBuf;
use std::sync::{Arc, MutexGuard};
use std::time::Instant;

use keyrack::aws::login::{self, LoginOptions};
use keyrack::aws::names::ProfileName;
use keyrack::aws::oidc;
use keyrack::home::Home;
use keyrack::interact::{Interact, NonInteractive, Notice, PortalEntry, SignInStep};
use keyrack::mech::SecretSource;
use keyrack::ops::aws::{ProfileFlags, ProfileSetup};
use keyrack::ops::set::{self, SetOptions};
use keyrack::ops::Rack;
use keyrack::slug::Owner;
use keyrack::vault::VaultKind;
use keyrack::Error;
use keyrack_fake_aws::FakeAws;
use keyrack_testkit::person::{Event, Scripted};

const URL: &str = "https://d-1234567890.awsapps.com/start";

/// A world: the fake AWS, a temp HOME with a keyrack home, a repository of org `acme`.
struct World {
    fake: FakeAws,
    dir: tempfile::TempDir,
    _serial: MutexGuard<'static, ()>,
}

impl World {
    fn new() -> Self {
        let serial = crate::env_lock();
        let fake = FakeAws::start();
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(repo.join(".git")).unwrap();
        std::fs::create_dir_all(dir.path().join("run")).unwrap();
        std::fs::write(repo.join("keyrack.yml"), "org: acme\nenv.test: []\n").unwrap();
        // (edition 2021: set_var is safe; every test of this binary holds the env lock)
        for (k, v) in fake.env() {
            std::env::set_var(k, v);
        }
        std::env::set_var("HOME", dir.path());
        std::env::set_var("XDG_RUNTIME_DIR", dir.path().join("run"));
        std::env::set_var("AWS_CONFIG_FILE", dir.path().join("aws-config"));
        std::env::remove_var("KEYRACK_IDENTITY");
        World {
            fake,
            dir,
            _serial: serial,
        }
    }

    fn rack(&self, interact: Arc<dyn Interact>) -> Rack {
        let home = Home::at(self.dir.path().join(".keyrack"), Owner::default());
        let rack = Rack::new(home, None, self.dir.path().join("repo")).with_interact(interact);
        keyrack::ops::init::run(&rack, &Default::default()).unwrap();
        rack
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("aws-config")
    }
}

fn registration() -> oidc::Registration {
    oidc::register("us-east-1", URL, "keyrack").unwrap()
}

#[test]
fn browser_sign_in_shows_the_link_then_opens_it_and_waits_visibly() {
    let w = World::new();
    let person = Scripted::new().with_browser();
    let token = login::sign_in(
        &registration(),
        URL,
        &LoginOptions::default(),
        None,
        &person,
    )
    .unwrap();
    assert!(!token.access_token.expose().is_empty());
    assert_eq!(w.fake.authorizations(), 1);
    let log = person.log();
    let [Event::Saw(Notice::SignIn { start_url, step }), Event::Opened(opened), Event::Waiting(waiting), Event::DoneWaiting] =
        log.as_slice()
    else {
        panic!("notice, open, wait, done — in that order: {log:?}");
    };
    assert_eq!(start_url, URL);
    let SignInStep::Browser { url } = step else {
        panic!("a browser sign-in: {step:?}");
    };
    assert_eq!(url, opened, "the link shown is the link opened");
    assert!(
        url.contains("/authorize?response_type=code&")
            && url.contains("code_challenge_method=S256"),
        "{url}"
    );
    assert_eq!(waiting, "waiting for the browser sign-in…");
}

#[test]
fn without_a_browser_the_device_code_is_shown_and_the_link_handed_over() {
    let w = World::new();
    let person = Scripted::new();
    login::sign_in(
        &registration(),
        URL,
        &LoginOptions::default(),
        None,
        &person,
    )
    .unwrap();
    assert_eq!(w.fake.device_approvals(), 1);
    assert_eq!(w.fake.authorizations(), 0, "no browser sign-in");
    let log = person.log();
    let Event::Saw(Notice::SignIn {
        step: SignInStep::DeviceCode { url, code },
        ..
    }) = &log[0]
    else {
        panic!("the device code first: {log:?}");
    };
    assert!(url.ends_with(&format!("user_code={code}")), "{url} {code}");
    assert_eq!(log[1], Event::Opened(url.clone()));
    assert_eq!(
        log[2],
        Event::Waiting("waiting for the device sign-in…".into())
    );
}

#[test]
fn nobody_at_the_keyboard_means_no_sign_in_and_no_wait() {
    let w = World::new();
    let started = Instant::now();
    let e = login::sign_in(
        &registration(),
        URL,
        &LoginOptions::default(),
        None,
        &NonInteractive,
    )
    .unwrap_err();
    assert!(
        started.elapsed().as_secs() < 5,
        "refused at once, not after the 5 min deadline"
    );
    assert!(matches!(e, Error::NeedsTty { .. }), "{e:?}");
    let text = format!("{e} {}", e.fix().unwrap_or_default());
    assert!(text.contains(&format!("signing in to {URL}")), "{text}");
    assert!(text.contains("--no-prompt"), "{text}");
    assert_eq!(w.fake.authorizations() + w.fake.device_approvals(), 0);
}

#[test]
fn guided_setup_signs_in_once_skips_hostile_entries_and_diffs_an_existing_profile() {
    let w = World::new();
    w.fake.set_accounts(&[
        ("123456789012", "Acme Test", "test@example.com"),
        ("12345", "Evil\u{1b}]0;pwned\u{7}", "x@example.com"),
    ]);
    w.fake.set_roles(&["ReadOnly", "Admin\nistrator"]);
    // an existing profile of that name, with another role
    std::fs::write(
        w.config(),
        "[profile acme.acme-test]\nsso_session = acme\nsso_account_id = 123456789012\nsso_role_name = Other\nregion = us-east-1\n",
    )
    .unwrap();
    let person = Arc::new(Scripted::new().with_browser());
    let rack = w.rack(person.clone());
    let opts = SetOptions {
        key: "AWS_PROFILE".into(),
        env: Some("test".into()),
        vault: None,
        mech: None,
        org: None,
        exid: None,
        op_vault: None,
        max_duration: None,
        source: SecretSource::Prompt,
        login: LoginOptions::default(),
        aws: ProfileFlags::default(),
        allow_dangerous: false,
        github: Default::default(),
        params: Default::default(),
    };
    let plan = set::plan(&rack, &opts).unwrap();
    assert_eq!(plan.vault, VaultKind::AwsConfig);
    assert!(plan.needs_profile, "neither --exid nor a whole profile");
    // without anyone to guide, set names the flags
    let e = set::run(&w.rack(Arc::new(NonInteractive)), &opts).unwrap_err();
    assert!(
        e.fix().unwrap_or_default().contains("--sso-start-url"),
        "{e}"
    );

    let setup = ProfileSetup::begin(&rack, &plan.scope, &opts.aws, opts.login).unwrap();
    assert!(setup.flagged_portal().is_none());
    assert!(
        setup.known_portals().is_empty(),
        "the file has no sso-session"
    );
    let portal = keyrack::ops::aws::Portal::parse(URL, " us-east-1 ").unwrap();
    let session = setup.sign_in(&portal).unwrap();
    assert_eq!(w.fake.authorizations(), 1, "one browser trip");
    assert_eq!(session.session().as_str(), "acme", "named after the org");

    let accounts = setup.accounts(&session).unwrap();
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    let roles = setup.roles(&session, &accounts[0]).unwrap();
    assert_eq!(
        roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        ["ReadOnly"]
    );
    let skipped: Vec<_> = person
        .notices()
        .into_iter()
        .filter_map(|n| match n {
            Notice::SkippedPortalEntry { entry, name, .. } => Some((entry, name)),
            _ => None,
        })
        .collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert_eq!(skipped[0].0, PortalEntry::Account);
    let shown = skipped[0].1.clone().unwrap();
    assert!(
        !shown.contains('\u{1b}') && shown.contains("pwned"),
        "escaped: {shown:?}"
    );
    assert_eq!(skipped[1].0, PortalEntry::Role);

    let suggested = setup.suggested_profile(&session, &accounts[0], &roles[0]);
    assert_eq!(
        suggested.as_str(),
        "acme.acme-test.readonly",
        "<org>.<account>.<role>"
    );
    let profile = ProfileName::parse("acme.acme-test").unwrap();
    assert_eq!(
        setup.unused_profile_name(&profile).as_str(),
        "acme.acme-test-2"
    );
    let planned = setup
        .plan(&session, &accounts[0], &roles[0], &profile)
        .unwrap();
    let (before, after) = planned
        .changes_existing()
        .expect("the profile would change");
    assert!(before.contains("sso_role_name = Other"), "{before}");
    assert!(after.contains("sso_role_name = ReadOnly"), "{after}");
    assert!(
        !std::fs::read_to_string(w.config())
            .unwrap()
            .contains("ReadOnly"),
        "planning writes nothing"
    );
    assert!(planned.declined().to_string().contains("left as it is"));

    // the flags it yields are what set writes: the token from the sign-in is reused
    let written = SetOptions {
        aws: planned.flags.clone(),
        ..opts
    };
    let report = set::run(&rack, &written).unwrap();
    assert_eq!(report.vault, VaultKind::AwsConfig);
    assert_eq!(w.fake.authorizations(), 1, "no second browser trip");
    let config = std::fs::read_to_string(w.config()).unwrap();
    assert!(
        config.contains("[profile acme.acme-test]\nsso_session = acme\nsso_account_id = 123456789012\nsso_role_name = ReadOnly\n"),
        "{config}"
    );
    assert!(!config.contains("pwned"), "{config}");
}

#[test]
fn set_asks_the_secret_through_the_trait_or_names_the_pipe() {
    let w = World::new();
    let opts = SetOptions {
        key: "TOKEN".into(),
        env: Some("test".into()),
        vault: None,
        mech: None,
        org: None,
        exid: None,
        op_vault: None,
        max_duration: None,
        source: SecretSource::Prompt,
        login: LoginOptions::never_prompt(),
        aws: ProfileFlags::default(),
        allow_dangerous: false,
        github: Default::default(),
        params: Default::default(),
    };
    let nobody = w.rack(Arc::new(NonInteractive));
    let e = set::run(&nobody, &opts).unwrap_err();
    assert!(matches!(e, Error::NeedsTty { .. }), "{e:?}");
    assert!(
        e.fix()
            .unwrap_or_default()
            .contains("| keyrack set --key TOKEN"),
        "{e}"
    );

    let person = Arc::new(Scripted::new().with_secret("typed-value"));
    let rack = w.rack(person.clone());
    let report = set::run(&rack, &opts).unwrap();
    assert_eq!(report.vault, VaultKind::OsSecure);
    assert!(report.round_trip);
    assert_eq!(person.log(), [Event::Asked("TOKEN:".into())]);

    // a cancelled prompt stores nothing
    let cancelled = w.rack(Arc::new(Scripted::new()));
    let e = set::run(
        &cancelled,
        &SetOptions {
            key: "OTHER".into(),
            ..opts
        },
    )
    .unwrap_err();
    assert!(matches!(e, Error::Cancelled { .. }), "{e:?}");
    assert_eq!(e.exit_code(), 130);
}

/// The library has no terminal: no terminal crate among its dependencies, and its sources never
/// write to stdout/stderr or ask whether a terminal is attached (that is `keyrack-cli`'s
/// `Interact`). Printing macros are also denied by lint in `lib.rs`.
#[test]
fn the_library_has_no_terminal() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("a [dependencies] table");
    for krate in [
        "inquire",
        "indicatif",
        "webbrowser",
        "console",
        "dialoguer",
        "crossterm",
        "termion",
        "rpassword",
    ] {
        assert!(
            !deps.lines().any(|l| l.trim_start().starts_with(krate)),
            "{krate} in the library's dependencies"
        );
    }
    let mut stack = vec![root.join("src")];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            files += 1;
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for banned in [
                    "println!",
                    "print!(",
                    "eprint",
                    "dbg!",
                    "io::stdout",
                    "io::stderr",
                    "is_terminal",
                    "IsTerminal",
                    "/dev/tty",
                ] {
                    assert!(
                        !code.contains(banned),
                        "{}:{}: {banned} in the library: {line}",
                        path.display(),
                        n + 1
                    );
                }
            }
        }
    }
    assert!(files > 20, "walked the sources ({files} files)");
}
