//! The guided AWS SSO set-up of `keyrack set --key AWS_PROFILE` on a terminal: pick a start URL
//! known from `~/.aws/config` or type one and its region → name its sso-session (a new portal
//! only; suggested: the org) → sign in (the one browser trip) → pick the account and the role →
//! name the profile (suggested `<org>.<account>.<role>`) → if that profile exists and would
//! change, show the diff and ask; "no" asks for another name, every other pick is kept.
//!
//! The questions are asked here, through the rack's [`Interact`]; everything read, checked and
//! decided is the library's [`ProfileSetup`] (names are validated by `keyrack::aws::names`). The
//! answer is the complete set of profile flags; `set` then writes the profile exactly as it
//! would from those flags, and its result shows what was made.

use keyrack::aws::login::LoginOptions;
use keyrack::aws::names::{shown, NameError, ProfileName, Region, SessionName, StartUrl};
use keyrack::interact::{Interact, Question};
use keyrack::ops::aws::{unanswered, Portal, ProfileFlags, ProfileSetup, SessionChoice};
use keyrack::ops::set::SetPlan;
use keyrack::ops::Rack;
use keyrack::Result;

use crate::ui;

/// Guides the person to a profile; returns the flags that describe it.
pub fn run(
    rack: &Rack,
    plan: &SetPlan,
    given: &ProfileFlags,
    login: LoginOptions,
) -> Result<ProfileFlags> {
    let ask = rack.interact();
    let setup = ProfileSetup::begin(rack, &plan.scope, given, login)?;
    let portal = match setup.flagged_portal() {
        Some(p) => p,
        None => choose_portal(&setup, ask)?,
    };
    let chosen_session = match (setup.flagged_session(), setup.session_choice(&portal)?) {
        (Some(flagged), _) => Some(flagged), // checked by the sign-in
        (None, SessionChoice::Existing(_)) => None,
        (None, SessionChoice::New { suggested }) => {
            Some(choose_session(&setup, &portal, ask, &suggested)?)
        }
    };
    let session = setup.sign_in_as(&portal, chosen_session.as_ref())?;

    let accounts = setup.accounts(&session)?;
    let labels: Vec<String> = accounts
        .iter()
        .map(|a| format!("{} ({}) {}", shown(&a.name), a.id, shown(&a.email)))
        .collect();
    let account = &accounts[ask.select("account:", &labels).map_err(unanswered)?];

    let roles = setup.roles(&session, account)?;
    let role = match roles.as_slice() {
        [one] => one.clone(),
        _ => {
            let names: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
            roles[ask.select("role:", &names).map_err(unanswered)?].clone()
        }
    };

    let mut suggested = setup.suggested_profile(&session, account, &role);
    loop {
        let profile = ask
            .text(&Question {
                default: Some(suggested.as_str()),
                check: Some(valid_profile_name),
                ..Question::new("profile name:")
            })
            .map_err(unanswered)?;
        let profile = ProfileName::parse(profile.trim()).map_err(NameError::for_prompt)?;
        let planned = setup.plan(&session, account, &role, &profile)?;
        if let Some((before, after)) = planned.changes_existing() {
            ui::err(diff(&planned.profile, &planned.path, before, after));
            if !ask.confirm("change it?", false).map_err(unanswered)? {
                // keep every pick; only the name changes
                ui::err(format!(
                    "profile {} is left as it is; choose another name\n",
                    planned.profile
                ));
                suggested = setup.unused_profile_name(&planned.profile);
                continue;
            }
        }
        return Ok(planned.flags);
    }
}

/// The name of a new portal's sso-session: asked with `suggested` as the default, again while
/// it conflicts with the config file.
fn choose_session(
    setup: &ProfileSetup<'_>,
    portal: &Portal,
    ask: &dyn Interact,
    suggested: &SessionName,
) -> Result<SessionName> {
    loop {
        let name = ask
            .text(&Question {
                default: Some(suggested.as_str()),
                check: Some(valid_session_name),
                ..Question::new("sso-session name:")
            })
            .map_err(unanswered)?;
        let name = SessionName::parse(name.trim()).map_err(NameError::for_prompt)?;
        match setup.check_session(portal, &name) {
            Ok(()) => return Ok(name),
            Err(e) => ui::err(format!("{e}; choose another name\n")),
        }
    }
}

/// A portal from the config file, or a new start URL and region.
fn choose_portal(setup: &ProfileSetup<'_>, ask: &dyn Interact) -> Result<Portal> {
    let known = setup.known_portals();
    if !known.is_empty() {
        let mut choices: Vec<String> = known
            .iter()
            .map(|k| {
                format!(
                    "{}  ({}, {})",
                    shown(&k.start_url),
                    shown(&k.session),
                    shown(&k.sso_region)
                )
            })
            .collect();
        choices.push("another start URL…".into());
        let pick = ask
            .select("AWS access portal:", &choices)
            .map_err(unanswered)?;
        if let Some(k) = known.get(pick) {
            // values from the file are validated (a refusal names file:line)
            return setup.known_portal(k);
        }
    }
    let url = ask
        .text(&Question {
            placeholder: Some("https://d-1234567890.awsapps.com/start"),
            check: Some(valid_start_url),
            ..Question::new("start URL:")
        })
        .map_err(unanswered)?;
    let region = ask
        .text(&Question {
            default: Some("us-east-1"),
            check: Some(valid_sso_region),
            ..Question::new("SSO region:")
        })
        .map_err(unanswered)?;
    Portal::parse(&url, &region)
}

fn valid_start_url(s: &str) -> std::result::Result<(), String> {
    StartUrl::parse(s).map(drop).map_err(|e| e.to_string())
}

fn valid_sso_region(s: &str) -> std::result::Result<(), String> {
    Region::parse_sso(s).map(drop).map_err(|e| e.to_string())
}

fn valid_session_name(s: &str) -> std::result::Result<(), String> {
    SessionName::parse(s).map(drop).map_err(|e| e.to_string())
}

fn valid_profile_name(s: &str) -> std::result::Result<(), String> {
    ProfileName::parse(s).map(drop).map_err(|e| e.to_string())
}

/// The change to an existing profile, line by line (control characters escaped).
fn diff(profile: &ProfileName, path: &std::path::Path, before: &str, after: &str) -> String {
    let mut out = format!(
        "profile {profile} exists in {} and would change:\n",
        path.display()
    );
    for l in before.lines() {
        out.push_str(&format!("  - {}\n", shown(l)));
    }
    for l in after.lines() {
        out.push_str(&format!("  + {}\n", shown(l)));
    }
    out
}

#[cfg(test)]
mod tests {
    //! The wizard's questions, through a scripted person against the loopback fake of AWS
    //! (the pty tests in `tests/it/aws_wizard.rs` drive the same flow on a real terminal).

    use std::sync::Arc;

    use keyrack::home::Home;
    use keyrack::mech::SecretSource;
    use keyrack::ops::set::{self, SetOptions};
    use keyrack::slug::Owner;
    use keyrack_fake_aws::FakeAws;
    use keyrack_testkit::person::{Reply, Scripted};

    const URL: &str = "https://d-1234567890.awsapps.com/start";
    const EXISTING: &str = "[profile acme.acme-test]\nsso_session = acme\nsso_account_id = 123456789012\nsso_role_name = ReadOnly\nregion = us-east-1\n\n[sso-session acme]\nsso_start_url = https://d-1234567890.awsapps.com/start\nsso_region = us-east-1\nsso_registration_scopes = sso:account:access\n";

    fn pick(s: &str) -> Reply {
        Reply::Pick(s.into())
    }

    #[test]
    fn the_wizard_asks_in_order_suggests_the_role_and_asks_another_name_on_no() {
        // The only test of this binary that touches the process environment.
        let fake = FakeAws::start();
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(repo.join(".git")).unwrap();
        std::fs::create_dir_all(dir.path().join("run")).unwrap();
        std::fs::write(repo.join("keyrack.yml"), "org: acme\nenv.test: []\n").unwrap();
        let config = dir.path().join("aws-config");
        std::fs::write(&config, EXISTING).unwrap();
        for (k, v) in fake.env() {
            std::env::set_var(k, v);
        }
        std::env::set_var("HOME", dir.path());
        std::env::set_var("XDG_RUNTIME_DIR", dir.path().join("run"));
        std::env::set_var("AWS_CONFIG_FILE", &config);
        std::env::remove_var("KEYRACK_IDENTITY");

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
            login: Default::default(),
            aws: Default::default(),
            allow_dangerous: false,
            github: Default::default(),
            params: Default::default(),
        };
        let run = |person: Arc<Scripted>| {
            let home = Home::at(dir.path().join(".keyrack"), Owner::default());
            let rack = keyrack::ops::Rack::new(home, None, repo.clone()).with_interact(person);
            keyrack::ops::init::run(&rack, &Default::default()).unwrap();
            let plan = set::plan(&rack, &opts).unwrap();
            assert!(plan.needs_profile);
            super::run(&rack, &plan, &opts.aws, opts.login)
        };
        let script =
            |replies: Vec<Reply>| Arc::new(Scripted::new().with_browser().replying(replies));
        let picks = || {
            vec![
                pick(URL), // the known portal: its sso-session is reused, not asked
                pick("Acme Test"),
                pick("AdministratorAccess"),
            ]
        };

        // the suggested name carries the role: no collision with the ReadOnly profile
        let suggested = script([picks(), vec![Reply::Enter]].concat());
        let flags = run(suggested.clone()).unwrap();
        assert_eq!(
            suggested.asked(),
            ["AWS access portal:", "account:", "role:", "profile name:"]
        );
        assert_eq!(flags.profile_name.as_deref(), Some("acme.acme-test.admin"));
        assert_eq!(flags.sso_session.as_deref(), Some("acme"));
        assert_eq!(flags.account_name.as_deref(), Some("Acme Test"));
        assert_eq!(fake.authorizations(), 1, "one browser sign-in");

        // "no" to changing the existing profile asks for another name, keeping every pick
        let declines = script(
            [
                picks(),
                vec![
                    Reply::Type("acme.acme-test".into()),
                    Reply::Confirm(false),
                    Reply::Enter, // the next free name
                ],
            ]
            .concat(),
        );
        let flags = run(declines.clone()).unwrap();
        assert_eq!(
            declines.asked(),
            [
                "AWS access portal:",
                "account:",
                "role:",
                "profile name:",
                "change it?",
                "profile name:"
            ]
        );
        assert_eq!(flags.profile_name.as_deref(), Some("acme.acme-test-2"));
        assert_eq!(flags.account_id.as_deref(), Some("123456789012"));
        assert_eq!(flags.role_name.as_deref(), Some("AdministratorAccess"));
        assert_eq!(std::fs::read_to_string(&config).unwrap(), EXISTING);

        let accepts = script(
            [
                picks(),
                vec![Reply::Type("acme.acme-test".into()), Reply::Confirm(true)],
            ]
            .concat(),
        );
        let flags = run(accepts.clone()).unwrap();
        assert_eq!(accepts.unused_replies(), 0);
        assert_eq!(fake.authorizations(), 1, "the session lives: no browser");
        assert_eq!(flags.sso_start_url.as_deref(), Some(URL));
        assert_eq!(flags.sso_region.as_deref(), Some("us-east-1"));
        assert_eq!(flags.account_id.as_deref(), Some("123456789012"));
        assert_eq!(flags.role_name.as_deref(), Some("AdministratorAccess"));
        assert_eq!(flags.profile_name.as_deref(), Some("acme.acme-test"));
        assert_eq!(
            std::fs::read_to_string(&config).unwrap(),
            EXISTING,
            "the wizard writes nothing; set does"
        );
    }
}
