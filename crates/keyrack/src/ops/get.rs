//! The hot path behind `get`, `source` and `exec`: one daemon round trip, then the process
//! environment. Never decrypts, never reads the host manifest, never touches a vault.
//!
//! The process environment serves only keys this host does not hold (the CI path): a key with
//! an inventory marker is `locked` until it is unlocked, whatever the environment says (it may
//! hold a value exported from another env, e.g. after `eval "$(keyrack source --env prod)"`).
//! Every grant from the environment says so ([`Source::Env`]).

use super::scope::{unknown_env_in, Declarations, Scope};
use crate::daemon::client::{Client, Lookup};
use crate::error::{Error, Result};
use crate::firewall;
use crate::grant::{Ended, Grant};
use crate::home::Home;
use crate::repo_manifest::allowlist::Allowlist;
use crate::repo_manifest::RepoManifest;
use crate::slug::{self, Slug, ENV_SUDO, ORG_ALL};
use crate::vault::os_envvar;

pub(crate) use super::row::{KeyRow, Source, Status};

/// What to get.
#[derive(Debug, Clone, Default)]
pub struct GetOptions {
    /// Keys by name (empty with `for_repo`).
    pub keys: Vec<String>,
    /// Every key the repo manifest declares for the env.
    pub for_repo: bool,
    /// The env.
    pub env: Option<String>,
    /// `@all` for machine-wide keys.
    pub org: Option<String>,
    /// Let firewall-blocked values through.
    pub allow_dangerous: bool,
}

/// The env a `--for repo` / `source` / `exec` request is about.
pub fn resolve_repo_env(repo: &RepoManifest, env: Option<&str>) -> Result<String> {
    resolve_env_in(repo, env)
}

/// [`resolve_repo_env`] for the hot path's [`Allowlist`].
pub fn resolve_allowed_env(repo: &Allowlist, env: Option<&str>) -> Result<String> {
    resolve_env_in(repo, env)
}

fn resolve_env_in(repo: &dyn Declarations, env: Option<&str>) -> Result<String> {
    match env {
        Some(e) => {
            slug::validate_env(e)?;
            if !repo.has_env(e) {
                return Err(unknown_env_in(repo, e));
            }
            Ok(e.into())
        }
        None => match repo.env_names().as_slice() {
            [one] => Ok(one.clone()),
            names => Err(Error::EnvAmbiguous {
                key: "the request".into(),
                reason: format!(
                    "{} declares envs: {}",
                    repo.path().display(),
                    names.join(", ")
                ),
                hint: if names.is_empty() {
                    format!("add `env.test: []` to {}", repo.path().display())
                } else {
                    super::env_choices(names)
                },
            }),
        },
    }
}

/// One key asked for (borrowed from the options or the allowlist: no copy per key).
struct Request<'a> {
    key: &'a str,
    env: Option<&'a str>,
    /// `is-optional-if-has`: the env var that waives the key.
    optional_if_has: Option<&'a str>,
}

/// Resolves the requested keys to rows, asks the daemon once for those allowlisted, then the
/// environment for keys this host does not hold.
pub fn get(home: &Home, repo: Option<&Allowlist>, opts: &GetOptions) -> Result<Vec<KeyRow>> {
    let env = repo_env(repo, opts)?;
    let requests = requests(repo, opts, env.as_deref());
    let mut rows: Vec<KeyRow> = Vec::with_capacity(requests.len());
    // the rows to look up, and their slugs (sent to the daemon as they are)
    let mut lookups: Vec<usize> = Vec::with_capacity(requests.len());
    let mut slugs: Vec<Slug> = Vec::with_capacity(requests.len());
    // the scope the flags fixed for the previous request, reused while they stay the same
    let mut fixed: Option<(Option<&str>, Scope)> = None;
    for req in requests {
        let (row, lookup) = resolve(home, repo, opts, req, &mut fixed)?;
        if let Some(slug) = lookup {
            lookups.push(rows.len());
            slugs.push(slug);
        }
        rows.push(row);
    }
    if lookups.is_empty() {
        return Ok(rows);
    }
    let (slugs, answer_line) = Client::new(home).lookup_keeping(slugs);
    let Lookup { grants, ended } = answer_line?.unwrap_or_else(|| Lookup {
        grants: vec![None; lookups.len()],
        ended: vec![],
    });
    for ((idx, slug), grant) in lookups.into_iter().zip(slugs).zip(grants) {
        answer(home, opts, &mut rows[idx], &slug, grant, &ended);
    }
    Ok(rows)
}

/// The env of a `--for repo` request (`None` for keys by name).
fn repo_env(repo: Option<&Allowlist>, opts: &GetOptions) -> Result<Option<String>> {
    if !opts.for_repo {
        return Ok(None);
    }
    let repo = repo.ok_or_else(|| Error::NoRepoManifest {
        start: std::env::current_dir().unwrap_or_default(),
    })?;
    resolve_allowed_env(repo, opts.env.as_deref()).map(Some)
}

/// The keys asked for: by name, or every key the repo manifest declares for `repo_env` (the
/// env of a `--for repo` request, see [`repo_env`]).
fn requests<'a>(
    repo: Option<&'a Allowlist>,
    opts: &'a GetOptions,
    repo_env: Option<&'a str>,
) -> Vec<Request<'a>> {
    match (repo, repo_env) {
        (Some(repo), Some(env)) => repo
            .keys_for(env)
            .into_iter()
            .map(|k| Request {
                key: k.key,
                env: Some(env),
                optional_if_has: k.optional_if_has,
            })
            .collect(),
        _ => opts
            .keys
            .iter()
            .map(|k| Request {
                key: k,
                env: opts.env.as_deref(),
                optional_if_has: None,
            })
            .collect(),
    }
}

/// One request's row, and the slug to ask the daemon for when the key is allowlisted. A key
/// the repo manifest does not allow gets the same answer whether or not this host has it:
/// nothing is looked up.
///
/// `fixed` keeps the scope of an earlier request whose flags fixed it (`--env`, or `--org
/// @all`): a later request with the same env gets the same scope, so only its key is checked.
fn resolve<'a>(
    home: &Home,
    repo: Option<&Allowlist>,
    opts: &GetOptions,
    req: Request<'a>,
    fixed: &mut Option<(Option<&'a str>, Scope)>,
) -> Result<(KeyRow, Option<Slug>)> {
    let owner = home.owner();
    let key = req.key;
    let reuse = matches!(fixed, Some((env, _)) if *env == req.env);
    if reuse {
        slug::validate_key(key)?;
    } else {
        let scope = Scope::lookup(
            repo.map(|r| r as &dyn Declarations),
            key,
            req.env,
            opts.org.as_deref(),
            home,
        )?;
        let flags_fix_it = req.env.is_some() || opts.org.as_deref() == Some(ORG_ALL);
        match scope {
            Some(scope) if flags_fix_it => *fixed = Some((req.env, scope)),
            Some(scope) => return Ok(resolved(home, repo, req, &scope)),
            None => {
                // no env declares it (only with a repo manifest: the resolver needs one here)
                let repo = repo.expect("a key declared nowhere was looked up in a repo manifest");
                let mut row = KeyRow::named(
                    format!("{}.?.{key}", repo.org()),
                    repo.org(),
                    "?",
                    key,
                    Status::Absent,
                );
                row.reason = Some(format!(
                    "{key} is not in {}{}",
                    repo.path().display(),
                    super::did_you_mean_allowed_key(repo, None, key)
                ));
                row.fix = Some(format!(
                    "keyrack set --key {key} --env <env>{}",
                    owner.flag()
                ));
                return Ok((row, None));
            }
        }
    }
    let (_, scope) = fixed.as_ref().expect("a fixed scope was just kept");
    Ok(resolved(home, repo, req, scope))
}

/// The row of a request resolved to `scope` (its names checked by the resolver).
fn resolved(
    home: &Home,
    repo: Option<&Allowlist>,
    req: Request<'_>,
    scope: &Scope,
) -> (KeyRow, Option<Slug>) {
    let key = req.key;
    let slug = Slug::from_checked_parts(&scope.org, &scope.env, key);
    let mut row = KeyRow::new(&slug, Status::Absent);
    if let Some(var) = req.optional_if_has {
        row.waived = std::env::var_os(var).is_some();
    }
    let allowed = scope.org == ORG_ALL
        || scope.env == ENV_SUDO
        || repo.is_some_and(|r| r.allows(&scope.env, key));
    if allowed {
        return (row, Some(slug));
    }
    row.reason = Some(format!(
        "not declared for env {} in the repo manifest{}",
        scope.env,
        repo.map(|r| super::did_you_mean_allowed_key(r, Some(&scope.env), key))
            .unwrap_or_default()
    ));
    row.fix = Some(format!(
        "keyrack set {}",
        super::key_flags(key, &scope.env, &scope.org, home.owner())
    ));
    (row, None)
}

/// Fills a looked-up row: the daemon's grant; else `locked` for a key this host holds (never
/// the environment's value); else the process environment (the CI path); else `absent`. The
/// firewall applies to every value.
fn answer(
    home: &Home,
    opts: &GetOptions,
    row: &mut KeyRow,
    slug: &Slug,
    grant: Option<Grant>,
    ended: &[Ended],
) {
    let owner = home.owner();
    let flags = || super::key_flags(slug.key(), slug.env(), slug.org(), owner);
    let held = || {
        home.inventory_marker(slug).exists() || home.inventory_marker(&slug.with_env_all()).exists()
    };
    let value = match grant {
        Some(g) => {
            row.vault = Some(g.vault);
            row.source = Some(Source::Daemon);
            row.expires_at = g.expires_at;
            row.granted_by = (&g.slug != slug).then(|| g.slug.to_string());
            g.secret
        }
        // A key this host holds never falls back to the environment.
        None if held() => {
            row.status = Status::Locked;
            row.reason = Some(if os_envvar::read(slug.key()).is_some() {
                format!(
                    "set on this host, not unlocked (the {} in the process environment is not used for a key this host holds)",
                    slug.key()
                )
            } else {
                "set on this host, not unlocked".into()
            });
            row.fix = Some(format!("keyrack unlock {}", flags()));
            row.shared_fix = Some(format!(
                "keyrack unlock {}",
                super::env_flags(slug.env(), slug.org(), owner)
            ));
            let all = slug.with_env_all();
            row.ended = ended
                .iter()
                .find(|e| &e.slug == slug || e.slug == all)
                .cloned();
            if let Some(e) = row
                .ended
                .as_ref()
                .filter(|e| e.why != crate::grant::EndReason::Relocked)
            {
                // why its grant is gone (an SSO session that ended, an expiry), not just
                // "locked"; a relock was asked for, and needs no telling
                row.reason = Some(format!(
                    "set on this host, not unlocked: {}",
                    super::row::ended_text(e)
                ));
            }
            return;
        }
        None => match os_envvar::read(slug.key()) {
            Some(v) => {
                row.vault = Some(os_envvar::INFO.kind);
                row.source = Some(Source::Env);
                v
            }
            None => {
                row.status = Status::Absent;
                row.reason = Some("not set on this host".into());
                row.fix = Some(format!("keyrack set {}", flags()));
                return;
            }
        },
    };
    match firewall::inspect(value.expose()).filter(|_| !opts.allow_dangerous) {
        Some(b) => {
            row.status = Status::Blocked;
            row.reason = Some(b.reason());
            row.fix = Some("pass --allow-dangerous if this really must be handed out".into());
        }
        None => {
            row.status = Status::Granted;
            row.secret = Some(value);
        }
    }
}

/// Whether every attempt is granted (or waived by `is-optional-if-has`).
pub fn all_satisfied(attempts: &[KeyRow]) -> bool {
    attempts.iter().all(KeyRow::satisfied)
}
