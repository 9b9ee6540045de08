//! AWS SSO operations: preparing the profile behind `set --key AWS_PROFILE` (guided on a TTY or
//! from flags), `keyrack aws credentials` (credential_process), `keyrack aws logout`.

use serde::Serialize;

use super::{Rack, Scope};
use crate::aws::config_file::{AwsConfig, Section};
use crate::aws::names::{
    shown, AccountId, Field, NameError, ProfileName, Region, RoleName, SessionName, StartUrl,
};
use crate::aws::portal::{self, RoleCredentials};
use crate::aws::token_cache::format_z;
use crate::daemon::client::Client;
use crate::daemon::protocol::now_ms;
use crate::error::{Error, Result};
use crate::slug::ORG_ALL;
use crate::vault::aws_config::Sessions;
use crate::vault::VaultContext;

/// Flags that describe a profile to write without the wizard.
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
        })
    }

    fn any(&self) -> bool {
        self.sso_start_url.is_some()
            || self.sso_region.is_some()
            || self.account_id.is_some()
            || self.role_name.is_some()
            || self.profile_name.is_some()
    }
}

/// Parses a profile name given as `flag` (`--exid`, `--profile`).
pub fn profile_arg(flag: &'static str, name: &str) -> Result<ProfileName> {
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
pub struct Prepared {
    /// The profile name (the key's value).
    pub profile: String,
    /// The config file as it was, when keyrack changed it.
    pub restore: Option<(std::path::PathBuf, String)>,
}

impl Prepared {
    /// Puts the config file back as it was.
    pub fn undo(&self) -> Result<()> {
        if let Some((path, text)) = &self.restore {
            crate::fsio::write_atomic_through_links(path, text.as_bytes(), 0o600)?;
        }
        Ok(())
    }
}

fn session_name_for(cfg: &AwsConfig, scope: &Scope, start_url: &StartUrl) -> Result<SessionName> {
    if let Some(existing) = cfg.session_for_url(start_url)? {
        return Ok(existing);
    }
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

/// Decides (and writes, when needed) the profile for an aws.config `set`. Every flag is
/// validated before the config file is read, so a refused value changes nothing.
pub fn prepare_profile(
    ctx: &VaultContext<'_>,
    scope: &Scope,
    exid: Option<&str>,
    flags: &ProfileFlags,
    interactive: bool,
) -> Result<Prepared> {
    let checked = flags.check()?;
    let exid = exid.map(|n| profile_arg("--exid", n)).transpose()?;
    let mut cfg = AwsConfig::load_default()?;
    let original = cfg.text();
    if let Some(name) = exid {
        if flags.any() {
            return Err(Error::InvalidInput {
                what: "--exid",
                value: name.into(),
                reason: "--exid names an existing profile; the --sso-*/--account-id/--role-name flags describe a new one".into(),
                hint: Some("pass one or the other".into()),
            });
        }
        cfg.sso_profile(&name)?; // must exist and be a valid SSO profile
        return Ok(Prepared {
            profile: name.into(),
            restore: None,
        });
    }
    if let Some((url, sso_region, account, role, profile)) = checked.complete() {
        let session = session_name_for(&cfg, scope, url)?;
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
        return Ok(Prepared {
            profile: profile.to_string(),
            restore: changed.then(|| (cfg.path().to_path_buf(), original)),
        });
    }
    if !interactive {
        return Err(Error::NeedsTty {
            what: "choosing the AWS SSO profile".into(),
            hint: FLAGS_HINT.into(),
        });
    }
    wizard(ctx, scope, &mut cfg, &checked, original)
}

fn ask<T>(r: std::result::Result<T, inquire::InquireError>) -> Result<T> {
    r.map_err(|e| {
        let shown = e.to_string();
        crate::mech::prompt_error(e, "the AWS SSO set-up", || Error::NeedsTty {
            what: "the AWS SSO set-up".into(),
            hint: format!("it was interrupted ({shown}); run it again, or {FLAGS_HINT}"),
        })
    })
}

/// A prompt validator from a name parser: the user is asked again, with the reason.
fn validator<T>(
    parse: fn(&str) -> std::result::Result<T, NameError>,
) -> impl Fn(&str) -> std::result::Result<inquire::validator::Validation, inquire::CustomUserError> + Clone
{
    move |s: &str| {
        Ok(match parse(s.trim()) {
            Ok(_) => inquire::validator::Validation::Valid,
            Err(e) => inquire::validator::Validation::Invalid(e.to_string().into()),
        })
    }
}

fn wizard(
    ctx: &VaultContext<'_>,
    scope: &Scope,
    cfg: &mut AwsConfig,
    flags: &CheckedFlags,
    original: String,
) -> Result<Prepared> {
    let known = cfg.sso_sessions();
    let (url, sso_region) = match (&flags.start_url, &flags.sso_region) {
        (Some(u), Some(r)) => (u.clone(), r.clone()),
        _ => {
            const NEW: &str = "another start URL…";
            let label = |(n, u, r): &(String, String, String)| {
                format!("{}  ({}, {})", shown(u), shown(n), shown(r))
            };
            let mut choices: Vec<String> = known.iter().map(label).collect();
            choices.push(NEW.into());
            let pick = if known.is_empty() {
                NEW.to_string()
            } else {
                ask(inquire::Select::new("AWS access portal:", choices).prompt())?
            };
            match known.iter().find(|k| pick == label(k)) {
                // values from the file are validated (a refusal names file:line)
                Some((n, _, _)) => cfg.session_settings(n)?,
                None => {
                    let url = ask(inquire::Text::new("start URL:")
                        .with_placeholder("https://d-1234567890.awsapps.com/start")
                        .with_validator(validator(StartUrl::parse))
                        .prompt())?;
                    let region = ask(inquire::Text::new("SSO region:")
                        .with_default("us-east-1")
                        .with_validator(validator(Region::parse_sso))
                        .prompt())?;
                    (
                        StartUrl::parse(url.trim()).map_err(NameError::for_prompt)?,
                        Region::parse_sso(region.trim()).map_err(NameError::for_prompt)?,
                    )
                }
            }
        }
    };
    let session = session_name_for(cfg, scope, &url)?;
    let sessions = Sessions::new(ctx)?;
    let region_for_check = sso_region.clone();
    let live = sessions.live(&session, &url, &sso_region, None, &move |t| {
        portal::list_accounts(&region_for_check, &t.access_token).map(|_| None)
    })?;
    let listed = portal::list_accounts(&sso_region, &live.token.access_token)
        .map_err(|e| e.into_error("listing your AWS accounts"))?;
    // Portal answers are input too: an entry with an invalid id is skipped, names are shown
    // with control characters escaped.
    let mut accounts = Vec::new();
    for a in listed {
        match AccountId::parse(&a.account_id) {
            Ok(id) => accounts.push((id, a)),
            Err(e) => eprintln!(
                "keyrack: skipped an account the portal listed ({}): {e}",
                shown(&a.account_name)
            ),
        }
    }
    if accounts.is_empty() {
        return Err(Error::Aws {
            message: format!("no usable AWS account is assigned to you at {url}"),
            hint:
                "ask your AWS administrator for an account assignment, then run keyrack set again"
                    .into(),
        });
    }
    let labels: Vec<String> = accounts
        .iter()
        .map(|(id, a)| {
            format!(
                "{} ({id}) {}",
                shown(&a.account_name),
                shown(&a.email_address)
            )
        })
        .collect();
    let chosen = ask(inquire::Select::new("account:", labels.clone())
        .with_page_size(12)
        .prompt())?;
    let (account_id, account) = &accounts[labels
        .iter()
        .position(|l| *l == chosen)
        .expect("chosen from list")];
    let listed_roles = portal::list_roles(&sso_region, &live.token.access_token, account_id)
        .map_err(|e| e.into_error("listing your roles"))?;
    let mut roles: Vec<RoleName> = Vec::new();
    for r in &listed_roles {
        match RoleName::parse(r) {
            Ok(r) => roles.push(r),
            Err(e) => eprintln!("keyrack: skipped a role the portal listed: {e}"),
        }
    }
    let role = match roles.as_slice() {
        [] => {
            return Err(Error::Aws {
                message: format!(
                    "no usable role is assigned to you in {} ({account_id})",
                    shown(&account.account_name)
                ),
                hint: "pick another account, or ask for a permission set".into(),
            })
        }
        [one] => one.clone(),
        _ => {
            let names: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
            let pick = ask(inquire::Select::new("role:", names.clone()).prompt())?;
            roles[names
                .iter()
                .position(|n| *n == pick)
                .expect("chosen from list")]
            .clone()
        }
    };
    let slugify = |s: &str| {
        s.to_lowercase()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect::<String>()
    };
    let suggested = format!(
        "{}.{}",
        if scope.org == ORG_ALL {
            session.to_string()
        } else {
            scope.org.clone()
        },
        slugify(&account.account_name)
    );
    let profile = ask(inquire::Text::new("profile name:")
        .with_default(&suggested)
        .with_validator(validator(ProfileName::parse))
        .prompt())?;
    let profile = ProfileName::parse(profile.trim()).map_err(NameError::for_prompt)?;
    let region = flags.region.as_ref().unwrap_or(&sso_region);
    let before = cfg.section_text(&Section::profile(&profile));
    let mut next = AwsConfig::load(cfg.path())?;
    let spec = ProfileSpec {
        session: &session,
        start_url: &url,
        sso_region: &sso_region,
        account: account_id,
        role: &role,
        profile: &profile,
        region,
    };
    write_profile(&mut next, &spec)?;
    let after = next.section_text(&Section::profile(&profile));
    if let Some(before) = &before {
        if Some(before) != after.as_ref() {
            eprintln!(
                "profile {profile} exists in {} and would change:",
                cfg.path().display()
            );
            for l in before.lines() {
                eprintln!("  - {}", shown(l));
            }
            for l in after.as_deref().unwrap_or("").lines() {
                eprintln!("  + {}", shown(l));
            }
            if !ask(inquire::Confirm::new("change it?")
                .with_default(false)
                .prompt())?
            {
                return Err(Error::Aws {
                    message: format!("profile {profile} was left as it is"),
                    hint: format!("choose another profile name, or reuse it unchanged: keyrack set --key AWS_PROFILE --exid {profile}"),
                });
            }
        }
    }
    let changed = next.text() != original;
    if changed {
        next.save()?;
    }
    Ok(Prepared {
        profile: profile.to_string(),
        restore: changed.then(|| (next.path().to_path_buf(), original)),
    })
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

/// Role credentials for an unlocked profile, from the daemon (renewed 5 minutes before they
/// expire, with the SSO token the daemon holds). Never opens a browser.
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
    let grant = client.aws_profile(&profile)?.ok_or_else(locked)?;
    let aws = grant.aws.clone().ok_or_else(locked)?;
    let fresh = |c: &RoleCredentials| c.expiration > now_ms() + 5 * 60 * 1000;
    let creds = match aws.role_credentials.filter(fresh) {
        Some(c) => c,
        None => {
            let c = portal::role_credentials(
                &aws.sso_region,
                &aws.access_token,
                &aws.account_id,
                &aws.role_name,
            )
            .map_err(|e| {
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
            client.aws_store_credentials(&grant.slug, c.clone())?;
            c
        }
    };
    let expiration = jiff::Timestamp::from_millisecond(creds.expiration as i64)
        .map(format_z)
        .unwrap_or_default();
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
    let relocked = Client::new(rack.home()).aws_forget_session(p.cache_name())?;
    Ok(LogoutReport {
        session: p.cache_name().to_string(),
        signed_out,
        relocked: relocked.into_iter().map(|s| s.to_string()).collect(),
    })
}
