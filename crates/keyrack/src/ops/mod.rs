//! Operations: what each keyrack command does, as library calls returning data to render.
//!
//! - [`init`], [`set`], [`list`], [`del`], [`recipient`]: change or read this host's keys
//!   (decrypt the host manifest).
//! - [`unlock`]: pull keys out of vaults into the daemon; relock and status.
//! - [`get`]: the hot path (`get`, `source`, `exec`): daemon round trip, never decrypts.

pub mod aws;
pub mod del;
pub mod get;
pub mod init;
pub mod list;
pub mod recipient;
pub mod set;
pub mod unlock;

use std::cell::OnceCell;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fsio::WriteLock;
use crate::home::Home;
use crate::host_manifest::HostManifest;
use crate::identity::{self, Identity};
use crate::repo_manifest::allowlist::Allowlist;
use crate::repo_manifest::RepoManifest;
use crate::slug::{self, Owner, ENV_ALL, ENV_SUDO, ORG_ALL};

/// The context every operation runs in: the owner's home, the identity (loaded lazily: the
/// hot path never loads it) and the working directory for manifest discovery.
pub struct Rack {
    home: Home,
    identity_path: Option<PathBuf>,
    identity: OnceCell<Identity>,
    cwd: PathBuf,
}

impl Rack {
    /// A rack for `owner`, from the environment (`KEYRACK_HOME`, `HOME`, cwd).
    pub fn from_env(owner: Owner, identity: Option<PathBuf>) -> Result<Self> {
        let cwd =
            std::env::current_dir().map_err(|e| Error::io("read", "the current directory", e))?;
        Ok(Rack {
            home: Home::from_env(owner)?,
            identity_path: identity,
            identity: OnceCell::new(),
            cwd,
        })
    }

    /// A rack over explicit paths (tests, embedding).
    pub fn new(home: Home, identity: Option<PathBuf>, cwd: PathBuf) -> Self {
        Rack {
            home,
            identity_path: identity,
            identity: OnceCell::new(),
            cwd,
        }
    }

    /// The owner's home.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// The working directory.
    pub fn cwd(&self) -> &Path {
        &self.cwd
    }

    /// The identity, loaded on first use (may ask for a passphrase).
    pub fn identity(&self) -> Result<&Identity> {
        if let Some(id) = self.identity.get() {
            return Ok(id);
        }
        let id = identity::load_discovered(self.identity_path.as_deref(), &self.home)?;
        Ok(self.identity.get_or_init(|| id))
    }

    pub(crate) fn set_identity(&self, id: Identity) {
        let _ = self.identity.set(id);
    }

    pub(crate) fn explicit_identity(&self) -> Option<&Path> {
        self.identity_path.as_deref()
    }

    /// Decrypts the host manifest.
    pub fn host(&self) -> Result<HostManifest> {
        if !HostManifest::exists(&self.home) {
            return Err(Error::NotInitialised {
                home: self.home.root().to_path_buf(),
                owner: self.home.owner().label().into(),
                owner_flag: self.home.owner().flag(),
            });
        }
        HostManifest::load(&self.home, self.identity()?)
    }

    /// The context vaults run in: this rack's home and identity, `recipients` for new files.
    pub fn vault_context<'a>(
        &'a self,
        recipients: &'a [crate::crypto::RecipientKey],
        login: crate::aws::login::LoginOptions,
    ) -> Result<crate::vault::VaultContext<'a>> {
        Ok(crate::vault::VaultContext {
            home: &self.home,
            identity: Some(self.identity()?),
            recipients,
            login,
        })
    }

    /// Takes the owner's writer lock.
    pub fn lock(&self) -> Result<WriteLock> {
        crate::fsio::ensure_private_dir(self.home.root())?;
        WriteLock::acquire(&self.home.lock_file())
    }

    /// The repo manifest above the working directory, if there is one.
    pub fn repo(&self) -> Result<Option<RepoManifest>> {
        match RepoManifest::find(&self.cwd)? {
            Some(p) => RepoManifest::load(&p).map(Some),
            None => Ok(None),
        }
    }

    /// The allowlist of the repo manifest above the working directory, if there is one
    /// (cached: a warm call parses no YAML). What `get`, `source` and `exec` check.
    pub fn allowlist(&self) -> Result<Option<Allowlist>> {
        Allowlist::discover(&self.home, &self.cwd)
    }
}

/// The org, env and manifest a key request resolves to.
#[derive(Debug, Clone)]
pub struct Scope {
    /// The org (`@all` for machine-wide keys).
    pub org: String,
    /// The env.
    pub env: String,
}

/// Resolves org and env for a single key: explicit flags first, then the repo manifest.
pub fn resolve_scope(
    repo: Option<&RepoManifest>,
    key: &str,
    env: Option<&str>,
    org: Option<&str>,
    for_set: bool,
) -> Result<Scope> {
    slug::validate_key(key)?;
    if let Some(e) = env {
        slug::validate_env(e)?;
    }
    if org == Some(ORG_ALL) {
        return Ok(Scope {
            org: ORG_ALL.into(),
            env: env.unwrap_or(ENV_ALL).into(),
        });
    }
    let repo = repo.ok_or_else(|| Error::NoRepoManifest {
        start: std::env::current_dir().unwrap_or_default(),
    })?;
    if let Some(o) = org {
        if o != repo.org {
            return Err(Error::InvalidInput {
                what: "org",
                value: o.into(),
                reason: format!(
                    "this repository's org is '{}' ({})",
                    repo.org,
                    repo.path.display()
                ),
                hint: Some("drop --org, or pass --org @all for a machine-wide key".into()),
            });
        }
    }
    let env = match env {
        Some(e) => {
            if !repo.has_env(e) {
                return Err(unknown_env(repo, e));
            }
            e.to_string()
        }
        None => infer_env(repo, key, for_set)?,
    };
    Ok(Scope {
        org: repo.org.clone(),
        env,
    })
}

/// The error for an env the repo manifest does not declare.
pub fn unknown_env(repo: &RepoManifest, env: &str) -> Error {
    unknown_env_at(&repo.path, &repo.env_names(), env)
}

/// The error for an env the manifest at `path`, declaring `env_names`, does not declare.
pub fn unknown_env_at(path: &Path, env_names: &[String], env: &str) -> Error {
    Error::InvalidInput {
        what: "env",
        value: env.into(),
        reason: format!(
            "{} declares envs: {}",
            path.display(),
            list_or_none(env_names)
        ),
        hint: Some(format!(
            "use one of those, or add a section `env.{env}: []` to {}",
            path.display()
        )),
    }
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(", ")
    }
}

fn infer_env(repo: &RepoManifest, key: &str, for_set: bool) -> Result<String> {
    let declaring = repo.envs_declaring(key);
    let candidates = if declaring.is_empty() && for_set {
        repo.env_names()
    } else {
        declaring
    };
    match candidates.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::EnvAmbiguous {
            key: key.into(),
            reason: format!("{} declares no env", repo.path.display()),
            hint: format!("add `env.test: []` to {}", repo.path.display()),
        }),
        many => Err(Error::EnvAmbiguous {
            key: key.into(),
            reason: format!("it could be any of: {}", many.join(", ")),
            hint: format!("pass --env, e.g. --env {}", many[0]),
        }),
    }
}

/// Whether `env` never goes into a repo manifest.
pub fn is_host_only(scope: &Scope) -> bool {
    scope.org == ORG_ALL || scope.env == ENV_SUDO
}

/// The `--env`/`--key`/`--owner` flags that select one key again in a fix command.
pub fn key_flags(key: &str, env: &str, org: &str, owner: &Owner) -> String {
    let mut s = format!("--key {key} --env {env}");
    if org == ORG_ALL {
        s.push_str(" --org @all");
    }
    s.push_str(&owner.flag());
    s
}
