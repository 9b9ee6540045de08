//! `unlock`, `relock`, `status`: moving grants into and out of the session daemon.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde::Serialize;

use super::set::parse_duration;
use super::{key_flags, unknown_env, Rack};
use crate::daemon::client::{Client, DaemonStatus};
use crate::daemon::protocol::{HeldGrant, RelockScope};
use crate::error::{Error, Result};
use crate::grant::time;
use crate::host_manifest::HostEntry;
use crate::slug::{self, Slug, ENV_ALL, ENV_SUDO, ORG_ALL};
use crate::vault::{self, Grant, Read, Vault, VaultKind};

/// Default grant lifetime.
pub const DEFAULT_TTL: Duration = Duration::from_secs(9 * 3600);
/// Default lifetime of `sudo` grants.
pub const SUDO_TTL: Duration = Duration::from_secs(30 * 60);

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

/// The outcome of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RowStatus {
    /// Now in the daemon.
    Granted,
    /// Not set on this host.
    Absent,
    /// Set, but the vault has no secret for it.
    Lost,
    /// The vault failed, or its value was refused (too large, a NUL byte, not bound to the key).
    Errored,
    /// In the daemon, but the value looks like a long-lived token: get/source/exec block it
    /// unless `--allow-dangerous`.
    Blocked,
}

/// One key's row in the unlock report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnlockRow {
    /// The slug.
    pub slug: String,
    /// The vault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vault: Option<VaultKind>,
    /// Outcome.
    pub status: RowStatus,
    /// Grant expiry (unix ms in JSON).
    #[serde(skip_serializing_if = "Option::is_none", with = "time::millis_opt")]
    pub expires_at: Option<jiff::Timestamp>,
    /// Why not granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The fixing command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
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

/// The slugs in scope of an unlock.
fn targets(
    rack: &Rack,
    opts: &UnlockOptions,
    host: &crate::host_manifest::HostManifest,
) -> Result<Vec<Slug>> {
    let repo = rack.repo()?;
    let mut out: Vec<Slug> = Vec::new();
    let wanted = |k: &str| opts.keys.is_empty() || opts.keys.iter().any(|w| w == k);
    for k in &opts.keys {
        slug::validate_key(k)?;
    }
    if let Some(e) = &opts.env {
        slug::validate_env(e)?;
    }
    if opts.env.as_deref() == Some(ENV_SUDO) {
        if opts.keys.is_empty() {
            return Err(Error::InvalidInput {
                what: "env",
                value: ENV_SUDO.into(),
                reason: "sudo keys are unlocked one at a time".into(),
                hint: Some("keyrack unlock --env sudo --key <KEY>".into()),
            });
        }
        let org = repo
            .as_ref()
            .map(|r| r.org.clone())
            .unwrap_or_else(|| ORG_ALL.into());
        for k in &opts.keys {
            let repo_slug = Slug::new(&org, ENV_SUDO, k)?;
            let machine_slug = Slug::new(ORG_ALL, ENV_SUDO, k)?;
            let pick = if host.entry(&repo_slug).is_none() && host.entry(&machine_slug).is_some() {
                machine_slug
            } else {
                repo_slug
            };
            out.push(pick);
        }
        return Ok(out);
    }
    if let Some(repo) = &repo {
        let envs = match &opts.env {
            Some(e) if e == ENV_ALL => vec![ENV_ALL.to_string()],
            Some(e) if repo.has_env(e) => vec![e.clone()],
            Some(e) => return Err(unknown_env(repo, e)),
            None => repo.env_names(),
        };
        for env in &envs {
            let keys: Vec<String> = if env == ENV_ALL {
                repo.all.iter().map(|k| k.key.clone()).collect()
            } else {
                repo.keys_for(env).iter().map(|k| k.key.clone()).collect()
            };
            for k in keys.iter().filter(|k| wanted(k)) {
                out.push(Slug::new(&repo.org, env, k)?);
            }
            for k in opts.keys.iter().filter(|k| !keys.contains(k)) {
                // asked for, but not declared for this env: report it as absent
                out.push(Slug::new(&repo.org, env, k)?);
            }
        }
    }
    // machine-wide keys of the env (or all of them)
    for entry in host
        .hosts
        .values()
        .filter(|e| e.org == ORG_ALL && e.env != ENV_SUDO)
    {
        let env_ok = match &opts.env {
            Some(e) => &entry.env == e || entry.env == ENV_ALL,
            None => true,
        };
        if env_ok && wanted(entry.slug.key()) && !out.contains(&entry.slug) {
            out.push(entry.slug.clone());
        }
    }
    if repo.is_none() && out.is_empty() && !opts.keys.is_empty() {
        for k in &opts.keys {
            out.push(Slug::new(
                ORG_ALL,
                opts.env.as_deref().unwrap_or(ENV_ALL),
                k,
            )?);
        }
    }
    Ok(out)
}

/// Runs `unlock`: decrypts the host manifest once, unlocks each key on its own row, pushes all
/// grants to the daemon in one request.
pub fn unlock(rack: &Rack, opts: &UnlockOptions) -> Result<Vec<UnlockRow>> {
    let host = rack.host()?;
    let slugs = targets(rack, opts, &host)?;
    let recipients = host.recipient_keys()?;
    let ctx = rack.vault_context(&recipients, opts.login)?;
    let repo = rack.repo()?;
    let owner = rack.home().owner();
    let mut adapters: HashMap<VaultKind, Box<dyn Vault + '_>> = HashMap::new();
    let mut rows = Vec::new();
    let mut grants = Vec::new();
    let mut done = BTreeSet::new();
    let now = time::now();
    for slug in slugs {
        let entry: Option<&HostEntry> = host
            .entry(&slug)
            .or_else(|| host.entry(&slug.with_env_all()));
        let flags = key_flags(slug.key(), slug.env(), slug.org(), owner);
        let Some(entry) = entry else {
            let declared = slug.org() == ORG_ALL
                || slug.env() == ENV_SUDO
                || repo
                    .as_ref()
                    .is_some_and(|r| r.allows(slug.env(), slug.key()));
            rows.push(UnlockRow {
                slug: slug.to_string(),
                vault: None,
                status: RowStatus::Absent,
                expires_at: None,
                reason: Some(if declared {
                    "not set on this host".into()
                } else {
                    format!("not declared for env {} in the repo manifest", slug.env())
                }),
                fix: Some(format!("keyrack set {flags}")),
            });
            continue;
        };
        if !done.insert(entry.slug.clone()) {
            continue;
        }
        let adapter = adapters
            .entry(entry.vault)
            .or_insert_with(|| vault::open(entry.vault, ctx));
        let mut row = UnlockRow {
            slug: entry.slug.to_string(),
            vault: Some(entry.vault),
            status: RowStatus::Errored,
            expires_at: None,
            reason: None,
            fix: None,
        };
        let entry_flags = key_flags(entry.slug.key(), &entry.env, &entry.org, owner);
        let (grant, blocked) = match vault::read_grant(adapter.as_ref(), entry) {
            Ok(Read::Granted(grant)) => (grant, None),
            Ok(Read::Blocked(grant, blocked)) => (grant, Some(blocked)),
            Ok(Read::Lost(why)) => {
                row.status = RowStatus::Lost;
                row.reason = Some(why);
                row.fix = Some(format!("keyrack set {entry_flags}"));
                rows.push(row);
                continue;
            }
            Err(e) => {
                row.reason = Some(e.to_string());
                row.fix = e.fix();
                rows.push(row);
                continue;
            }
        };
        let expires = match capped_expiry(&grant, entry, opts.duration, now) {
            Ok(t) => t,
            Err(e) => {
                row.reason = Some(e.to_string());
                row.fix = e.fix();
                rows.push(row);
                continue;
            }
        };
        row.expires_at = Some(expires);
        row.status = RowStatus::Granted;
        if let Some(b) = blocked {
            // Held like any grant (so `--allow-dangerous` can still read it), and shown for what
            // every read path will do with it.
            row.status = RowStatus::Blocked;
            row.reason = Some(format!(
                "{}; get, source and exec hand it out only with --allow-dangerous",
                b.reason()
            ));
            row.fix = Some(format!(
                "replace it with a short-lived credential: keyrack set {entry_flags}"
            ));
        }
        grants.push(Grant {
            expires_at: Some(expires),
            ..grant
        });
        rows.push(row);
    }
    // A value too large to reach the daemon is that key's error; the others still unlock.
    grants.retain(|g| match crate::daemon::client::check_grant_size(g) {
        Ok(()) => true,
        Err(e) => {
            if let Some(row) = rows.iter_mut().find(|r| r.slug == g.slug.to_string()) {
                row.status = RowStatus::Errored;
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
    Ok(rows)
}

/// When `grant` expires: the requested TTL (default 9h, sudo 30m), capped by the key's
/// maxDuration and by the grant's own expiry.
fn capped_expiry(
    grant: &Grant,
    entry: &HostEntry,
    requested: Option<Duration>,
    now: jiff::Timestamp,
) -> Result<jiff::Timestamp> {
    let ttl = ttl_for(entry, requested)?;
    let expires = now.checked_add(ttl).unwrap_or(jiff::Timestamp::MAX);
    Ok(grant.expires_at.map_or(expires, |own| expires.min(own)))
}

fn ttl_for(entry: &HostEntry, requested: Option<Duration>) -> Result<Duration> {
    let default = if entry.env == ENV_SUDO {
        SUDO_TTL
    } else {
        DEFAULT_TTL
    };
    let mut ttl = requested.unwrap_or(default);
    if let Some(max) = &entry.max_duration {
        ttl = ttl.min(parse_duration("maxDuration", max)?);
    }
    Ok(ttl)
}

/// Runs `relock`: forgets grants in the daemon (all, one env, or some keys).
pub fn relock(rack: &Rack, env: Option<&str>, keys: &[String]) -> Result<Vec<Slug>> {
    if let Some(e) = env {
        slug::validate_env(e)?;
    }
    let client = Client::new(rack.home());
    let scope = if keys.is_empty() {
        match env {
            Some(e) => RelockScope::Env { env: e.into() },
            None => RelockScope::All,
        }
    } else {
        let held = client.status()?.map(|s| s.grants).unwrap_or_default();
        RelockScope::Slugs {
            slugs: held
                .into_iter()
                .filter(|g| keys.iter().any(|k| k == g.slug.key()))
                .filter(|g| env.is_none_or(|e| g.env == e))
                .map(|g| g.slug)
                .collect(),
        }
    };
    client.relock(scope)
}

/// What `status` reports.
#[derive(Debug, Clone)]
pub struct SessionStatus {
    /// The daemon, when one runs.
    pub daemon: Option<DaemonStatus>,
    /// The grants it holds (of the env asked for).
    pub held: Vec<HeldGrant>,
    /// The grants that ended lately (of the env asked for), and why.
    pub ended: Vec<crate::grant::Ended>,
    /// Files a daemon that stopped without releasing them had left (mirrored tokens), removed
    /// now.
    pub released: Vec<std::path::PathBuf>,
}

/// Runs `status`: what the daemon holds (no secrets), optionally for one env; removes what a
/// daemon that died left behind.
pub fn status(rack: &Rack, env: Option<&str>) -> Result<SessionStatus> {
    let client = Client::new(rack.home());
    let st = client.status()?;
    let released = client.release_leftovers();
    let held = st
        .as_ref()
        .map(|s| {
            s.grants
                .iter()
                .filter(|g| env.is_none_or(|e| g.env == e))
                .cloned()
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
        held,
        ended,
        released,
    })
}
