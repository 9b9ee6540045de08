//! Scopes: which org and env a key request means — the one resolver behind `get`, `set`, `del`
//! and `unlock`.
//!
//! Explicit flags come first: `--org @all` is a machine-wide key (env `all` unless given); any
//! other `--org` must be the repository's; an explicit `--env` must be declared by the repo
//! manifest. Without `--env`, the envs that declare the key are the candidates: `set` and `del`
//! need exactly one ([`Scope::resolve`], [`Infer`]), `get` takes the one unlocked among several
//! ([`Scope::lookup`]), `unlock` takes them all ([`Scope::resolve_all`]).

use std::path::Path;

use super::{did_you_mean, env_by_unlocked, env_choices, list_or_none};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::repo_manifest::allowlist::Allowlist;
use crate::repo_manifest::RepoManifest;
use crate::slug::{self, Slug, ENV_ALL, ENV_SUDO, ORG_ALL};

/// What scope resolution needs to know of a repo manifest.
pub(crate) trait Declarations {
    /// The manifest's org.
    fn org(&self) -> &str;
    /// The manifest file (for messages).
    fn path(&self) -> &Path;
    /// Whether it declares `env` (or `all`, when it has an `env.all` section).
    fn has_env(&self, env: &str) -> bool;
    /// The envs it declares.
    fn env_names(&self) -> Vec<String>;
    /// The envs that declare `key` (an `env.all` key is declared by every env).
    fn envs_declaring(&self, key: &str) -> Vec<String>;
}

impl Declarations for RepoManifest {
    fn org(&self) -> &str {
        &self.org
    }
    fn path(&self) -> &Path {
        &self.path
    }
    fn has_env(&self, env: &str) -> bool {
        RepoManifest::has_env(self, env)
    }
    fn env_names(&self) -> Vec<String> {
        RepoManifest::env_names(self)
    }
    fn envs_declaring(&self, key: &str) -> Vec<String> {
        RepoManifest::envs_declaring(self, key)
    }
}

impl Declarations for Allowlist {
    fn org(&self) -> &str {
        Allowlist::org(self)
    }
    fn path(&self) -> &Path {
        Allowlist::path(self)
    }
    fn has_env(&self, env: &str) -> bool {
        Allowlist::has_env(self, env)
    }
    fn env_names(&self) -> Vec<String> {
        Allowlist::env_names(self)
    }
    fn envs_declaring(&self, key: &str) -> Vec<String> {
        Allowlist::envs_declaring(self, key)
    }
}

/// A repo manifest, if there is one, as what the resolver reads of it.
pub(crate) fn declarations(repo: Option<&RepoManifest>) -> Option<&dyn Declarations> {
    repo.map(|r| r as &dyn Declarations)
}

/// The org and env a key request resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The org (`@all` for machine-wide keys).
    pub org: String,
    /// The env.
    pub env: String,
}

/// How [`Scope::resolve`] picks the env when `--env` is not given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Infer {
    /// `set`: the one env that declares the key; a key declared nowhere goes to the repo's one
    /// env.
    ForSet,
    /// `del`: the one env that declares the key.
    Declared,
}

/// What a request leaves open once the flags are checked.
enum Candidates<'r> {
    /// The flags decided.
    Fixed(Scope),
    /// No `--env`: the envs of `org` that declare the key in `repo`.
    Declared {
        repo: &'r dyn Declarations,
        org: String,
        envs: Vec<String>,
    },
}

impl Scope {
    /// Resolves one key request to one scope (`set`, `del`): explicit flags first, then the
    /// repo manifest, `infer` choosing among the envs that declare the key.
    pub(crate) fn resolve(
        repo: Option<&dyn Declarations>,
        key: &str,
        env: Option<&str>,
        org: Option<&str>,
        infer: Infer,
    ) -> Result<Scope> {
        let (repo, org, envs) = match candidates(repo, key, env, org)? {
            Candidates::Fixed(scope) => return Ok(scope),
            Candidates::Declared { repo, org, envs } => (repo, org, envs),
        };
        let envs = if envs.is_empty() && infer == Infer::ForSet {
            repo.env_names()
        } else {
            envs
        };
        match envs.as_slice() {
            [one] => Ok(Scope {
                org,
                env: one.clone(),
            }),
            [] => Err(Error::EnvAmbiguous {
                key: key.into(),
                reason: format!("{} declares no env", repo.path().display()),
                hint: format!("add `env.test: []` to {}", repo.path().display()),
            }),
            many => Err(Error::EnvAmbiguous {
                key: key.into(),
                reason: format!("it could be any of: {}", many.join(", ")),
                hint: env_choices(many),
            }),
        }
    }

    /// Resolves one key request to the scope to look up (`get`): as [`Scope::resolve`], but
    /// among several envs that declare the key the one unlocked in `home`'s daemon, and `None`
    /// for a key no env declares (the caller's `absent` row).
    pub(crate) fn lookup(
        repo: Option<&dyn Declarations>,
        key: &str,
        env: Option<&str>,
        org: Option<&str>,
        home: &Home,
    ) -> Result<Option<Scope>> {
        let (org, envs) = match candidates(repo, key, env, org)? {
            Candidates::Fixed(scope) => return Ok(Some(scope)),
            Candidates::Declared { org, envs, .. } => (org, envs),
        };
        let env = match envs.as_slice() {
            [] => return Ok(None),
            [one] => one.clone(),
            many => env_by_unlocked(home, &org, key, many)?,
        };
        Ok(Some(Scope { org, env }))
    }

    /// Resolves one key request to every scope it may mean (`unlock --key K` without `--env`:
    /// each env that declares the key; none when no env does).
    pub(crate) fn resolve_all(
        repo: Option<&dyn Declarations>,
        key: &str,
        env: Option<&str>,
        org: Option<&str>,
    ) -> Result<Vec<Scope>> {
        Ok(match candidates(repo, key, env, org)? {
            Candidates::Fixed(scope) => vec![scope],
            Candidates::Declared { org, envs, .. } => envs
                .into_iter()
                .map(|env| Scope {
                    org: org.clone(),
                    env,
                })
                .collect(),
        })
    }

    /// The slug of `key` in this scope.
    pub(crate) fn slug(&self, key: &str) -> Result<Slug> {
        Slug::new(&self.org, &self.env, key)
    }

    /// Whether keys of this scope never go into a repo manifest (machine-wide, or `sudo`).
    pub(crate) fn is_host_only(&self) -> bool {
        self.org == ORG_ALL || self.env == ENV_SUDO
    }
}

/// Checks the names and the flags against the repo manifest.
fn candidates<'r>(
    repo: Option<&'r dyn Declarations>,
    key: &str,
    env: Option<&str>,
    org: Option<&str>,
) -> Result<Candidates<'r>> {
    slug::validate_key(key)?;
    if let Some(e) = env {
        slug::validate_env(e)?;
    }
    if org == Some(ORG_ALL) {
        return Ok(Candidates::Fixed(Scope {
            org: ORG_ALL.into(),
            env: env.unwrap_or(ENV_ALL).into(),
        }));
    }
    let repo = repo.ok_or_else(|| Error::NoRepoManifest {
        start: std::env::current_dir().unwrap_or_default(),
    })?;
    if let Some(o) = org.filter(|o| *o != repo.org()) {
        return Err(Error::InvalidInput {
            what: "org",
            value: o.into(),
            reason: format!(
                "this repository's org is '{}' ({})",
                repo.org(),
                repo.path().display()
            ),
            hint: Some("drop --org, or pass --org @all for a machine-wide key".into()),
        });
    }
    Ok(match env {
        Some(e) if !repo.has_env(e) => return Err(unknown_env_in(repo, e)),
        Some(e) => Candidates::Fixed(Scope {
            org: repo.org().into(),
            env: e.into(),
        }),
        None => Candidates::Declared {
            repo,
            org: repo.org().into(),
            envs: repo.envs_declaring(key),
        },
    })
}

/// The error for an env the repo manifest does not declare.
pub(crate) fn unknown_env_in(repo: &dyn Declarations, env: &str) -> Error {
    let names = repo.env_names();
    let path = repo.path().display();
    let hint = match did_you_mean(env, names.iter().map(String::as_str)) {
        Some(near) => {
            format!("did you mean --env {near}? Otherwise add a section `env.{env}: []` to {path}")
        }
        None => format!("use one of those, or add a section `env.{env}: []` to {path}"),
    };
    Error::InvalidInput {
        what: "env",
        value: env.into(),
        reason: format!("{path} declares envs: {}", list_or_none(&names)),
        hint: Some(hint),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(yaml: &str) -> (tempfile::TempDir, RepoManifest) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        let path = dir.path().join("keyrack.yml");
        std::fs::write(&path, yaml).unwrap();
        let m = RepoManifest::load(&path).unwrap();
        (dir, m)
    }

    fn scope(org: &str, env: &str) -> Option<Scope> {
        Some(Scope {
            org: org.into(),
            env: env.into(),
        })
    }

    #[test]
    fn flags_first_then_the_manifest() {
        let (_d, r) = repo("org: acme\nenv.test: [A, B]\nenv.prod: [B]\n");
        let r: &dyn Declarations = &r;
        let one = |key, env, org, infer| Scope::resolve(Some(r), key, env, org, infer).ok();
        assert_eq!(one("A", None, None, Infer::Declared), scope("acme", "test"));
        assert_eq!(
            one("X", None, Some("@all"), Infer::Declared),
            scope("@all", "all")
        );
        assert_eq!(
            one("B", Some("prod"), Some("acme"), Infer::Declared),
            scope("acme", "prod")
        );
        let one = |key, env, org, infer| Scope::resolve(Some(r), key, env, org, infer);
        // the wrong org, an undeclared env, a bad name: refused the same way for every command
        for pick in [Infer::ForSet, Infer::Declared] {
            assert!(matches!(
                one("A", None, Some("other"), pick),
                Err(Error::InvalidInput { what: "org", .. })
            ));
            assert!(matches!(
                one("A", Some("tset"), None, pick),
                Err(Error::InvalidInput { what: "env", hint: Some(h), .. }) if h.contains("did you mean --env test")
            ));
            assert!(matches!(
                one("A.B", None, None, pick),
                Err(Error::InvalidInput { what: "key", .. })
            ));
        }
        // several envs: set and del ask; unlock takes them all
        assert!(matches!(
            one("B", None, None, Infer::Declared),
            Err(Error::EnvAmbiguous { .. })
        ));
        assert_eq!(
            Scope::resolve_all(Some(r), "B", None, None).unwrap(),
            vec![
                scope("acme", "prod").unwrap(),
                scope("acme", "test").unwrap()
            ]
        );
        assert!(Scope::resolve_all(Some(r), "NOWHERE", None, None)
            .unwrap()
            .is_empty());
        // no repository: only machine-wide keys
        assert!(matches!(
            Scope::resolve(None, "A", None, None, Infer::Declared),
            Err(Error::NoRepoManifest { .. })
        ));
    }

    #[test]
    fn a_key_declared_nowhere() {
        let (_d, one_env) = repo("org: acme\nenv.test: [A]\n");
        let (_e, two_envs) = repo("org: acme\nenv.test: [A]\nenv.prod: []\n");
        let home = Home::at("/nonexistent/kr", crate::slug::Owner::default());
        let r1: &dyn Declarations = &one_env;
        let r2: &dyn Declarations = &two_envs;
        // set puts it in the only env, and asks when there are several
        assert_eq!(
            Scope::resolve(Some(r1), "NEW", None, None, Infer::ForSet).ok(),
            scope("acme", "test")
        );
        assert!(matches!(
            Scope::resolve(Some(r2), "NEW", None, None, Infer::ForSet),
            Err(Error::EnvAmbiguous { .. })
        ));
        // del needs it declared; get resolves it to nothing (an absent row)
        assert!(matches!(
            Scope::resolve(Some(r1), "NEW", None, None, Infer::Declared),
            Err(Error::EnvAmbiguous { .. })
        ));
        assert_eq!(
            Scope::lookup(Some(r1), "NEW", None, None, &home).unwrap(),
            None
        );
        assert_eq!(
            Scope::lookup(Some(r1), "A", None, None, &home).unwrap(),
            scope("acme", "test")
        );
    }
}
