//! `aws.params`: AWS SSM Parameter Store `SecureString`s, the team's shared store.
//!
//! **Host entry.** `exid` = the parameter name: `--exid /path`, or computed
//! `/keyrack/<org>/<env>/<KEY>` (`@all` → `_all_`). `meta` ([`AwsParamsMeta`], in the file
//! [`meta`]): `region`, `named` (`keyrack` when keyrack computed the name, `user` for `--exid`),
//! `kmsKeyId` (when given), and the identity: `via` (the aws.config key whose role credentials
//! sign, `AWS_PROFILE` unless `--via KEY`) or `identity: chain` for a machine-wide (`@all`) key.
//!
//! **Identity.** A repository key signs with the role credentials of the org's **unlocked**
//! aws.config key of the same env (`org.env.VIA`, falling back to `org.all.VIA` as every daemon
//! lookup does), taken from the session daemon: the payload of that grant
//! ([`crate::vault::aws_config::Payload`]) carries them, the daemon renews them ahead of their
//! expiry, and with less than 5 minutes left they are renewed here with the SSO token it carries
//! and handed back. The daemon itself knows nothing of this. keyrack never falls back to an
//! ambient profile: when that key is locked, the row says to unlock it first. A machine-wide key
//! signs with the standard credential chain ([`crate::aws::chain`]: environment, container,
//! instance role).
//!
//! **Region.** `--region`, else the region of the `via` key's profile (`region`, else its SSO
//! region); `@all` keys: `--region`, else `AWS_REGION` / `AWS_DEFAULT_REGION`. Recorded at set.
//!
//! **set** (mech `replica`, the default): GetParameter (what was there, to undo a failed proof;
//! a `String`/`StringList` parameter is never overwritten) → PutParameter (`SecureString`,
//! overwrite, `KeyId` when `--kms-key-id`) → the shared proof reads it back (GetParameter with
//! decryption) and compares. Mech `reference` points at an existing parameter without writing
//! it: `set` reads its value once and proves it like any other.
//!
//! **unlock** reads SSM every time (a rotation in SSM is picked up at the next unlock): `unlock`
//! reads aws.params keys after the other vaults' grants reached the daemon
//! ([`VaultInfo::reads_with_session_grants`]), all keys of the pass in one
//! [`Vault::read_many`], which groups them by region and identity and reads each group with
//! `GetParameters`, 10 names a call (AWS's limit).
//! A value of another type than `SecureString` is refused (never a non-secret parameter as a
//! secret); a missing parameter is `lost`; `AccessDeniedException` (SSM or KMS) carries a
//! paste-ready IAM statement in its fix; throttling is retried with backoff by the client.
//!
//! **del** deletes the parameter only when keyrack named it *and* wrote it (a `replica` or
//! `github.app` credentials under `/keyrack/…`); a `--exid` parameter or a `reference` is only
//! forgotten.
//!
//! Mech `github.app` keeps the app's credentials bundle as the SecureString (a team shares one
//! GitHub App); `unlock` mints the installation token from it like any owning vault.

use std::collections::BTreeMap;

use super::{Custody, Grant, Read, Stored, Vault, VaultContext, VaultInfo, VaultKind};
use crate::aws::chain;
use crate::aws::config_file::AwsConfig;
use crate::aws::names::{KmsKeyId, NameError, ParameterName, ProfileName, Region};
use crate::aws::ssm::{
    self, iam_statement, parameter_arn, Operation, Parameter, ParameterType, SigningCredentials,
    Ssm, SsmError,
};
use crate::daemon::client::Client;
use crate::error::{Error, Result};
use crate::grant::{time, Mech};
use crate::host_manifest::{AwsParamsMeta, HostEntry, Meta, ParamNaming, ParamSigner};
use crate::secret::Secret;
use crate::slug::{self, Slug, ORG_ALL};
use crate::vault::aws_config::{self, Payload};

/// The names of the metadata recorded in the host entry.
pub use crate::host_manifest::params_meta as meta;

/// What aws.params can do: it references parameters in general, owns only those keyrack named
/// and wrote (`del` deletes them), signs with an unlocked aws.config key of the session, and
/// takes `--kms-key-id` and `--via`.
pub const INFO: VaultInfo = VaultInfo {
    kind: VaultKind::AwsParams,
    exid_with: &[Mech::Replica, Mech::Reference, Mech::GithubApp],
    location_with: &[],
    writable: true,
    lives_in_daemon: false,
    custody: Custody::References,
    owns_with: &[Mech::Replica, Mech::GithubApp],
    mechs: &[Mech::Replica, Mech::Reference, Mech::GithubApp],
    default_mech: Mech::Replica,
    default_for_keys: &[],
    custody_of_entry: Some(custody),
    reads_with_session_grants: true,
    set_flags: &["--kms-key-id", "--via"],
    open: |ctx| Box::new(AwsParamsVault::new(ctx)),
    open_for_set: Some(|ctx, t| {
        Box::new(AwsParamsVault::with_options(
            ctx,
            ParamsOptions {
                exid: t.exid,
                region: t.region,
                kms_key_id: t.encryption_key,
                via: t.via,
            },
        ))
    }),
};

/// The aws.config key a repository key signs with unless `--via` names another.
pub const DEFAULT_VIA: &str = "AWS_PROFILE";

/// The aws.params flags of `set` (`--kms-key-id`, `--via`); `--exid` and `--region` are shared
/// with other vaults.
#[derive(Clone, Debug, Default)]
pub struct ParamsFlags {
    /// `--kms-key-id`.
    pub kms_key_id: Option<String>,
    /// `--via KEY`.
    pub via: Option<String>,
}

/// What `set` was told about the parameter.
#[derive(Clone, Debug, Default)]
pub struct ParamsOptions {
    /// `--exid`: the parameter name (default: `/keyrack/<org>/<env>/<KEY>`).
    pub exid: Option<String>,
    /// `--region` (default: the `via` profile's region; `@all`: `AWS_REGION`).
    pub region: Option<String>,
    /// `--kms-key-id` (default: the account's `alias/aws/ssm`).
    pub kms_key_id: Option<String>,
    /// `--via KEY`: the aws.config key whose role credentials sign (default `AWS_PROFILE`).
    pub via: Option<String>,
}

/// The computed name of a key: `/keyrack/<org>/<env>/<KEY>` (`@all` → `_all_`).
pub fn computed_name(slug: &Slug) -> std::result::Result<ParameterName, NameError> {
    let org = if slug.org() == ORG_ALL {
        "_all_"
    } else {
        slug.org()
    };
    ParameterName::parse(&format!("/keyrack/{org}/{}/{}", slug.env(), slug.key()))
}

/// Whether `del` destroys the parameter of `entry`: only one keyrack named and wrote (a
/// `replica`, or `github.app` credentials), never a `reference`.
pub fn custody(entry: &HostEntry) -> Custody {
    let named = match &entry.meta {
        Meta::AwsParams(m) => m.named == ParamNaming::Keyrack,
        other => other.get(meta::NAMED).as_deref() == Some(ParamNaming::Keyrack.as_str()),
    };
    if named && entry.mech != Mech::Reference {
        Custody::Owns
    } else {
        Custody::References
    }
}

/// Who signs the calls of a key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Signer {
    /// The standard credential chain (`@all` keys).
    Chain,
    /// The role credentials of this aws.config key (looked up with the `org.all` fallback).
    Via(Slug),
}

/// Credentials resolved for a [`Signer`], and the profile behind them.
struct Identity {
    creds: SigningCredentials,
    profile: Option<String>,
}

/// An error kept for each key of a batch until its answer is made (errors are not `Clone`).
#[derive(Clone, Debug)]
enum Failure {
    Locked {
        what: String,
        reason: String,
        hint: String,
    },
    Refused {
        operation: &'static str,
        reason: String,
        hint: String,
    },
    Aws {
        message: String,
        hint: String,
    },
}

impl Failure {
    fn of(e: Error) -> Self {
        match e {
            Error::Locked { what, reason, hint } => Failure::Locked { what, reason, hint },
            Error::VaultRefused {
                operation,
                reason,
                hint,
                ..
            } => Failure::Refused {
                operation,
                reason,
                hint,
            },
            other => Failure::Aws {
                message: other.to_string(),
                hint: other.fix().unwrap_or_default(),
            },
        }
    }

    fn into_error(self) -> Error {
        match self {
            Failure::Locked { what, reason, hint } => Error::Locked { what, reason, hint },
            Failure::Refused {
                operation,
                reason,
                hint,
            } => Error::VaultRefused {
                vault: VaultKind::AwsParams.to_string(),
                operation,
                reason,
                hint,
            },
            Failure::Aws { message, hint } => Error::Aws {
                message,
                hint,
                source: None,
            },
        }
    }
}

/// Where an SSM call was made, to word its error.
#[derive(Clone, Debug)]
struct Site {
    op: Operation,
    region: Region,
    name: String,
    /// The IAM resource a fix grants: the env's `/keyrack/<org>/<env>/*` for computed names,
    /// else the parameter itself (`{account}` is filled from the error).
    resource_path: String,
    source: String,
    /// `keyrack set …` flags of the key.
    key_flags: String,
}

impl Site {
    fn failure(&self, e: SsmError) -> Failure {
        let doing = match self.op {
            Operation::Read => "reading",
            Operation::Write => "writing",
            Operation::Delete => "deleting",
        };
        match e {
            SsmError::AccessDenied {
                ref action,
                ref resource,
                ref message,
                ..
            } => {
                let account = ssm::denied_account(&e).unwrap_or_else(|| "*".into());
                let statement = iam_statement(
                    self.op,
                    &self.region,
                    action.as_deref(),
                    resource.as_deref(),
                    &parameter_arn(&self.region, &account, &self.resource_path),
                );
                Failure::Aws {
                    message: format!(
                        "AWS denied {doing} parameter {} in {} ({}) with {}: {message}",
                        self.name,
                        self.region,
                        action.as_deref().unwrap_or("AccessDeniedException"),
                        self.source,
                    ),
                    hint: format!(
                        "grant it in the IAM policy of that role (its permission set in IAM Identity Center), e.g. this statement: {statement}"
                    ),
                }
            }
            SsmError::NotFound => Failure::Aws {
                message: format!("parameter {} is not in SSM ({})", self.name, self.region),
                hint: format!("set it again: keyrack set {}", self.key_flags),
            },
            SsmError::Throttled { attempts, code } => Failure::Aws {
                message: format!(
                    "SSM in {} kept refusing ({code}) while {doing} parameter {}, {attempts} tries with backoff",
                    self.region, self.name
                ),
                hint: "AWS is throttling this account: retry in a minute".into(),
            },
            SsmError::Refused { code, message } => Failure::Aws {
                message: format!(
                    "SSM in {} refused {doing} parameter {}: {code}: {message}",
                    self.region, self.name
                ),
                hint: match code.as_str() {
                    "UnrecognizedClientException"
                    | "InvalidClientTokenId"
                    | "ExpiredTokenException"
                    | "InvalidSignatureException"
                    | "SignatureDoesNotMatch" => format!(
                        "the credentials ({}) were refused: unlock that key again",
                        self.source
                    ),
                    "InvalidKeyId" | "KMSInvalidStateException" | "KMSNotFoundException" => {
                        "check the KMS key (--kms-key-id): it must exist, be enabled and be usable by this role".into()
                    }
                    "ParameterMaxVersionLimitExceeded" => format!(
                        "the parameter has 100 versions: delete old ones (aws ssm delete-parameter …) or set another name: keyrack set {} --exid /another/name",
                        self.key_flags
                    ),
                    _ => "check the parameter name and value (a Standard-tier SecureString holds at most 4 KB), then retry".into(),
                },
            },
            SsmError::Transport(a) => Failure::of(a.into_error(&format!(
                "{doing} parameter {} from SSM ({})",
                self.name, self.region
            ))),
        }
    }
}

/// The aws.params adapter. It keeps nothing between calls: every read asks SSM (and the
/// session daemon for the credentials it signs with).
pub struct AwsParamsVault<'a> {
    ctx: VaultContext<'a>,
    options: ParamsOptions,
}

impl<'a> AwsParamsVault<'a> {
    /// An adapter for unlock and del (everything it needs is in the host entries).
    pub fn new(ctx: VaultContext<'a>) -> Self {
        Self::with_options(ctx, ParamsOptions::default())
    }

    /// An adapter for `set`, with what `set` was told.
    pub fn with_options(ctx: VaultContext<'a>, options: ParamsOptions) -> Self {
        AwsParamsVault { ctx, options }
    }

    fn key_flags(&self, key: &str, env: &str, org: &str) -> String {
        slug::key_flags(key, env, org, self.ctx.home.owner())
    }

    /// The role credentials of the unlocked aws.config key `via`, from the session daemon: the
    /// ones its grant carries (the daemon renews them ahead of their expiry), or, with less than
    /// 5 minutes left, renewed here with the SSO token the grant carries and handed back.
    fn role_identity(&self, via: &Slug) -> Result<Identity> {
        let flags = self.key_flags(via.key(), via.env(), via.org());
        let locked = |reason: String| Error::Locked {
            what: via.to_string(),
            reason,
            hint: format!("unlock it first: keyrack unlock {flags}"),
        };
        let client = Client::new(self.ctx.home);
        let grant = client
            .get(vec![via.clone()])?
            .and_then(|mut v| v.pop().flatten())
            .ok_or_else(|| {
                locked(format!(
                    "aws.params keys of {}/{} read SSM with its role credentials, and it is not unlocked in this session",
                    via.org(),
                    via.env()
                ))
            })?;
        if grant.vault != VaultKind::AwsConfig {
            return Err(Error::VaultRefused {
                vault: VaultKind::AwsParams.to_string(),
                operation: "sign in",
                reason: format!(
                    "{} is an {} key, not an aws.config key: aws.params signs with the role credentials of an AWS SSO profile",
                    grant.slug, grant.vault
                ),
                hint: format!(
                    "set it as an SSO profile (keyrack set {flags} --vault aws.config), or name another key with --via"
                ),
            });
        }
        let profile = grant.secret.expose().to_string();
        let payload = Payload::of(&grant).ok_or_else(|| {
            locked(format!(
                "its grant carries no role credentials for profile {profile}"
            ))
        })?;
        let now = time::now();
        let creds = match payload.fresh_role_credentials(now).cloned() {
            Some(c) => c,
            None => {
                let c = payload.fetch_role_credentials().map_err(|e| {
                    if e.is_unauthorized() {
                        locked("its SSO session ended".into())
                    } else {
                        e.into_error("renewing the role credentials aws.params signs with")
                    }
                })?;
                aws_config::hand_back_role_credentials(&client, &grant.slug, &c, now)?;
                c
            }
        };
        Ok(Identity {
            creds: SigningCredentials::from_role(
                &creds,
                format!(
                    "the role credentials of {} (profile {profile}, role {} in account {})",
                    grant.slug, payload.role_name, payload.account_id
                ),
            ),
            profile: Some(profile),
        })
    }

    fn identity(&self, signer: &Signer) -> Result<Identity> {
        match signer {
            Signer::Chain => Ok(Identity {
                creds: chain::resolve()?,
                profile: None,
            }),
            Signer::Via(via) => self.role_identity(via),
        }
    }

    /// The signer of a new key (`set`).
    fn signer_for_set(&self, slug: &Slug) -> Result<Signer> {
        if slug.org() == ORG_ALL {
            if let Some(v) = &self.options.via {
                return Err(Error::InvalidInput {
                    what: "--via",
                    value: v.clone(),
                    reason: "a machine-wide key (--org @all) signs with the AWS credential chain (environment, container or instance role), not with a repository's key".into(),
                    hint: Some("drop --via".into()),
                });
            }
            return Ok(Signer::Chain);
        }
        let via = self.options.via.as_deref().unwrap_or(DEFAULT_VIA);
        slug::validate_key(via).map_err(|e| match e {
            Error::InvalidInput { value, reason, .. } => Error::InvalidInput {
                what: "--via",
                value,
                reason,
                hint: Some("name the aws.config key to sign with, e.g. --via AWS_PROFILE".into()),
            },
            other => other,
        })?;
        Ok(Signer::Via(Slug::new(slug.org(), slug.env(), via)?))
    }

    /// The region of a new key (`set`).
    fn region_for_set(&self, slug: &Slug, identity: &Identity) -> Result<Region> {
        if let Some(r) = &self.options.region {
            return Region::parse(r).map_err(NameError::for_flag);
        }
        if let Some(profile) = &identity.profile {
            let name = ProfileName::parse(profile).map_err(NameError::for_flag)?;
            let p = AwsConfig::load_default()?.sso_profile(&name)?;
            return Ok(p.call_region().clone());
        }
        for var in ["AWS_REGION", "AWS_DEFAULT_REGION"] {
            if let Some(v) = std::env::var(var).ok().filter(|v| !v.is_empty()) {
                return Region::parse(&v).map_err(|e| Error::InvalidInput {
                    what: "region",
                    value: e.shown.clone(),
                    reason: format!("{var}: {}", e.reason),
                    hint: Some(format!("fix {var}, or pass --region")),
                });
            }
        }
        Err(Error::InvalidInput {
            what: "region",
            value: String::new(),
            reason: format!(
                "{} is machine-wide and no region is known (no --region, AWS_REGION or AWS_DEFAULT_REGION)",
                slug
            ),
            hint: Some("pass --region, e.g. --region us-east-1".into()),
        })
    }

    /// The parameter name of a new key (`set`), and whether keyrack named it.
    fn name_for_set(&self, slug: &Slug) -> Result<(ParameterName, bool)> {
        match &self.options.exid {
            Some(x) => Ok((ParameterName::parse(x).map_err(NameError::for_flag)?, false)),
            None => Ok((
                computed_name(slug)
                    .map_err(|e| NameError::for_service(e, "naming the parameter"))?,
                true,
            )),
        }
    }

    fn site(
        &self,
        op: Operation,
        slug: &Slug,
        region: &Region,
        name: &ParameterName,
        keyrack_named: bool,
        source: &str,
    ) -> Site {
        let resource_path = if keyrack_named {
            name.rsplit_once('/')
                .map(|(dir, _)| format!("{dir}/*"))
                .unwrap_or_else(|| name.to_string())
        } else {
            name.to_string()
        };
        Site {
            op,
            region: region.clone(),
            name: name.to_string(),
            resource_path,
            source: source.to_string(),
            key_flags: self.key_flags(slug.key(), slug.env(), slug.org()),
        }
    }

    /// Everything `set` needs, resolved: the name, the KMS key, the identity (the signing key
    /// unlocked, or the chain) and the region.
    fn plan(&self, slug: &Slug) -> Result<Plan> {
        let (name, keyrack_named) = self.name_for_set(slug)?;
        let kms = self
            .options
            .kms_key_id
            .as_deref()
            .map(KmsKeyId::parse)
            .transpose()
            .map_err(NameError::for_flag)?;
        let signer = self.signer_for_set(slug)?;
        let identity = self.identity(&signer)?;
        let region = self.region_for_set(slug, &identity)?;
        Ok(Plan {
            name,
            keyrack_named,
            kms,
            signer,
            identity,
            region,
        })
    }

    /// The current value of the parameter a `reference` set points at (read once, then proven
    /// like any other set).
    fn referenced_value(&self, slug: &Slug) -> Result<Secret> {
        let plan = self.plan(slug)?;
        let site = self.site(
            Operation::Read,
            slug,
            &plan.region,
            &plan.name,
            plan.keyrack_named,
            &plan.identity.creds.source,
        );
        let ssm = Ssm::new(&plan.region, &plan.identity.creds)
            .map_err(|e| site.failure(e).into_error())?;
        match ssm.get_parameter(&plan.name) {
            Ok(Some(p)) => checked(p, &site, "set").map_err(Failure::into_error),
            Ok(None) => Err(Error::VaultRefused {
                vault: VaultKind::AwsParams.to_string(),
                operation: "set",
                reason: format!(
                    "--mech reference points at parameter {} in {}, and there is none",
                    plan.name, plan.region
                ),
                hint: format!(
                    "check the name and region, or store a value there: keyrack set {} --vault aws.params",
                    site.key_flags
                ),
            }),
            Err(e) => Err(site.failure(e).into_error()),
        }
    }

    /// What a host entry recorded: the name, the region and who signs. An entry without them
    /// (never recorded by `set`) reads what `set` would have written: the computed name, in the
    /// region this adapter was given, signed with `AWS_PROFILE`.
    fn recorded(&self, entry: &HostEntry) -> std::result::Result<Recorded, Failure> {
        let flags = self.key_flags(entry.slug.key(), &entry.env, &entry.org);
        let again = |what: String| Failure::Aws {
            message: format!("{}: {what}", entry.slug),
            hint: format!("set it again: keyrack set {flags} --vault aws.params"),
        };
        let name = match entry.exid.as_deref() {
            Some(n) => ParameterName::parse(n)
                .map_err(|e| again(format!("the recorded name is refused: {e}")))?,
            None => computed_name(&entry.slug)
                .map_err(|e| again(format!("its computed name is refused: {e}")))?,
        };
        let (region, named, signer) = match &entry.meta {
            Meta::AwsParams(m) => (
                Some(m.region.clone()),
                Some(m.named),
                Some(m.signer.clone()),
            ),
            other => (
                other.get(meta::REGION),
                None,
                other.get(meta::VIA).map(ParamSigner::Via),
            ),
        };
        let region = region
            .or_else(|| self.options.region.clone())
            .ok_or_else(|| again("no region is recorded".into()))
            .and_then(|r| {
                Region::parse(&r).map_err(|e| again(format!("the recorded region is refused: {e}")))
            })?;
        let signer = match signer {
            _ if entry.org == ORG_ALL => Signer::Chain,
            Some(ParamSigner::Chain) => Signer::Chain,
            Some(ParamSigner::Via(via)) => Signer::Via(
                Slug::new(&entry.org, &entry.env, &via)
                    .map_err(|e| again(format!("the recorded signing key is refused: {e}")))?,
            ),
            None => Signer::Via(
                Slug::new(&entry.org, &entry.env, DEFAULT_VIA)
                    .map_err(|e| again(format!("its signing key is refused: {e}")))?,
            ),
        };
        Ok(Recorded {
            keyrack_named: named == Some(ParamNaming::Keyrack),
            name,
            region,
            signer,
        })
    }

    /// The answer to a read of `entry`: its grant, `lost` when SSM has no such parameter.
    fn answer(
        &self,
        entry: &HostEntry,
        site: &Site,
        found: std::result::Result<Option<Parameter>, Failure>,
    ) -> Result<Read> {
        match found.map_err(Failure::into_error)? {
            Some(p) => {
                let value = checked(p, site, "unlock").map_err(Failure::into_error)?;
                Ok(Read::Granted(Grant::new(
                    entry.slug.clone(),
                    value,
                    VaultKind::AwsParams,
                    entry.mech,
                )))
            }
            None => Ok(Read::Lost(format!(
                "parameter {} is not in SSM ({}): deleted there, or never written",
                site.name, site.region
            ))),
        }
    }

    /// Reads the keys of one region and signer: one identity, `GetParameters` 10 names a call.
    fn read_group(
        &self,
        region: &Region,
        signer: &Signer,
        items: &[(&HostEntry, Recorded)],
    ) -> Vec<Result<Read>> {
        let identity = match self.identity(signer) {
            Ok(i) => i,
            Err(e) => {
                let f = Failure::of(e);
                return items.iter().map(|_| Err(f.clone().into_error())).collect();
            }
        };
        let sites: Vec<Site> = items
            .iter()
            .map(|(entry, r)| {
                self.site(
                    Operation::Read,
                    &entry.slug,
                    region,
                    &r.name,
                    r.keyrack_named,
                    &identity.creds.source,
                )
            })
            .collect();
        let answers: Vec<std::result::Result<Option<Parameter>, SsmError>> =
            match Ssm::new(region, &identity.creds) {
                Ok(ssm) => {
                    let names: Vec<ParameterName> =
                        items.iter().map(|(_, r)| r.name.clone()).collect();
                    ssm.get_parameters(&names)
                }
                Err(e) => items.iter().map(|_| Err(e.clone())).collect(),
            };
        items
            .iter()
            .zip(&sites)
            .zip(answers)
            .map(|(((entry, _), site), found)| {
                self.answer(entry, site, found.map_err(|e| site.failure(e)))
            })
            .collect()
    }
}

/// What `set` resolved.
struct Plan {
    name: ParameterName,
    keyrack_named: bool,
    kms: Option<KmsKeyId>,
    signer: Signer,
    identity: Identity,
    region: Region,
}

/// What a host entry recorded.
struct Recorded {
    name: ParameterName,
    region: Region,
    signer: Signer,
    keyrack_named: bool,
}

/// A parameter's value, if it is a `SecureString` (`operation`: what is refused).
fn checked(
    p: Parameter,
    site: &Site,
    operation: &'static str,
) -> std::result::Result<Secret, Failure> {
    if p.kind == ParameterType::SecureString {
        return Ok(p.value);
    }
    Err(Failure::Refused {
        operation,
        reason: format!(
            "parameter {} in {} is a {} parameter, not a SecureString: keyrack never hands out a non-secret parameter as a secret",
            site.name,
            site.region,
            p.kind.as_str()
        ),
        hint: format!(
            "store it as a SecureString (aws ssm delete-parameter --name {} --region {}, then keyrack set {} --vault aws.params), or point the key at another parameter",
            site.name, site.region, site.key_flags
        ),
    })
}

impl Vault for AwsParamsVault<'_> {
    fn kind(&self) -> VaultKind {
        VaultKind::AwsParams
    }

    /// Checks the name, the KMS key, the identity (the signing key unlocked, or the chain) and
    /// the region before the secret is asked for.
    fn check_ready(&self, slug: &Slug) -> Result<()> {
        self.plan(slug).map(|_| ())
    }

    /// A `reference` points at a parameter that is there already: its value, read once.
    fn referenced(&self, slug: &Slug, mech: Mech) -> Option<Result<Secret>> {
        (mech == Mech::Reference).then(|| self.referenced_value(slug))
    }

    fn store(&self, slug: &Slug, mech: Mech, secret: &Secret) -> Result<Stored> {
        let plan = self.plan(slug)?;
        let m = Meta::AwsParams(AwsParamsMeta {
            region: plan.region.to_string(),
            named: if plan.keyrack_named {
                ParamNaming::Keyrack
            } else {
                ParamNaming::User
            },
            kms_key_id: plan.kms.as_ref().map(ToString::to_string),
            signer: match &plan.signer {
                Signer::Chain => ParamSigner::Chain,
                Signer::Via(v) => ParamSigner::Via(v.key().to_string()),
            },
        });
        let exid = Some(plan.name.to_string());
        if mech == Mech::Reference {
            if plan.kms.is_some() {
                return Err(Error::InvalidInput {
                    what: "--kms-key-id",
                    value: plan.kms.map(String::from).unwrap_or_default(),
                    reason: "--mech reference does not write the parameter, so it encrypts nothing"
                        .into(),
                    hint: Some("drop --kms-key-id".into()),
                });
            }
            return Ok(Stored::new(exid, m, || Ok(())));
        }
        let creds = plan.identity.creds.clone();
        let read_site = self.site(
            Operation::Read,
            slug,
            &plan.region,
            &plan.name,
            plan.keyrack_named,
            &creds.source,
        );
        let write_site = Site {
            op: Operation::Write,
            ..read_site.clone()
        };
        let ssm = Ssm::new(&plan.region, &creds).map_err(|e| write_site.failure(e).into_error())?;
        let previous = ssm
            .get_parameter(&plan.name)
            .map_err(|e| read_site.failure(e).into_error())?;
        if let Some(p) = &previous {
            if p.kind != ParameterType::SecureString {
                return Err(Error::VaultRefused {
                    vault: VaultKind::AwsParams.to_string(),
                    operation: "set",
                    reason: format!(
                        "parameter {} in {} exists as a {} parameter; keyrack stores only SecureString and does not overwrite it",
                        plan.name,
                        plan.region,
                        p.kind.as_str()
                    ),
                    hint: "choose another name (--exid /path/NAME), or delete that parameter first if it is really this key's".into(),
                });
            }
        }
        ssm.put_parameter(&plan.name, secret, plan.kms.as_ref())
            .map_err(|e| write_site.failure(e).into_error())?;
        let (region, name, kms) = (plan.region.clone(), plan.name.clone(), plan.kms.clone());
        // Undo a failed proof: the previous value back (encrypted with this set's key), or no
        // parameter at all.
        Ok(Stored::new(exid, m, move || {
            let ssm = Ssm::new(&region, &creds).map_err(|e| write_site.failure(e).into_error())?;
            let undone = match &previous {
                Some(p) => ssm.put_parameter(&name, &p.value, kms.as_ref()).map(|_| ()),
                None => ssm.delete_parameter(&name).map(|_| ()),
            };
            undone.map_err(|e| {
                Site {
                    op: if previous.is_some() {
                        Operation::Write
                    } else {
                        Operation::Delete
                    },
                    ..write_site.clone()
                }
                .failure(e)
                .into_error()
            })
        }))
    }

    /// Reads SSM now (`GetParameter` with decryption): a rotation there shows at the next read.
    fn read(&self, entry: &HostEntry) -> Result<Read> {
        let r = self.recorded(entry).map_err(Failure::into_error)?;
        let identity = self.identity(&r.signer)?;
        let site = self.site(
            Operation::Read,
            &entry.slug,
            &r.region,
            &r.name,
            r.keyrack_named,
            &identity.creds.source,
        );
        let found = Ssm::new(&r.region, &identity.creds)
            .and_then(|ssm| ssm.get_parameter(&r.name))
            .map_err(|e| site.failure(e));
        self.answer(entry, &site, found)
    }

    /// Groups the keys by region and signer and reads each group with one identity:
    /// `GetParameters`, 10 names a call.
    fn read_many(&self, entries: &[&HostEntry]) -> Vec<Result<Read>> {
        let mut out: Vec<Option<Result<Read>>> = entries.iter().map(|_| None).collect();
        let mut groups: BTreeMap<(Region, Signer), Vec<(usize, Recorded)>> = BTreeMap::new();
        for (i, entry) in entries.iter().enumerate() {
            match self.recorded(entry) {
                Ok(r) => groups
                    .entry((r.region.clone(), r.signer.clone()))
                    .or_default()
                    .push((i, r)),
                Err(f) => out[i] = Some(Err(f.into_error())),
            }
        }
        for ((region, signer), members) in groups {
            let (indexes, items): (Vec<usize>, Vec<(&HostEntry, Recorded)>) = members
                .into_iter()
                .map(|(i, r)| (i, (entries[i], r)))
                .unzip();
            for (i, answer) in indexes
                .into_iter()
                .zip(self.read_group(&region, &signer, &items))
            {
                out[i] = Some(answer);
            }
        }
        out.into_iter()
            .map(|a| a.expect("every entry answered"))
            .collect()
    }

    fn del(&self, entry: &HostEntry) -> Result<()> {
        if custody(entry) != Custody::Owns {
            return Ok(()); // a user-named parameter or a reference: forgotten, never deleted
        }
        let r = self.recorded(entry).map_err(Failure::into_error)?;
        let identity = self.identity(&r.signer)?;
        let site = self.site(
            Operation::Delete,
            &entry.slug,
            &r.region,
            &r.name,
            r.keyrack_named,
            &identity.creds.source,
        );
        let ssm = Ssm::new(&r.region, &identity.creds).map_err(|e| site.failure(e).into_error())?;
        ssm.delete_parameter(&r.name)
            .map(|_| ())
            .map_err(|e| site.failure(e).into_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn computed_names_follow_org_env_key() {
        let s = Slug::parse("acme.test.API_KEY").unwrap();
        assert_eq!(
            computed_name(&s).unwrap().as_str(),
            "/keyrack/acme/test/API_KEY"
        );
        let all = Slug::new(ORG_ALL, "prod", "TOKEN").unwrap();
        assert_eq!(
            computed_name(&all).unwrap().as_str(),
            "/keyrack/_all_/prod/TOKEN"
        );
    }

    #[test]
    fn only_keyrack_named_replicas_are_owned() {
        let s = Slug::parse("acme.test.K").unwrap();
        let typed = |named| {
            Meta::AwsParams(AwsParamsMeta {
                region: "us-east-1".into(),
                named,
                kms_key_id: None,
                signer: ParamSigner::Via("AWS_PROFILE".into()),
            })
        };
        let mut e = super::super::provisional_entry(
            &s,
            VaultKind::AwsParams,
            Mech::Replica,
            None,
            typed(ParamNaming::Keyrack),
        );
        assert_eq!(custody(&e), Custody::Owns);
        assert_eq!(INFO.custody_of(&e), Custody::Owns, "the registry asks it");
        e.mech = Mech::GithubApp;
        assert_eq!(custody(&e), Custody::Owns);
        e.mech = Mech::Reference;
        assert_eq!(custody(&e), Custody::References);
        e.mech = Mech::Replica;
        e.meta = typed(ParamNaming::User);
        assert_eq!(custody(&e), Custody::References);
        e.meta = Meta::None;
        assert_eq!(custody(&e), Custody::References, "unknown: never deleted");
        // metadata this keyrack does not model still says who named it
        let mut m = BTreeMap::new();
        m.insert(meta::NAMED.to_string(), "keyrack".to_string());
        m.insert("future".to_string(), "x".to_string());
        e.meta = Meta::from_map(VaultKind::AwsParams, m);
        assert!(matches!(e.meta, Meta::Other(_)));
        assert_eq!(custody(&e), Custody::Owns);
    }
}
