//! `os.secure`: one armored age file per key at `vault/os.secure/<owner>/<h>.age`, encrypted to
//! every recipient. `age -d -i <identity> <file>` prints the payload: one JSON header line that
//! binds the file to its slug, then the secret, byte for byte:
//!
//! ```text
//! {"keyrack":"os.secure","v":1,"slug":"acme.test.XAI_API_KEY"}
//! xai-…
//! ```
//!
//! The header is checked on every read: a file that holds another key's value (two files swapped
//! or copied) or carries no header (written by hand, or by a keyrack before the binding) is that
//! key's error, with the `keyrack set` that rewrites it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{Custody, Grant, Read, Stored, Vault, VaultContext, VaultInfo, VaultKind};
use crate::crypto;
use crate::error::{Error, Result};
use crate::fsio;
use crate::grant::Mech;
use crate::home::Home;
use crate::host_manifest::{HostEntry, Meta};
use crate::identity::Identity;
use crate::secret::Secret;
use crate::slug::Slug;

/// What os.secure can do.
pub(crate) const INFO: VaultInfo = VaultInfo {
    kind: VaultKind::OsSecure,
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
    open: |ctx| Box::new(OsSecure::new(ctx)),
    open_for_set: None,
};

/// The os.secure adapter.
pub(crate) struct OsSecure<'a> {
    ctx: VaultContext<'a>,
}

/// The file that holds `slug`'s secret.
pub fn file_for(home: &Home, slug: &Slug) -> PathBuf {
    home.vault_dir("os.secure")
        .join(format!("{}.age", slug.file_stem()))
}

/// The name in the payload header.
const HEADER_NAME: &str = "os.secure";
/// The payload format this build writes and reads.
const HEADER_VERSION: u64 = 1;

/// The first line of every os.secure payload.
#[derive(Serialize, Deserialize)]
struct Header {
    keyrack: String,
    v: u64,
    slug: String,
}

/// The plaintext of `slug`'s file: the header line, then the secret.
pub(crate) fn seal_payload(slug: &Slug, secret: &Secret) -> Zeroizing<Vec<u8>> {
    let header = Header {
        keyrack: HEADER_NAME.into(),
        v: HEADER_VERSION,
        slug: slug.to_string(),
    };
    let mut out = Zeroizing::new(serde_json::to_vec(&header).expect("header serialises"));
    out.push(b'\n');
    out.extend_from_slice(secret.expose().as_bytes());
    out
}

/// The slug a decrypted payload's header binds it to, when it has a header this build reads
/// (`init --recover` learns which key a file holds from it).
pub(crate) fn payload_slug(plain: &[u8]) -> Option<String> {
    let nl = plain.iter().position(|b| *b == b'\n')?;
    let header: Header = serde_json::from_slice(&plain[..nl]).ok()?;
    (header.keyrack == HEADER_NAME && header.v == HEADER_VERSION).then_some(header.slug)
}

/// Reads the secret out of a decrypted payload, checking that it is bound to `slug`.
/// `fix` is the command that rewrites the file.
pub(crate) fn open_payload(
    path: &std::path::Path,
    slug: &Slug,
    plain: &[u8],
    fix: &str,
) -> Result<Secret> {
    let unbound = |reason: String| Error::Unbound {
        path: path.to_path_buf(),
        slug: slug.to_string(),
        reason,
        hint: format!("rewrite it with the right value: {fix}"),
    };
    let header = plain
        .iter()
        .position(|b| *b == b'\n')
        .and_then(|nl| {
            serde_json::from_slice::<Header>(&plain[..nl])
                .ok()
                .map(|h| (nl, h))
        })
        .filter(|(_, h)| h.keyrack == HEADER_NAME);
    let Some((nl, header)) = header else {
        return Err(unbound(
            "it is not bound to any key (no keyrack header: written by hand, or by a keyrack version before vault files were bound to their key)".into(),
        ));
    };
    if header.v != HEADER_VERSION {
        return Err(Error::CorruptFile {
            path: path.to_path_buf(),
            reason: format!(
                "it uses os.secure format v{}, this keyrack reads v{HEADER_VERSION}",
                header.v
            ),
            hint: format!("use the keyrack that wrote it, or rewrite it: {fix}"),
        });
    }
    if header.slug != slug.to_string() {
        return Err(unbound(format!(
            "it holds the value of {} (vault files were swapped or copied)",
            header.slug
        )));
    }
    let value = std::str::from_utf8(&plain[nl + 1..]).map_err(|_| Error::CorruptFile {
        path: path.to_path_buf(),
        reason: "the decrypted secret is not UTF-8 text".into(),
        hint: format!("set it again: {fix}"),
    })?;
    Ok(Secret::new(value.to_string()))
}

impl<'a> OsSecure<'a> {
    /// An adapter over the context's home, identity and recipients.
    pub(crate) fn new(ctx: VaultContext<'a>) -> Self {
        OsSecure { ctx }
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
        let sealed = crypto::encrypt(self.ctx.recipients, &seal_payload(slug, secret))?;
        fsio::write_atomic(&path, &sealed, 0o600)?;
        let undo_path = path.clone();
        Ok(Stored::new(None, Meta::None, move || match previous {
            Some(bytes) => fsio::write_atomic(&undo_path, &bytes, 0o600),
            None => fsio::remove_if_exists(&undo_path),
        }))
    }

    fn read(&self, entry: &HostEntry) -> Result<Read> {
        let path = file_for(self.ctx.home, &entry.slug);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Read::Lost(format!("{} is missing", path.display())))
            }
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        let plain = crypto::decrypt(&path, &data, self.identity()?)?;
        let fix = format!(
            "keyrack set {}",
            crate::slug::key_flags(
                entry.slug.key(),
                entry.slug.env(),
                entry.slug.org(),
                self.ctx.home.owner()
            )
        );
        let value = open_payload(&path, &entry.slug, &plain, &fix)?;
        Ok(Read::Granted(Grant::new(
            entry.slug.clone(),
            value,
            VaultKind::OsSecure,
            entry.mech,
        )))
    }

    fn del(&self, entry: &HostEntry) -> Result<()> {
        fsio::remove_if_exists(&file_for(self.ctx.home, &entry.slug))
    }
}
