//! The hot path behind `get`, `source` and `exec`: one daemon round trip, then the process
//! environment. Never decrypts, never reads the host manifest, never touches a vault.

use serde::Serialize;

use super::{unknown_env_at, Scope};
use crate::daemon::client::Client;
use crate::error::{Error, Result};
use crate::firewall;
use crate::home::Home;
use crate::repo_manifest::allowlist::Allowlist;
use crate::secret::Secret;
use crate::slug::{self, Slug, ENV_SUDO, ORG_ALL};
use crate::vault::{os_envvar, VaultKind};

/// The answer for one requested key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Usable now.
    Granted,
    /// Set on this host, not unlocked.
    Locked,
    /// Not set here, or not allowlisted.
    Absent,
    /// The value was rejected by the firewall.
    Blocked,
}

/// One key's attempt.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// The slug asked for (the grant may have come from `org.all.KEY`).
    pub slug: String,
    /// The key.
    pub key: String,
    /// The env asked for.
    pub env: String,
    /// The outcome.
    pub status: Status,
    /// The value, when granted (serialised only where the caller asks).
    #[serde(skip)]
    pub secret: Option<Secret>,
    /// Where the grant came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vault: Option<VaultKind>,
    /// The slug that actually granted it, if different (the `org.all` fallback).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub granted_by: Option<String>,
    /// Expiry of the grant (unix ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// Why it is not granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The command that fixes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// Whether the repo manifest waives it (`is-optional-if-has` and that var is set).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub waived: bool,
}

impl Attempt {
    fn new(slug: String, key: &str, env: &str, status: Status) -> Self {
        Attempt {
            slug,
            key: key.into(),
            env: env.into(),
            status,
            secret: None,
            vault: None,
            granted_by: None,
            expires_at: None,
            reason: None,
            fix: None,
            waived: false,
        }
    }
}

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
pub fn resolve_repo_env(repo: &Allowlist, env: Option<&str>) -> Result<String> {
    match env {
        Some(e) => {
            slug::validate_env(e)?;
            if !repo.has_env(e) {
                return Err(unknown_env_at(repo.path(), &repo.env_names(), e));
            }
            Ok(e.into())
        }
        None => match repo.env_names().as_slice() {
            [one] => Ok(one.clone()),
            names => Err(Error::EnvAmbiguous {
                key: "the repository's keys".into(),
                reason: format!(
                    "{} declares envs: {}",
                    repo.path().display(),
                    names.join(", ")
                ),
                hint: format!(
                    "pass --env, e.g. --env {}",
                    names.first().map(String::as_str).unwrap_or("test")
                ),
            }),
        },
    }
}

/// Resolves the requested keys to attempts, asks the daemon once, then the environment.
pub fn get(home: &Home, repo: Option<&Allowlist>, opts: &GetOptions) -> Result<Vec<Attempt>> {
    let owner = home.owner();
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut lookups: Vec<(usize, Slug)> = Vec::new();
    let org_all = opts.org.as_deref() == Some(ORG_ALL);

    let requests: Vec<(String, Option<String>, Option<String>)> = if opts.for_repo {
        let repo = repo.ok_or_else(|| Error::NoRepoManifest {
            start: std::env::current_dir().unwrap_or_default(),
        })?;
        let env = resolve_repo_env(repo, opts.env.as_deref())?;
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
                        let mut a = Attempt::new(
                            format!("{}.?.{key}", repo.org()),
                            &key,
                            "?",
                            Status::Absent,
                        );
                        a.reason = Some(format!("{key} is not in {}", repo.path().display()));
                        a.fix = Some(format!(
                            "keyrack set --key {key} --env <env>{}",
                            owner.flag()
                        ));
                        attempts.push(a);
                        continue;
                    }
                    many => {
                        return Err(Error::EnvAmbiguous {
                            key: key.clone(),
                            reason: format!("it is declared in: {}", many.join(", ")),
                            hint: format!("pass --env, e.g. --env {}", many[0]),
                        })
                    }
                },
            }
        };
        let slug = Slug::new(&scope.org, &scope.env, &key)?;
        let allowed =
            org_all || scope.env == ENV_SUDO || repo.is_some_and(|r| r.allows(&scope.env, &key));
        let mut a = Attempt::new(slug.as_str().into(), &key, &scope.env, Status::Absent);
        if let Some(var) = optional_if_has {
            a.waived = std::env::var_os(&var).is_some();
        }
        if !allowed {
            // Same answer whether or not this host has the key: nothing is looked up.
            a.reason = Some(format!(
                "not declared for env {} in the repo manifest",
                scope.env
            ));
            let flags = super::key_flags(&key, &scope.env, &scope.org, owner);
            a.fix = Some(format!("keyrack set {flags}"));
        } else {
            lookups.push((attempts.len(), slug));
        }
        attempts.push(a);
    }

    if lookups.is_empty() {
        return Ok(attempts);
    }
    let client = Client::new(home);
    let answers = client
        .get(lookups.iter().map(|(_, s)| s.clone()).collect())?
        .unwrap_or_else(|| vec![None; lookups.len()]);
    for ((idx, slug), grant) in lookups.into_iter().zip(answers) {
        let a = &mut attempts[idx];
        let (secret, vault, expires_at, granted_by) = match grant {
            Some(g) => {
                let by = (g.slug != slug).then(|| g.slug.to_string());
                (Some(g.secret), Some(g.vault), g.expires_at, by)
            }
            None => match os_envvar::read(slug.key()) {
                Some(v) => (Some(v), Some(VaultKind::OsEnvvar), None, None),
                None => (None, None, None, None),
            },
        };
        match secret {
            Some(value) => {
                a.vault = vault;
                a.expires_at = expires_at;
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
                let flags = super::key_flags(slug.key(), slug.env(), slug.org(), owner);
                let marked = home.inventory_marker(&slug).exists()
                    || home.inventory_marker(&slug.with_env_all()).exists();
                if marked {
                    a.status = Status::Locked;
                    a.reason = Some("set on this host, not unlocked".into());
                    a.fix = Some(format!("keyrack unlock {flags}"));
                } else {
                    a.status = Status::Absent;
                    a.reason = Some("not set on this host".into());
                    a.fix = Some(format!("keyrack set {flags}"));
                }
            }
        }
    }
    Ok(attempts)
}

/// Whether every attempt is granted (or waived by `is-optional-if-has`).
pub fn all_satisfied(attempts: &[Attempt]) -> bool {
    attempts
        .iter()
        .all(|a| a.status == Status::Granted || a.waived)
}
