//! age encryption: recipients (X25519 and SSH) and armored encrypt / decrypt.

use std::fmt;
use std::io::{Read, Write};
use std::path::Path;
use std::str::FromStr;

use age::armor::{ArmoredReader, ArmoredWriter, Format};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::identity::Identity;

/// A public key that files can be encrypted to.
#[derive(Clone)]
pub enum RecipientKey {
    /// A native age X25519 recipient (`age1…`).
    X25519(age::x25519::Recipient),
    /// An SSH recipient (`ssh-ed25519 …` or `ssh-rsa …`), using age's standard ssh stanzas.
    Ssh(age::ssh::Recipient),
}

impl RecipientKey {
    /// Parses `age1…`, `ssh-ed25519 AAAA… [comment]` or `ssh-rsa AAAA… [comment]`.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let invalid = |reason: String| {
            Error::InvalidInput {
            what: "public key",
            value: text.chars().take(60).collect(),
            reason,
            hint: Some(
                "pass an age public key (age1…) or an SSH public key line (ssh-ed25519 AAAA… / ssh-rsa AAAA…)"
                    .into(),
            ),
        }
        };
        if text.starts_with("age1") {
            return age::x25519::Recipient::from_str(text)
                .map(RecipientKey::X25519)
                .map_err(|e| invalid(e.to_string()));
        }
        let mut fields = text.split_whitespace();
        match (fields.next(), fields.next()) {
            (Some(kind @ ("ssh-ed25519" | "ssh-rsa")), Some(b64)) => {
                age::ssh::Recipient::from_str(&format!("{kind} {b64}"))
                    .map(RecipientKey::Ssh)
                    .map_err(|e| invalid(format!("{e:?}")))
            }
            _ => Err(invalid(
                "not an age or ssh-ed25519/ssh-rsa public key".into(),
            )),
        }
    }

    /// `x25519`, `ssh-ed25519` or `ssh-rsa`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            RecipientKey::X25519(_) => "x25519",
            RecipientKey::Ssh(r) => {
                if r.to_string().starts_with("ssh-rsa") {
                    "ssh-rsa"
                } else {
                    "ssh-ed25519"
                }
            }
        }
    }

    fn as_age(&self) -> &dyn age::Recipient {
        match self {
            RecipientKey::X25519(r) => r,
            RecipientKey::Ssh(r) => r,
        }
    }
}

impl fmt::Display for RecipientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecipientKey::X25519(r) => write!(f, "{r}"),
            RecipientKey::Ssh(r) => write!(f, "{r}"),
        }
    }
}

impl fmt::Debug for RecipientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecipientKey({self})")
    }
}

impl PartialEq for RecipientKey {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

/// Encrypts `plaintext` to every recipient, ASCII-armored.
pub fn encrypt(recipients: &[RecipientKey], plaintext: &[u8]) -> Result<Vec<u8>> {
    let encryptor = age::Encryptor::with_recipients(recipients.iter().map(|r| r.as_age()))
        .map_err(|e| Error::Recipient {
            message: format!("cannot encrypt to the recipients: {e}"),
            hint: "list them with: keyrack recipient list".into(),
        })?;
    let mut out = Vec::with_capacity(plaintext.len() + 512);
    let io_err = |e: std::io::Error| Error::io("encrypt to", "memory", e);
    let armor = ArmoredWriter::wrap_output(&mut out, Format::AsciiArmor).map_err(io_err)?;
    let mut writer = encryptor.wrap_output(armor).map_err(io_err)?;
    writer.write_all(plaintext).map_err(io_err)?;
    writer.finish().and_then(|a| a.finish()).map_err(io_err)?;
    Ok(out)
}

/// Decrypts an age file (armored or binary) read from `path` with `identity`.
pub fn decrypt(path: &Path, data: &[u8], identity: &Identity) -> Result<Zeroizing<Vec<u8>>> {
    let corrupt = |reason: String| Error::CorruptFile {
        path: path.to_path_buf(),
        reason,
        hint: format!(
            "restore {} from a backup, or remove it and set the key again with keyrack set",
            path.display()
        ),
    };
    if data.is_empty() {
        return Err(corrupt("the file is empty".into()));
    }
    let decryptor = age::Decryptor::new_buffered(ArmoredReader::new(data))
        .map_err(|e| corrupt(describe(&e)))?;
    let mut reader = decryptor
        .decrypt(std::iter::once(identity.as_age()))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => Error::WrongIdentity {
                path: path.to_path_buf(),
                identity: identity.describe(),
            },
            other => corrupt(describe(&other)),
        })?;
    let mut out = Zeroizing::new(Vec::new());
    reader
        .read_to_end(&mut out)
        .map_err(|e| corrupt(format!("the payload is damaged or truncated ({e})")))?;
    Ok(out)
}

fn describe(e: &age::DecryptError) -> String {
    match e {
        age::DecryptError::InvalidHeader => {
            "the age header is invalid (not an age file, or truncated)".into()
        }
        age::DecryptError::UnknownFormat => "unknown age format".into(),
        age::DecryptError::InvalidMac => {
            "the header MAC does not match (the file was altered)".into()
        }
        age::DecryptError::DecryptionFailed => {
            "decryption failed (the file was altered or truncated)".into()
        }
        age::DecryptError::Io(io) => format!("the file is truncated or not age ({io})"),
        other => other.to_string(),
    }
}
