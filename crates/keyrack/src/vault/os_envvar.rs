//! `os.envvar`: reads `KEY` from the process environment (the CI path). Nothing is stored, so
//! `set` and `del` are refused.

use super::{Custody, Grant, Read, Stored, Vault, VaultInfo, VaultKind};
use crate::error::{Error, Result};
use crate::grant::Mech;
use crate::host_manifest::HostEntry;
use crate::secret::Secret;
use crate::slug::Slug;

/// What os.envvar can do: read only.
pub(crate) const INFO: VaultInfo = VaultInfo {
    kind: VaultKind::OsEnvvar,
    exid_with: &[],
    location_with: &[],
    writable: false,
    lives_in_daemon: false,
    custody: Custody::References,
    owns_with: &[],
    mechs: &[],
    default_mech: Mech::Replica,
    default_for_keys: &[],
    custody_of_entry: None,
    reads_with_session_grants: false,
    set_flags: &[],
    open: |_| Box::new(OsEnvvar),
    open_for_set: None,
};

/// The os.envvar adapter.
pub(crate) struct OsEnvvar;

/// Reads `key` from the process environment, if set to valid UTF-8.
pub(crate) fn read(key: &str) -> Option<Secret> {
    std::env::var(key).ok().map(Secret::new)
}

fn refused(operation: &'static str, key: &str) -> Error {
    Error::VaultRefused {
        vault: "os.envvar".into(),
        operation,
        reason: "it only reads the process environment; there is nothing to store".into(),
        hint: format!(
            "export {key}=… in the environment that runs keyrack, or use --vault os.secure"
        ),
    }
}

impl Vault for OsEnvvar {
    fn kind(&self) -> VaultKind {
        VaultKind::OsEnvvar
    }

    fn store(&self, slug: &Slug, _mech: Mech, _secret: &Secret) -> Result<Stored> {
        Err(refused("set", slug.key()))
    }

    fn read(&self, entry: &HostEntry) -> Result<Read> {
        Ok(match read(entry.slug.key()) {
            Some(secret) => Read::Granted(Grant::new(
                entry.slug.clone(),
                secret,
                VaultKind::OsEnvvar,
                entry.mech,
            )),
            None => Read::Lost(format!("{} is not in the environment", entry.slug.key())),
        })
    }

    fn del(&self, entry: &HostEntry) -> Result<()> {
        Err(refused("del", entry.slug.key()))
    }
}
