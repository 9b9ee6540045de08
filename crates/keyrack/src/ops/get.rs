//! The hot path behind `get`, `source` and `exec`: one daemon round trip, then the process
//! environment. Never decrypts, never reads the host manifest, never touches a vault.
//!
//! The process environment serves only keys this host does not hold (the CI path): a key with
//! an inventory marker is `locked` until it is unlocked, whatever the environment says (it may
//! hold a value exported from another env, e.g. after `eval "$(keyrack source --env prod)"`).
//! Every grant from the environment says so ([`Source::Env`]).

use super::{unknown_env_at, Scope};
use std::path::Path;

use crate::daemon::client::Client;
use crate::error::{Error, Result};
use crate::firewall;
use crate::home::Home;
use crate::repo_manifest::allowlist::Allowlist;
use crate::repo_manifest::RepoManifest;
use crate::slug::{self, Slug, ENV_SUDO, ORG_ALL};
use crate::vault::{os_envvar, VaultKind};

pub use super::row::{KeyRow, Source, Status};

/// One key's answer: a [`KeyRow`] (the row type every command shares).
pub type Attempt = KeyRow;

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
    resolve_env_in(&repo.path, &repo.env_names(), |e| repo.has_env(e), env)
}

/// [`resolve_repo_env`] for the hot path's [`Allowlist`].
pub fn resolve_allowed_env(repo: &Allowlist, env: Option<&str>) -> Result<String> {
    resolve_env_in(repo.path(), &repo.env_names(), |e| repo.has_env(e), env)
}

fn resolve_env_in(
    path: &Path,
    names: &[String],
    has_env: impl Fn(&str) -> bool,
    env: Option<&str>,
) -> Result<String> {
    match env {
        Some(e) => {
            slug::validate_env(e)?;
            if !has_env(e) {
                return Err(unknown_env_at(path, names, e));
            }
            Ok(e.into())
        }
        None => match names {
            [one] => Ok(one.clone()),
            names => Err(Error::EnvAmbiguous {
                key: "the request".into(),
                reason: format!("{} declares envs: {}", path.display(), names.join(", ")),
                hint: if names.is_empty() {
                    format!("add `env.test: []` to {}", path.display())
                } else {
                    super::env_choices(names)
                },
            }),
        },
    }
}

/// Resolves the requested keys to attempts, asks the daemon once, then the environment.
pub fn get(home: &Home, repo: Option<&Allowlist>, opts: &GetOptions) -> Result<Vec<KeyRow>> {
    let owner = home.owner();
    let mut attempts: Vec<KeyRow> = Vec::new();
    // the rows to look up, and their slugs (sent to the daemon as they are)
    let mut lookups: Vec<usize> = Vec::new();
    let mut slugs: Vec<Slug> = Vec::new();
    let org_all = opts.org.as_deref() == Some(ORG_ALL);

    let requests: Vec<(String, Option<String>, Option<String>)> = if opts.for_repo {
        let repo = repo.ok_or_else(|| Error::NoRepoManifest {
            start: std::env::current_dir().unwrap_or_default(),
        })?;
        let env = resolve_allowed_env(repo, opts.env.as_deref())?;
        repo.keys_for(&env)
            .into_iter()
            .map(|k| {
                (
                    k.key.into(),
                    Some(env.clone()),
                    k.optional_if_has.map(Into::into),
                )
            })
            .collect()
    } else {
        opts.keys
            .iter()
            .map(|k| (k.clone(), opts.env.clone(), None))
            .collect()
    };

    for (key, env, optional_if_has) in requests {
        slug::validate_key(&key)?;
        let scope = if org_all {
            Scope {
                org: ORG_ALL.into(),
                env: env.unwrap_or_else(|| slug::ENV_ALL.into()),
            }
        } else {
            let repo = repo.ok_or_else(|| Error::NoRepoManifest {
                start: std::env::current_dir().unwrap_or_default(),
            })?;
            match env {
                Some(e) => {
                    slug::validate_env(&e)?;
                    if !repo.has_env(&e) {
                        return Err(unknown_env_at(repo.path(), &repo.env_names(), &e));
                    }
                    Scope {
                        org: repo.org().into(),
                        env: e,
                    }
                }
                None => match repo.envs_declaring(&key).as_slice() {
                    [one] => Scope {
                        org: repo.org().into(),
                        env: one.clone(),
                    },
                    [] => {
                        let mut a = KeyRow::named(
                            format!("{}.?.{key}", repo.org()),
                            repo.org(),
                            "?",
                            &key,
                            Status::Absent,
                        );
                        a.reason = Some(format!(
                            "{key} is not in {}{}",
                            repo.path().display(),
                            super::did_you_mean_allowed_key(repo, None, &key)
                        ));
                        a.fix = Some(format!(
                            "keyrack set --key {key} --env <env>{}",
                            owner.flag()
                        ));
                        attempts.push(a);
                        continue;
                    }
                    many => Scope {
                        org: repo.org().into(),
                        env: super::env_by_unlocked(home, repo.org(), &key, many)?,
                    },
                },
            }
        };
        let slug = Slug::new(&scope.org, &scope.env, &key)?;
        let allowed =
            org_all || scope.env == ENV_SUDO || repo.is_some_and(|r| r.allows(&scope.env, &key));
        let mut a = KeyRow::new(&slug, Status::Absent);
        if let Some(var) = optional_if_has {
            a.waived = std::env::var_os(&var).is_some();
        }
        if !allowed {
            // Same answer whether or not this host has the key: nothing is looked up.
            a.reason = Some(format!(
                "not declared for env {} in the repo manifest{}",
                scope.env,
                repo.map(|r| super::did_you_mean_allowed_key(r, Some(&scope.env), &key))
                    .unwrap_or_default()
            ));
            let flags = super::key_flags(&key, &scope.env, &scope.org, owner);
            a.fix = Some(format!("keyrack set {flags}"));
        } else {
            lookups.push(attempts.len());
            slugs.push(slug);
        }
        attempts.push(a);
    }

    if lookups.is_empty() {
        return Ok(attempts);
    }
    let client = Client::new(home);
    let (slugs, answers) = client.get_keeping(slugs);
    let answers = answers?.unwrap_or_else(|| vec![None; lookups.len()]);
    for ((idx, slug), grant) in lookups.into_iter().zip(slugs).zip(answers) {
        let a = &mut attempts[idx];
        let flags = || super::key_flags(slug.key(), slug.env(), slug.org(), owner);
        let held = || {
            home.inventory_marker(&slug).exists()
                || home.inventory_marker(&slug.with_env_all()).exists()
        };
        let (secret, vault, source, expires_at, granted_by) = match grant {
            Some(g) => {
                let by = (g.slug != slug).then(|| g.slug.to_string());
                (
                    Some(g.secret),
                    Some(g.vault),
                    Some(Source::Daemon),
                    g.expires_at,
                    by,
                )
            }
            // A key this host holds never falls back to the environment.
            None if held() => {
                a.status = Status::Locked;
                a.reason = Some(if os_envvar::read(slug.key()).is_some() {
                    format!(
                        "set on this host, not unlocked (the {} in the process environment is not used for a key this host holds)",
                        slug.key()
                    )
                } else {
                    "set on this host, not unlocked".into()
                });
                a.fix = Some(format!("keyrack unlock {}", flags()));
                a.shared_fix = Some(format!(
                    "keyrack unlock {}",
                    super::env_flags(slug.env(), slug.org(), owner)
                ));
                continue;
            }
            None => match os_envvar::read(slug.key()) {
                Some(v) => (
                    Some(v),
                    Some(VaultKind::OsEnvvar),
                    Some(Source::Env),
                    None,
                    None,
                ),
                None => (None, None, None, None, None),
            },
        };
        match secret {
            Some(value) => {
                a.vault = vault;
                a.source = source;
                a.expires_at = expires_at.and_then(super::row::timestamp_from_ms);
                a.granted_by = granted_by;
                match firewall::inspect(value.expose()).filter(|_| !opts.allow_dangerous) {
                    Some(b) => {
                        a.status = Status::Blocked;
                        a.reason = Some(b.reason());
                        a.fix =
                            Some("pass --allow-dangerous if this really must be handed out".into());
                    }
                    None => {
                        a.status = Status::Granted;
                        a.secret = Some(value);
                    }
                }
            }
            None => {
                a.status = Status::Absent;
                a.reason = Some("not set on this host".into());
                a.fix = Some(format!("keyrack set {}", flags()));
            }
        }
    }
    Ok(attempts)
}

/// Whether every attempt is granted (or waived by `is-optional-if-has`).
pub fn all_satisfied(attempts: &[KeyRow]) -> bool {
    attempts.iter().all(KeyRow::satisfied)
}
