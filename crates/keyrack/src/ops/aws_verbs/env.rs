//! The role credentials of an unlocked profile as environment variables, for tools that cannot
//! read SSO profiles (what `aws configure export-credentials --format env` and `aws-vault exec`
//! give): `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//! `AWS_CREDENTIAL_EXPIRATION` (RFC 3339), and `AWS_REGION` / `AWS_DEFAULT_REGION` when the
//! profile sets a region.
//!
//! Served from the daemon ([`crate::ops::aws::credentials`]): never signs in, never opens a
//! browser; a locked profile is [`crate::Error::Locked`] (exit 2) with the unlock command.

use serde::Serialize;

use crate::aws::config_file::{AwsConfig, Section};
use crate::aws::names::Region;
use crate::error::Result;
use crate::ops::aws::profile_arg;
use crate::ops::Rack;
use crate::secret::Secret;

/// The variables that select a profile: a child given env credentials must not also be told
/// to use a profile (SDKs would then prefer the profile, or refuse the mix).
pub const PROFILE_VARS: [&str; 2] = ["AWS_PROFILE", "AWS_DEFAULT_PROFILE"];

/// One environment variable; the value may be a credential.
#[derive(Debug, Clone, Serialize)]
pub struct EnvVar {
    /// The variable's name.
    pub name: &'static str,
    /// Its value.
    pub value: Secret,
}

/// The role credentials of a profile as environment variables.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsEnv {
    /// The profile.
    pub profile: String,
    /// When the credentials expire (RFC 3339, UTC).
    pub expires_at: String,
    /// The profile's region, when it sets one.
    pub region: Option<String>,
    /// The variables, in the order they are printed.
    pub vars: Vec<EnvVar>,
}

/// The profile's own region (`region = …`), validated; `None` when the profile sets none or is
/// no longer in the config file (the credentials come from the daemon either way).
pub(crate) fn profile_region(profile: &str) -> Result<Option<Region>> {
    let name = profile_arg("--profile", profile)?;
    let config = AwsConfig::load_default()?;
    if config.get(&Section::profile(&name)).is_none() {
        return Ok(None);
    }
    Ok(config.sso_profile(&name)?.region)
}

/// The unlocked role credentials of `profile`, as environment variables.
pub fn aws_env(rack: &Rack, profile: &str) -> Result<AwsEnv> {
    let creds = super::unlocked_credentials(rack, profile)?;
    let region = profile_region(profile)?;
    let mut vars = vec![
        EnvVar {
            name: "AWS_ACCESS_KEY_ID",
            value: Secret::new(creds.access_key_id.clone()),
        },
        EnvVar {
            name: "AWS_SECRET_ACCESS_KEY",
            value: Secret::new(creds.secret_access_key.clone()),
        },
        EnvVar {
            name: "AWS_SESSION_TOKEN",
            value: Secret::new(creds.session_token.clone()),
        },
        EnvVar {
            name: "AWS_CREDENTIAL_EXPIRATION",
            value: Secret::new(creds.expiration.clone()),
        },
    ];
    if let Some(r) = &region {
        for name in ["AWS_REGION", "AWS_DEFAULT_REGION"] {
            vars.push(EnvVar {
                name,
                value: Secret::new(r.to_string()),
            });
        }
    }
    Ok(AwsEnv {
        profile: profile.to_string(),
        expires_at: creds.expiration.clone(),
        region: region.map(String::from),
        vars,
    })
}
