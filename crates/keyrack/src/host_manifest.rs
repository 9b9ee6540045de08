//! The host manifest: which keys this host has, in which vault, encrypted to the recipients.
//!
//! Stored at `$KEYRACK_HOME/host.age` (`host.<owner>.age`) as armored age; the plaintext is JSON:
//! `{version, owner, recipients:[{kind, pubkey, label, addedAt}], hosts:{slug:{slug, vault, mech,
//! exid, env, org, meta, maxDuration, createdAt, updatedAt}}}` with times in RFC 3339, `meta` a
//! string map and `maxDuration` text (`1h30m`). In memory the same data is typed: entries keyed
//! by [`Slug`], [`Meta`] per vault, a [`Duration`], [`Timestamp`]s.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::crypto::{self, RecipientKey};
use crate::error::{Error, Result};
use crate::fsio;
use crate::grant::{time, Mech, Timestamp, VaultKind};
use crate::home::Home;
use crate::identity::Identity;
use crate::slug::Slug;

/// The current plaintext format version.
pub const VERSION: u32 = 1;

/// Someone who can decrypt this owner's files.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    /// `x25519`, `ssh-ed25519` or `ssh-rsa`.
    pub kind: String,
    /// The public key (`age1…` or `ssh-… AAAA…`).
    pub pubkey: String,
    /// A human label, unique per manifest.
    pub label: String,
    /// When it was added (RFC 3339 in the file).
    #[serde(with = "time::rfc3339")]
    pub added_at: Timestamp,
}

/// One configured key on this host. The file form (`meta` a string map, `maxDuration` text,
/// times RFC 3339) is [`FileEntry`]'s; this is what it means.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(try_from = "FileEntry", into = "FileEntry")]
pub struct HostEntry {
    /// `org.env.KEY`.
    pub slug: Slug,
    /// The vault holding or referencing it.
    pub vault: VaultKind,
    /// How it is acquired.
    pub mech: Mech,
    /// The vault's external id (profile name, URI), if any.
    pub exid: Option<String>,
    /// The env part of the slug.
    pub env: String,
    /// The org part of the slug.
    pub org: String,
    /// What its vault records about it.
    pub meta: Meta,
    /// The longest a grant of this key may live.
    pub max_duration: Option<Duration>,
    /// When it was first set.
    pub created_at: Timestamp,
    /// When it was last set.
    pub updated_at: Timestamp,
}

/// What a vault records in a host entry, by vault.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Meta {
    /// Nothing (os.secure, os.direct, os.daemon, os.envvar).
    #[default]
    None,
    /// aws.config: the SSO profile as it was at `set`.
    AwsConfig(AwsConfigMeta),
    /// aws.params: where the parameter is, who named it and who signs for it.
    AwsParams(AwsParamsMeta),
    /// Metadata this keyrack does not model (a field missing or unknown, or a vault that records
    /// nothing): kept as read and written back unchanged.
    Other(BTreeMap<String, String>),
}

/// What aws.config records about its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsConfigMeta {
    /// The sso-session name (or, for a legacy profile, its start URL): the token-cache name.
    pub sso_session: String,
    /// The portal start URL.
    pub start_url: String,
    /// The SSO region.
    pub sso_region: String,
    /// The account id.
    pub account_id: String,
    /// The role name.
    pub role_name: String,
    /// The SSO user seen at `set` (`unlock` insists on it).
    pub sso_user: Option<String>,
}

/// What aws.params records about its key (the parameter name is the entry's `exid`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsParamsMeta {
    /// The SSM region.
    pub region: String,
    /// Who named the parameter: `del` deletes only one keyrack named.
    pub named: ParamNaming,
    /// The KMS key given at `set` (`--kms-key-id`).
    pub kms_key_id: Option<String>,
    /// Who signs its calls.
    pub signer: ParamSigner,
}

/// Who named an aws.params parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamNaming {
    /// keyrack computed it: `/keyrack/<org>/<env>/<KEY>` (file form `keyrack`).
    Keyrack,
    /// `--exid` gave it (file form `user`).
    User,
}

impl ParamNaming {
    /// The file form.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamNaming::Keyrack => "keyrack",
            ParamNaming::User => "user",
        }
    }
}

/// Who signs the SSM calls of an aws.params key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ParamSigner {
    /// The role credentials of this aws.config key of the same org and env (file form
    /// `via: KEY`).
    Via(String),
    /// The standard AWS credential chain: machine-wide keys (file form `identity: chain`).
    Chain,
}

/// The names of aws.params' metadata in the file.
pub mod params_meta {
    /// The SSM region.
    pub const REGION: &str = "region";
    /// Who named the parameter: `keyrack` or `user`.
    pub const NAMED: &str = "named";
    /// The KMS key given at set (`--kms-key-id`).
    pub const KMS_KEY_ID: &str = "kmsKeyId";
    /// The aws.config key whose role credentials sign (repository keys).
    pub const VIA: &str = "via";
    /// `chain` for machine-wide keys (the standard AWS credential chain).
    pub const IDENTITY: &str = "identity";
    /// The value of [`IDENTITY`] for the credential chain.
    pub const CHAIN: &str = "chain";
}

/// The names of aws.config's metadata in the file.
pub(crate) mod aws_meta {
    /// sso-session name (or the legacy start URL).
    pub(crate) const SESSION: &str = "ssoSession";
    /// Portal start URL.
    pub(crate) const START_URL: &str = "ssoStartUrl";
    /// SSO region.
    pub(crate) const SSO_REGION: &str = "ssoRegion";
    /// Account id.
    pub(crate) const ACCOUNT_ID: &str = "accountId";
    /// Role name.
    pub(crate) const ROLE_NAME: &str = "roleName";
    /// The SSO user seen at set.
    pub(crate) const SSO_USER: &str = "ssoUser";
}

impl Meta {
    /// The metadata of a `vault` entry from its file form.
    pub fn from_map(vault: VaultKind, map: BTreeMap<String, String>) -> Meta {
        if map.is_empty() {
            return Meta::None;
        }
        let typed = match vault {
            VaultKind::AwsConfig => aws_config_meta(&map).map(Meta::AwsConfig),
            VaultKind::AwsParams => aws_params_meta(&map).map(Meta::AwsParams),
            _ => None,
        };
        typed.unwrap_or(Meta::Other(map))
    }

    /// The file form (a string map; empty for none).
    pub(crate) fn to_map(&self) -> BTreeMap<String, String> {
        match self {
            Meta::None => BTreeMap::new(),
            Meta::Other(m) => m.clone(),
            Meta::AwsConfig(a) => {
                let mut m = BTreeMap::new();
                m.insert(aws_meta::SESSION.into(), a.sso_session.clone());
                m.insert(aws_meta::START_URL.into(), a.start_url.clone());
                m.insert(aws_meta::SSO_REGION.into(), a.sso_region.clone());
                m.insert(aws_meta::ACCOUNT_ID.into(), a.account_id.clone());
                m.insert(aws_meta::ROLE_NAME.into(), a.role_name.clone());
                if let Some(u) = &a.sso_user {
                    m.insert(aws_meta::SSO_USER.into(), u.clone());
                }
                m
            }
            Meta::AwsParams(p) => {
                let mut m = BTreeMap::new();
                m.insert(params_meta::REGION.into(), p.region.clone());
                m.insert(params_meta::NAMED.into(), p.named.as_str().into());
                if let Some(k) = &p.kms_key_id {
                    m.insert(params_meta::KMS_KEY_ID.into(), k.clone());
                }
                match &p.signer {
                    ParamSigner::Via(key) => {
                        m.insert(params_meta::VIA.into(), key.clone());
                    }
                    ParamSigner::Chain => {
                        m.insert(params_meta::IDENTITY.into(), params_meta::CHAIN.into());
                    }
                }
                m
            }
        }
    }

    /// A value by its file name, whatever the variant (for entries read before a field was
    /// modelled, and for messages).
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        self.to_map().remove(name)
    }

    /// Whether nothing is recorded.
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Meta::None => true,
            Meta::Other(m) => m.is_empty(),
            Meta::AwsConfig(_) | Meta::AwsParams(_) => false,
        }
    }
}

/// aws.config's metadata, when `map` holds exactly its fields (the SSO user optional).
fn aws_config_meta(map: &BTreeMap<String, String>) -> Option<AwsConfigMeta> {
    let known = [
        aws_meta::SESSION,
        aws_meta::START_URL,
        aws_meta::SSO_REGION,
        aws_meta::ACCOUNT_ID,
        aws_meta::ROLE_NAME,
        aws_meta::SSO_USER,
    ];
    if map.keys().any(|k| !known.contains(&k.as_str())) {
        return None;
    }
    let take = |k: &str| map.get(k).cloned();
    Some(AwsConfigMeta {
        sso_session: take(aws_meta::SESSION)?,
        start_url: take(aws_meta::START_URL)?,
        sso_region: take(aws_meta::SSO_REGION)?,
        account_id: take(aws_meta::ACCOUNT_ID)?,
        role_name: take(aws_meta::ROLE_NAME)?,
        sso_user: take(aws_meta::SSO_USER),
    })
}

/// aws.params' metadata, when `map` holds exactly its fields: a region, who named it, one
/// signer (`via` or `identity: chain`), the KMS key optional.
fn aws_params_meta(map: &BTreeMap<String, String>) -> Option<AwsParamsMeta> {
    let known = [
        params_meta::REGION,
        params_meta::NAMED,
        params_meta::KMS_KEY_ID,
        params_meta::VIA,
        params_meta::IDENTITY,
    ];
    if map.keys().any(|k| !known.contains(&k.as_str())) {
        return None;
    }
    let named = match map.get(params_meta::NAMED)?.as_str() {
        "keyrack" => ParamNaming::Keyrack,
        "user" => ParamNaming::User,
        _ => return None,
    };
    let signer = match (
        map.get(params_meta::VIA),
        map.get(params_meta::IDENTITY).map(String::as_str),
    ) {
        (Some(via), None) => ParamSigner::Via(via.clone()),
        (None, Some(params_meta::CHAIN)) => ParamSigner::Chain,
        _ => return None,
    };
    Some(AwsParamsMeta {
        region: map.get(params_meta::REGION)?.clone(),
        named,
        kms_key_id: map.get(params_meta::KMS_KEY_ID).cloned(),
        signer,
    })
}

impl Serialize for Meta {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_map().serialize(s)
    }
}

/// A host entry as the file writes it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FileEntry {
    slug: Slug,
    vault: VaultKind,
    mech: Mech,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exid: Option<String>,
    env: String,
    org: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    meta: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_duration: Option<String>,
    #[serde(with = "time::rfc3339")]
    created_at: Timestamp,
    #[serde(with = "time::rfc3339")]
    updated_at: Timestamp,
}

impl TryFrom<FileEntry> for HostEntry {
    type Error = String;
    fn try_from(f: FileEntry) -> std::result::Result<Self, String> {
        let max_duration = f
            .max_duration
            .as_deref()
            .map(|d| time::parse_duration(d).map_err(|e| format!("maxDuration of {}: {e}", f.slug)))
            .transpose()?;
        Ok(HostEntry {
            meta: Meta::from_map(f.vault, f.meta),
            slug: f.slug,
            vault: f.vault,
            mech: f.mech,
            exid: f.exid,
            env: f.env,
            org: f.org,
            max_duration,
            created_at: f.created_at,
            updated_at: f.updated_at,
        })
    }
}

impl From<HostEntry> for FileEntry {
    fn from(e: HostEntry) -> FileEntry {
        FileEntry {
            meta: e.meta.to_map(),
            max_duration: e.max_duration.map(time::format_duration),
            slug: e.slug,
            vault: e.vault,
            mech: e.mech,
            exid: e.exid,
            env: e.env,
            org: e.org,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// The decrypted host manifest of one owner.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HostManifest {
    /// Format version.
    pub version: u32,
    /// The owner, `null` for the default owner.
    pub owner: Option<String>,
    /// Who can decrypt.
    pub recipients: Vec<Recipient>,
    /// Configured keys by slug.
    pub hosts: BTreeMap<Slug, HostEntry>,
}

/// Now, to the second (what the host manifest records).
pub(crate) fn now() -> Timestamp {
    time::now_seconds()
}

impl HostManifest {
    /// A new manifest with one recipient.
    pub(crate) fn new(home: &Home, first: &RecipientKey, label: &str) -> Self {
        HostManifest {
            version: VERSION,
            owner: home.owner().name().map(str::to_string),
            recipients: vec![Recipient {
                kind: first.kind().into(),
                pubkey: first.to_string(),
                label: label.into(),
                added_at: now(),
            }],
            hosts: BTreeMap::new(),
        }
    }

    /// Whether this owner has a host manifest.
    pub(crate) fn exists(home: &Home) -> bool {
        home.host_manifest().is_file()
    }

    /// Reads and decrypts the host manifest.
    pub(crate) fn load(home: &Home, identity: &Identity) -> Result<Self> {
        let path = home.host_manifest();
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotInitialised {
                    home: home.root().to_path_buf(),
                    owner: home.owner().label().into(),
                    owner_flag: home.owner().flag(),
                })
            }
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        Self::decrypt(home, &data, identity)
    }

    /// Decrypts and decodes the content of `home`'s host manifest file (armored or binary age).
    pub fn decrypt(home: &Home, data: &[u8], identity: &Identity) -> Result<Self> {
        let path = home.host_manifest();
        let plain = crypto::decrypt(&path, data, identity).map_err(|e| match e {
            Error::CorruptFile { path, reason, .. } => Error::CorruptFile {
                hint: format!(
                    "restore {} from a backup; to start over instead: mv {0} {0}.damaged && keyrack init{} (then set its keys again)",
                    path.display(),
                    home.owner().flag()
                ),
                path,
                reason,
            },
            other => other,
        })?;
        Self::from_plaintext(home, &plain)
    }

    /// Decodes the decrypted JSON of `home`'s host manifest and checks its format version.
    pub fn from_plaintext(home: &Home, plain: &[u8]) -> Result<Self> {
        let path = home.host_manifest();
        let manifest: HostManifest =
            serde_json::from_slice(plain).map_err(|e| Error::CorruptFile {
                path: path.clone(),
                reason: format!("decrypted, but the content is not a keyrack host manifest ({e})"),
                hint: format!(
                    "restore {} from a backup, or move it aside and run keyrack init{}",
                    path.display(),
                    home.owner().flag()
                ),
            })?;
        if manifest.version > VERSION {
            return Err(Error::CorruptFile {
                path,
                reason: format!(
                    "format version {} is newer than this keyrack understands",
                    manifest.version
                ),
                hint: "upgrade keyrack".into(),
            });
        }
        Ok(manifest)
    }

    /// Encrypts to the recipients and writes atomically (0600).
    pub(crate) fn save(&self, home: &Home) -> Result<()> {
        fsio::ensure_private_dir(home.root())?;
        let json = zeroize::Zeroizing::new(
            serde_json::to_vec_pretty(self).expect("host manifest serialises"),
        );
        let sealed = crypto::encrypt(&self.recipient_keys()?, &json)?;
        fsio::write_atomic(&home.host_manifest(), &sealed, 0o600)
    }

    /// The recipients as parsed keys.
    pub fn recipient_keys(&self) -> Result<Vec<RecipientKey>> {
        self.recipients
            .iter()
            .map(|r| RecipientKey::parse(&r.pubkey))
            .collect()
    }

    /// The entry for `slug`, if set.
    pub(crate) fn entry(&self, slug: &Slug) -> Option<&HostEntry> {
        self.hosts.get(slug)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host manifest as keyrack wrote it before its entries were typed: `meta` a string map,
    /// `maxDuration` text, times RFC 3339, slugs as keys (one from an older keyrack with a dotted
    /// key, one aws.config entry set before the SSO user was recorded).
    const WRITTEN_BEFORE: &str = r#"{
      "version": 1,
      "owner": null,
      "recipients": [{"kind": "x25519", "pubkey": "age1qqqq", "label": "laptop", "addedAt": "2024-04-30T08:00:00Z"}],
      "hosts": {
        "acme.test.AWS_PROFILE": {"slug": "acme.test.AWS_PROFILE", "vault": "aws.iam.sso", "mech": "aws.sso",
          "exid": "acme.test", "env": "test", "org": "acme",
          "meta": {"accountId": "123456789012", "roleName": "Admin", "ssoRegion": "us-east-1",
                   "ssoSession": "acme", "ssoStartUrl": "https://d-1.awsapps.com/start", "ssoUser": "alice"},
          "createdAt": "2024-05-01T10:00:00Z", "updatedAt": "2024-05-02T10:00:00Z"},
        "acme.prod.AWS_PROFILE": {"slug": "acme.prod.AWS_PROFILE", "vault": "aws.config", "mech": "aws.sso",
          "exid": "acme.prod", "env": "prod", "org": "acme",
          "meta": {"ssoSession": "acme"},
          "createdAt": "2024-05-01T10:00:00Z", "updatedAt": "2024-05-01T10:00:00Z"},
        "acme.test.OLD.DOTTED": {"slug": "acme.test.OLD.DOTTED", "vault": "os.secure", "mech": "replica",
          "env": "test", "org": "acme", "maxDuration": "90m",
          "createdAt": "2024-05-01T10:00:00+00:00", "updatedAt": "2024-05-01T10:00:00.5Z"}
      }
    }"#;

    #[test]
    fn a_host_manifest_of_the_earlier_format_loads_typed_and_writes_back_the_same_data() {
        let m: HostManifest = serde_json::from_str(WRITTEN_BEFORE).unwrap();
        let aws = m
            .entry(&Slug::parse("acme.test.AWS_PROFILE").unwrap())
            .unwrap();
        assert_eq!(aws.vault, VaultKind::AwsConfig);
        match &aws.meta {
            Meta::AwsConfig(a) => {
                assert_eq!(a.sso_session, "acme");
                assert_eq!(a.account_id, "123456789012");
                assert_eq!(a.sso_user.as_deref(), Some("alice"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(aws.created_at.to_string(), "2024-05-01T10:00:00Z");
        // partial metadata is kept as it was, not guessed
        let prod = m
            .entry(&Slug::parse("acme.prod.AWS_PROFILE").unwrap())
            .unwrap();
        assert_eq!(prod.meta.get(aws_meta::SESSION).as_deref(), Some("acme"));
        assert!(matches!(prod.meta, Meta::Other(_)));
        let old = m
            .entry(&Slug::parse("acme.test.OLD.DOTTED").unwrap())
            .unwrap();
        assert_eq!(old.max_duration, Some(Duration::from_secs(5400)));
        assert_eq!(old.meta, Meta::None);
        assert_eq!(m.recipients[0].added_at.as_second(), 1_714_464_000);

        // written back: the same fields and values (times in the one written form, the duration
        // canonical), and it loads again to the same entries
        let out: serde_json::Value = serde_json::to_value(&m).unwrap();
        let before: serde_json::Value = serde_json::from_str(WRITTEN_BEFORE).unwrap();
        let aws_out = &out["hosts"]["acme.test.AWS_PROFILE"];
        assert_eq!(
            aws_out["meta"],
            before["hosts"]["acme.test.AWS_PROFILE"]["meta"]
        );
        assert_eq!(aws_out["vault"], "aws.config");
        assert_eq!(aws_out["createdAt"], "2024-05-01T10:00:00Z");
        assert_eq!(
            out["hosts"]["acme.prod.AWS_PROFILE"]["meta"],
            before["hosts"]["acme.prod.AWS_PROFILE"]["meta"]
        );
        let old_out = &out["hosts"]["acme.test.OLD.DOTTED"];
        assert_eq!(old_out["maxDuration"], "1h30m");
        assert!(old_out.get("meta").is_none());
        assert_eq!(out["recipients"][0]["addedAt"], "2024-04-30T08:00:00Z");
        assert_eq!(
            old_out["updatedAt"], "2024-05-01T10:00:00Z",
            "whole seconds"
        );
        let again: HostManifest = serde_json::from_value(out.clone()).unwrap();
        assert_eq!(
            serde_json::to_value(&again).unwrap(),
            out,
            "stable once written"
        );
        assert_eq!(again.hosts.len(), m.hosts.len());
        assert_eq!(
            again.entry(&Slug::parse("acme.test.AWS_PROFILE").unwrap()),
            Some(aws)
        );
    }

    #[test]
    fn aws_params_metadata_is_typed_and_written_back_as_read() {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let via = map(&[
            ("region", "eu-west-1"),
            ("named", "keyrack"),
            ("via", "DEPLOY_PROFILE"),
            ("kmsKeyId", "alias/team"),
        ]);
        let m = Meta::from_map(VaultKind::AwsParams, via.clone());
        assert_eq!(
            m,
            Meta::AwsParams(AwsParamsMeta {
                region: "eu-west-1".into(),
                named: ParamNaming::Keyrack,
                kms_key_id: Some("alias/team".into()),
                signer: ParamSigner::Via("DEPLOY_PROFILE".into()),
            })
        );
        assert_eq!(m.to_map(), via);
        let chain = map(&[
            ("region", "us-east-1"),
            ("named", "user"),
            ("identity", "chain"),
        ]);
        let m = Meta::from_map(VaultKind::AwsParams, chain.clone());
        assert!(
            matches!(&m, Meta::AwsParams(p) if p.signer == ParamSigner::Chain && p.named == ParamNaming::User)
        );
        assert_eq!(m.to_map(), chain);
        // what this keyrack does not model is kept as read, never guessed
        for odd in [
            map(&[("region", "us-east-1"), ("named", "someone")]),
            map(&[
                ("region", "us-east-1"),
                ("named", "keyrack"),
                ("via", "A"),
                ("identity", "chain"),
            ]),
            map(&[("named", "keyrack"), ("via", "A")]),
            map(&[
                ("region", "us-east-1"),
                ("named", "keyrack"),
                ("via", "A"),
                ("future", "x"),
            ]),
        ] {
            let m = Meta::from_map(VaultKind::AwsParams, odd.clone());
            assert_eq!(m, Meta::Other(odd.clone()));
            assert_eq!(m.to_map(), odd);
        }
        // the same fields under another vault are not aws.params' metadata
        assert!(matches!(
            Meta::from_map(VaultKind::OsSecure, via),
            Meta::Other(_)
        ));
    }

    #[test]
    fn an_unreadable_entry_is_an_error_not_a_guess() {
        for bad in [
            WRITTEN_BEFORE.replace("\"90m\"", "\"soon\""),
            WRITTEN_BEFORE.replace("2024-05-02T10:00:00Z", "yesterday"),
        ] {
            assert!(serde_json::from_str::<HostManifest>(&bad).is_err());
        }
    }
}
