//! `keyrack recipient add|list|remove`: who can decrypt. Every change re-encrypts the host
//! manifest and **every** file keyrack encrypted for the owner.
//!
//! Which files those are is decided by data, not by a list of vaults: every `*.age` file under
//! `vault/<any vault>/<owner>/` (os.secure's key files, aws.config's SSO tokens and client
//! registrations, and whatever a future vault writes there). All of them are decrypted first,
//! so a file that cannot be read aborts the change before anything is rewritten. The payload is
//! re-encrypted byte for byte, so whatever a vault binds inside it stays bound.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Rack;
use crate::aws::names::{is_unsafe_char, shown};
use crate::crypto::{self, RecipientKey};
use crate::daemon::client::Client;
use crate::daemon::protocol::RelockScope;
use crate::error::{Error, Result};
use crate::fsio;
use crate::home::Home;
use crate::host_manifest::{self, Recipient};
use crate::identity::Identity;
use crate::slug::Slug;
use crate::vault::VaultKind;

/// What a recipient change did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecipientChange {
    /// The recipient added or removed.
    pub recipient: Recipient,
    /// How many vault files were re-encrypted in all (the host manifest is always re-encrypted
    /// too and not counted here).
    pub reencrypted_files: usize,
    /// Per vault, how many of its encrypted files were re-encrypted (every vault this build
    /// knows, and any other vault directory found, 0 when it has none).
    pub reencrypted: BTreeMap<String, usize>,
    /// The keys relocked in the session daemon because it keeps files encrypted to the old set
    /// current (an aws.config grant rewrites its SSO token copy at each refresh): unlocked
    /// again, they start from the re-encrypted copy (no browser).
    pub relocked: Vec<String>,
}

/// The longest recipient label.
pub(crate) const MAX_LABEL_CHARS: usize = 64;

/// Checks a recipient label: plain, printable text (it is printed on terminals and written to
/// the host manifest), 1 to [`MAX_LABEL_CHARS`] characters, no control, bidi or invisible
/// formatting characters.
pub(crate) fn validate_label(label: &str) -> Result<()> {
    let refuse = |reason: String| Error::InvalidInput {
        what: "label",
        value: shown(label),
        reason,
        hint: Some(
            "pass a plain label of letters, digits and punctuation, e.g. --label laptop".into(),
        ),
    };
    if label.trim().is_empty() {
        return Err(Error::InvalidInput {
            what: "label",
            value: label.into(),
            reason: "a label is required".into(),
            hint: Some("pass --label <name>, e.g. --label laptop".into()),
        });
    }
    if let Some(c) = label.chars().find(|c| is_unsafe_char(*c)) {
        let kind = match c {
            '\n' | '\r' | '\u{2028}' | '\u{2029}' => "a line break",
            '\u{1b}' => "a terminal escape",
            '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{061C}' => "a bidi control character",
            c if c.is_control() => "a control character",
            _ => "an invisible formatting character",
        };
        return Err(refuse(format!(
            "it contains {kind} (U+{:04X}); labels are shown in terminals and must be plain text",
            c as u32
        )));
    }
    if label.trim() != label {
        return Err(refuse("it starts or ends with a space".into()));
    }
    if label.chars().count() > MAX_LABEL_CHARS {
        return Err(refuse(format!(
            "it is longer than {MAX_LABEL_CHARS} characters"
        )));
    }
    Ok(())
}

/// Every encrypted file of the owner's vaults, with its vault's name: each `*.age` under
/// `vault/<vault>/<owner>/` (recursively), for every vault this build knows and every other
/// vault directory present. A symlink is refused: keyrack never writes one there.
pub(crate) fn encrypted_vault_files(home: &Home) -> Result<Vec<(String, PathBuf)>> {
    let root = home.root().join("vault");
    let mut vaults: Vec<OsString> = VaultKind::ALL
        .iter()
        .map(|k| OsString::from(k.as_str()))
        .collect();
    match std::fs::read_dir(&root) {
        Ok(rd) => {
            for e in rd {
                let e = e.map_err(|e| Error::io("list", &root, e))?;
                if !vaults.contains(&e.file_name()) {
                    vaults.push(e.file_name());
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("list", &root, e)),
    }
    let mut out = Vec::new();
    for v in vaults {
        let dir = root.join(&v).join(home.owner().label());
        let name = v.to_string_lossy().into_owned();
        let mut files = Vec::new();
        collect_age_files(&dir, &mut files)?;
        files.sort();
        out.extend(files.into_iter().map(|f| (name.clone(), f)));
    }
    Ok(out)
}

fn collect_age_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("list", dir, e)),
    };
    for e in rd {
        let e = e.map_err(|e| Error::io("list", dir, e))?;
        let path = e.path();
        let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::io("inspect", &path, e))?;
        if meta.is_dir() {
            collect_age_files(&path, out)?;
        } else if path.extension().is_some_and(|x| x == "age") {
            if !meta.is_file() {
                return Err(Error::Recipient {
                    message: format!(
                        "{} is not a regular file; keyrack does not re-encrypt through links",
                        path.display()
                    ),
                    hint: format!(
                        "replace it with the file it points to (or remove it), then retry: ls -l {}",
                        path.display()
                    ),
                });
            }
            out.push(path);
        }
    }
    Ok(())
}

/// Re-encrypts every encrypted vault file of the owner to `recipients`. Everything is
/// decrypted first (nothing is written if one file cannot be read). Returns the count per vault.
pub(crate) fn reencrypt_vault_files(
    home: &Home,
    identity: &Identity,
    recipients: &[RecipientKey],
) -> Result<BTreeMap<String, usize>> {
    let mut counts: BTreeMap<String, usize> = VaultKind::ALL
        .iter()
        .map(|k| (k.as_str().to_string(), 0))
        .collect();
    let files = encrypted_vault_files(home)?;
    // A file with a lock beside it (an SSO session's token copy) is rewritten by whoever holds
    // that lock (unlock, the daemon's refresh): wait for them, and keep them out until done, so
    // no copy encrypted to the old set lands after this.
    let mut locks: Vec<PathBuf> = files
        .iter()
        .map(|(_, p)| p.with_extension("lock"))
        .filter(|l| std::fs::symlink_metadata(l).is_ok_and(|m| m.is_file()))
        .collect();
    locks.sort();
    let _held: Vec<fsio::WriteLock> = locks
        .iter()
        .map(|l| fsio::WriteLock::acquire(l))
        .collect::<Result<_>>()?;
    let mut plain = Vec::new();
    for (vault, path) in files {
        let data = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
        let text = crypto::decrypt(&path, &data, identity)?;
        plain.push((vault, path, text));
    }
    for (vault, path, text) in plain {
        let sealed = crypto::encrypt(recipients, &text)?;
        fsio::write_atomic(&path, &sealed, 0o600)?;
        *counts.entry(vault).or_default() += 1;
    }
    Ok(counts)
}

fn change(rack: &Rack, recipient: Recipient, keys: &[RecipientKey]) -> Result<RecipientChange> {
    let relocked = relock_self_writing_grants(rack.home())?;
    let reencrypted = reencrypt_vault_files(rack.home(), rack.identity()?, keys)?;
    Ok(RecipientChange {
        recipient,
        reencrypted_files: reencrypted.values().sum(),
        reencrypted,
        relocked,
    })
}

/// Relocks the grants whose vault writes encrypted files from inside the daemon (aws.config:
/// its SSO token copy, at each refresh, to the recipients of its unlock), so none is written to
/// the old set after the change. Their slugs.
fn relock_self_writing_grants(home: &Home) -> Result<Vec<String>> {
    let client = Client::new(home);
    let Some(status) = client.status()? else {
        return Ok(vec![]);
    };
    let slugs: Vec<Slug> = status
        .grants
        .into_iter()
        .filter(|g| g.vault == VaultKind::AwsConfig)
        .map(|g| g.slug)
        .collect();
    if slugs.is_empty() {
        return Ok(vec![]);
    }
    let relocked = client.relock(RelockScope::Slugs { slugs })?;
    Ok(relocked.iter().map(ToString::to_string).collect())
}

/// Lists the recipients.
pub fn list(rack: &Rack) -> Result<Vec<Recipient>> {
    Ok(rack.host()?.recipients)
}

/// Adds a recipient and re-encrypts everything to the new set.
pub fn add(rack: &Rack, pubkey: &str, label: &str) -> Result<RecipientChange> {
    validate_label(label)?;
    let key = RecipientKey::parse(pubkey)?;
    let _lock = rack.lock()?;
    let mut host = rack.host()?;
    if let Some(r) = host.recipients.iter().find(|r| r.label == label) {
        return Err(Error::Recipient {
            message: format!(
                "a recipient labelled '{}' exists already ({})",
                shown(label),
                r.kind
            ),
            hint: format!(
                "pick another --label, or first: keyrack recipient remove --label {label}"
            ),
        });
    }
    if let Some(r) = host
        .recipients
        .iter()
        .find(|r| RecipientKey::parse(&r.pubkey).is_ok_and(|k| k == key))
    {
        return Err(Error::Recipient {
            message: format!(
                "this key is already a recipient, labelled '{}'",
                shown(&r.label)
            ),
            hint: "nothing to do; see: keyrack recipient list".into(),
        });
    }
    let recipient = Recipient {
        kind: key.kind().into(),
        pubkey: key.to_string(),
        label: label.into(),
        added_at: host_manifest::now(),
    };
    host.recipients.push(recipient.clone());
    let keys = host.recipient_keys()?;
    let report = change(rack, recipient, &keys)?;
    host.save(rack.home())?;
    Ok(report)
}

/// Removes a recipient by label and re-encrypts everything without it.
pub fn remove(rack: &Rack, label: &str) -> Result<RecipientChange> {
    let _lock = rack.lock()?;
    let mut host = rack.host()?;
    let Some(pos) = host.recipients.iter().position(|r| r.label == label) else {
        let labels: Vec<String> = host.recipients.iter().map(|r| shown(&r.label)).collect();
        return Err(Error::Recipient {
            message: format!(
                "no recipient is labelled '{}' (labels: {})",
                shown(label),
                labels.join(", ")
            ),
            hint: "see them with: keyrack recipient list".into(),
        });
    };
    if host.recipients.len() == 1 {
        return Err(Error::Recipient {
            message: format!(
                "'{}' is the last recipient; removing it would make every key unreadable",
                shown(label)
            ),
            hint: "add another first: keyrack recipient add --pubkey <key> --label <name>".into(),
        });
    }
    let me = rack.identity()?.recipient().clone();
    if RecipientKey::parse(&host.recipients[pos].pubkey).is_ok_and(|k| k == me) {
        return Err(Error::Recipient {
            message: format!(
                "'{}' is the identity you are using now; removing it would lock you out",
                shown(label)
            ),
            hint: "run the removal with another recipient's identity: keyrack --identity <other key> recipient remove --label …".into(),
        });
    }
    let removed = host.recipients.remove(pos);
    let keys = host.recipient_keys()?;
    let report = change(rack, removed, &keys)?;
    host.save(rack.home())?;
    Ok(report)
}
