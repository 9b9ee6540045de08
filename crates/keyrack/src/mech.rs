//! Mechs: how a stored source becomes a usable secret, and what `set` asks the user for.

use std::fmt;
use std::io::Read;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::interact::{Interact, Unanswered};
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
    /// Asked of the person, hidden ([`Interact::secret`]); the CLI does so when stdin is a
    /// terminal.
    Prompt,
    /// Standard input (one trailing newline stripped).
    Stdin,
}

/// Acquires the value of a `replica`/`session` secret for `key`.
pub fn acquire_secret(key: &str, source: SecretSource, interact: &dyn Interact) -> Result<Secret> {
    let pipe_it = format!("printf %s \"$VALUE\" | keyrack set --key {key} …");
    let value = match source {
        SecretSource::Prompt => match interact.secret(key) {
            Ok(v) => v,
            Err(Unanswered::NoTerminal) => {
                return Err(Error::NeedsTty {
                    what: format!("the value of {key}"),
                    hint: format!("pipe the value: {pipe_it}"),
                })
            }
            Err(Unanswered::Cancelled) => {
                return Err(Error::Cancelled {
                    what: format!("the value of {key}"),
                })
            }
            Err(Unanswered::Failed(e)) => {
                return Err(Error::SecretInput {
                    reason: format!("the prompt was not answered ({e})"),
                    hint: format!("run it again, or pipe the value: {pipe_it}"),
                })
            }
        },
        SecretSource::Stdin => Secret::new(read_stdin(key)?),
    };
    if value.expose().is_empty() {
        return Err(Error::SecretInput {
            reason: "the secret is empty".into(),
            hint: format!("pass a value on stdin: {pipe_it}"),
        });
    }
    Ok(value)
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
