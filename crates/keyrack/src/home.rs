//! The keyrack home (`$KEYRACK_HOME`, default `~/.keyrack`) and where each file lives in it.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::slug::{Owner, Slug};

/// The keyrack home directory of one owner.
#[derive(Clone, Debug)]
pub struct Home {
    root: PathBuf,
    owner: Owner,
}

impl Home {
    /// Resolves the home from `$KEYRACK_HOME`, else `$HOME/.keyrack`.
    pub(crate) fn from_env(owner: Owner) -> Result<Self> {
        let root = match std::env::var_os("KEYRACK_HOME") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => user_home()?.join(".keyrack"),
        };
        Ok(Home { root, owner })
    }

    /// A home at an explicit path.
    pub fn at(root: impl Into<PathBuf>, owner: Owner) -> Self {
        Home {
            root: root.into(),
            owner,
        }
    }

    /// The home directory itself.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// The owner this home is scoped to.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// `host.age` or `host.<owner>.age`.
    pub fn host_manifest(&self) -> PathBuf {
        match self.owner.name() {
            None => self.root.join("host.age"),
            Some(o) => self.root.join(format!("host.{o}.age")),
        }
    }

    /// The lock file that serialises writers of this owner's files.
    pub(crate) fn lock_file(&self) -> PathBuf {
        self.root.join(format!(".lock.{}", self.owner.label()))
    }

    /// `vault/<vault>/<owner>/`.
    pub(crate) fn vault_dir(&self, vault: &str) -> PathBuf {
        self.root.join("vault").join(vault).join(self.owner.label())
    }

    /// The directories that only writers holding this owner's [`lock_file`](Self::lock_file)
    /// write to (os.direct, os.secure): under that lock, any temp file in them is a killed
    /// writer's leftover.
    pub(crate) fn lock_only_dirs(&self) -> [PathBuf; 2] {
        [self.vault_dir("os.direct"), self.vault_dir("os.secure")]
    }

    /// `inventory/<owner>/`.
    pub(crate) fn inventory_dir(&self) -> PathBuf {
        self.root.join("inventory").join(self.owner.label())
    }

    /// The inventory marker of one slug.
    pub(crate) fn inventory_marker(&self, slug: &Slug) -> PathBuf {
        self.inventory_dir().join(slug.file_stem())
    }

    /// The generated age identity (the embedded default).
    pub fn generated_identity(&self) -> PathBuf {
        self.root.join("identity.txt")
    }
}

/// The user's home directory (`$HOME`).
pub(crate) fn user_home() -> Result<PathBuf> {
    match std::env::var_os("HOME") {
        Some(h) if !h.is_empty() => Ok(PathBuf::from(h)),
        _ => Err(Error::InvalidInput {
            what: "environment",
            value: "HOME".into(),
            reason: "$HOME is not set".into(),
            hint: Some("set HOME, or set KEYRACK_HOME to keyrack's directory".into()),
        }),
    }
}
