//! `keyrack set`: store or point a key, prove the round trip, record it.

use std::path::PathBuf;

use serde::Serialize;

use super::{is_host_only, resolve_scope, Rack, Scope};
use crate::daemon::{client::Client, protocol::RelockScope};
use crate::error::{Error, Result};
use crate::fsio;
use crate::host_manifest::{now_rfc3339, HostManifest};
use crate::mech::{self, Mech, SecretSource};
use crate::repo_manifest::edit;
use crate::slug::Slug;
use crate::vault::op_cli::OpCli;
use crate::vault::{self, aws_params, onepassword, VaultContext, VaultKind};

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
    /// Longest grant lifetime (`1h`, `30m`).
    pub max_duration: Option<String>,
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
    /// The maxDuration the key now has (kept from the previous set unless given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<String>,
    /// What an aws.config `set` made: the profile, its account, role and sso-session, and the
    /// line that uses it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws: Option<super::aws::ProfileReport>,
}

/// What a 1password adapter is pointed at by `set`'s flags.
fn onepassword_target(opts: &SetOptions, kind: VaultKind) -> onepassword::SetTarget {
    onepassword::SetTarget {
        reference: opts.exid.clone().filter(|_| kind == VaultKind::OnePassword),
        op_vault: opts.op_vault.clone(),
    }
}

/// The vault chosen when `set` is not told.
pub fn default_vault(key: &str) -> VaultKind {
    if key == "AWS_PROFILE" {
        VaultKind::AwsConfig
    } else {
        VaultKind::OsSecure
    }
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

/// The checks of `set` that need no answer from anyone: scope, vault, flags, initialised, the
/// identity loads. [`run`] starts with it; a guided front end calls it first, so a bad flag fails
/// before any question.
pub fn plan(rack: &Rack, opts: &SetOptions) -> Result<SetPlan> {
    let repo = rack.repo()?;
    let scope: Scope = resolve_scope(
        repo.as_ref(),
        &opts.key,
        opts.env.as_deref(),
        opts.org.as_deref(),
        true,
    )?;
    let slug = Slug::new(&scope.org, &scope.env, &opts.key)?;
    if let (Some(r), false) = (&repo, is_host_only(&scope)) {
        fsio::resolve_link_target(&r.path)?; // a refused link fails before the secret is asked for
    }
    let kind = opts.vault.unwrap_or_else(|| default_vault(&opts.key));
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
        m => m.unwrap_or(kind.default_mech()),
    };
    if kind == VaultKind::OsEnvvar {
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
    let takes_exid = match kind {
        VaultKind::AwsConfig | VaultKind::AwsParams => true,
        VaultKind::OnePassword => mech == Mech::Reference,
        _ => false,
    };
    if opts.exid.is_some() && !takes_exid {
        let hint = if kind == VaultKind::OnePassword {
            "drop --exid (keyrack creates the item), or point at an item with --mech reference"
        } else {
            "drop --exid"
        };
        return Err(Error::InvalidInput {
            what: "--exid",
            value: opts.exid.clone().unwrap_or_default(),
            reason: format!(
                "vault {kind} with mech {mech} stores the secret itself and takes no external id"
            ),
            hint: Some(hint.into()),
        });
    }
    if opts.op_vault.is_some() && !(kind == VaultKind::OnePassword && mech == Mech::Replica) {
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
        if let (Some(v), false) = (value, kind == VaultKind::AwsParams) {
            return Err(Error::InvalidInput {
                what: flag,
                value: v.clone(),
                reason: format!("{flag} is for --vault aws.params, not {kind}"),
                hint: Some(format!("drop {flag}, or pass --vault aws.params")),
            });
        }
    }
    if let Some(d) = &opts.max_duration {
        parse_duration("--max-duration", d)?;
    }
    if mech == Mech::GithubApp && !kind.mechs().contains(&mech) {
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
        kind == VaultKind::AwsConfig && super::aws::needs_profile(opts.exid.as_deref(), &opts.aws)?;
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

/// Runs `set`.
pub fn run(rack: &Rack, opts: &SetOptions) -> Result<SetReport> {
    run_given(rack, opts, None)
}

/// Runs `set` with the value already in hand (`fill`, `import`): the same checks, proof and
/// records as [`run`], without asking for the secret. `given` is ignored for aws.config, whose
/// value is the profile `prepare_profile` decides.
pub fn run_given(
    rack: &Rack,
    opts: &SetOptions,
    given: Option<crate::secret::Secret>,
) -> Result<SetReport> {
    let SetPlan {
        scope,
        slug,
        vault: kind,
        mech,
        ..
    } = plan(rack, opts)?;
    let prepared = match kind {
        VaultKind::AwsConfig => Some(super::aws::prepare_profile(
            &scope,
            opts.exid.as_deref(),
            &opts.aws,
        )?),
        _ => None,
    };
    let params = params_of(opts);
    let mut referenced = None;
    if kind == VaultKind::AwsParams {
        // name, KMS key, region and the signing identity are checked before the secret is asked
        let recipients = rack.host()?.recipient_keys()?;
        let ctx = rack.vault_context(&recipients, opts.login)?;
        let adapter = aws_params::AwsParamsVault::with_options(ctx, params.clone());
        adapter.preflight(&slug)?;
        if mech == Mech::Reference {
            // nothing is written: the value is the parameter's, read once and proven below
            referenced = Some(adapter.referenced_value(&slug)?);
        }
    }
    let op_target = onepassword_target(opts, kind);
    let secret = match (&prepared, referenced, kind, mech) {
        (Some(p), ..) => crate::secret::Secret::new(p.profile.clone()),
        (None, Some(value), ..) => value,
        // A reference is read, not asked for: the round trip compares that read with unlock's.
        (None, None, VaultKind::OnePassword, Mech::Reference) => {
            let recipients = rack.host()?.recipient_keys()?;
            let ctx = rack.vault_context(&recipients, opts.login)?;
            onepassword::OnePassword::for_set(ctx, op_target.clone()).resolve_reference()?
        }
        (None, None, _, _) => match given {
            Some(v) if v.expose().is_empty() => {
                return Err(Error::SecretInput {
                    reason: "the secret is empty".into(),
                    hint: format!("give {} a value, or leave it out", opts.key),
                })
            }
            Some(v) => v,
            None if mech == Mech::GithubApp => {
                crate::github::app::acquire(&opts.key, &opts.github, opts.source, rack.interact())?
            }
            None => {
                if kind == VaultKind::OnePassword {
                    // fail before the secret is asked for when op is not there at all
                    OpCli::locate().map_err(|e| onepassword::unavailable(&e))?;
                }
                mech::acquire_secret(&opts.key, opts.source, rack.interact())?
            }
        },
    };
    let blocked = match admit_value(&slug, &secret, opts.allow_dangerous, rack.home().owner()) {
        Ok(b) => b,
        Err(e) => {
            if let Some(p) = &prepared {
                p.undo()?;
            }
            return Err(e);
        }
    };

    let _lock = rack.lock()?;
    // What was read before the lock may be stale (a parallel set/del, recipient add): keyrack.yml
    // and the host manifest are read again, and edited, under the lock.
    let repo = rack.repo()?;
    let mut host = rack.host()?;
    let recipients = host.recipient_keys()?;
    let ctx = rack.vault_context(&recipients, opts.login)?;
    let adapter: Box<dyn vault::Vault + '_> = match kind {
        VaultKind::AwsParams => Box::new(aws_params::AwsParamsVault::with_options(
            ctx,
            params.clone(),
        )),
        VaultKind::OnePassword => Box::new(onepassword::OnePassword::for_set(ctx, op_target)),
        _ => vault::open(kind, ctx),
    };
    let previous = host.entry(&slug).cloned();
    let rules = vault::SetRules {
        allow_dangerous: opts.allow_dangerous,
    };
    let proven =
        vault::set_proven_with(adapter.as_ref(), &slug, mech, &secret, rules).and_then(|entry| {
            if kind == VaultKind::AwsConfig {
                // The spec's last step: a second unlock comes from the encrypted token, no browser.
                let quiet = VaultContext {
                    login: crate::aws::login::LoginOptions {
                        no_prompt: true,
                        ..opts.login
                    },
                    ..ctx
                };
                let again = vault::open(kind, quiet);
                again.unlock(&entry).map_err(|e| Error::RoundTrip {
                    slug: slug.to_string(),
                    vault: kind.to_string(),
                    reason: format!("second unlock without a browser: {e}"),
                })?;
                again.relock(&entry)?;
            }
            Ok(entry)
        });
    let mut entry = match proven {
        Ok(e) => e,
        Err(e) => {
            if let Some(p) = &prepared {
                p.undo()?;
            }
            return Err(e);
        }
    };
    entry.max_duration = kept_max_duration(opts, previous.as_ref());
    if let Some(prev) = &previous {
        entry.created_at = prev.created_at.clone();
        // moving between vaults, or away from an item or parameter keyrack created: the old
        // copy goes once the new one is proven
        let owned_elsewhere = vault::custody_of(prev) == vault::Custody::Owns
            && prev.exid.is_some()
            && prev.exid != entry.exid;
        if prev.vault != kind || owned_elsewhere {
            vault::open(prev.vault, ctx).del(prev)?;
        }
    }
    entry.updated_at = now_rfc3339();
    let max_duration = entry.max_duration.clone();
    let aws = (kind == VaultKind::AwsConfig)
        .then(|| super::aws::ProfileReport::of_entry(&entry, opts.aws.account_name.as_deref()))
        .flatten();
    host.hosts.insert(slug.to_string(), entry);
    save_and_mark(rack, &host, &slug)?;

    let manifest_updated = match (&repo, is_host_only(&scope)) {
        (Some(r), false) if !r.allows(&scope.env, &opts.key) => {
            edit::edit_file(&r.path, |t| edit::add_key(t, &scope.env, &opts.key))?;
            Some(r.path.clone())
        }
        _ => None,
    };
    // A grant of the old value must not outlive this set. os.daemon's grant *is* the new value.
    let relocked = kind != VaultKind::OsDaemon
        && Client::new(rack.home())
            .relock(RelockScope::Slugs {
                slugs: vec![slug.clone()],
            })
            .map(|v| !v.is_empty())
            .unwrap_or(false);
    Ok(SetReport {
        slug,
        vault: kind,
        mech,
        replaced: previous.is_some(),
        manifest_updated,
        round_trip: true,
        relocked_stale_grant: relocked,
        blocked,
        max_duration,
        aws,
    })
}

/// What an aws.params `set` was told about the parameter.
fn params_of(opts: &SetOptions) -> aws_params::ParamsOptions {
    aws_params::ParamsOptions {
        exid: opts.exid.clone(),
        region: opts.aws.region.clone(),
        kms_key_id: opts.params.kms_key_id.clone(),
        via: opts.params.via.clone(),
    }
}

/// The admission rules `unlock` applies ([`vault::admit`]), checked before anything is stored:
/// a value that is too large or holds a NUL byte is refused, and so is one the firewall blocks
/// unless `allow_dangerous`. Returns the firewall's reason when such a value is let through.
fn admit_value(
    slug: &Slug,
    secret: &crate::secret::Secret,
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
) -> Option<String> {
    opts.max_duration
        .clone()
        .or_else(|| previous.and_then(|p| p.max_duration.clone()))
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
    const EXAMPLES: &str = "use e.g. 9h, 30m or 1h30m";
    let bad = |reason: String| Error::InvalidInput {
        what,
        value: s.into(),
        reason,
        hint: Some(EXAMPLES.into()),
    };
    let span: jiff::Span = s
        .trim()
        .parse()
        .map_err(|e| bad(format!("not a duration ({e})")))?;
    let d = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|e| bad(format!("not a fixed duration ({e})")))?;
    match std::time::Duration::try_from(d) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(bad("must be longer than zero".into())),
    }
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
