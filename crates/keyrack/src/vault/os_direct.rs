//! `os.direct`: plaintext JSON map slug → value at `vault/os.direct/<owner>/direct.json`, 0600.
//! For values that are not secret enough to encrypt, or machines without an identity.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{Custody, Grant, Read, Stored, Vault, VaultContext, VaultInfo, VaultKind};
use crate::error::{Error, Result};
use crate::fsio;
use crate::grant::Mech;
use crate::home::Home;
use crate::host_manifest::{HostEntry, Meta};
use crate::secret::Secret;
use crate::slug::Slug;

type Store = BTreeMap<String, Secret>;

/// What os.direct can do.
pub(crate) const INFO: VaultInfo = VaultInfo {
    kind: VaultKind::OsDirect,
    exid_with: &[],
    location_with: &[],
    writable: true,
    lives_in_daemon: false,
    custody: Custody::Owns,
    owns_with: &[],
    mechs: &[Mech::Replica, Mech::GithubApp],
    default_mech: Mech::Replica,
    default_for_keys: &[],
    custody_of_entry: None,
    reads_with_session_grants: false,
    set_flags: &[],
    open: |ctx| Box::new(OsDirect::new(ctx)),
    open_for_set: None,
};

/// The os.direct adapter.
pub(crate) struct OsDirect<'a> {
    home: &'a Home,
}

fn file(home: &Home) -> PathBuf {
    home.vault_dir("os.direct").join("direct.json")
}

fn read_store(home: &Home) -> Result<Store> {
    let path = file(home);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::CorruptFile {
            path: path.clone(),
            reason: format!("not a JSON object of strings ({e})"),
            hint: format!("fix or remove {} and set its keys again", path.display()),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Store::new()),
        Err(e) => Err(Error::io("read", &path, e)),
    }
}

fn write_store(home: &Home, store: &Store) -> Result<()> {
    let path = file(home);
    fsio::ensure_private_dir(path.parent().expect("has parent"))?;
    let json = zeroize::Zeroizing::new(serde_json::to_vec_pretty(store).expect("serialises"));
    fsio::write_atomic(&path, &json, 0o600)
}

impl<'a> OsDirect<'a> {
    /// An adapter over the context's home.
    pub(crate) fn new(ctx: VaultContext<'a>) -> Self {
        OsDirect { home: ctx.home }
    }
}

impl Vault for OsDirect<'_> {
    fn kind(&self) -> VaultKind {
        VaultKind::OsDirect
    }

    fn store(&self, slug: &Slug, _mech: Mech, secret: &Secret) -> Result<Stored> {
        let mut store = read_store(self.home)?;
        let previous = store.insert(slug.to_string(), secret.clone());
        write_store(self.home, &store)?;
        let home = self.home.clone();
        let key = slug.to_string();
        Ok(Stored::new(None, Meta::None, move || {
            let mut store = read_store(&home)?;
            match previous {
                Some(v) => store.insert(key, v),
                None => store.remove(&key),
            };
            write_store(&home, &store)
        }))
    }

    fn read(&self, entry: &HostEntry) -> Result<Read> {
        Ok(
            match read_store(self.home)?.remove(&entry.slug.to_string()) {
                Some(v) => Read::Granted(Grant::new(
                    entry.slug.clone(),
                    v,
                    VaultKind::OsDirect,
                    entry.mech,
                )),
                None => Read::Lost(format!("{} has no value for it", file(self.home).display())),
            },
        )
    }

    fn del(&self, entry: &HostEntry) -> Result<()> {
        let mut store = read_store(self.home)?;
        if store.remove(&entry.slug.to_string()).is_some() {
            write_store(self.home, &store)?;
        }
        Ok(())
    }
}
