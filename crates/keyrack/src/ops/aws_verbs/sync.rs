//! `keyrack aws sync --sso-session S`: a profile for every account × role the signed-in user can
//! reach, as granted `sso populate` and aws-sso-util `configure populate` write them.
//!
//! - **Names** come from a template (default `{account_name}.{role_name}`; placeholders
//!   `{account_name}`, `{account_id}`, `{role_name}`, `{sso_session}`), normalised to the
//!   profile-name set of [`crate::aws::names`]: every other character becomes `-` (a run of them
//!   one `-`), no leading `-`, at most 128 characters. Names that still collide are told apart
//!   deterministically (entries sorted by account id and role): `-<account id>` when the accounts
//!   differ, then `-<role>`, then `-2`, `-3`…; each collision is reported.
//! - **Marked as generated**: each profile keyrack writes carries `keyrack_generated = S` (AWS
//!   tools ignore settings they do not know). Only profiles with that marker for that session are
//!   ever changed or removed; a profile of the same name without it is reported and left alone.
//! - **A diff first**: [`plan`] computes what would be added, changed and removed (nothing is
//!   written); [`SyncPlan::apply`] writes it with the line editor (every foreign byte kept) and
//!   an atomic write, refusing if the file changed in between.
//! - **`--prune`** removes the generated profiles of S that this sync no longer produces (their
//!   account or role is gone, or they are now named otherwise); without it they are reported.
//! - A generated profile that exists keeps its `region` and any setting the user added: only
//!   `sso_session`, `sso_account_id` and `sso_role_name` are kept in line with the portal.
//!
//! The listing uses the live SSO session of S (refreshed, or signed in through the usual sign-in
//! when needed; `--no-prompt` respected) and every value the portal answers is validated: an
//! account or role with an invalid id or name is skipped and reported, never written.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::aws::config_file::{AwsConfig, Section};
use crate::aws::login::LoginOptions;
use crate::aws::names::{shown, AccountId, Field, NameError, ProfileName, Region, RoleName};
use crate::aws::names::{SessionName, StartUrl};
use crate::aws::portal;
use crate::error::{Error, Result};
use crate::ops::Rack;
use crate::vault::aws_config::Sessions;

/// The setting that marks a profile as written by `keyrack aws sync` for a session.
pub(crate) const MARKER: &str = "keyrack_generated";

/// The default profile-name template.
pub const DEFAULT_TEMPLATE: &str = "{account_name}.{role_name}";

/// The template placeholders.
pub(crate) const PLACEHOLDERS: [&str; 4] =
    ["account_name", "account_id", "role_name", "sso_session"];

/// What `aws sync` was asked for.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// The sso-session (`[sso-session S]` in the config file).
    pub session: String,
    /// The profile-name template (default [`DEFAULT_TEMPLATE`]).
    pub template: Option<String>,
    /// The region of new profiles (default: the SSO region).
    pub region: Option<String>,
    /// Remove generated profiles this sync no longer produces.
    pub prune: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    AccountName,
    AccountId,
    RoleName,
    SsoSession,
}

/// A parsed profile-name template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template(Vec<Part>);

impl Template {
    /// Parses `{placeholder}` and literal text; an unknown placeholder or an unmatched brace is
    /// refused as bad usage of `--template`.
    pub(crate) fn parse(text: &str) -> Result<Template> {
        let refuse = |reason: String| Error::InvalidInput {
            what: "--template",
            value: shown(text),
            reason,
            hint: Some(format!(
                "use the placeholders {} and literal text, e.g. --template '{DEFAULT_TEMPLATE}'",
                PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(" ")
            )),
        };
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                Some(i) if rest[i..].starts_with('}') => {
                    return Err(refuse("it has a '}' without its '{'".into()))
                }
                Some(i) => {
                    if i > 0 {
                        parts.push(Part::Text(rest[..i].to_string()));
                    }
                    let after = &rest[i + 1..];
                    let end = after
                        .find('}')
                        .ok_or_else(|| refuse("it has a '{' without its '}'".into()))?;
                    parts.push(match &after[..end] {
                        "account_name" => Part::AccountName,
                        "account_id" => Part::AccountId,
                        "role_name" => Part::RoleName,
                        "sso_session" => Part::SsoSession,
                        other => {
                            return Err(refuse(format!(
                                "{{{}}} is not a placeholder",
                                shown(other)
                            )))
                        }
                    });
                    rest = &after[end + 1..];
                }
                None => {
                    parts.push(Part::Text(rest.to_string()));
                    rest = "";
                }
            }
        }
        if parts.is_empty() {
            return Err(refuse("it is empty".into()));
        }
        Ok(Template(parts))
    }

    /// The template filled in (not yet normalised).
    fn render(&self, t: &Target, session: &str) -> String {
        self.0
            .iter()
            .map(|p| match p {
                Part::Text(s) => s.as_str(),
                Part::AccountName => t.account_name.as_str(),
                Part::AccountId => t.account_id.as_str(),
                Part::RoleName => t.role_name.as_str(),
                Part::SsoSession => session,
            })
            .collect()
    }
}

const MAX_NAME: usize = 128;

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-/.%@:+".contains(c)
}

/// `raw` in the profile-name set: every other character becomes `-` (a run of them one `-`), no
/// leading `-`, at most 128 characters. May be empty.
pub(crate) fn normalise(raw: &str) -> String {
    let mut out = String::new();
    let mut replaced = false;
    for c in raw.chars() {
        if allowed(c) {
            out.push(c);
            replaced = false;
        } else if !replaced {
            out.push('-');
            replaced = true;
        }
    }
    let out = out.trim_start_matches('-');
    out.chars().take(MAX_NAME).collect()
}

/// `base` with `suffix` appended, `base` shortened so the whole stays within 128 characters.
fn with_suffix(base: &str, suffix: &str) -> String {
    let keep = MAX_NAME.saturating_sub(suffix.len());
    format!("{}{suffix}", &base[..base.len().min(keep)])
}

/// One account × role the portal lists (validated id and role).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// The account id.
    pub account_id: AccountId,
    /// The account's name, as the portal gives it.
    pub account_name: String,
    /// The role.
    pub role_name: RoleName,
}

/// Names that collided and how they were told apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Collision {
    /// The name the template gave them all.
    pub name: String,
    /// The names they got instead.
    pub profiles: Vec<String>,
}

/// A name for every target (in the order given), and the collisions resolved on the way.
pub(crate) fn assign_names(
    targets: &[Target],
    template: &Template,
    session: &str,
) -> (Vec<String>, Vec<Collision>) {
    let base: Vec<String> = targets
        .iter()
        .map(|t| {
            let n = normalise(&template.render(t, session));
            if n.is_empty() {
                normalise(&format!("{}.{}", t.account_id, t.role_name))
            } else {
                n
            }
        })
        .collect();
    // Deterministic: the same entries get the same names whatever order the portal lists them.
    let mut order: Vec<usize> = (0..targets.len()).collect();
    order.sort_by(|&a, &b| {
        (&targets[a].account_id, &targets[a].role_name)
            .cmp(&(&targets[b].account_id, &targets[b].role_name))
    });
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for &i in &order {
        groups.entry(base[i].as_str()).or_default().push(i);
    }
    let mut names = base.clone();
    for members in groups.values().filter(|m| m.len() > 1) {
        let accounts: BTreeSet<&AccountId> =
            members.iter().map(|&i| &targets[i].account_id).collect();
        for &i in members {
            let t = &targets[i];
            let mut suffix = String::new();
            if accounts.len() > 1 {
                suffix.push_str(&format!("-{}", t.account_id));
            }
            let same_account = members
                .iter()
                .filter(|&&j| targets[j].account_id == t.account_id)
                .count();
            if same_account > 1 {
                suffix.push_str(&format!("-{}", normalise(&t.role_name)));
            }
            names[i] = with_suffix(&base[i], &suffix);
        }
    }
    // Anything still equal (a suffixed name meeting another's, truncation): -2, -3… in order.
    let mut used = BTreeSet::new();
    for &i in &order {
        if !used.insert(names[i].clone()) {
            let mut n = 2;
            loop {
                let candidate = with_suffix(&names[i], &format!("-{n}"));
                if used.insert(candidate.clone()) {
                    names[i] = candidate;
                    break;
                }
                n += 1;
            }
        }
    }
    let mut collisions = Vec::new();
    for (name, members) in &groups {
        let changed: Vec<String> = members
            .iter()
            .filter(|&&i| names[i] != base[i])
            .map(|&i| names[i].clone())
            .collect();
        if !changed.is_empty() {
            let mut profiles: Vec<String> = members.iter().map(|&i| names[i].clone()).collect();
            profiles.sort();
            collisions.push(Collision {
                name: name.to_string(),
                profiles,
            });
        }
    }
    (names, collisions)
}

/// What happens to one profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ChangeKind {
    /// A new profile.
    Added,
    /// A generated profile whose account, role or session is set anew.
    Changed,
    /// A generated profile removed (`--prune`).
    Removed,
    /// A generated profile this sync no longer produces, kept (no `--prune`).
    Stale,
}

/// One profile's change, with its diff.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// What happens.
    pub kind: ChangeKind,
    /// The profile.
    pub profile: String,
    /// The account id (the portal's for added/changed; the profile's for removed/stale).
    pub account_id: Option<String>,
    /// The account's name, when the portal lists it (control characters escaped).
    pub account_name: Option<String>,
    /// The role.
    pub role_name: Option<String>,
    /// Why a generated profile is removed or stale.
    pub reason: Option<String>,
    /// The lines of the section that go (`- …`) and come (`+ …`), control characters escaped.
    pub diff: Vec<String>,
}

/// A profile of the name the template gives that keyrack did not generate for this session:
/// left as it is.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Conflict {
    /// The profile.
    pub profile: String,
    /// The account id the name was for.
    pub account_id: String,
    /// The role the name was for.
    pub role_name: String,
    /// Why it was not written.
    pub reason: String,
}

/// Something the portal listed that keyrack refuses to write.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    /// What it was (escaped for display).
    pub what: String,
    /// Why.
    pub reason: String,
}

/// What a sync would do; [`SyncPlan::apply`] does it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncPlan {
    /// The sso-session.
    pub sso_session: String,
    /// Its start URL.
    pub start_url: String,
    /// The config file.
    pub config_file: String,
    /// Whether a browser (or device-code) sign-in happened to list the accounts.
    pub signed_in: bool,
    /// Accounts listed (valid ones).
    pub accounts: usize,
    /// Account × role pairs listed (valid ones).
    pub roles: usize,
    /// Profiles added, changed, removed, and stale ones kept, by name.
    pub changes: Vec<Change>,
    /// Generated profiles already as they should be.
    pub unchanged: Vec<String>,
    /// Names taken by profiles keyrack did not generate for this session.
    pub conflicts: Vec<Conflict>,
    /// Names that collided and what they became.
    pub collisions: Vec<Collision>,
    /// Portal entries refused.
    pub skipped: Vec<Skipped>,
    /// Whether the file was written ([`SyncPlan::apply`]).
    pub applied: bool,
    #[serde(skip)]
    path: std::path::PathBuf,
    #[serde(skip)]
    original: String,
    #[serde(skip)]
    ops: Vec<Op>,
}

#[derive(Debug, Clone)]
enum Op {
    Write {
        profile: ProfileName,
        values: Vec<(&'static str, String)>,
    },
    Remove(ProfileName),
}

impl Op {
    fn run(&self, cfg: &mut AwsConfig) -> Result<()> {
        match self {
            Op::Write { profile, values } => {
                let pairs: Vec<(&str, &str)> =
                    values.iter().map(|(k, v)| (*k, v.as_str())).collect();
                cfg.set_section(&Section::profile(profile), &pairs)?;
            }
            Op::Remove(profile) => {
                cfg.remove_section(&Section::profile(profile));
            }
        }
        Ok(())
    }
}

impl SyncPlan {
    /// Whether the file would change.
    pub fn has_changes(&self) -> bool {
        !self.ops.is_empty()
    }

    /// Writes the changes: the file is read again and must be as it was when planned (else
    /// nothing is written); then the line editor changes only the planned sections and the
    /// file is replaced atomically, keeping its mode.
    pub fn apply(&mut self) -> Result<()> {
        if self.ops.is_empty() {
            return Ok(());
        }
        let mut cfg = AwsConfig::load(&self.path)?;
        if cfg.text() != self.original {
            return Err(Error::Aws {
                source: None,
                message: format!(
                    "{} changed while keyrack aws sync was waiting; nothing was written",
                    self.path.display()
                ),
                hint: format!(
                    "run it again: keyrack aws sync --sso-session {}",
                    self.sso_session
                ),
            });
        }
        for op in &self.ops {
            op.run(&mut cfg)?;
        }
        cfg.save()?;
        self.applied = true;
        Ok(())
    }
}

/// The diff of one section: lines that go, then lines that come.
fn section_diff(before: Option<&str>, after: Option<&str>) -> Vec<String> {
    let b: Vec<&str> = before.map(|t| t.lines().collect()).unwrap_or_default();
    let a: Vec<&str> = after.map(|t| t.lines().collect()).unwrap_or_default();
    let mut out: Vec<String> = b
        .iter()
        .filter(|l| !a.contains(l))
        .map(|l| format!("- {}", shown(l)))
        .collect();
    out.extend(
        a.iter()
            .filter(|l| !b.contains(l))
            .map(|l| format!("+ {}", shown(l))),
    );
    out
}

/// A generated profile of the session, as found in the file.
struct Generated {
    name: ProfileName,
    account_id: Option<String>,
    role_name: Option<String>,
    session: Option<String>,
}

/// Lists what the signed-in user can reach through `opts.session` and plans the config file's
/// changes (nothing is written).
pub fn plan(rack: &Rack, opts: &SyncOptions, login: LoginOptions) -> Result<SyncPlan> {
    let session = SessionName::parse(&opts.session).map_err(|e| Error::InvalidInput {
        what: "--sso-session",
        value: e.shown,
        reason: e.reason,
        hint: Some(format!(
            "pass the name of an [sso-session] of your AWS config: {}",
            Field::SessionName.expected()
        )),
    })?;
    let template = Template::parse(opts.template.as_deref().unwrap_or(DEFAULT_TEMPLATE))?;
    let region_flag = opts
        .region
        .as_deref()
        .map(Region::parse)
        .transpose()
        .map_err(NameError::for_flag)?;
    let cfg = AwsConfig::load_default()?;
    let (start_url, sso_region) = cfg.session_settings(&session)?;
    let region = region_flag.unwrap_or_else(|| sso_region.clone());
    let (signed_in, listed) = list(rack, &session, &start_url, &sso_region, login)?;

    let mut skipped = listed.skipped;
    let targets = listed.targets;
    let (names, collisions) = assign_names(&targets, &template, &session);

    // What the file holds now: generated profiles of this session, and every other name.
    let mut ours: BTreeMap<String, Generated> = BTreeMap::new();
    let mut others: BTreeMap<String, String> = BTreeMap::new();
    for name in cfg.profile_names() {
        let kv = cfg.get(&Section::profile(&name)).unwrap_or_default();
        match (kv.get(MARKER), ProfileName::parse(&name)) {
            (Some(s), Ok(pn)) if *s == *session => {
                ours.insert(
                    name,
                    Generated {
                        name: pn,
                        account_id: kv.get("sso_account_id").cloned(),
                        role_name: kv.get("sso_role_name").cloned(),
                        session: kv.get("sso_session").cloned(),
                    },
                );
            }
            (Some(s), _) => {
                others.insert(
                    name,
                    format!(
                        "it was generated for the sso-session {} (keyrack_generated = {})",
                        shown(s),
                        shown(s)
                    ),
                );
            }
            (None, _) => {
                others.insert(
                    name,
                    "it was not written by keyrack aws sync (it has no keyrack_generated setting)"
                        .into(),
                );
            }
        }
    }

    let mut scratch = AwsConfig::from_bytes(cfg.path(), cfg.text().into_bytes())?;
    let mut changes = Vec::new();
    let mut unchanged = Vec::new();
    let mut conflicts = Vec::new();
    let mut ops = Vec::new();
    let mut produced: BTreeMap<String, &Target> = BTreeMap::new();
    let mut order: Vec<usize> = (0..targets.len()).collect();
    order.sort_by(|&a, &b| names[a].cmp(&names[b]));
    for i in order {
        let (t, name) = (&targets[i], &names[i]);
        let profile = match ProfileName::parse(name) {
            Ok(p) => p,
            Err(e) => {
                skipped.push(Skipped {
                    what: format!(
                        "{} ({}) / {}",
                        shown(&t.account_name),
                        t.account_id,
                        t.role_name
                    ),
                    reason: format!("its profile name is refused: {e}"),
                });
                continue;
            }
        };
        produced.insert(name.clone(), t);
        if let Some(reason) = others.get(name) {
            conflicts.push(Conflict {
                profile: name.clone(),
                account_id: t.account_id.to_string(),
                role_name: t.role_name.to_string(),
                reason: reason.clone(),
            });
            continue;
        }
        let keep = [
            ("sso_session", session.to_string()),
            ("sso_account_id", t.account_id.to_string()),
            ("sso_role_name", t.role_name.to_string()),
        ];
        let (kind, values) = match ours.get(name) {
            Some(g)
                if g.session.as_deref() == Some(session.as_str())
                    && g.account_id.as_deref() == Some(t.account_id.as_str())
                    && g.role_name.as_deref() == Some(t.role_name.as_str()) =>
            {
                unchanged.push(name.clone());
                continue;
            }
            Some(_) => (ChangeKind::Changed, keep.to_vec()),
            None => {
                let mut v = keep.to_vec();
                v.push(("region", region.to_string()));
                v.push((MARKER, session.to_string()));
                (ChangeKind::Added, v)
            }
        };
        let op = Op::Write { profile, values };
        let section = Section::profile(name);
        let before = scratch.section_text(&section);
        op.run(&mut scratch)?;
        let after = scratch.section_text(&section);
        changes.push(Change {
            kind,
            profile: name.clone(),
            account_id: Some(t.account_id.to_string()),
            account_name: Some(shown(&t.account_name)),
            role_name: Some(t.role_name.to_string()),
            reason: None,
            diff: section_diff(before.as_deref(), after.as_deref()),
        });
        ops.push(op);
    }

    // Generated profiles this sync does not produce.
    let listed_accounts: BTreeSet<&str> = targets.iter().map(|t| t.account_id.as_str()).collect();
    for (name, g) in &ours {
        if produced.contains_key(name) {
            continue;
        }
        let (acct, role) = (g.account_id.as_deref(), g.role_name.as_deref());
        let now_named = produced
            .iter()
            .find(|(_, t)| {
                Some(t.account_id.as_str()) == acct && Some(t.role_name.as_str()) == role
            })
            .map(|(n, _)| n.clone());
        let reason = match (now_named, acct) {
            (Some(n), _) => format!("its account and role are now the profile {n}"),
            (None, Some(a)) if listed_accounts.contains(a) => format!(
                "the role {} is no longer assigned to you in account {}",
                shown(role.unwrap_or("?")),
                shown(a)
            ),
            (None, Some(a)) => format!("the account {} is no longer listed for you", shown(a)),
            (None, None) => "it names no account".into(),
        };
        let section = Section::profile(name);
        let before = scratch.section_text(&section);
        let kind = if opts.prune {
            let op = Op::Remove(g.name.clone());
            op.run(&mut scratch)?;
            ops.push(op);
            ChangeKind::Removed
        } else {
            ChangeKind::Stale
        };
        changes.push(Change {
            kind,
            profile: name.clone(),
            account_id: acct.map(shown),
            account_name: None,
            role_name: role.map(shown),
            reason: Some(reason),
            diff: if kind == ChangeKind::Removed {
                section_diff(before.as_deref(), None)
            } else {
                vec![]
            },
        });
    }
    changes.sort_by(|a, b| a.profile.cmp(&b.profile));

    Ok(SyncPlan {
        sso_session: session.to_string(),
        start_url: start_url.to_string(),
        config_file: cfg.path().display().to_string(),
        signed_in,
        accounts: listed_accounts.len(),
        roles: targets.len(),
        changes,
        unchanged,
        conflicts,
        collisions,
        skipped,
        applied: false,
        path: cfg.path().to_path_buf(),
        original: cfg.text(),
        ops,
    })
}

struct Listed {
    targets: Vec<Target>,
    skipped: Vec<Skipped>,
}

/// Every valid account × role of the session (signing in when needed).
fn list(
    rack: &Rack,
    session: &SessionName,
    start_url: &StartUrl,
    sso_region: &Region,
    login: LoginOptions,
) -> Result<(bool, Listed)> {
    let recipients = rack.host()?.recipient_keys()?;
    let ctx = rack.vault_context(&recipients, login)?;
    let sessions = Sessions::new(&ctx)?;
    // The check that proves the session is the account listing itself: kept, not done twice.
    let accounts = RefCell::new(None);
    let live = sessions.live(session, start_url, sso_region, None, &|t| {
        let a = portal::list_accounts(sso_region, &t.access_token)?;
        *accounts.borrow_mut() = Some(a);
        Ok(None)
    })?;
    let accounts = match accounts.into_inner() {
        Some(a) => a,
        None => portal::list_accounts(sso_region, &live.token.access_token)
            .map_err(|e| e.into_error("listing your AWS accounts"))?,
    };
    let mut targets = Vec::new();
    let mut skipped = Vec::new();
    for a in accounts {
        let id = match AccountId::parse(&a.account_id) {
            Ok(id) => id,
            Err(e) => {
                skipped.push(Skipped {
                    what: format!("account {}", shown(&a.account_name)),
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let roles = portal::list_roles(sso_region, &live.token.access_token, &id)
            .map_err(|e| e.into_error(&format!("listing your roles in account {id}")))?;
        for r in roles {
            match RoleName::parse(&r) {
                Ok(role_name) => targets.push(Target {
                    account_id: id.clone(),
                    account_name: a.account_name.clone(),
                    role_name,
                }),
                Err(e) => skipped.push(Skipped {
                    what: format!("a role in {} ({id})", shown(&a.account_name)),
                    reason: e.to_string(),
                }),
            }
        }
    }
    Ok((live.signed_in, Listed { targets, skipped }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(id: &str, name: &str, role: &str) -> Target {
        Target {
            account_id: AccountId::parse(id).unwrap(),
            account_name: name.into(),
            role_name: RoleName::parse(role).unwrap(),
        }
    }

    #[test]
    fn templates_parse_and_refuse() {
        assert!(Template::parse(DEFAULT_TEMPLATE).is_ok());
        assert!(Template::parse("acme.{account_id}-{role_name}@{sso_session}").is_ok());
        for bad in [
            "",
            "{account}",
            "{role_name",
            "role_name}",
            "{{account_id}}",
        ] {
            let e = Template::parse(bad).unwrap_err();
            assert_eq!(e.exit_code(), 1, "{bad}: {e}");
            assert!(e.fix().unwrap().contains("{account_name}"), "{bad}: {e}");
        }
    }

    #[test]
    fn names_are_normalised_to_the_profile_name_set() {
        assert_eq!(
            normalise("Acme Test.AdministratorAccess"),
            "Acme-Test.AdministratorAccess"
        );
        assert_eq!(normalise("  Acme   Test "), "Acme-Test-");
        assert_eq!(normalise("--x"), "x");
        assert_eq!(normalise("Évian\n[profile x]"), "vian-profile-x-");
        assert_eq!(normalise("a=b,c"), "a-b-c");
        assert_eq!(normalise("\u{202e}"), "");
        assert_eq!(normalise(&"x".repeat(300)).len(), 128);
        for raw in ["Acme Test", "x\ny", "-", "a]b", "日本", "a b c d e f g"] {
            let n = normalise(raw);
            assert!(
                n.is_empty() || ProfileName::parse(&n).is_ok(),
                "{raw:?} → {n:?}"
            );
        }
    }

    #[test]
    fn collisions_are_resolved_deterministically_and_reported() {
        let tpl = Template::parse(DEFAULT_TEMPLATE).unwrap();
        let targets = vec![
            t("222222222222", "Acme-Test", "Admin"),
            t("111111111111", "Acme Test", "Admin"),
            t("111111111111", "Sandbox", "ReadOnly"),
        ];
        let (names, collisions) = assign_names(&targets, &tpl, "acme");
        assert_eq!(
            names,
            [
                "Acme-Test.Admin-222222222222",
                "Acme-Test.Admin-111111111111",
                "Sandbox.ReadOnly"
            ]
        );
        assert_eq!(collisions.len(), 1);
        assert_eq!(collisions[0].name, "Acme-Test.Admin");
        // the portal's order does not matter
        let mut reversed = targets.clone();
        reversed.reverse();
        let (again, _) = assign_names(&reversed, &tpl, "acme");
        let mut a = names.clone();
        let mut b = again.clone();
        a.sort();
        b.sort();
        assert_eq!(a, b);

        // a template without the role: the roles of one account are told apart by role
        let tpl = Template::parse("{account_name}").unwrap();
        let (names, collisions) = assign_names(
            &[
                t("111111111111", "Dev", "Admin"),
                t("111111111111", "Dev", "ReadOnly"),
            ],
            &tpl,
            "acme",
        );
        assert_eq!(names, ["Dev-Admin", "Dev-ReadOnly"]);
        assert_eq!(collisions[0].profiles, ["Dev-Admin", "Dev-ReadOnly"]);

        // a literal template: every name distinct all the same
        let tpl = Template::parse("same").unwrap();
        let targets = vec![
            t("111111111111", "A", "R"),
            t("222222222222", "B", "R"),
            t("222222222222", "B", "S"),
        ];
        let (names, _) = assign_names(&targets, &tpl, "acme");
        let distinct: BTreeSet<&String> = names.iter().collect();
        assert_eq!(distinct.len(), 3, "{names:?}");
        for n in &names {
            assert!(ProfileName::parse(n).is_ok(), "{n}");
        }

        // an account name with nothing usable: the id and role stand in
        let tpl = Template::parse("{account_name}").unwrap();
        let (names, _) = assign_names(&[t("111111111111", "日本", "R")], &tpl, "acme");
        assert_eq!(names, ["111111111111.R"]);
    }

    #[test]
    fn long_names_stay_within_128_characters_with_their_suffix() {
        let tpl = Template::parse("{account_name}").unwrap();
        let long = "x".repeat(200);
        let (names, _) = assign_names(
            &[t("111111111111", &long, "R"), t("222222222222", &long, "R")],
            &tpl,
            "acme",
        );
        for n in &names {
            assert!(n.len() <= 128 && ProfileName::parse(n).is_ok(), "{n}");
        }
        assert_ne!(names[0], names[1]);
        assert!(names[0].ends_with("-111111111111"), "{}", names[0]);
    }
}
