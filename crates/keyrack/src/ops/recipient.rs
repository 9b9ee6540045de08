//! `keyrack recipient add|list|remove`: who can decrypt. Every change re-encrypts the host
//! manifest and every os.secure file.

use serde::Serialize;

use super::Rack;
use crate::crypto::RecipientKey;
use crate::error::{Error, Result};
use crate::host_manifest::{now_rfc3339, Recipient};
use crate::vault::os_secure;

/// What a recipient change did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecipientChange {
    /// The recipient added or removed.
    pub recipient: Recipient,
    /// How many os.secure files were re-encrypted.
    pub reencrypted_files: usize,
}

/// Lists the recipients.
pub fn list(rack: &Rack) -> Result<Vec<Recipient>> {
    Ok(rack.host()?.recipients)
}

/// Adds a recipient and re-encrypts everything to the new set.
pub fn add(rack: &Rack, pubkey: &str, label: &str) -> Result<RecipientChange> {
    let key = RecipientKey::parse(pubkey)?;
    if label.trim().is_empty() {
        return Err(Error::InvalidInput {
            what: "label",
            value: label.into(),
            reason: "a label is required".into(),
            hint: Some("pass --label <name>, e.g. --label laptop".into()),
        });
    }
    let _lock = rack.lock()?;
    let mut host = rack.host()?;
    if let Some(r) = host.recipients.iter().find(|r| r.label == label) {
        return Err(Error::Recipient {
            message: format!("a recipient labelled '{label}' exists already ({})", r.kind),
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
            message: format!("this key is already a recipient, labelled '{}'", r.label),
            hint: "nothing to do; see: keyrack recipient list".into(),
        });
    }
    let recipient = Recipient {
        kind: key.kind().into(),
        pubkey: key.to_string(),
        label: label.into(),
        added_at: now_rfc3339(),
    };
    host.recipients.push(recipient.clone());
    let keys = host.recipient_keys()?;
    let n = os_secure::reencrypt_all(rack.home(), rack.identity()?, &keys, host.hosts.values())?;
    host.save(rack.home())?;
    Ok(RecipientChange {
        recipient,
        reencrypted_files: n,
    })
}

/// Removes a recipient by label and re-encrypts everything without it.
pub fn remove(rack: &Rack, label: &str) -> Result<RecipientChange> {
    let _lock = rack.lock()?;
    let mut host = rack.host()?;
    let Some(pos) = host.recipients.iter().position(|r| r.label == label) else {
        let labels: Vec<&str> = host.recipients.iter().map(|r| r.label.as_str()).collect();
        return Err(Error::Recipient {
            message: format!(
                "no recipient is labelled '{label}' (labels: {})",
                labels.join(", ")
            ),
            hint: "see them with: keyrack recipient list".into(),
        });
    };
    if host.recipients.len() == 1 {
        return Err(Error::Recipient {
            message: format!(
                "'{label}' is the last recipient; removing it would make every key unreadable"
            ),
            hint: "add another first: keyrack recipient add --pubkey <key> --label <name>".into(),
        });
    }
    let me = rack.identity()?.recipient().clone();
    if RecipientKey::parse(&host.recipients[pos].pubkey).is_ok_and(|k| k == me) {
        return Err(Error::Recipient {
            message: format!("'{label}' is the identity you are using now; removing it would lock you out"),
            hint: "run the removal with another recipient's identity: keyrack --identity <other key> recipient remove --label …".into(),
        });
    }
    let removed = host.recipients.remove(pos);
    let keys = host.recipient_keys()?;
    let n = os_secure::reencrypt_all(rack.home(), rack.identity()?, &keys, host.hosts.values())?;
    host.save(rack.home())?;
    Ok(RecipientChange {
        recipient: removed,
        reencrypted_files: n,
    })
}
