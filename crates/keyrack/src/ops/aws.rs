//! AWS SSO operations: the profile behind `set --key AWS_PROFILE` (from `--exid` or flags, and
//! [`ProfileSetup`], the library half of the guided set-up whose questions the CLI asks),
//! `keyrack aws credentials` (credential_process), `keyrack aws logout`.

use serde::Serialize;

use super::{Rack, Scope};
use crate::aws::config_file::{AwsConfig, Section};
use crate::aws::login::LoginOptions;
use crate::aws::names::{
    shown, AccountId, Field, NameError, ProfileName, Region, RoleName, SessionName, StartUrl,
};
use crate::aws::portal;
use crate::aws::token_cache::format_z;
use crate::daemon::client::Client;
use crate::daemon::protocol::RelockScope;
use crate::error::{Error, Result};
use crate::grant::time;
use crate::interact::{Notice, PortalEntry, Unanswered};
use crate::secret::Secret;
use crate::slug::ORG_ALL;
use crate::vault::aws_config::{label, Payload, Sessions};

/// Flags that describe a profile to write (typed, or the answer of the guided set-up).
#[derive(Debug, Clone, Default)]
pub struct ProfileFlags {
    /// Portal start URL.
    pub sso_start_url: Option<String>,
    /// SSO region.
    pub sso_region: Option<String>,
    /// Account id.
    pub account_id: Option<String>,
    /// Role name.
    pub role_name: Option<String>,
    /// Profile name to write.
    pub profile_name: Option<String>,
    /// The profile's default region (default: the SSO region).
    pub region: Option<String>,
    /// The sso-session name for a portal the config file has none for yet (`--sso-session`;
    /// default: the org). A portal keeps the one it has.
    pub sso_session: Option<String>,
    /// The account's name, when the guided set-up knows it: shown in `set`'s result, never
    /// written.
    pub account_name: Option<String>,
}

/// [`ProfileFlags`] after validation: each given flag is a valid AWS name.
#[derive(Debug, Clone, Default)]
struct CheckedFlags {
    start_url: Option<StartUrl>,
    sso_region: Option<Region>,
    account_id: Option<AccountId>,
    role_name: Option<RoleName>,
    profile_name: Option<ProfileName>,
    region: Option<Region>,
    sso_session: Option<SessionName>,
}

impl CheckedFlags {
    fn complete(&self) -> Option<(&StartUrl, &Region, &AccountId, &RoleName, &ProfileName)> {
        Some((
            self.start_url.as_ref()?,
            self.sso_region.as_ref()?,
            self.account_id.as_ref()?,
            self.role_name.as_ref()?,
            self.profile_name.as_ref()?,
        ))
    }
}

impl ProfileFlags {
    /// Validates every given flag against AWS's grammar ([`crate::aws::names`]); the first
    /// invalid one is refused as bad usage, naming the flag and the expected form.
    fn check(&self) -> Result<CheckedFlags> {
        fn one<T>(
            v: &Option<String>,
            parse: fn(&str) -> std::result::Result<T, NameError>,
        ) -> Result<Option<T>> {
            v.as_deref()
                .map(|s| parse(s).map_err(NameError::for_flag))
                .transpose()
        }
        Ok(CheckedFlags {
            start_url: one(&self.sso_start_url, StartUrl::parse)?,
            sso_region: one(&self.sso_region, Region::parse_sso)?,
            account_id: one(&self.account_id, AccountId::parse)?,
            role_name: one(&self.role_name, RoleName::parse)?,
            profile_name: one(&self.profile_name, ProfileName::parse)?,
            region: one(&self.region, Region::parse)?,
            sso_session: one(&self.sso_session, SessionName::parse)?,
        })
    }

    fn any(&self) -> bool {
        self.sso_start_url.is_some()
            || self.sso_region.is_some()
            || self.account_id.is_some()
            || self.role_name.is_some()
            || self.profile_name.is_some()
            || self.sso_session.is_some()
    }
}

/// Parses a profile name given as `flag` (`--exid`, `--profile`).
pub(crate) fn profile_arg(flag: &'static str, name: &str) -> Result<ProfileName> {
    ProfileName::parse(name).map_err(|e| Error::InvalidInput {
        what: flag,
        value: e.shown,
        reason: e.reason,
        hint: Some(format!(
            "pass the name of an SSO profile: {}",
            Field::ProfileName.expected()
        )),
    })
}

const FLAGS_HINT: &str = "pass --exid <existing profile>, or all of --sso-start-url <url> --sso-region <region> --account-id <id> --role-name <role> --profile-name <name>";

/// The profile a `set` of an aws.config key will record, and the config text to restore if the
/// set fails (when it was changed).
pub(crate) struct Prepared {
    /// The profile name (the key's value).
    pub profile: String,
    /// The config file as it was, when keyrack changed it.
    pub restore: Option<(std::path::PathBuf, String)>,
}

impl Prepared {
    /// Puts the config file back as it was.
    pub(crate) fn undo(&self) -> Result<()> {
        if let Some((path, text)) = &self.restore {
            crate::fsio::write_atomic_through_links(path, text.as_bytes(), 0o600)?;
        }
        Ok(())
    }
}

/// The sso-session a profile of `start_url` uses: the one the config file already has for that
/// portal (one per portal, so one sign-in covers all its profiles), else `wanted`
/// (`--sso-session`, or the name chosen in the guided set-up), else [`suggested_session`].
/// A `wanted` name that differs from the portal's, or that another portal has, is refused.
fn session_name_for(
    cfg: &AwsConfig,
    scope: &Scope,
    start_url: &StartUrl,
    wanted: Option<&SessionName>,
) -> Result<SessionName> {
    let existing = cfg.session_for_url(start_url)?;
    match (existing, wanted) {
        (Some(have), Some(w)) if have != *w => Err(Error::InvalidInput {
            what: "--sso-session",
            value: w.to_string(),
            reason: format!(
                "{start_url} already has [sso-session {have}] in {}; keyrack keeps one sso-session per portal, so one sign-in covers all its profiles",
                cfg.path().display()
            ),
            hint: Some(format!("pass --sso-session {have}, or leave it out")),
        }),
        (Some(have), _) => Ok(have),
        (None, Some(w)) => {
            if let Some((_, url, _)) = cfg.sso_sessions().into_iter().find(|(n, _, _)| n == w.as_str()) {
                return Err(Error::InvalidInput {
                    what: "--sso-session",
                    value: w.to_string(),
                    reason: format!(
                        "[sso-session {w}] in {} is the portal {}, not {start_url}",
                        cfg.path().display(),
                        shown(&url)
                    ),
                    hint: Some("choose another sso-session name".into()),
                });
            }
            Ok(w.clone())
        }
        (None, None) => suggested_session(cfg, scope, start_url),
    }
}

/// The name suggested for a new sso-session: the org (the portal's first host label for `@all`
/// keys), with `-2`, `-3`… when another portal has it.
fn suggested_session(cfg: &AwsConfig, scope: &Scope, start_url: &StartUrl) -> Result<SessionName> {
    let base = if scope.org != ORG_ALL {
        scope.org.clone()
    } else {
        start_url
            .host()
            .split('.')
            .next()
            .unwrap_or("sso")
            .to_string()
    };
    let taken: Vec<String> = cfg.sso_sessions().into_iter().map(|(n, _, _)| n).collect();
    let mut name = base.clone();
    let mut i = 2;
    while taken.contains(&name) {
        name = format!("{base}-{i}");
        i += 1;
    }
    SessionName::parse(&name).map_err(NameError::for_flag)
}

/// `s` as a lowercase profile-name part: ASCII letters and digits kept, anything else one `-`,
/// no `-` at either end.
fn name_part(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// At most `max` characters of a [`name_part`], without a trailing `-`.
fn truncated(part: &str, max: usize) -> String {
    part.chars()
        .take(max)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

/// A role as a short profile-name part: an `AWS` prefix and an `Access` suffix dropped, AWS's
/// managed permission sets shortened (`AdministratorAccess` → `admin`, `ReadOnlyAccess` →
/// `readonly`, `PowerUserAccess` → `poweruser`, `ViewOnlyAccess` → `viewonly`), the rest
/// lowercased ([`name_part`]), at most 24 characters.
pub(crate) fn short_role(role: &str) -> String {
    let mut r = role;
    if let Some(rest) = r.strip_prefix("AWS") {
        if rest.starts_with(|c: char| c.is_ascii_uppercase()) {
            r = rest;
        }
    }
    if let Some(rest) = r.strip_suffix("Access") {
        if !rest.is_empty() {
            r = rest;
        }
    }
    let part = name_part(r);
    let short = match part.as_str() {
        "administrator" | "admin" => "admin".to_string(),
        "read-only" | "readonly" => "readonly".to_string(),
        "power-user" | "poweruser" => "poweruser".to_string(),
        "view-only" | "viewonly" => "viewonly".to_string(),
        _ => part,
    };
    truncated(&short, 24)
}

/// The profile name suggested for `role` in an account: `<base>.<account>.<role>` — the account
/// name as a [`name_part`] of at most 32 characters (its id when nothing is left of the name),
/// the role [`short_role`] — always a valid [`ProfileName`].
pub(crate) fn suggested_profile_name(
    base: &str,
    account_name: &str,
    account_id: &AccountId,
    role: &RoleName,
) -> ProfileName {
    let base = match truncated(&name_part(base), 32) {
        b if b.is_empty() => "aws".to_string(),
        b => b,
    };
    let account = match truncated(&name_part(account_name), 32) {
        a if a.is_empty() => account_id.to_string(),
        a => a,
    };
    let role = match short_role(role) {
        r if r.is_empty() => "role".to_string(),
        r => r,
    };
    ProfileName::parse(&format!("{base}.{account}.{role}"))
        .expect("letters, digits, - and . make a valid profile name")
}

/// The settings of one SSO profile, as keyrack writes them: only validated names.
struct ProfileSpec<'a> {
    session: &'a SessionName,
    start_url: &'a StartUrl,
    sso_region: &'a Region,
    account: &'a AccountId,
    role: &'a RoleName,
    profile: &'a ProfileName,
    region: &'a Region,
}

/// Writes `[profile]` + `[sso-session]` in the spec's exact shape; returns whether anything changed.
fn write_profile(cfg: &mut AwsConfig, p: &ProfileSpec<'_>) -> Result<bool> {
    let a = cfg.set_section(
        &Section::profile(p.profile),
        &[
            ("sso_session", p.session.as_str()),
            ("sso_account_id", p.account.as_str()),
            ("sso_role_name", p.role.as_str()),
            ("region", p.region.as_str()),
        ],
    )?;
    let b = cfg.set_section(
        &Section::SsoSession(p.session.to_string()),
        &[
            ("sso_start_url", p.start_url.as_str()),
            ("sso_region", p.sso_region.as_str()),
            ("sso_registration_scopes", crate::aws::SCOPE),
        ],
    )?;
    Ok(a || b)
}

/// Whether an aws.config `set` still needs its profile chosen: no `--exid` and the flags do not
/// describe a whole profile. Every given flag is validated first (bad usage names the flag).
pub(crate) fn needs_profile(exid: Option<&str>, flags: &ProfileFlags) -> Result<bool> {
    let checked = flags.check()?;
    if let Some(name) = exid {
        profile_arg("--exid", name)?;
        if flags.any() {
            return Err(Error::InvalidInput {
                what: "--exid",
                value: name.into(),
                reason: "--exid names an existing profile; the --sso-*/--account-id/--role-name flags describe a new one".into(),
                hint: Some("pass one or the other".into()),
            });
        }
        return Ok(false);
    }
    Ok(checked.complete().is_none())
}

/// Decides (and writes, when needed) the profile for an aws.config `set`: the existing `--exid`
/// profile, or the one the flags describe. Every flag is validated before the config file is
/// read, so a refused value changes nothing. Without either, fails with the flags to pass (a
/// front end that can ask guides the person with [`ProfileSetup`] first).
pub(crate) fn prepare_profile(
    scope: &Scope,
    exid: Option<&str>,
    flags: &ProfileFlags,
) -> Result<Prepared> {
    needs_profile(exid, flags)?;
    let checked = flags.check()?;
    let mut cfg = AwsConfig::load_default()?;
    let original = cfg.text();
    if let Some(name) = exid {
        let name = profile_arg("--exid", name)?;
        cfg.sso_profile(&name)?; // must exist and be a valid SSO profile
        return Ok(Prepared {
            profile: name.into(),
            restore: None,
        });
    }
    let Some((url, sso_region, account, role, profile)) = checked.complete() else {
        return Err(Error::NeedsTty {
            what: "choosing the AWS SSO profile".into(),
            hint: FLAGS_HINT.into(),
        });
    };
    let session = session_name_for(&cfg, scope, url, checked.sso_session.as_ref())?;
    let region = checked.region.as_ref().unwrap_or(sso_region);
    let spec = ProfileSpec {
        session: &session,
        start_url: url,
        sso_region,
        account,
        role,
        profile,
        region,
    };
    let changed = write_profile(&mut cfg, &spec)?;
    if changed {
        cfg.save()?;
    }
    Ok(Prepared {
        profile: profile.to_string(),
        restore: changed.then(|| (cfg.path().to_path_buf(), original)),
    })
}

/// The error of a guided set-up that got no answer: cancelled (exit 130), or the flags that
/// avoid the questions.
pub fn unanswered(e: Unanswered) -> Error {
    let what = "the AWS SSO set-up".to_string();
    match e {
        Unanswered::Cancelled => Error::Cancelled { what },
        Unanswered::NoTerminal => Error::NeedsTty {
            what,
            hint: FLAGS_HINT.into(),
        },
        Unanswered::Failed(e) => Error::NeedsTty {
            what,
            hint: format!("it was interrupted ({e}); run it again, or {FLAGS_HINT}"),
        },
    }
}

/// An AWS access portal: start URL and IAM Identity Center region, both validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Portal {
    /// The start URL.
    pub start_url: StartUrl,
    /// The SSO region.
    pub sso_region: Region,
}

impl Portal {
    /// A portal from typed answers (trimmed), each validated ([`crate::aws::names`]).
    pub fn parse(start_url: &str, sso_region: &str) -> Result<Self> {
        Ok(Portal {
            start_url: StartUrl::parse(start_url.trim()).map_err(NameError::for_prompt)?,
            sso_region: Region::parse_sso(sso_region.trim()).map_err(NameError::for_prompt)?,
        })
    }
}

/// A portal already named by an `[sso-session]` of the config file, as written there (not yet
/// validated: [`ProfileSetup::known_portal`] validates it, naming file:line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownPortal {
    /// The sso-session name.
    pub session: String,
    /// Its start URL.
    pub start_url: String,
    /// Its SSO region.
    pub sso_region: String,
}

/// An account the portal assigns to the signed-in person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The account id (validated).
    pub id: AccountId,
    /// Its name, as the portal gave it (escape it with [`shown`] to display it).
    pub name: String,
    /// Its e-mail address, as the portal gave it.
    pub email: String,
}

/// The library half of the guided AWS set-up (`set --key AWS_PROFILE` on a terminal): it reads
/// the config file, signs in (the one browser trip), lists accounts and roles, suggests the
/// profile name and shows what would change; the questions are the caller's. Its result is a
/// complete [`ProfileFlags`] for [`super::set::run`], which writes the profile.
pub struct ProfileSetup<'r> {
    rack: &'r Rack,
    scope: Scope,
    cfg: AwsConfig,
    flags: CheckedFlags,
    given: ProfileFlags,
    login: LoginOptions,
}

/// The sso-session a portal's profiles use ([`ProfileSetup::session_choice`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionChoice {
    /// The config file has one for the portal: it is reused (one sign-in covers its profiles).
    Existing(SessionName),
    /// A new one; the name may be chosen.
    New {
        /// The default name (the org, made unique).
        suggested: SessionName,
    },
}

/// A signed-in portal session of the guided set-up.
pub struct PortalSession {
    portal: Portal,
    session: SessionName,
    access_token: Secret,
}

impl PortalSession {
    /// The sso-session name its profiles share.
    pub fn session(&self) -> &SessionName {
        &self.session
    }
}

/// What writing the chosen profile would do ([`ProfileSetup::plan`]).
#[derive(Debug, Clone)]
pub struct ProfilePlan {
    /// The profile name.
    pub profile: ProfileName,
    /// The config file.
    pub path: std::path::PathBuf,
    /// The profile's section as it is, when it exists.
    pub before: Option<String>,
    /// The profile's section as it would be.
    pub after: Option<String>,
    /// The flags that write it through [`super::set::run`].
    pub flags: ProfileFlags,
}

impl ProfilePlan {
    /// `(before, after)` when an existing profile would change (ask before changing it).
    pub fn changes_existing(&self) -> Option<(&str, &str)> {
        match (&self.before, &self.after) {
            (Some(b), a) if Some(b) != a.as_ref() => Some((b, a.as_deref().unwrap_or(""))),
            _ => None,
        }
    }

    /// The error when the person declines to change the existing profile.
    pub fn declined(&self) -> Error {
        let profile = &self.profile;
        Error::Aws {
            source: None,
            message: format!("profile {profile} was left as it is"),
            hint: format!("choose another profile name, or reuse it unchanged: keyrack set --key AWS_PROFILE --exid {profile}"),
        }
    }
}

impl<'r> ProfileSetup<'r> {
    /// Starts a guided set-up in `scope` (from [`super::set::plan`]) with the flags already given
    /// (each validated) and the sign-in options.
    pub fn begin(
        rack: &'r Rack,
        scope: &Scope,
        flags: &ProfileFlags,
        login: LoginOptions,
    ) -> Result<Self> {
        Ok(ProfileSetup {
            rack,
            scope: scope.clone(),
            flags: flags.check()?,
            given: flags.clone(),
            cfg: AwsConfig::load_default()?,
            login,
        })
    }

    /// The portal `--sso-start-url` and `--sso-region` name, when both were given.
    pub fn flagged_portal(&self) -> Option<Portal> {
        Some(Portal {
            start_url: self.flags.start_url.clone()?,
            sso_region: self.flags.sso_region.clone()?,
        })
    }

    /// The portals the config file's `[sso-session]`s name.
    pub fn known_portals(&self) -> Vec<KnownPortal> {
        self.cfg
            .sso_sessions()
            .into_iter()
            .map(|(session, start_url, sso_region)| KnownPortal {
                session,
                start_url,
                sso_region,
            })
            .collect()
    }

    /// A known portal's settings, validated (a refusal names file:line).
    pub fn known_portal(&self, known: &KnownPortal) -> Result<Portal> {
        let (start_url, sso_region) = self.cfg.session_settings(&known.session)?;
        Ok(Portal {
            start_url,
            sso_region,
        })
    }

    /// The sso-session `--sso-session` names, when given.
    pub fn flagged_session(&self) -> Option<SessionName> {
        self.flags.sso_session.clone()
    }

    /// The sso-session profiles of `portal` use: the one the config file has for it, or a new
    /// one (the name may be chosen; `suggested` is the default).
    pub fn session_choice(&self, portal: &Portal) -> Result<SessionChoice> {
        Ok(match self.cfg.session_for_url(&portal.start_url)? {
            Some(name) => SessionChoice::Existing(name),
            None => SessionChoice::New {
                suggested: suggested_session(&self.cfg, &self.scope, &portal.start_url)?,
            },
        })
    }

    /// Whether `name` can be the sso-session of `portal` (the portal has no other one, and no
    /// other portal has this one).
    pub fn check_session(&self, portal: &Portal, name: &SessionName) -> Result<()> {
        session_name_for(&self.cfg, &self.scope, &portal.start_url, Some(name)).map(drop)
    }

    /// Signs in to `portal` unless its session is alive (the one browser trip of `set`); the
    /// token is kept encrypted for the `set` that follows. The sso-session is the portal's,
    /// else `--sso-session`, else the suggested one.
    pub fn sign_in(&self, target: &Portal) -> Result<PortalSession> {
        self.sign_in_as(target, None)
    }

    /// [`ProfileSetup::sign_in`] with the sso-session name chosen for a portal that has none
    /// yet (refused when it conflicts: [`ProfileSetup::check_session`]).
    pub fn sign_in_as(
        &self,
        target: &Portal,
        chosen: Option<&SessionName>,
    ) -> Result<PortalSession> {
        let wanted = chosen.or(self.flags.sso_session.as_ref());
        let session = session_name_for(&self.cfg, &self.scope, &target.start_url, wanted)?;
        let recipients = self.rack.host()?.recipient_keys()?;
        let ctx = self.rack.vault_context(&recipients, self.login)?;
        let sessions = Sessions::new(&ctx)?;
        let region = target.sso_region.clone();
        let live = sessions.live(
            &session,
            &target.start_url,
            &target.sso_region,
            None,
            &move |t| portal::list_accounts(&region, &t.access_token).map(|_| None),
        )?;
        Ok(PortalSession {
            portal: target.clone(),
            session,
            access_token: live.token.access_token,
        })
    }

    /// The accounts assigned to the signed-in person. Portal answers are input too: an entry
    /// with an invalid id is left out (a [`Notice::SkippedPortalEntry`]); none usable is an
    /// error.
    pub fn accounts(&self, s: &PortalSession) -> Result<Vec<Account>> {
        let listed = portal::list_accounts(&s.portal.sso_region, &s.access_token)
            .map_err(|e| e.into_error("listing your AWS accounts"))?;
        let mut accounts = Vec::new();
        for a in listed {
            match AccountId::parse(&a.account_id) {
                Ok(id) => accounts.push(Account {
                    id,
                    name: a.account_name,
                    email: a.email_address,
                }),
                Err(e) => self.rack.interact().notice(&Notice::SkippedPortalEntry {
                    entry: PortalEntry::Account,
                    name: Some(shown(&a.account_name)),
                    reason: e.to_string(),
                }),
            }
        }
        if accounts.is_empty() {
            return Err(Error::Aws {
                source: None,
                message: format!(
                    "no usable AWS account is assigned to you at {}",
                    s.portal.start_url
                ),
                hint: "ask your AWS administrator for an account assignment, then run keyrack set again".into(),
            });
        }
        Ok(accounts)
    }

    /// The roles of `account` for the signed-in person (invalid names left out with a notice);
    /// none usable is an error.
    pub fn roles(&self, s: &PortalSession, account: &Account) -> Result<Vec<RoleName>> {
        let listed = portal::list_roles(&s.portal.sso_region, &s.access_token, &account.id)
            .map_err(|e| e.into_error("listing your roles"))?;
        let mut roles = Vec::new();
        for r in &listed {
            match RoleName::parse(r) {
                Ok(r) => roles.push(r),
                Err(e) => self.rack.interact().notice(&Notice::SkippedPortalEntry {
                    entry: PortalEntry::Role,
                    name: None,
                    reason: e.to_string(),
                }),
            }
        }
        if roles.is_empty() {
            return Err(Error::Aws {
                source: None,
                message: format!(
                    "no usable role is assigned to you in {} ({})",
                    shown(&account.name),
                    account.id
                ),
                hint: "pick another account, or ask for a permission set".into(),
            });
        }
        Ok(roles)
    }

    /// The suggested profile name: `<org>.<account>.<role>` (the sso-session instead of the org
    /// for `@all` keys), shortened ([`suggested_profile_name`]) so that the roles of one account
    /// do not collide; when a profile of that name exists for another account or role, the
    /// first free `-2`, `-3`… instead.
    pub fn suggested_profile(
        &self,
        s: &PortalSession,
        account: &Account,
        role: &RoleName,
    ) -> ProfileName {
        let base = if self.scope.org == ORG_ALL {
            s.session.to_string()
        } else {
            self.scope.org.clone()
        };
        let name = suggested_profile_name(&base, &account.name, &account.id, role);
        let same_target = |p: &ProfileName| {
            self.cfg.get(&Section::profile(p)).is_none_or(|kv| {
                kv.get("sso_account_id").map(String::as_str) == Some(account.id.as_str())
                    && kv.get("sso_role_name").map(String::as_str) == Some(role.as_str())
            })
        };
        if same_target(&name) {
            return name;
        }
        self.unused_profile_name(&name)
    }

    /// The first of `<name>-2`, `<name>-3`… that the config file has no profile of (offered
    /// when the person keeps an existing profile as it is).
    pub fn unused_profile_name(&self, name: &ProfileName) -> ProfileName {
        let base = name.as_str().chars().take(120).collect::<String>();
        (2..)
            .filter_map(|i| ProfileName::parse(&format!("{base}-{i}")).ok())
            .find(|p| self.cfg.get(&Section::profile(p)).is_none())
            .expect("a free name exists")
    }

    /// What writing `profile` for `account`/`role` would change, and the flags that write it.
    /// Nothing is written here.
    pub fn plan(
        &self,
        s: &PortalSession,
        account: &Account,
        role: &RoleName,
        profile: &ProfileName,
    ) -> Result<ProfilePlan> {
        let region = self.flags.region.as_ref().unwrap_or(&s.portal.sso_region);
        let before = self.cfg.section_text(&Section::profile(profile));
        let mut next = AwsConfig::load(self.cfg.path())?;
        let spec = ProfileSpec {
            session: &s.session,
            start_url: &s.portal.start_url,
            sso_region: &s.portal.sso_region,
            account: &account.id,
            role,
            profile,
            region,
        };
        write_profile(&mut next, &spec)?;
        Ok(ProfilePlan {
            profile: profile.clone(),
            path: self.cfg.path().to_path_buf(),
            before,
            after: next.section_text(&Section::profile(profile)),
            flags: ProfileFlags {
                sso_start_url: Some(s.portal.start_url.to_string()),
                sso_region: Some(s.portal.sso_region.to_string()),
                account_id: Some(account.id.to_string()),
                role_name: Some(role.to_string()),
                profile_name: Some(profile.to_string()),
                region: self.given.region.clone(),
                sso_session: Some(s.session.to_string()),
                account_name: Some(account.name.clone()),
            },
        })
    }
}

/// What an aws.config `set` made, for the person to use ([`super::set::SetReport::aws`]).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ProfileReport {
    /// The profile name (the key's value).
    pub profile: String,
    /// The account id.
    pub account_id: Option<String>,
    /// The account's name, when the guided set-up showed it.
    pub account_name: Option<String>,
    /// The role (permission set).
    pub role_name: Option<String>,
    /// The sso-session (the start URL for a legacy profile).
    pub sso_session: Option<String>,
    /// The portal.
    pub sso_start_url: Option<String>,
    /// The SSO user who signed in.
    pub sso_user: Option<String>,
    /// The shell line that uses it: `export AWS_PROFILE=<profile>`.
    pub export: String,
}

impl ProfileReport {
    /// The report of an aws.config host entry (its exid and meta); `None` without a profile.
    pub(crate) fn of_entry(
        entry: &crate::host_manifest::HostEntry,
        account_name: Option<&str>,
    ) -> Option<Self> {
        use crate::vault::aws_config::meta;
        let profile = entry.exid.clone()?;
        let m = |k: &str| entry.meta.get(k);
        Some(ProfileReport {
            export: format!("export AWS_PROFILE={profile}"),
            profile,
            account_id: m(meta::ACCOUNT_ID),
            account_name: account_name.map(shown),
            role_name: m(meta::ROLE_NAME),
            sso_session: m(meta::SESSION),
            sso_start_url: m(meta::START_URL),
            sso_user: m(meta::SSO_USER),
        })
    }
}

/// The `credential_process` answer (Version 1).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProcessCredentials {
    /// Always 1.
    pub version: u32,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token.
    pub session_token: String,
    /// RFC 3339 expiry.
    pub expiration: String,
}

/// Role credentials for an unlocked profile, from the daemon: the grant labelled with the
/// profile carries them (the daemon renews them ahead of their expiry; with less than 5 minutes
/// left they are renewed here, with the SSO token the grant carries, and handed back). Never
/// opens a browser.
pub fn credentials(rack: &Rack, profile: &str) -> Result<ProcessCredentials> {
    let profile = profile_arg("--profile", profile)?;
    let client = Client::new(rack.home());
    let locked = || Error::Locked {
        what: format!("AWS profile {profile}"),
        reason:
            "no unlocked keyrack key uses it in this session (credential_process never signs in)"
                .into(),
        hint:
            "unlock it in the repository that uses it: keyrack unlock --key AWS_PROFILE --env <env>"
                .into(),
    };
    let grant = client
        .by_label(label::PROFILE, profile.as_str())?
        .into_iter()
        .next()
        .ok_or_else(locked)?;
    let payload = Payload::of(&grant).ok_or_else(locked)?;
    let now = time::now();
    let creds = match payload.fresh_role_credentials(now).cloned() {
        Some(c) => c,
        None => {
            let c = payload.fetch_role_credentials().map_err(|e| {
                if e.is_unauthorized() {
                    Error::Locked {
                        what: format!("AWS profile {profile}"),
                        reason: "its SSO session ended".into(),
                        hint: "sign in again: keyrack unlock --key AWS_PROFILE --env <env>".into(),
                    }
                } else {
                    e.into_error("renewing role credentials")
                }
            })?;
            crate::vault::aws_config::hand_back_role_credentials(&client, &grant.slug, &c, now)?;
            c
        }
    };
    let expiration = format_z(creds.expiration);
    Ok(ProcessCredentials {
        version: 1,
        access_key_id: creds.access_key_id,
        secret_access_key: creds.secret_access_key.expose().to_string(),
        session_token: creds.session_token.expose().to_string(),
        expiration,
    })
}

/// What `aws logout` did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogoutReport {
    /// The token-cache name of the session.
    pub session: String,
    /// Whether the server-side sign-out was done (false: there was no token).
    pub signed_out: bool,
    /// Grants dropped from the daemon.
    pub relocked: Vec<String>,
}

/// Signs the profile's SSO session out server-side and deletes both copies of its token.
pub fn logout(rack: &Rack, profile: &str) -> Result<LogoutReport> {
    let profile = profile_arg("--profile", profile)?;
    let config = AwsConfig::load_default()?;
    let p = config.sso_profile(&profile)?;
    let _trust = crate::aws::net::ProfileTrust::of_profile(&config, &profile);
    let recipients = rack.host()?.recipient_keys()?;
    let ctx = rack.vault_context(&recipients, crate::aws::login::LoginOptions::never_prompt())?;
    let sessions = Sessions::new(&ctx)?;
    let token = sessions.token(p.cache_name())?;
    let signed_out = match &token {
        Some(t) => match portal::logout(&p.sso_region, &t.access_token) {
            Ok(()) => true,
            Err(e) if e.is_unauthorized() => true,
            Err(e) => return Err(e.into_error("signing out")),
        },
        None => false,
    };
    sessions.forget(p.cache_name())?;
    let relocked = Client::new(rack.home()).relock(RelockScope::Label {
        name: label::SESSION.into(),
        value: p.cache_name().to_string(),
    })?;
    Ok(LogoutReport {
        session: p.cache_name().to_string(),
        signed_out,
        relocked: relocked.into_iter().map(|s| s.to_string()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> AccountId {
        AccountId::parse("123456789012").unwrap()
    }

    fn role(r: &str) -> RoleName {
        RoleName::parse(r).unwrap()
    }

    #[test]
    fn roles_are_shortened_sensibly() {
        for (role, short) in [
            ("AdministratorAccess", "admin"),
            ("AWSAdministratorAccess", "admin"),
            ("ReadOnlyAccess", "readonly"),
            ("ReadOnly", "readonly"),
            ("AWSReadOnlyAccess", "readonly"),
            ("PowerUserAccess", "poweruser"),
            ("ViewOnlyAccess", "viewonly"),
            ("Billing", "billing"),
            ("Access", "access"),
            ("AWSome", "awsome"),
            ("Data_Scientist+Ops", "data-scientist-ops"),
            (
                "AWSServiceCatalogEndUserFullAccess",
                "servicecatalogenduserful",
            ),
        ] {
            assert_eq!(short_role(role), short, "{role}");
        }
    }

    #[test]
    fn suggested_profile_names_carry_the_role_and_are_always_valid() {
        let admin =
            suggested_profile_name("acme", "Acme Test", &id(), &role("AdministratorAccess"));
        let ro = suggested_profile_name("acme", "Acme Test", &id(), &role("ReadOnlyAccess"));
        assert_eq!(admin.as_str(), "acme.acme-test.admin");
        assert_eq!(ro.as_str(), "acme.acme-test.readonly");
        assert_ne!(admin, ro, "Admin and ReadOnly do not collide");
        // nothing usable in the account name: its id
        assert_eq!(
            suggested_profile_name("acme", "生产 🚀", &id(), &role("Dev")).as_str(),
            "acme.123456789012.dev"
        );
        // long names are cut at a sensible length, never ending in '-'
        let long = suggested_profile_name(
            "-org with spaces-",
            "A very long account name - production workloads (EU)",
            &id(),
            &role("Some-Really_Long.Permission@Set=Name,With+Everything"),
        );
        assert_eq!(
            long.as_str(),
            "org-with-spaces.a-very-long-account-name-product.some-really-long-permiss"
        );
        assert!(long.len() <= 32 * 2 + 24 + 2);
        // an empty base still gives a valid name
        assert_eq!(
            suggested_profile_name("", "x", &id(), &role("y")).as_str(),
            "aws.x.y"
        );
    }

    fn cfg(text: &str) -> (tempfile::TempDir, AwsConfig) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, text).unwrap();
        let cfg = AwsConfig::load(&path).unwrap();
        (dir, cfg)
    }

    #[test]
    fn the_sso_session_can_be_chosen_for_a_new_portal_only() {
        let scope = Scope {
            org: "acme".into(),
            env: "test".into(),
        };
        let a = StartUrl::parse("https://a.awsapps.com/start").unwrap();
        let b = StartUrl::parse("https://b.awsapps.com/start").unwrap();
        let (_d, c) = cfg("[sso-session acme]\nsso_start_url = https://a.awsapps.com/start\nsso_region = us-east-1\n");
        let name = |s: &str| SessionName::parse(s).unwrap();
        // the portal's own session is kept
        assert_eq!(
            session_name_for(&c, &scope, &a, None).unwrap(),
            name("acme")
        );
        assert_eq!(
            session_name_for(&c, &scope, &a, Some(&name("acme"))).unwrap(),
            name("acme")
        );
        let e = session_name_for(&c, &scope, &a, Some(&name("other"))).unwrap_err();
        assert!(
            e.to_string().contains("already has [sso-session acme]"),
            "{e}"
        );
        assert!(e.fix().unwrap().contains("--sso-session acme"), "{e}");
        // a new portal: suggested (unique), or chosen — not another portal's name
        assert_eq!(
            session_name_for(&c, &scope, &b, None).unwrap(),
            name("acme-2")
        );
        assert_eq!(
            session_name_for(&c, &scope, &b, Some(&name("work"))).unwrap(),
            name("work")
        );
        let e = session_name_for(&c, &scope, &b, Some(&name("acme"))).unwrap_err();
        assert!(
            e.to_string()
                .contains("is the portal https://a.awsapps.com/start"),
            "{e}"
        );
    }
}
