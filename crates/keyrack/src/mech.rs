//! Mechs: how a stored source becomes a usable secret, and what `set` asks the user for.

use std::io::Read;

use crate::error::{Error, Result};
pub use crate::grant::Mech;
use crate::interact::{Interact, Unanswered};
use crate::secret::Secret;

/// The mech hook of `unlock` (and of the proof at `set`): turns what the vault holds for `entry`
/// into the grant handed out. Most mechs hand out the stored value as is; `github.app` mints an
/// installation token from the stored app credentials, and the grant expires with the token.
pub(crate) fn grant_from_stored(
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
pub(crate) fn acquire_secret(
    key: &str,
    source: SecretSource,
    interact: &dyn Interact,
) -> Result<Secret> {
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
