//! `keyrack set`: store or point a key, prove the round trip, record it.

use std::path::PathBuf;

use serde::Serialize;

use super::scope::{declarations, Infer, Scope};
use super::Rack;
use crate::daemon::{client::Client, protocol::RelockScope};
use crate::error::{Error, Result};
use crate::fsio;
use crate::grant::{Custody, Mech, VaultKind};
use crate::host_manifest::{self, HostEntry, HostManifest};
use crate::mech::{self, SecretSource};
use crate::repo_manifest::{edit, RepoManifest};
use crate::secret::Secret;
use crate::slug::Slug;
use crate::vault::{self, VaultContext};

/// Options of `set`.
#[derive(Debug, Clone)]
pub struct SetOptions {
    /// The key name.
    pub key: String,
    /// The env (inferred from the repo manifest when absent).
    pub env: Option<String>,
    /// The vault (default os.secure).
    pub vault: Option<VaultKind>,
    /// The mech (default: the vault's).
    pub mech: Option<Mech>,
    /// `@all` for a machine-wide key.
    pub org: Option<String>,
    /// External id for referencing vaults.
    pub exid: Option<String>,
    /// The 1Password vault a 1password `replica` item is created in.
    pub op_vault: Option<String>,
    /// Longest grant lifetime.
    pub max_duration: Option<std::time::Duration>,
    /// Where the secret comes from.
    pub source: SecretSource,
    /// How aws.config may sign in.
    pub login: crate::aws::login::LoginOptions,
    /// A new AWS SSO profile described by flags.
    pub aws: super::aws::ProfileFlags,
    /// Store a value the firewall blocks (it stays blocked on every read path without the flag).
    pub allow_dangerous: bool,
    /// GitHub App credentials (`--mech github.app`; flags given without `--mech` imply it).
    pub github: crate::github::app::AppFlags,
    /// aws.params: `--kms-key-id`, `--via`.
    pub params: crate::vault::aws_params::ParamsFlags,
}

/// What `set` did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SetReport {
    /// The slug set.
    pub slug: Slug,
    /// The vault.
    pub vault: VaultKind,
    /// The mech.
    pub mech: Mech,
    /// Whether an earlier value was replaced.
    pub replaced: bool,
    /// The repo manifest that gained the key, if it was added now.
    pub manifest_updated: Option<PathBuf>,
    /// Always true on success: store → unlock → get → relock was proven.
    pub round_trip: bool,
    /// Whether a stale grant of this key was dropped from the daemon.
    pub relocked_stale_grant: bool,
    /// The firewall's reason, when a value it blocks was stored with `--allow-dangerous`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
    /// The maxDuration the key now has (kept from the previous set unless given; `1h30m` in
    /// JSON).
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "crate::grant::time::duration_text"
    )]
    pub max_duration: Option<std::time::Duration>,
    /// What an aws.config `set` made: the profile, its account, role and sso-session, and the
    /// line that uses it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws: Option<super::aws::ProfileReport>,
}

/// Where `set`'s flags point the vault.
fn set_target(opts: &SetOptions) -> vault::SetTarget {
    vault::SetTarget {
        exid: opts.exid.clone(),
        location: opts.op_vault.clone(),
        region: opts.aws.region.clone(),
        encryption_key: opts.params.kms_key_id.clone(),
        via: opts.params.via.clone(),
    }
}

/// The vault chosen when `set` is not told.
pub fn default_vault(key: &str) -> VaultKind {
    vault::default_for(key)
}

/// What `set` settled before it asks for anything or stores anything ([`plan`]).
#[derive(Debug, Clone)]
pub struct SetPlan {
    /// The org and env the key resolves to.
    pub scope: Scope,
    /// The slug to set.
    pub slug: Slug,
    /// The vault.
    pub vault: VaultKind,
    /// The mech.
    pub mech: Mech,
    /// An aws.config key whose profile is neither `--exid` nor fully described by flags: the
    /// caller may guide the person to one ([`super::aws::ProfileSetup`]) and pass the result as
    /// [`SetOptions::aws`]; otherwise `set` fails with the flags to pass.
    pub needs_profile: bool,
}

impl SetPlan {
    fn caps(&self) -> &'static vault::VaultInfo {
        vault::info(self.vault)
    }
}

/// The value to store, acquired through the mech, and how to take back what acquiring it
/// changed (an AWS profile written to the config file).
struct Acquired {
    secret: Secret,
    prepared: Option<super::aws::Prepared>,
    /// The firewall's reason, when a value it blocks is stored with `--allow-dangerous`.
    blocked: Option<String>,
}

impl Acquired {
    /// Undoes what acquiring changed, then returns `e`.
    fn abandon<T>(&self, e: Error) -> Result<T> {
        if let Some(p) = &self.prepared {
            p.undo()?;
        }
        Err(e)
    }
}

/// Runs `set`: plan (scope, vault, mech) → acquire the value → under the lock, prove the round
/// trip and record the host entry → declare the key in keyrack.yml → drop a stale grant.
pub fn run(rack: &Rack, opts: &SetOptions) -> Result<SetReport> {
    run_given(rack, opts, None)
}

/// Runs `set` with the value already in hand (`fill`, `import`): the same checks, proof and
/// records as [`run`], without asking for the secret. `given` is ignored for aws.config, whose
/// value is the profile `prepare_profile` decides.
pub(crate) fn run_given(
    rack: &Rack,
    opts: &SetOptions,
    given: Option<Secret>,
) -> Result<SetReport> {
    let plan = plan(rack, opts)?;
    let acquired = acquire(rack, opts, &plan, given)?;

    let _lock = rack.lock()?;
    // What was read before the lock may be stale (a parallel set/del, recipient add): keyrack.yml
    // and the host manifest are read again, and edited, under the lock.
    let repo = rack.repo()?;
    let mut host = rack.host()?;
    let previous = host.entry(&plan.slug).cloned();
    let mut entry = match prove(rack, opts, &plan, &host, &acquired.secret) {
        Ok(entry) => entry,
        Err(e) => return acquired.abandon(e),
    };
    entry.max_duration = kept_max_duration(opts, previous.as_ref());
    if let Some(prev) = &previous {
        entry.created_at = prev.created_at;
        // moving between vaults, or away from an item or parameter keyrack created: the old
        // copy goes once the new one is proven
        let owned_elsewhere = vault::info(prev.vault).custody_of(prev) == Custody::Owns
            && prev.exid.is_some()
            && prev.exid != entry.exid;
        if prev.vault != plan.vault || owned_elsewhere {
            let recipients = host.recipient_keys()?;
            let ctx = rack.vault_context(&recipients, opts.login)?;
            vault::open(prev.vault, ctx).del(prev)?;
        }
    }
    entry.updated_at = host_manifest::now();
    let max_duration = entry.max_duration;
    let aws = (plan.mech == Mech::AwsSso)
        .then(|| super::aws::ProfileReport::of_entry(&entry, opts.aws.account_name.as_deref()))
        .flatten();
    host.hosts.insert(plan.slug.clone(), entry);
    save_and_mark(rack, &host, &plan.slug)?;

    let manifest_updated = declare(repo.as_ref(), &plan.scope, &opts.key)?;
    // A grant of the old value must not outlive this set. os.daemon's grant *is* the new value.
    let relocked = !plan.caps().lives_in_daemon && relock_stale(rack, &plan.slug);
    Ok(SetReport {
        slug: plan.slug,
        vault: plan.vault,
        mech: plan.mech,
        replaced: previous.is_some(),
        manifest_updated,
        round_trip: true,
        relocked_stale_grant: relocked,
        blocked: acquired.blocked,
        max_duration,
        aws,
    })
}

/// The checks of `set` that need no answer from anyone: scope, vault, flags, initialised, the
/// identity loads. [`run`] starts with it; a guided front end calls it first, so a bad flag fails
/// before any question.
pub fn plan(rack: &Rack, opts: &SetOptions) -> Result<SetPlan> {
    let repo = rack.repo()?;
    let scope = Scope::resolve(
        declarations(repo.as_ref()),
        &opts.key,
        opts.env.as_deref(),
        opts.org.as_deref(),
        Infer::ForSet,
    )?;
    let slug = scope.slug(&opts.key)?;
    if let (Some(r), false) = (&repo, scope.is_host_only()) {
        fsio::resolve_link_target(&r.path)?; // a refused link fails before the secret is asked for
    }
    let kind = opts.vault.unwrap_or_else(|| default_vault(&opts.key));
    let caps = vault::info(kind);
    let mech = match opts.mech {
        None if !opts.github.is_empty() => Mech::GithubApp,
        Some(m) if m != Mech::GithubApp && !opts.github.is_empty() => {
            return Err(Error::InvalidInput {
                what: "mech",
                value: m.to_string(),
                reason: "--app-id, --installation-id and --private-key describe a GitHub App (--mech github.app)".into(),
                hint: Some("drop those flags, or use --mech github.app".into()),
            })
        }
        m => m.unwrap_or(caps.default_mech),
    };
    if !caps.writable {
        return Err(Error::VaultRefused {
            vault: kind.to_string(),
            operation: "set",
            reason: "it only reads the process environment; there is nothing to store".into(),
            hint: format!(
                "export {}=… where keyrack runs, or use --vault os.secure",
                opts.key
            ),
        });
    }
    if opts.exid.is_some() && !caps.takes_exid(mech) {
        let hint = if caps.exid_with.is_empty() {
            "drop --exid".to_string()
        } else {
            format!(
                "drop --exid (keyrack creates the item), or point at an item with --mech {}",
                caps.exid_with[0]
            )
        };
        return Err(Error::InvalidInput {
            what: "--exid",
            value: opts.exid.clone().unwrap_or_default(),
            reason: format!(
                "vault {kind} with mech {mech} stores the secret itself and takes no external id"
            ),
            hint: Some(hint),
        });
    }
    if opts.op_vault.is_some() && !caps.takes_location(mech) {
        return Err(Error::InvalidInput {
            what: "--op-vault",
            value: opts.op_vault.clone().unwrap_or_default(),
            reason:
                "only a 1password replica (an item keyrack creates) is put in a 1Password vault"
                    .into(),
            hint: Some("use --vault 1password --mech replica, or drop --op-vault".into()),
        });
    }
    for (flag, value) in [
        ("--kms-key-id", &opts.params.kms_key_id),
        ("--via", &opts.params.via),
    ] {
        if let (Some(v), false) = (value, caps.takes_set_flag(flag)) {
            let takers = VaultKind::ALL
                .into_iter()
                .filter(|k| vault::info(*k).takes_set_flag(flag))
                .map(VaultKind::as_str)
                .collect::<Vec<_>>()
                .join(" or --vault ");
            return Err(Error::InvalidInput {
                what: flag,
                value: v.clone(),
                reason: format!("{flag} is for --vault {takers}, not {kind}"),
                hint: Some(format!("drop {flag}, or pass --vault {takers}")),
            });
        }
    }
    if mech == Mech::GithubApp && !caps.mechs.contains(&mech) {
        // before asking for anything: the vault must keep the credentials themselves
        return Err(Error::InvalidInput {
            what: "mech",
            value: mech.to_string(),
            reason: format!("vault {kind} does not keep GitHub App credentials"),
            hint: Some(
                "use --vault os.secure (the default) or another vault that stores secrets".into(),
            ),
        });
    }
    let needs_profile =
        mech == Mech::AwsSso && super::aws::needs_profile(opts.exid.as_deref(), &opts.aws)?;
    // Fail fast (not initialised, wrong identity) before asking for the secret.
    let recipients = rack.host()?.recipient_keys()?;
    rack.vault_context(&recipients, opts.login)?;
    Ok(SetPlan {
        scope,
        slug,
        vault: kind,
        mech,
        needs_profile,
    })
}

/// Acquires the value through the mech (an AWS SSO profile, or the secret itself) and checks it
/// against the admission rules.
fn acquire(
    rack: &Rack,
    opts: &SetOptions,
    plan: &SetPlan,
    given: Option<Secret>,
) -> Result<Acquired> {
    let prepared = match plan.mech {
        Mech::AwsSso => Some(super::aws::prepare_profile(
            &plan.scope,
            opts.exid.as_deref(),
            &opts.aws,
        )?),
        _ => None,
    };
    let recipients = rack.host()?.recipient_keys()?;
    let ctx = rack.vault_context(&recipients, opts.login)?;
    let adapter = vault::open_for_set(plan.vault, ctx, set_target(opts));
    // A reference is read, not asked for: the round trip compares that read with unlock's.
    let referenced = match &prepared {
        Some(_) => None,
        None => adapter.referenced(&plan.slug, plan.mech).transpose()?,
    };
    if prepared.is_none() && referenced.is_none() {
        // fail before the secret is asked for when the vault cannot be reached, or cannot
        // take the key where the flags point it (aws.params: name, KMS key, signer, region)
        adapter.check_ready(&plan.slug)?;
    }
    let secret = match (&prepared, referenced) {
        (Some(p), _) => Secret::new(p.profile.clone()),
        (None, Some(v)) => v,
        (None, None) => match given {
            Some(v) if v.expose().is_empty() => {
                return Err(Error::SecretInput {
                    reason: "the secret is empty".into(),
                    hint: format!("give {} a value, or leave it out", opts.key),
                })
            }
            Some(v) => v,
            None if plan.mech == Mech::GithubApp => {
                crate::github::app::acquire(&opts.key, &opts.github, opts.source, rack.interact())?
            }
            None => mech::acquire_secret(&opts.key, opts.source, rack.interact())?,
        },
    };
    let mut acquired = Acquired {
        secret,
        prepared,
        blocked: None,
    };
    let owner = rack.home().owner();
    match admit_value(&plan.slug, &acquired.secret, opts.allow_dangerous, owner) {
        Ok(blocked) => acquired.blocked = blocked,
        Err(e) => return acquired.abandon(e),
    }
    Ok(acquired)
}

/// Stores through the vault and proves the round trip ([`vault::set_proven_with`]); the host
/// entry to record.
fn prove(
    rack: &Rack,
    opts: &SetOptions,
    plan: &SetPlan,
    host: &HostManifest,
    secret: &Secret,
) -> Result<HostEntry> {
    let recipients = host.recipient_keys()?;
    let ctx = rack.vault_context(&recipients, opts.login)?;
    let adapter = vault::open_for_set(plan.vault, ctx, set_target(opts));
    // The second read of the proof may not sign in: a vault that signs in proves that what the
    // first read kept (aws.config: the encrypted token) serves the next unlock without a browser.
    let quiet = VaultContext {
        login: crate::aws::login::LoginOptions {
            no_prompt: true,
            ..opts.login
        },
        ..ctx
    };
    let again = vault::open(plan.vault, quiet);
    let rules = vault::SetRules {
        allow_dangerous: opts.allow_dangerous,
    };
    vault::set_proven_with(
        adapter.as_ref(),
        again.as_ref(),
        &plan.slug,
        plan.mech,
        secret,
        rules,
    )
}

/// Adds the key to the repo manifest unless it is declared there already (or host-only); the
/// manifest changed, if any.
fn declare(repo: Option<&RepoManifest>, scope: &Scope, key: &str) -> Result<Option<PathBuf>> {
    match repo {
        Some(r) if !scope.is_host_only() && !r.allows(&scope.env, key) => {
            edit::edit_file(&r.path, |t| edit::add_key(t, &scope.env, key))?;
            Ok(Some(r.path.clone()))
        }
        _ => Ok(None),
    }
}

/// Drops the daemon's grant of `slug` (a value this set replaced); whether there was one.
fn relock_stale(rack: &Rack, slug: &Slug) -> bool {
    Client::new(rack.home())
        .relock(RelockScope::Slugs {
            slugs: vec![slug.clone()],
        })
        .map(|v| !v.is_empty())
        .unwrap_or(false)
}

/// The admission rules `unlock` applies ([`vault::admit`]), checked before anything is stored:
/// a value that is too large or holds a NUL byte is refused, and so is one the firewall blocks
/// unless `allow_dangerous`. Returns the firewall's reason when such a value is let through.
fn admit_value(
    slug: &Slug,
    secret: &Secret,
    allow_dangerous: bool,
    owner: &crate::slug::Owner,
) -> Result<Option<String>> {
    match vault::admit(slug, secret)? {
        vault::Admission::Admitted => Ok(None),
        vault::Admission::Blocked(b) if allow_dangerous => Ok(Some(b.reason())),
        vault::Admission::Blocked(b) => Err(vault::dangerous(slug, &b, owner)),
    }
}

/// A re-`set` keeps the key's maxDuration unless this `set` gives one.
fn kept_max_duration(
    opts: &SetOptions,
    previous: Option<&crate::host_manifest::HostEntry>,
) -> Option<std::time::Duration> {
    opts.max_duration
        .or_else(|| previous.and_then(|p| p.max_duration))
}

/// Saves the host manifest, then writes the inventory marker.
fn save_and_mark(rack: &Rack, host: &HostManifest, slug: &Slug) -> Result<()> {
    host.save(rack.home())?;
    let dir = rack.home().inventory_dir();
    fsio::ensure_private_dir(&dir)?;
    fsio::touch_private(&rack.home().inventory_marker(slug))
}

/// Parses a duration: whole units in jiff's friendly form — `9h`, `30m`, `1h30m`, `1h 30m`, `90s`,
/// `2d`, `1w`, `500ms`, spelled-out units (`2hours`, `5min`) and decimals (`1.5h`) — or ISO 8601
/// (`PT1H30M`). A day is 24 hours; months and years are refused (their length varies); the
/// duration must be longer than zero.
pub fn parse_duration(what: &'static str, s: &str) -> Result<std::time::Duration> {
    crate::grant::time::parse_duration(s).map_err(|reason| Error::InvalidInput {
        what,
        value: s.into(),
        reason,
        hint: Some("use e.g. 9h, 30m or 1h30m".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_in_the_documented_forms() {
        for (s, secs) in [
            ("9h", 9 * 3600),
            ("30m", 1800),
            ("1h30m", 5400),
            ("1h 30m", 5400),
            ("90s", 90),
            ("2d", 2 * 86400),
            ("1w", 7 * 86400),
            ("2hours", 7200),
            ("5min", 300),
            ("1.5h", 5400),
            ("PT1H30M", 5400),
        ] {
            assert_eq!(
                parse_duration("--duration", s).unwrap(),
                Duration::from_secs(secs),
                "{s}"
            );
        }
        assert_eq!(
            parse_duration("--duration", "500ms").unwrap(),
            Duration::from_millis(500)
        );
        for s in ["", "0s", "-1h", "abc", "1h30", "1mo", "1y"] {
            let e = parse_duration("--duration", s).unwrap_err().to_string();
            assert!(e.contains("--duration"), "{s}: {e}");
        }
    }
}
