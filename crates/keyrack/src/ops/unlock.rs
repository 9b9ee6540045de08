//! `unlock`, `relock`, `status`: moving grants into and out of the session daemon.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;

use super::scope::{declarations, Scope};
use super::set::parse_duration;
use super::{key_flags, unknown_env, Rack};
use crate::daemon::client::{Client, DaemonStatus};
use crate::daemon::protocol::{HeldGrant, RelockScope};
use crate::error::{Error, Result};
use crate::grant::{time, Ended, Timestamp};
use crate::host_manifest::{HostEntry, HostManifest};
use crate::repo_manifest::RepoManifest;
use crate::slug::{self, Slug, ENV_ALL, ENV_PROD, ENV_SUDO, ORG_ALL};
use crate::vault::{self, Checked, Grant, Vault, VaultKind};

/// Default grant lifetime.
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(9 * 3600);
/// Default lifetime of `sudo` grants.
pub(crate) const SUDO_TTL: Duration = Duration::from_secs(30 * 60);

/// Options of `unlock`.
#[derive(Debug, Clone, Default)]
pub struct UnlockOptions {
    /// Only this env (default: every declared env, plus machine-wide keys).
    pub env: Option<String>,
    /// Only these keys.
    pub keys: Vec<String>,
    /// Grant lifetime (default 9h, sudo 30m), capped by each key's maxDuration and expiry.
    pub duration: Option<Duration>,
    /// How vaults that sign in (aws.config) may do so.
    pub login: crate::aws::login::LoginOptions,
}

pub(crate) use super::row::{KeyRow, Status};

/// An env a bare `unlock` (no `--env`) left locked on purpose, and how to unlock it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The env (`prod`, `sudo`, or one the repo's `everyday:` does not list).
    pub env: String,
    /// The flags that unlock it (`--env prod`).
    pub flags: String,
    /// The whole command.
    pub fix: String,
}

/// What `unlock` did: one row per key, and the envs it skipped.
#[derive(Debug, Clone, Default)]
pub struct UnlockReport {
    /// One row per key in scope.
    pub rows: Vec<KeyRow>,
    /// Envs not unlocked because none was named (`prod`, `sudo`, not everyday).
    pub skipped: Vec<Skipped>,
}

/// The keys in scope of an unlock, and the envs left out.
struct Targets {
    slugs: Vec<Slug>,
    skipped: Vec<Skipped>,
}

/// Parses `--duration` (at most [`crate::daemon::MAX_GRANT_TTL`]: the daemon refuses longer).
pub fn parse_ttl(s: &str) -> Result<Duration> {
    let d = parse_duration("--duration", s)?;
    let max = crate::daemon::MAX_GRANT_TTL;
    if d > max {
        return Err(Error::InvalidInput {
            what: "--duration",
            value: s.into(),
            reason: format!(
                "grants live at most {}h; the session daemon refuses longer ones",
                max.as_secs() / 3600
            ),
            hint: Some(format!(
                "use --duration {}h or less, and unlock again when it ends",
                max.as_secs() / 3600
            )),
        });
    }
    Ok(d)
}

/// The slugs in scope of an unlock. Without `--env`, only everyday envs ([`RepoManifest::is_everyday`]:
/// never `prod` unless the repo says so, never `sudo`); the others are named in `skipped`.
fn targets(
    rack: &Rack,
    opts: &UnlockOptions,
    host: &HostManifest,
    repo: Option<&RepoManifest>,
) -> Result<Targets> {
    for k in &opts.keys {
        slug::validate_key(k)?;
    }
    if let Some(e) = &opts.env {
        slug::validate_env(e)?;
    }
    if opts.env.as_deref() == Some(ENV_SUDO) {
        return Ok(Targets {
            slugs: sudo_targets(opts, host, repo)?,
            skipped: vec![],
        });
    }
    let everyday = |env: &str| match repo {
        Some(r) => r.is_everyday(env),
        None => env != ENV_SUDO && env != ENV_PROD,
    };
    let mut skipped: BTreeSet<String> = BTreeSet::new();
    let mut out = match repo {
        Some(repo) => repo_targets(opts, repo, &everyday, &mut skipped)?,
        None => Vec::new(),
    };
    machine_wide_targets(opts, host, &everyday, &mut out, &mut skipped);
    if repo.is_none() && out.is_empty() && !opts.keys.is_empty() && skipped.is_empty() {
        for k in &opts.keys {
            let env = opts.env.as_deref();
            out.extend(scope_slugs(
                Scope::resolve_all(None, k, env, Some(ORG_ALL))?,
                k,
            )?);
        }
    }
    if opts.env.is_none() && holds_sudo_keys(opts, host, repo) {
        // sudo keys of this repo or machine-wide ones are never unlocked without --env sudo
        skipped.insert(ENV_SUDO.into());
    }
    Ok(Targets {
        slugs: out,
        skipped: skipped_fixes(rack, opts, skipped),
    })
}

fn wanted(opts: &UnlockOptions, key: &str) -> bool {
    opts.keys.is_empty() || opts.keys.iter().any(|w| w == key)
}

fn scope_slugs(scopes: Vec<Scope>, key: &str) -> Result<Vec<Slug>> {
    scopes.iter().map(|s| s.slug(key)).collect()
}

/// `--env sudo --key K…`: this repo's sudo key, else the machine-wide one the host has.
fn sudo_targets(
    opts: &UnlockOptions,
    host: &HostManifest,
    repo: Option<&RepoManifest>,
) -> Result<Vec<Slug>> {
    if opts.keys.is_empty() {
        return Err(Error::InvalidInput {
            what: "env",
            value: ENV_SUDO.into(),
            reason: "sudo keys are unlocked one at a time".into(),
            hint: Some("keyrack unlock --env sudo --key <KEY>".into()),
        });
    }
    let org = repo.map(|r| r.org.as_str()).unwrap_or(ORG_ALL);
    opts.keys
        .iter()
        .map(|k| {
            let repo_slug = Slug::new(org, ENV_SUDO, k)?;
            let machine_slug = Slug::new(ORG_ALL, ENV_SUDO, k)?;
            Ok(
                if host.entry(&repo_slug).is_none() && host.entry(&machine_slug).is_some() {
                    machine_slug
                } else {
                    repo_slug
                },
            )
        })
        .collect()
}

/// The repository's keys in scope: those of `--env` (and any `--key` asked for there, declared
/// or not: an undeclared one reports absent), or of every everyday env; a `--key` without
/// `--env` in each everyday env that declares it.
fn repo_targets(
    opts: &UnlockOptions,
    repo: &RepoManifest,
    everyday: &dyn Fn(&str) -> bool,
    skipped: &mut BTreeSet<String>,
) -> Result<Vec<Slug>> {
    let mut out = Vec::new();
    match opts.env.as_deref() {
        Some(e) => {
            if !repo.has_env(e) {
                return Err(unknown_env(repo, e));
            }
            let keys: Vec<&str> = if e == ENV_ALL {
                repo.all.iter().map(|k| k.key.as_str()).collect()
            } else {
                repo.keys_for(e).iter().map(|k| k.key.as_str()).collect()
            };
            for k in keys.iter().filter(|k| wanted(opts, k)) {
                out.push(Slug::new(&repo.org, e, k)?);
            }
            for k in opts.keys.iter().filter(|k| !keys.contains(&k.as_str())) {
                // asked for, but not declared for this env: reported as absent
                let scopes = Scope::resolve_all(declarations(Some(repo)), k, Some(e), None)?;
                out.extend(scope_slugs(scopes, k)?);
            }
        }
        None if opts.keys.is_empty() => {
            for (env, own) in &repo.envs {
                if everyday(env) {
                    for k in repo.keys_for(env) {
                        out.push(Slug::new(&repo.org, env, &k.key)?);
                    }
                } else if !own.is_empty() {
                    skipped.insert(env.clone());
                }
            }
        }
        None => {
            for k in &opts.keys {
                let scopes = Scope::resolve_all(declarations(Some(repo)), k, None, None)?;
                if scopes.is_empty() {
                    // declared nowhere: absent, in the everyday envs
                    for env in repo.everyday_envs() {
                        out.push(Slug::new(&repo.org, &env, k)?);
                    }
                }
                for scope in scopes {
                    if everyday(&scope.env) {
                        out.push(scope.slug(k)?);
                    } else {
                        skipped.insert(scope.env);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Machine-wide keys the host has, of `--env` (or of every everyday env).
fn machine_wide_targets(
    opts: &UnlockOptions,
    host: &HostManifest,
    everyday: &dyn Fn(&str) -> bool,
    out: &mut Vec<Slug>,
    skipped: &mut BTreeSet<String>,
) {
    for entry in host
        .hosts
        .values()
        .filter(|e| e.org == ORG_ALL && e.env != ENV_SUDO && wanted(opts, e.slug.key()))
    {
        let env_ok = match &opts.env {
            Some(e) => &entry.env == e || entry.env == ENV_ALL,
            None if everyday(&entry.env) => true,
            None => {
                skipped.insert(entry.env.clone());
                false
            }
        };
        if env_ok && !out.contains(&entry.slug) {
            out.push(entry.slug.clone());
        }
    }
}

/// Whether the host has sudo keys (of this repo, or machine-wide) among those asked for.
fn holds_sudo_keys(opts: &UnlockOptions, host: &HostManifest, repo: Option<&RepoManifest>) -> bool {
    let org = repo.map(|r| r.org.as_str());
    host.hosts.values().any(|e| {
        e.env == ENV_SUDO
            && (e.org == ORG_ALL || Some(e.org.as_str()) == org)
            && wanted(opts, e.slug.key())
    })
}

/// The command that unlocks each skipped env.
fn skipped_fixes(rack: &Rack, opts: &UnlockOptions, skipped: BTreeSet<String>) -> Vec<Skipped> {
    let owner = rack.home().owner();
    skipped
        .into_iter()
        .map(|env| {
            let mut flags = format!("--env {env}");
            if env == ENV_SUDO {
                flags.push_str(" --key <KEY>");
            } else {
                for k in &opts.keys {
                    flags.push_str(&format!(" --key {k}"));
                }
            }
            flags.push_str(&owner.flag());
            Skipped {
                fix: format!("keyrack unlock {flags}"),
                env,
                flags,
            }
        })
        .collect()
}

/// Runs `unlock`: decrypts the host manifest once, unlocks each key on its own row (one failing
/// key never stops the others), pushes all grants to the daemon. Each vault reads all its keys
/// of the pass at once ([`vault::read_grants`]: aws.params reads 10 a call). Vaults that read
/// with grants of this session ([`vault::VaultInfo::reads_with_session_grants`]: aws.params
/// signs with an unlocked aws.config key) are read last, once the other grants reached the
/// daemon.
pub fn unlock(rack: &Rack, opts: &UnlockOptions) -> Result<UnlockReport> {
    let host = rack.host()?;
    let repo = rack.repo()?;
    let Targets { slugs, skipped } = targets(rack, opts, &host, repo.as_ref())?;
    let recipients = host.recipient_keys()?;
    let ctx = rack.vault_context(&recipients, opts.login)?;
    let owner = rack.home().owner();
    // rows in the order of the targets; the keys to read fill theirs in later
    let mut rows: Vec<Option<KeyRow>> = Vec::new();
    let mut reads: Vec<(usize, &HostEntry)> = Vec::new();
    let mut done = BTreeSet::new();
    for slug in slugs {
        let entry = host
            .entry(&slug)
            .or_else(|| host.entry(&slug.with_env_all()));
        let Some(entry) = entry else {
            rows.push(Some(absent_row(&slug, repo.as_ref(), owner)));
            continue;
        };
        if !done.insert(entry.slug.clone()) {
            continue;
        }
        reads.push((rows.len(), entry));
        rows.push(None);
    }
    let mut grants = Vec::new();
    for later in [false, true] {
        let mut by_vault: BTreeMap<VaultKind, Vec<(usize, &HostEntry)>> = BTreeMap::new();
        for (i, e) in &reads {
            if vault::info(e.vault).reads_with_session_grants == later {
                by_vault.entry(e.vault).or_default().push((*i, e));
            }
        }
        if by_vault.is_empty() {
            continue;
        }
        if later {
            // the grants they sign with (aws.config) must be in the daemon first
            deliver(rack, std::mem::take(&mut grants), &mut rows)?;
        }
        for (kind, members) in by_vault {
            let adapter = vault::open(kind, ctx);
            let entries: Vec<&HostEntry> = members.iter().map(|(_, e)| *e).collect();
            let checked = vault::read_grants(adapter.as_ref(), &entries);
            let now = time::now();
            for ((i, entry), read) in members.into_iter().zip(checked) {
                let (row, grant) = unlock_one(adapter.as_ref(), entry, read, opts, now, owner)?;
                rows[i] = Some(row);
                grants.extend(grant);
            }
        }
    }
    deliver(rack, grants, &mut rows)?;
    Ok(UnlockReport {
        rows: rows.into_iter().flatten().collect(),
        skipped,
    })
}

/// The row of a key in scope that this host has not set.
fn absent_row(slug: &Slug, repo: Option<&RepoManifest>, owner: &crate::slug::Owner) -> KeyRow {
    let declared = slug.org() == ORG_ALL
        || slug.env() == ENV_SUDO
        || repo.is_some_and(|r| r.allows(slug.env(), slug.key()));
    let mut row = KeyRow::new(slug, Status::Absent);
    row.reason = Some(if declared {
        "not set on this host".into()
    } else {
        format!(
            "not declared for env {} in the repo manifest{}",
            slug.env(),
            repo.map(|r| super::did_you_mean_key(r, Some(slug.env()), slug.key()))
                .unwrap_or_default()
        )
    });
    row.fix = Some(format!(
        "keyrack set {}",
        key_flags(slug.key(), slug.env(), slug.org(), owner)
    ));
    row
}

/// What reading one key out of its vault gave ([`vault::read_grants`]), its lifetime capped:
/// its row, and the grant for the daemon when there is one. Only a cancelled prompt is an error:
/// every other failure is this key's `errored` row.
fn unlock_one(
    adapter: &dyn Vault,
    entry: &HostEntry,
    read: Result<Checked>,
    opts: &UnlockOptions,
    now: Timestamp,
    owner: &crate::slug::Owner,
) -> Result<(KeyRow, Option<Grant>)> {
    let mut row = KeyRow::new(&entry.slug, Status::Errored);
    row.vault = Some(entry.vault);
    let entry_flags = key_flags(entry.slug.key(), &entry.env, &entry.org, owner);
    let (grant, blocked) = match read {
        Ok(Checked::Granted(grant)) => (grant, None),
        Ok(Checked::Blocked(grant, blocked)) => (grant, Some(blocked)),
        Ok(Checked::Lost(why)) => {
            row.status = Status::Lost;
            row.reason = Some(why);
            row.fix = Some(format!("keyrack set {entry_flags}"));
            return Ok((row, None));
        }
        // Ctrl-C at a sign-in prompt ends the whole unlock, as it would any command.
        Err(e @ Error::Cancelled { .. }) => return Err(e),
        Err(e) => {
            row.reason = Some(e.to_string());
            row.fix = e.fix();
            return Ok((row, None));
        }
    };
    let expires = match capped_expiry(&grant, entry, opts.duration, now) {
        Ok(t) => t,
        Err(e) => {
            let _ = adapter.release(entry);
            row.reason = Some(e.to_string());
            row.fix = e.fix();
            return Ok((row, None));
        }
    };
    row = row.expires(Some(expires));
    row.status = Status::Granted;
    if let Some(b) = blocked {
        // Held like any grant (so `--allow-dangerous` can still read it), and shown for what
        // every read path will do with it.
        row.status = Status::Blocked;
        row.reason = Some(format!(
            "{}; get, source and exec hand it out only with --allow-dangerous",
            b.reason()
        ));
        row.fix = Some(format!(
            "replace it with a short-lived credential: keyrack set {entry_flags}"
        ));
    }
    Ok((
        row,
        Some(Grant {
            expires_at: Some(expires),
            ..grant
        }),
    ))
}

/// Pushes the grants to the daemon (started when needed). A grant too large to reach it is
/// that key's error; the others still go.
fn deliver(rack: &Rack, mut grants: Vec<Grant>, rows: &mut [Option<KeyRow>]) -> Result<()> {
    grants.retain(|g| match crate::daemon::client::check_grant_size(g) {
        Ok(()) => true,
        Err(e) => {
            let slug = g.slug.to_string();
            if let Some(row) = rows.iter_mut().flatten().find(|r| r.slug == slug) {
                row.status = Status::Errored;
                row.expires_at = None;
                row.reason = Some(e.to_string());
                row.fix = e.fix();
            }
            false
        }
    });
    if !grants.is_empty() {
        let client = Client::new(rack.home());
        client.ensure_running()?;
        client.unlock(grants)?;
    }
    Ok(())
}

/// When `grant` expires: the requested TTL (default 9h, sudo 30m), capped by the key's
/// maxDuration and by the grant's own expiry.
fn capped_expiry(
    grant: &Grant,
    entry: &HostEntry,
    requested: Option<Duration>,
    now: Timestamp,
) -> Result<Timestamp> {
    let ttl = ttl_for(entry, requested)?;
    let expires = now.checked_add(ttl).unwrap_or(Timestamp::MAX);
    Ok(grant.expires_at.map_or(expires, |own| expires.min(own)))
}

fn ttl_for(entry: &HostEntry, requested: Option<Duration>) -> Result<Duration> {
    let default = if entry.env == ENV_SUDO {
        SUDO_TTL
    } else {
        DEFAULT_TTL
    };
    let mut ttl = requested.unwrap_or(default);
    if let Some(max) = entry.max_duration {
        ttl = ttl.min(max);
    }
    Ok(ttl)
}

/// Runs `relock`: forgets grants in the daemon (all, one env, or some keys); one `locked` row
/// per grant forgotten.
pub fn relock(rack: &Rack, env: Option<&str>, keys: &[String]) -> Result<Vec<KeyRow>> {
    if let Some(e) = env {
        slug::validate_env(e)?;
    }
    let client = Client::new(rack.home());
    let held = client.status()?.map(|s| s.grants).unwrap_or_default();
    let scope = if keys.is_empty() {
        match env {
            Some(e) => RelockScope::Env { env: e.into() },
            None => RelockScope::All,
        }
    } else {
        RelockScope::Slugs {
            slugs: held
                .iter()
                .filter(|g| keys.iter().any(|k| k == g.slug.key()))
                .filter(|g| env.is_none_or(|e| g.env == e))
                .map(|g| g.slug.clone())
                .collect(),
        }
    };
    let slugs = if held.is_empty() {
        vec![]
    } else {
        client.relock(scope)?
    };
    Ok(slugs
        .iter()
        .map(|s| {
            let mut row = KeyRow::new(s, Status::Locked);
            row.vault = held.iter().find(|g| &g.slug == s).map(|g| g.vault);
            row
        })
        .collect())
}

/// What `status` reports.
#[derive(Debug, Clone)]
pub struct SessionStatus {
    /// The daemon, when one runs.
    pub daemon: Option<DaemonStatus>,
    /// One `granted` row per grant it holds (of the env asked for).
    pub rows: Vec<KeyRow>,
    /// The grants that ended lately (of the env asked for), and why.
    pub ended: Vec<Ended>,
    /// Files a daemon that stopped without releasing them had left (mirrored tokens), removed
    /// now.
    pub released: Vec<std::path::PathBuf>,
    /// keyrack's AWS sign-in clients that expire within 7 days (or have): warn about them.
    pub expiring_clients: Vec<crate::aws::client_expiry::ClientExpiry>,
}

/// Runs `status`: what the daemon holds (no secrets), optionally for one env, as `granted` rows;
/// removes what a daemon that died left behind.
pub fn status(rack: &Rack, env: Option<&str>) -> Result<SessionStatus> {
    let client = Client::new(rack.home());
    let st = client.status()?;
    let released = client.release_leftovers();
    let rows = st
        .as_ref()
        .map(|s| {
            s.grants
                .iter()
                .filter(|g| env.is_none_or(|e| g.env == e))
                .map(held_row)
                .collect()
        })
        .unwrap_or_default();
    let ended = st
        .as_ref()
        .map(|s| {
            s.ended
                .iter()
                .filter(|e| env.is_none_or(|want| e.slug.env() == want))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    Ok(SessionStatus {
        daemon: st,
        rows,
        ended,
        released,
        expiring_clients: crate::aws::client_expiry::expiring(rack.home(), jiff::Timestamp::now()),
    })
}

/// The row of a grant the daemon holds.
pub(crate) fn held_row(g: &HeldGrant) -> KeyRow {
    let mut row = KeyRow::new(&g.slug, Status::Granted).expires(Some(g.expires_at));
    row.env = g.env.clone();
    row.vault = Some(g.vault);
    row.profile = g
        .labels
        .get(crate::vault::aws_config::label::PROFILE)
        .cloned();
    row.limit = super::row::Limit::from_labels(&g.labels);
    row
}

/// The row of a grant that ended by itself (expired, or ended by its vault: an SSO session that
/// is over), saying when and why, with the unlock that fixes it; `None` for a relocked one (that
/// was asked for). `status` shows these instead of "nothing unlocked".
pub fn ended_row(e: &Ended, owner: &crate::slug::Owner) -> Option<KeyRow> {
    if e.why == crate::grant::EndReason::Relocked {
        return None;
    }
    let mut row = KeyRow::new(&e.slug, Status::Locked);
    row.vault = Some(e.vault);
    row.reason = Some(super::row::ended_text(e));
    row.fix = Some(format!(
        "keyrack unlock {}",
        key_flags(e.slug.key(), e.slug.env(), e.slug.org(), owner)
    ));
    row.shared_fix = Some(format!(
        "keyrack unlock {}",
        super::env_flags(e.slug.env(), e.slug.org(), owner)
    ));
    row.ended = Some(e.clone());
    Some(row)
}
