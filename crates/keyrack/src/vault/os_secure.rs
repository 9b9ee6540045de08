//! `os.secure`: one armored age file per key at `vault/os.secure/<owner>/<h>.age`, encrypted to
//! every recipient. `age -d -i <identity> <file>` prints the secret.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use super::{Grant, Stored, Unlocked, Vault, VaultContext, VaultKind};
use crate::crypto::{self, RecipientKey};
use crate::error::{Error, Result};
use crate::fsio;
use crate::home::Home;
use crate::host_manifest::HostEntry;
use crate::identity::Identity;
use crate::mech::Mech;
use crate::secret::Secret;
use crate::slug::Slug;

/// The os.secure adapter.
pub struct OsSecure<'a> {
    ctx: VaultContext<'a>,
    unlocked: RefCell<HashMap<Slug, Secret>>,
}

/// The file that holds `slug`'s secret.
pub fn file_for(home: &Home, slug: &Slug) -> PathBuf {
    home.vault_dir("os.secure")
        .join(format!("{}.age", slug.file_stem()))
}

impl<'a> OsSecure<'a> {
    /// An adapter over the context's home, identity and recipients.
    pub fn new(ctx: VaultContext<'a>) -> Self {
        OsSecure {
            ctx,
            unlocked: RefCell::new(HashMap::new()),
        }
    }

    fn identity(&self) -> Result<&'a Identity> {
        self.ctx.identity.ok_or_else(|| Error::Identity {
            path: self.ctx.home.generated_identity(),
            reason: "os.secure needs an identity to decrypt".into(),
            hint: "pass --identity <path>".into(),
        })
    }
}

impl Vault for OsSecure<'_> {
    fn kind(&self) -> VaultKind {
        VaultKind::OsSecure
    }

    fn store(&self, slug: &Slug, _mech: Mech, secret: &Secret) -> Result<Stored> {
        let path = file_for(self.ctx.home, slug);
        fsio::ensure_private_dir(path.parent().expect("vault file has a parent"))?;
        let previous = match std::fs::read(&path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        let sealed = crypto::encrypt(self.ctx.recipients, secret.expose().as_bytes())?;
        fsio::write_atomic(&path, &sealed, 0o600)?;
        let undo_path = path.clone();
        Ok(Stored::new(None, BTreeMap::new(), move || match previous {
            Some(bytes) => fsio::write_atomic(&undo_path, &bytes, 0o600),
            None => fsio::remove_if_exists(&undo_path),
        }))
    }

    fn is_unlocked(&self, entry: &HostEntry) -> bool {
        self.unlocked.borrow().contains_key(&entry.slug)
    }

    fn unlock(&self, entry: &HostEntry) -> Result<Unlocked> {
        let path = file_for(self.ctx.home, &entry.slug);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Unlocked::Lost(format!("{} is missing", path.display())))
            }
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        let plain = crypto::decrypt(&path, &data, self.identity()?)?;
        let value = String::from_utf8(plain.to_vec()).map_err(|_| Error::CorruptFile {
            path: path.clone(),
            reason: "the decrypted secret is not UTF-8 text".into(),
            hint: format!(
                "set it again: keyrack set --key {} --env {}",
                entry.slug.key(),
                entry.env
            ),
        })?;
        self.unlocked
            .borrow_mut()
            .insert(entry.slug.clone(), Secret::new(value));
        Ok(Unlocked::Ready)
    }

    fn get(&self, entry: &HostEntry) -> Option<Grant> {
        self.unlocked.borrow().get(&entry.slug).map(|s| Grant {
            slug: entry.slug.clone(),
            secret: s.clone(),
            vault: VaultKind::OsSecure,
            mech: entry.mech,
            expires_at: None,
            aws: None,
        })
    }

    fn relock(&self, entry: &HostEntry) -> Result<()> {
        self.unlocked.borrow_mut().remove(&entry.slug);
        Ok(())
    }

    fn del(&self, entry: &HostEntry) -> Result<()> {
        self.unlocked.borrow_mut().remove(&entry.slug);
        fsio::remove_if_exists(&file_for(self.ctx.home, &entry.slug))
    }
}

/// Re-encrypts every os.secure file of `entries` to `recipients`, so recipient changes reach
/// every secret (not only the host manifest). Returns how many files were rewritten.
pub fn reencrypt_all<'e>(
    home: &Home,
    identity: &Identity,
    recipients: &[RecipientKey],
    entries: impl Iterator<Item = &'e HostEntry>,
) -> Result<usize> {
    let mut count = 0;
    for entry in entries.filter(|e| e.vault == VaultKind::OsSecure) {
        let path = file_for(home, &entry.slug);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        let plain = crypto::decrypt(&path, &data, identity)?;
        let sealed = crypto::encrypt(recipients, &plain)?;
        fsio::write_atomic(&path, &sealed, 0o600)?;
        count += 1;
    }
    Ok(count)
}
