//! The verbs AWS users reach for, beyond `set`/`unlock`:
//!
//! - [`sync`]: `keyrack aws sync --sso-session S` writes a profile for every account × role the
//!   signed-in user can reach (as granted `sso populate` and aws-sso-util `configure populate`),
//!   marked as generated so a later `--prune` removes only what keyrack wrote.
//! - [`console`]: `keyrack aws console --profile P` turns the unlocked role credentials into a
//!   federated console sign-in URL (`getSigninToken` at the partition's sign-in endpoint).
//! - [`env`]: `keyrack aws env --profile P` and `keyrack exec --aws-profile P` hand the unlocked
//!   role credentials to tools that cannot read SSO profiles, as environment variables.
//!
//! `console` and `env` are served from the daemon (as `keyrack aws credentials`): they never
//! sign in and never open a browser for a sign-in; a locked profile is a refusal naming the
//! `keyrack unlock` that fixes it.

pub mod console;
pub mod env;
pub mod sync;

use crate::error::{Error, Result};
use crate::ops::aws::{credentials, ProcessCredentials};
use crate::ops::Rack;

/// The unlocked role credentials of `profile`, from the daemon (as `keyrack aws credentials`
/// gets them); a locked profile is refused with the unlock command, never signed in.
fn unlocked_credentials(rack: &Rack, profile: &str) -> Result<ProcessCredentials> {
    credentials(rack, profile).map_err(|e| match e {
        Error::Locked { what, reason, hint } if reason.contains("credential_process") => {
            Error::Locked {
                what,
                reason:
                    "no unlocked keyrack key uses it in this session (this command never signs in)"
                        .into(),
                hint,
            }
        }
        e => e,
    })
}
