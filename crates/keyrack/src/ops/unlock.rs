//! `unlock`, `relock`, `status`: moving grants into and out of the session daemon.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use serde::Serialize;

use super::set::parse_duration;
use super::{key_flags, unknown_env, Rack};
use crate::daemon::client::{Client, DaemonStatus};
use crate::daemon::protocol::{now_ms, HeldGrant, RelockScope};
use crate::error::{Error, Result};
use crate::host_manifest::HostEntry;
use crate::slug::{self, Slug, ENV_ALL, ENV_PROD, ENV_SUDO, ORG_ALL};
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

pub use super::row::{KeyRow, Status};

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
///
/// [`RepoManifest::is_everyday`]: crate::repo_manifest::RepoManifest::is_everyday
fn targets(
    rack: &Rack,
    opts: &UnlockOptions,
    host: &crate::host_manifest::HostManifest,
    repo: Option<&crate::repo_manifest::RepoManifest>,
) -> Result<Targets> {
    let mut out: Vec<Slug> = Vec::new();
    let mut skipped: BTreeSet<String> = BTreeSet::new();
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
        return Ok(Targets {
            slugs: out,
            skipped: vec![],
        });
    }
    let everyday = |env: &str| match repo {
        Some(r) => r.is_everyday(env),
        None => env != ENV_SUDO && env != ENV_PROD,
    };
    if let Some(repo) = repo {
        match &opts.env {
            Some(e) => {
                if !repo.has_env(e) {
                    return Err(unknown_env(repo, e));
                }
                let keys: Vec<String> = if e == ENV_ALL {
                    repo.all.iter().map(|k| k.key.clone()).collect()
                } else {
                    repo.keys_for(e).iter().map(|k| k.key.clone()).collect()
                };
                for k in keys.iter().filter(|k| wanted(k)) {
                    out.push(Slug::new(&repo.org, e, k)?);
                }
                for k in opts.keys.iter().filter(|k| !keys.contains(k)) {
                    // asked for, but not declared for this env: report it as absent
                    out.push(Slug::new(&repo.org, e, k)?);
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
                    let declaring = repo.envs_declaring(k);
                    if declaring.is_empty() {
                        // declared nowhere: absent, in the everyday envs
                        for env in repo.everyday_envs() {
                            out.push(Slug::new(&repo.org, &env, k)?);
                        }
                    }
                    for env in declaring {
                        if everyday(&env) {
                            out.push(Slug::new(&repo.org, &env, k)?);
                        } else {
                            skipped.insert(env);
                        }
                    }
                }
            }
        }
    }
    // machine-wide keys of the env (or of every everyday env)
    for entry in host
        .hosts
        .values()
        .filter(|e| e.org == ORG_ALL && e.env != ENV_SUDO && wanted(e.slug.key()))
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
    if repo.is_none() && out.is_empty() && !opts.keys.is_empty() && skipped.is_empty() {
        for k in &opts.keys {
            out.push(Slug::new(
                ORG_ALL,
                opts.env.as_deref().unwrap_or(ENV_ALL),
                k,
            )?);
        }
    }
    if opts.env.is_none() {
        // sudo keys of this repo or machine-wide ones are never unlocked without --env sudo
        let org = repo.map(|r| r.org.as_str());
        let sudo: Vec<&str> = host
            .hosts
            .values()
            .filter(|e| e.env == ENV_SUDO && (e.org == ORG_ALL || Some(e.org.as_str()) == org))
            .filter(|e| wanted(e.slug.key()))
            .map(|e| e.slug.key())
            .collect();
        if !sudo.is_empty() {
            skipped.insert(ENV_SUDO.into());
        }
    }
    let owner = rack.home().owner();
    let skipped = skipped
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
        .collect();
    Ok(Targets {
        slugs: out,
        skipped,
    })
}

/// Runs `unlock`: decrypts the host manifest once, unlocks each key on its own row, pushes the
/// grants to the daemon. Vaults that read with grants of this session
/// ([`VaultKind::reads_with_session_grants`]: aws.params signs with an unlocked aws.config key)
/// are read last, after the other grants reached the daemon. Each vault is told every entry it
/// is about to read first ([`Vault::prefetch`]), so it can read them in batches.
pub fn unlock(rack: &Rack, opts: &UnlockOptions) -> Result<UnlockReport> {
    let host = rack.host()?;
    let repo = rack.repo()?;
    let Targets { slugs, skipped } = targets(rack, opts, &host, repo.as_ref())?;
    let recipients = host.recipient_keys()?;
    let ctx = rack.vault_context(&recipients, opts.login)?;
    let owner = rack.home().owner();
    let mut adapters: HashMap<VaultKind, Box<dyn Vault + '_>> = HashMap::new();
    // rows in the order of the targets; the keys to read fill theirs in later
    let mut rows: Vec<Option<KeyRow>> = Vec::new();
    let mut reads: Vec<(usize, &HostEntry)> = Vec::new();
    let mut done = BTreeSet::new();
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
            let mut row = KeyRow::new(&slug, Status::Absent);
            row.reason = Some(if declared {
                "not set on this host".into()
            } else {
                format!(
                    "not declared for env {} in the repo manifest{}",
                    slug.env(),
                    repo.as_ref()
                        .map(|r| super::did_you_mean_key(r, Some(slug.env()), slug.key()))
                        .unwrap_or_default()
                )
            });
            row.fix = Some(format!("keyrack set {flags}"));
            rows.push(Some(row));
            continue;
        };
        if !done.insert(entry.slug.clone()) {
            continue;
        }
        reads.push((rows.len(), entry));
        rows.push(None);
    }
    let client = Client::new(rack.home());
    let now = now_ms();
    let mut grants = Vec::new();
    for later in [false, true] {
        let phase: Vec<(usize, &HostEntry)> = reads
            .iter()
            .filter(|(_, e)| e.vault.reads_with_session_grants() == later)
            .copied()
            .collect();
        if phase.is_empty() {
            continue;
        }
        if later {
            // the grants they sign with (aws.config) must be in the daemon first
            push(&client, std::mem::take(&mut grants), &mut rows)?;
        }
        let mut by_vault: BTreeMap<VaultKind, Vec<&HostEntry>> = BTreeMap::new();
        for (_, e) in &phase {
            by_vault.entry(e.vault).or_default().push(e);
        }
        for (kind, entries) in by_vault {
            adapters
                .entry(kind)
                .or_insert_with(|| vault::open(kind, ctx))
                .prefetch(&entries);
        }
        for (i, entry) in phase {
            let adapter = adapters
                .entry(entry.vault)
                .or_insert_with(|| vault::open(entry.vault, ctx));
            let (row, grant) = read_row(adapter.as_ref(), entry, opts, owner, now)?;
            rows[i] = Some(row);
            grants.extend(grant);
        }
    }
    push(&client, grants, &mut rows)?;
    Ok(UnlockReport {
        rows: rows.into_iter().flatten().collect(),
        skipped,
    })
}

/// Reads one key out of its vault: its row, and its grant when there is one. Only a cancelled
/// prompt is an error (it ends the whole unlock); every other failure is the key's own row.
fn read_row(
    adapter: &dyn Vault,
    entry: &HostEntry,
    opts: &UnlockOptions,
    owner: &crate::slug::Owner,
    now: u64,
) -> Result<(KeyRow, Option<Grant>)> {
    let mut row = KeyRow::new(&entry.slug, Status::Errored);
    row.vault = Some(entry.vault);
    let entry_flags = key_flags(entry.slug.key(), &entry.env, &entry.org, owner);
    let (grant, blocked) = match vault::read_grant(adapter, entry) {
        Ok(Read::Granted(grant)) => (grant, None),
        Ok(Read::Blocked(grant, blocked)) => (grant, Some(blocked)),
        Ok(Read::Lost(why)) => {
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
            row.reason = Some(e.to_string());
            row.fix = e.fix();
            return Ok((row, None));
        }
    };
    row = row.expires_at_ms(Some(expires));
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

/// Hands `grants` to the daemon (started when needed). A value too large to reach the daemon is
/// that key's error; the others still unlock.
fn push(client: &Client, mut grants: Vec<Grant>, rows: &mut [Option<KeyRow>]) -> Result<()> {
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
    now: u64,
) -> Result<u64> {
    let ttl = ttl_for(entry, requested)?;
    let expires = now + ttl.as_millis() as u64;
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
    Ok(SessionStatus {
        daemon: st,
        rows,
        released,
        expiring_clients: crate::aws::client_expiry::expiring(rack.home(), jiff::Timestamp::now()),
    })
}

/// The row of a grant the daemon holds.
pub fn held_row(g: &HeldGrant) -> KeyRow {
    let mut row = KeyRow::new(&g.slug, Status::Granted).expires_at_ms(Some(g.expires_at));
    row.env = g.env.clone();
    row.vault = Some(g.vault);
    row.profile = g.aws_profile.clone();
    row
}
