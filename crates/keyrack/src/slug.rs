//! Names: orgs, envs, keys, owners and the `org.env.KEY` slug that joins them.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The env name meaning "needed / valid in every env".
pub const ENV_ALL: &str = "all";
/// The elevated env: never written to a repo manifest, short default TTL.
pub const ENV_SUDO: &str = "sudo";
/// The production env: never unlocked by a bare `keyrack unlock` (unless the repo says so).
pub const ENV_PROD: &str = "prod";
/// The org of machine-wide keys that belong to no repo.
pub const ORG_ALL: &str = "@all";

/// Checks an env name: `[a-z][a-z0-9_-]*`.
pub fn validate_env(env: &str) -> Result<()> {
    let mut chars = env.chars();
    let ok = matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput {
            what: "env",
            value: env.into(),
            reason: "an env is a lower-case name matching [a-z][a-z0-9_-]*".into(),
            hint: Some("use e.g. --env test".into()),
        })
    }
}

/// Checks a key name: a shell identifier `[A-Za-z_][A-Za-z0-9_]*`, so every key can be exported
/// by `source` and handed to `exec` (a name like `A.B`, `A-B` or `1A` cannot).
pub fn validate_key(key: &str) -> Result<()> {
    if is_shell_identifier(key) {
        Ok(())
    } else {
        Err(Error::InvalidInput {
            what: "key",
            value: key.into(),
            reason: "a key is an environment-variable name: letters, digits and '_', not starting with a digit (source and exec cannot export any other name)".into(),
            hint: Some("use e.g. --key XAI_API_KEY".into()),
        })
    }
}

fn is_shell_identifier(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some('A'..='Z' | 'a'..='z' | '_'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The key part of a slug read back from a file keyrack wrote: a shell identifier, or a dotted
/// name older keyrack versions accepted (kept readable so such a host manifest still loads; new
/// keys are checked by [`validate_key`]).
fn validate_stored_key(key: &str) -> Result<()> {
    if key.split('.').all(is_shell_identifier) {
        Ok(())
    } else {
        validate_key(key)
    }
}

/// Checks an org name: `@all`, or `[A-Za-z0-9][A-Za-z0-9_-]*` (no dots: dots separate slug parts).
pub fn validate_org(org: &str) -> Result<()> {
    if org == ORG_ALL {
        return Ok(());
    }
    let mut chars = org.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput {
            what: "org",
            value: org.into(),
            reason: "an org is letters, digits, '_' or '-' (no dots), or @all".into(),
            hint: Some("fix `org:` in keyrack.yml, or pass --org @all".into()),
        })
    }
}

/// An identity partition on one machine. `None` and `"default"` are the same owner.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Owner(Option<String>);

impl Owner {
    /// Parses `--owner`; `default` and the empty string mean no owner.
    pub fn new(name: Option<&str>) -> Result<Self> {
        match name {
            None | Some("") | Some("default") => Ok(Owner(None)),
            Some(n) => {
                let ok = n
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    && n.len() <= 64;
                if ok {
                    Ok(Owner(Some(n.to_string())))
                } else {
                    Err(Error::InvalidInput {
                        what: "owner",
                        value: n.into(),
                        reason: "an owner is up to 64 letters, digits, '_' or '-'".into(),
                        hint: Some("use e.g. --owner robot".into()),
                    })
                }
            }
        }
    }

    /// The owner's name, `None` for the default owner.
    pub fn name(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// The name used in paths and messages (`default` for no owner).
    pub fn label(&self) -> &str {
        self.0.as_deref().unwrap_or("default")
    }

    /// The ` --owner X` suffix to repeat in fix commands (empty for the default owner).
    pub fn flag(&self) -> String {
        match &self.0 {
            Some(o) => format!(" --owner {o}"),
            None => String::new(),
        }
    }
}

/// `org.env.KEY`: the full name of a credential on a host.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Slug {
    org: String,
    env: String,
    key: String,
}

impl Slug {
    /// Builds a slug from validated parts.
    pub fn new(org: &str, env: &str, key: &str) -> Result<Self> {
        validate_org(org)?;
        validate_env(env)?;
        validate_key(key)?;
        Ok(Slug {
            org: org.into(),
            env: env.into(),
            key: key.into(),
        })
    }

    /// Parses `org.env.KEY`, splitting on the first two dots. Keys set by older keyrack versions
    /// may contain dots (`org.env.A.B`); they still parse, so files that hold them stay readable.
    pub fn parse(s: &str) -> Result<Self> {
        let mut parts = s.splitn(3, '.');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(org), Some(env), Some(key)) => {
                validate_org(org)?;
                validate_env(env)?;
                validate_stored_key(key)?;
                Ok(Slug {
                    org: org.into(),
                    env: env.into(),
                    key: key.into(),
                })
            }
            _ => Err(Error::InvalidInput {
                what: "slug",
                value: s.into(),
                reason: "a slug has the form org.env.KEY".into(),
                hint: None,
            }),
        }
    }

    /// The org part.
    pub fn org(&self) -> &str {
        &self.org
    }
    /// The env part.
    pub fn env(&self) -> &str {
        &self.env
    }
    /// The key part.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The same key under `org.all`, used as the lookup fallback.
    pub fn with_env_all(&self) -> Slug {
        Slug {
            org: self.org.clone(),
            env: ENV_ALL.into(),
            key: self.key.clone(),
        }
    }

    /// First 16 hex characters of sha256(slug): the file name used for vault files and
    /// inventory markers, so directory listings never reveal key names.
    pub fn file_stem(&self) -> String {
        let digest = Sha256::digest(self.to_string().as_bytes());
        hex::encode(&digest[..8])
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.org, self.env, self.key)
    }
}

impl TryFrom<String> for Slug {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Slug::parse(&s)
    }
}

impl From<Slug> for String {
    fn from(s: Slug) -> String {
        s.to_string()
    }
}

/// The `--env`/`--key`/`--owner` flags that select one key again in a fix command.
pub fn key_flags(key: &str, env: &str, org: &str, owner: &Owner) -> String {
    let mut s = format!("--key {key} --env {env}");
    if org == ORG_ALL {
        s.push_str(" --org @all");
    }
    s.push_str(&owner.flag());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_splits_on_first_two_dots() {
        let s = Slug::parse("acme.test.SOME.DOTTED_KEY").unwrap();
        assert_eq!(s.org(), "acme");
        assert_eq!(s.env(), "test");
        assert_eq!(s.key(), "SOME.DOTTED_KEY");
        assert_eq!(s.to_string(), "acme.test.SOME.DOTTED_KEY");
    }

    #[test]
    fn keys_are_shell_identifiers() {
        for ok in ["XAI_API_KEY", "_x", "a1", "A"] {
            assert!(validate_key(ok).is_ok(), "{ok}");
        }
        for bad in ["A.B", "1A", "A-B", "A B", "", "ü", "A=B", "A\nB"] {
            assert!(validate_key(bad).is_err(), "{bad:?}");
            assert!(Slug::new("acme", "test", bad).is_err(), "{bad:?}");
        }
        // legacy dotted keys in stored files still parse; new ones cannot be made
        assert!(Slug::parse("acme.test.A.B").is_ok());
        assert!(Slug::parse("acme.test.A..B").is_err());
        assert!(Slug::parse("acme.test.A-B").is_err());
    }

    #[test]
    fn slug_rejects_bad_parts() {
        assert!(Slug::parse("acme.Test.KEY").is_err());
        assert!(Slug::parse("acme.test").is_err());
        assert!(Slug::parse("acme.test.1KEY").is_err());
        assert!(Slug::parse("ac.me.test.KEY").is_ok()); // key "test.KEY" in env "me"
    }

    #[test]
    fn file_stem_is_16_hex_of_sha256() {
        let s = Slug::parse("acme.test.XAI_API_KEY").unwrap();
        let full = hex::encode(Sha256::digest(b"acme.test.XAI_API_KEY"));
        assert_eq!(s.file_stem(), &full[..16]);
    }

    #[test]
    fn default_owner_is_no_owner() {
        assert_eq!(
            Owner::new(Some("default")).unwrap(),
            Owner::new(None).unwrap()
        );
        assert!(Owner::new(Some("a/b")).is_err());
    }

    #[test]
    fn env_names() {
        assert!(validate_env("test").is_ok());
        assert!(validate_env("pre-prod_2").is_ok());
        assert!(validate_env("Test").is_err());
        assert!(validate_env("2x").is_err());
        assert!(validate_env("").is_err());
    }
}
