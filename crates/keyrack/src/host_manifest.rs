//! The host manifest: which keys this host has, in which vault, encrypted to the recipients.
//!
//! Stored at `$KEYRACK_HOME/host.age` (`host.<owner>.age`) as armored age; the plaintext is JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::crypto::{self, RecipientKey};
use crate::error::{Error, Result};
use crate::fsio;
use crate::home::Home;
use crate::identity::Identity;
use crate::mech::Mech;
use crate::slug::Slug;
use crate::vault::VaultKind;

/// The current plaintext format version.
pub const VERSION: u32 = 1;

/// Someone who can decrypt this owner's files.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    /// `x25519`, `ssh-ed25519` or `ssh-rsa`.
    pub kind: String,
    /// The public key (`age1…` or `ssh-… AAAA…`).
    pub pubkey: String,
    /// A human label, unique per manifest.
    pub label: String,
    /// When it was added (RFC 3339).
    pub added_at: String,
}

/// One configured key on this host.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HostEntry {
    /// `org.env.KEY`.
    pub slug: Slug,
    /// The vault holding or referencing it.
    pub vault: VaultKind,
    /// How it is acquired.
    pub mech: Mech,
    /// The vault's external id (profile name, URI), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exid: Option<String>,
    /// The env part of the slug.
    pub env: String,
    /// The org part of the slug.
    pub org: String,
    /// Vault-specific metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    /// The longest a grant of this key may live (`1h`, `30m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<String>,
    /// When it was first set (RFC 3339).
    pub created_at: String,
    /// When it was last set (RFC 3339).
    pub updated_at: String,
}

/// The decrypted host manifest of one owner.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HostManifest {
    /// Format version.
    pub version: u32,
    /// The owner, `null` for the default owner.
    pub owner: Option<String>,
    /// Who can decrypt.
    pub recipients: Vec<Recipient>,
    /// Configured keys by slug.
    pub hosts: BTreeMap<String, HostEntry>,
}

/// Now as an RFC 3339 string (seconds precision, UTC).
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

impl HostManifest {
    /// A new manifest with one recipient.
    pub fn new(home: &Home, first: &RecipientKey, label: &str) -> Self {
        HostManifest {
            version: VERSION,
            owner: home.owner().name().map(str::to_string),
            recipients: vec![Recipient {
                kind: first.kind().into(),
                pubkey: first.to_string(),
                label: label.into(),
                added_at: now_rfc3339(),
            }],
            hosts: BTreeMap::new(),
        }
    }

    /// Whether this owner has a host manifest.
    pub fn exists(home: &Home) -> bool {
        home.host_manifest().is_file()
    }

    /// Reads and decrypts the host manifest.
    pub fn load(home: &Home, identity: &Identity) -> Result<Self> {
        let path = home.host_manifest();
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotInitialised {
                    home: home.root().to_path_buf(),
                    owner: home.owner().label().into(),
                    owner_flag: home.owner().flag(),
                })
            }
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        Self::decrypt(home, &data, identity)
    }

    /// Decrypts and decodes the content of `home`'s host manifest file (armored or binary age).
    pub fn decrypt(home: &Home, data: &[u8], identity: &Identity) -> Result<Self> {
        let path = home.host_manifest();
        let plain = crypto::decrypt(&path, data, identity).map_err(|e| match e {
            Error::CorruptFile { path, reason, .. } => Error::CorruptFile {
                hint: format!(
                    "restore {} from a backup; to start over instead: mv {0} {0}.damaged && keyrack init{} (then set its keys again)",
                    path.display(),
                    home.owner().flag()
                ),
                path,
                reason,
            },
            other => other,
        })?;
        Self::from_plaintext(home, &plain)
    }

    /// Decodes the decrypted JSON of `home`'s host manifest and checks its format version.
    pub fn from_plaintext(home: &Home, plain: &[u8]) -> Result<Self> {
        let path = home.host_manifest();
        let manifest: HostManifest =
            serde_json::from_slice(plain).map_err(|e| Error::CorruptFile {
                path: path.clone(),
                reason: format!("decrypted, but the content is not a keyrack host manifest ({e})"),
                hint: format!(
                    "restore {} from a backup, or move it aside and run keyrack init{}",
                    path.display(),
                    home.owner().flag()
                ),
            })?;
        if manifest.version > VERSION {
            return Err(Error::CorruptFile {
                path,
                reason: format!(
                    "format version {} is newer than this keyrack understands",
                    manifest.version
                ),
                hint: "upgrade keyrack".into(),
            });
        }
        Ok(manifest)
    }

    /// Encrypts to the recipients and writes atomically (0600).
    pub fn save(&self, home: &Home) -> Result<()> {
        fsio::ensure_private_dir(home.root())?;
        let json = zeroize::Zeroizing::new(
            serde_json::to_vec_pretty(self).expect("host manifest serialises"),
        );
        let sealed = crypto::encrypt(&self.recipient_keys()?, &json)?;
        fsio::write_atomic(&home.host_manifest(), &sealed, 0o600)
    }

    /// The recipients as parsed keys.
    pub fn recipient_keys(&self) -> Result<Vec<RecipientKey>> {
        self.recipients
            .iter()
            .map(|r| RecipientKey::parse(&r.pubkey))
            .collect()
    }

    /// The entry for `slug`, if set.
    pub fn entry(&self, slug: &Slug) -> Option<&HostEntry> {
        self.hosts.get(&slug.to_string())
    }
}
