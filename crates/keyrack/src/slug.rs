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
pub(crate) const ENV_PROD: &str = "prod";
/// The org of machine-wide keys that belong to no repo.
pub(crate) const ORG_ALL: &str = "@all";

/// Checks an env name: `[a-z][a-z0-9_-]*`.
pub fn validate_env(env: &str) -> Result<()> {
    let ok = match env.as_bytes() {
        [first, rest @ ..] => {
            first.is_ascii_lowercase()
                && rest
                    .iter()
                    .all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
        }
        [] => false,
    };
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

/// Whether `key` is a shell identifier `[A-Za-z_][A-Za-z0-9_]*`.
///
/// (The checks run on bytes: every allowed character is ASCII, and every byte of a non-ASCII
/// character fails them, as the character would.)
fn is_shell_identifier(key: &str) -> bool {
    match key.as_bytes() {
        [first, rest @ ..] => is_key_head(*first) && rest.iter().all(|c| is_key_tail(*c)),
        [] => false,
    }
}

/// Whether `b` may start a key name.
pub(crate) fn is_key_head(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

/// Whether `b` may follow the first byte of a key name.
pub(crate) fn is_key_tail(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
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
    let ok = match org.as_bytes() {
        [first, rest @ ..] => {
            first.is_ascii_alphanumeric()
                && rest
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
        }
        [] => false,
    };
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
    pub(crate) fn name(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// The name used in paths and messages (`default` for no owner).
    pub(crate) fn label(&self) -> &str {
        self.0.as_deref().unwrap_or("default")
    }

    /// The ` --owner X` suffix to repeat in fix commands (empty for the default owner).
    pub(crate) fn flag(&self) -> String {
        match &self.0 {
            Some(o) => format!(" --owner {o}"),
            None => String::new(),
        }
    }
}

/// `org.env.KEY`: the full name of a credential on a host.
///
/// Kept as the one string `org.env.KEY` and where its parts start, so building, cloning,
/// printing and sending a slug is one allocation or none (the hot path handles one per key).
/// Equality, hashing and order are those of the `(org, env, key)` parts.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Slug {
    text: String,
    /// Where `env` starts in `text` (after `org.`).
    env_at: u32,
    /// Where `key` starts in `text` (after `org.env.`).
    key_at: u32,
}

impl Slug {
    /// Builds a slug from validated parts.
    pub fn new(org: &str, env: &str, key: &str) -> Result<Self> {
        validate_org(org)?;
        validate_env(env)?;
        validate_key(key)?;
        Ok(Slug::from_checked_parts(org, env, key))
    }

    /// Joins parts that were already checked.
    pub(crate) fn from_checked_parts(org: &str, env: &str, key: &str) -> Self {
        let mut text = String::with_capacity(org.len() + env.len() + key.len() + 2);
        for part in [org, ".", env, ".", key] {
            text.push_str(part);
        }
        Slug {
            env_at: (org.len() + 1) as u32,
            key_at: (org.len() + env.len() + 2) as u32,
            text,
        }
    }

    /// Parses `org.env.KEY`, splitting on the first two dots. Keys set by older keyrack versions
    /// may contain dots (`org.env.A.B`); they still parse, so files that hold them stay readable.
    pub fn parse(s: &str) -> Result<Self> {
        let parts = s
            .split_once('.')
            .and_then(|(org, rest)| Some((org, rest.split_once('.')?)));
        match parts {
            Some((org, (env, key))) => {
                validate_org(org)?;
                validate_env(env)?;
                validate_stored_key(key)?;
                Ok(Slug::from_checked_parts(org, env, key))
            }
            None => Err(Error::InvalidInput {
                what: "slug",
                value: s.into(),
                reason: "a slug has the form org.env.KEY".into(),
                hint: None,
            }),
        }
    }

    /// The org part.
    pub fn org(&self) -> &str {
        &self.text[..self.env_at as usize - 1]
    }
    /// The env part.
    pub fn env(&self) -> &str {
        &self.text[self.env_at as usize..self.key_at as usize - 1]
    }
    /// The key part.
    pub fn key(&self) -> &str {
        &self.text[self.key_at as usize..]
    }

    /// `org.env.KEY` as text.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// The same key under `org.all`, used as the lookup fallback.
    pub(crate) fn with_env_all(&self) -> Slug {
        // (the key may be a legacy dotted one read back from a file: keep it as it is)
        Slug::from_checked_parts(self.org(), ENV_ALL, self.key())
    }

    /// First 16 hex characters of sha256(slug): the file name used for vault files and
    /// inventory markers, so directory listings never reveal key names.
    pub fn file_stem(&self) -> String {
        let digest = Sha256::digest(self.text.as_bytes());
        hex::encode(&digest[..8])
    }

    fn parts(&self) -> (&str, &str, &str) {
        (self.org(), self.env(), self.key())
    }
}

impl fmt::Debug for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slug")
            .field("org", &self.org())
            .field("env", &self.env())
            .field("key", &self.key())
            .finish()
    }
}

impl PartialOrd for Slug {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Slug {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.parts().cmp(&other.parts())
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl TryFrom<String> for Slug {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Slug::parse(&s)
    }
}

/// Serialised as `org.env.KEY`.
impl Serialize for Slug {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// Parsed from `org.env.KEY` (validated), straight from the input where it can be borrowed.
impl<'de> Deserialize<'de> for Slug {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = Slug;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a slug org.env.KEY")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> std::result::Result<Slug, E> {
                Slug::parse(s).map_err(E::custom)
            }
        }
        d.deserialize_str(Text)
    }
}

impl From<Slug> for String {
    fn from(s: Slug) -> String {
        s.text
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

    /// The name rules as first written, on characters.
    fn reference(kind: &str, s: &str) -> bool {
        let mut chars = s.chars();
        match kind {
            "env" => {
                matches!(chars.next(), Some('a'..='z'))
                    && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'))
            }
            "key" => {
                matches!(chars.next(), Some('A'..='Z' | 'a'..='z' | '_'))
                    && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            }
            _ => {
                s == ORG_ALL
                    || (matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
                        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            }
        }
    }

    #[test]
    fn validators_match_their_character_rules() {
        let alphabet = [
            "a", "z", "A", "Z", "0", "9", "_", "-", ".", " ", "@", "é", "ß", "\u{0}", "@all",
        ];
        let mut r = crate::testgen::Lcg(5);
        for _ in 0..5000 {
            let s: String = (0..r.next() % 5).map(|_| r.pick(&alphabet)).collect();
            assert_eq!(validate_env(&s).is_ok(), reference("env", &s), "env {s:?}");
            assert_eq!(validate_key(&s).is_ok(), reference("key", &s), "key {s:?}");
            assert_eq!(validate_org(&s).is_ok(), reference("org", &s), "org {s:?}");
        }
    }

    #[test]
    fn slugs_order_by_parts_and_read_back_as_written() {
        let mut all = Vec::new();
        for org in ["a", "a-b", "ab"] {
            for env in ["b", "b-x", "bx", "b_1", "all"] {
                // (`K.x`: a legacy dotted key, as read back from a file)
                for key in ["K", "K.x", "K_", "KEY"] {
                    all.push(Slug::parse(&format!("{org}.{env}.{key}")).unwrap());
                }
            }
        }
        for x in &all {
            assert_eq!(Slug::parse(&x.to_string()).unwrap(), *x);
            let json = serde_json::to_string(x).unwrap();
            assert_eq!(json, format!("\"{x}\""));
            assert_eq!(serde_json::from_str::<Slug>(&json).unwrap(), *x);
            for y in &all {
                let parts = |s: &Slug| {
                    (
                        s.org().to_string(),
                        s.env().to_string(),
                        s.key().to_string(),
                    )
                };
                assert_eq!(x.cmp(y), parts(x).cmp(&parts(y)), "{x} vs {y}");
                assert_eq!(x == y, parts(x) == parts(y));
            }
        }
        let s = Slug::parse("a.b-x.K.x").unwrap();
        assert_eq!(
            format!("{s:?}"),
            r#"Slug { org: "a", env: "b-x", key: "K.x" }"#
        );
        assert_eq!(s.with_env_all().to_string(), "a.all.K.x");
        assert!(serde_json::from_str::<Slug>("\"a.B.K\"").is_err());
    }

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
