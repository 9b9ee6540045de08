//! Mechs: how a stored source becomes a usable secret, and what `set` asks the user for.

use std::fmt;
use std::io::{IsTerminal, Read};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::secret::Secret;

/// A mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mech {
    /// A static copy of the secret.
    #[serde(rename = "replica")]
    Replica,
    /// A pointer to an item kept elsewhere.
    #[serde(rename = "reference")]
    Reference,
    /// Held in memory only, for the session.
    #[serde(rename = "session")]
    Session,
    /// An AWS SSO profile.
    #[serde(rename = "aws.sso")]
    AwsSso,
    /// GitHub App credentials (app id or client id, installation id, private key), minted at
    /// unlock into an installation token that expires with its grant (see [`crate::github`]).
    #[serde(rename = "github.app")]
    GithubApp,
}

impl Mech {
    /// Every mech, for messages.
    pub const ALL: [Mech; 5] = [
        Mech::Replica,
        Mech::Reference,
        Mech::Session,
        Mech::AwsSso,
        Mech::GithubApp,
    ];

    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mech::Replica => "replica",
            Mech::Reference => "reference",
            Mech::Session => "session",
            Mech::AwsSso => "aws.sso",
            Mech::GithubApp => "github.app",
        }
    }
}

impl fmt::Display for Mech {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mech {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "replica" | "PERMANENT_VIA_REPLICA" => Mech::Replica,
            "reference" | "PERMANENT_VIA_REFERENCE" => Mech::Reference,
            "session" | "EPHEMERAL_VIA_SESSION" => Mech::Session,
            "aws.sso" | "EPHEMERAL_VIA_AWS_SSO" => Mech::AwsSso,
            "github.app" | "EPHEMERAL_VIA_GITHUB_APP" => Mech::GithubApp,
            _ => {
                return Err(Error::InvalidInput {
                    what: "mech",
                    value: s.into(),
                    reason: "unknown mech".into(),
                    hint: Some(format!(
                        "use one of: {}",
                        Mech::ALL.map(Mech::as_str).join(", ")
                    )),
                })
            }
        })
    }
}

/// The mech hook of `unlock` (and of the proof at `set`): turns what the vault holds for `entry`
/// into the grant handed out. Most mechs hand out the stored value as is; `github.app` mints an
/// installation token from the stored app credentials, and the grant expires with the token.
pub fn grant_from_stored(
    entry: &crate::host_manifest::HostEntry,
    stored: crate::vault::Grant,
) -> Result<crate::vault::Grant> {
    match entry.mech {
        Mech::GithubApp => crate::github::app::mint_grant(entry, stored),
        Mech::Replica | Mech::Reference | Mech::Session | Mech::AwsSso => Ok(stored),
    }
}

/// Where `set` reads a secret from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// A hidden prompt on the terminal.
    Prompt,
    /// Standard input (one trailing newline stripped).
    Stdin,
}

impl SecretSource {
    /// A hidden prompt when stdin is a terminal, else stdin.
    pub fn detect() -> Self {
        if std::io::stdin().is_terminal() {
            SecretSource::Prompt
        } else {
            SecretSource::Stdin
        }
    }
}

/// Acquires the value of a `replica`/`session` secret for `key`.
pub fn acquire_secret(key: &str, source: SecretSource) -> Result<Secret> {
    let value = match source {
        SecretSource::Prompt => inquire::Password::new(&format!("{key}:"))
            .without_confirmation()
            .with_display_mode(inquire::PasswordDisplayMode::Hidden)
            .with_help_message("input is hidden; paste the value and press enter (Ctrl-C cancels)")
            // an empty answer is refused in the prompt, before it is accepted and shown as ********
            .with_validator(inquire::validator::ValueRequiredValidator::new(
                "the value is empty: paste it and press enter, or Ctrl-C to cancel",
            ))
            .prompt()
            .map_err(|e| {
                let shown = e.to_string();
                prompt_error(e, &format!("the value of {key}"), || Error::SecretInput {
                    reason: format!("the prompt was not answered ({shown})"),
                    hint: format!("run it again, or pipe the value: printf %s \"$VALUE\" | keyrack set --key {key} …"),
                })
            })?,
        SecretSource::Stdin => read_stdin(key)?,
    };
    if value.is_empty() {
        return Err(Error::SecretInput {
            reason: "the secret is empty".into(),
            hint: format!(
                "pass a value on stdin: printf %s \"$VALUE\" | keyrack set --key {key} …"
            ),
        });
    }
    Ok(Secret::new(value))
}

/// A prompt that ended without an answer: Ctrl-C or Esc is [`Error::Cancelled`] (exit 130);
/// anything else (the terminal went away) is `other()`.
pub fn prompt_error(e: inquire::InquireError, what: &str, other: impl FnOnce() -> Error) -> Error {
    match e {
        inquire::InquireError::OperationInterrupted | inquire::InquireError::OperationCanceled => {
            Error::Cancelled { what: what.into() }
        }
        _ => other(),
    }
}

fn read_stdin(key: &str) -> Result<String> {
    let mut bytes = zeroize::Zeroizing::new(Vec::new());
    std::io::stdin()
        .read_to_end(&mut bytes)
        .map_err(|e| Error::SecretInput {
            reason: format!("reading stdin failed: {e}"),
            hint: format!("pipe the value: printf %s \"$VALUE\" | keyrack set --key {key} …"),
        })?;
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    match std::str::from_utf8(&bytes) {
        Ok(s) => Ok(s.to_string()),
        Err(_) => Err(Error::SecretInput {
            reason: "stdin is not valid UTF-8 text".into(),
            hint: format!(
                "store binary data as text, e.g.: base64 -w0 < file | keyrack set --key {key} …"
            ),
        }),
    }
}
