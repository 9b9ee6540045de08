//! The one place where AWS names are checked: every start URL, region, account id, role name,
//! profile name and sso-session name that keyrack reads (flags, the guided set-up, portal
//! answers, an existing `~/.aws/config`) or writes (the config editor, endpoint URLs) is one of
//! the newtypes below, and a newtype can only be built by its parser.
//!
//! The grammars are AWS's own, narrowed where AWS tools disagree:
//!
//! | name | grammar |
//! |---|---|
//! | region | `^[a-z]{2}(-[a-z]+)+-\d+$` (`us-east-1`, `eu-central-2`, `cn-north-1`, `us-gov-west-1`) |
//! | account id | exactly 12 ASCII digits |
//! | start URL | `https://host[:port][/path]`: a DNS host, no userinfo, printable ASCII, no spaces |
//! | role name | IAM's `[\w+=,.@-]{1,64}` (permission-set names are a subset) |
//! | profile / sso-session name | `[A-Za-z0-9_\-/.%@:+]{1,128}`, not starting with `-` |
//! | SSM parameter name | `^/?[a-zA-Z0-9_.\-/]{1,2048}$`, not starting with `aws`/`ssm` (any case, with or without `/`), a path starts with `/`, no empty level, at most 15 levels |
//! | KMS key id | a key id, key ARN, `alias/…` or alias ARN: `[A-Za-z0-9:/_\-.]{1,2048}` |
//!
//! Profile and sso-session names use the identifier set of the Rust `aws-config` profile parser
//! (it ignores profiles outside it); botocore splits section headers with `shlex`, so whitespace
//! and quotes are out too. A leading `-` is refused because the name is passed to
//! `aws sso login --profile NAME`.
//!
//! Why it matters: `~/.aws/config` is line-based, so a newline in any value writes arbitrary
//! settings (`credential_process = …`); and a region like `x@evil.example/#` turns
//! `https://portal.sso.{region}.amazonaws.com` into a URL whose host is `evil.example`, which
//! would then receive the SSO bearer token.

use std::fmt;
use std::ops::Deref;
use std::path::Path;

use crate::error::Error;

/// Which AWS name a value was meant to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// The portal start URL (`sso_start_url`).
    StartUrl,
    /// The IAM Identity Center region (`sso_region`).
    SsoRegion,
    /// A profile's default region (`region`).
    Region,
    /// An account id (`sso_account_id`).
    AccountId,
    /// A role / permission-set name (`sso_role_name`).
    RoleName,
    /// A profile name (`[profile NAME]`).
    ProfileName,
    /// An sso-session name (`[sso-session NAME]`, `sso_session`).
    SessionName,
    /// An SSM Parameter Store parameter name (`--exid` of aws.params).
    ParameterName,
    /// A KMS key id, key ARN or alias (`--kms-key-id`).
    KmsKeyId,
}

impl Field {
    /// The command-line flag that carries it.
    pub(crate) fn flag(self) -> &'static str {
        match self {
            Field::StartUrl => "--sso-start-url",
            Field::SsoRegion => "--sso-region",
            Field::Region => "--region",
            Field::AccountId => "--account-id",
            Field::RoleName => "--role-name",
            Field::ProfileName => "--profile-name",
            Field::SessionName => "--sso-session",
            Field::ParameterName => "--exid",
            Field::KmsKeyId => "--kms-key-id",
        }
    }

    /// The `~/.aws/config` setting that carries it.
    pub(crate) fn config_key(self) -> &'static str {
        match self {
            Field::StartUrl => "sso_start_url",
            Field::SsoRegion => "sso_region",
            Field::Region => "region",
            Field::AccountId => "sso_account_id",
            Field::RoleName => "sso_role_name",
            Field::ProfileName => "profile name",
            Field::SessionName => "sso_session",
            Field::ParameterName => "parameter name",
            Field::KmsKeyId => "kms key id",
        }
    }

    /// What a valid value looks like.
    pub(crate) fn expected(self) -> &'static str {
        match self {
            Field::StartUrl => "an https:// URL such as https://d-1234567890.awsapps.com/start or https://my-org.awsapps.com/start (no user@, no spaces)",
            Field::SsoRegion | Field::Region => "an AWS region such as us-east-1 or eu-central-1 ([a-z]{2}(-[a-z]+)+-N)",
            Field::AccountId => "a 12-digit AWS account id such as 123456789012",
            Field::RoleName => "an IAM role / permission-set name: 1-64 letters, digits or + = , . @ _ -",
            Field::ProfileName | Field::SessionName => "1-128 letters, digits or _ - / . % @ : + (not starting with -), e.g. acme.test",
            Field::ParameterName => "an SSM parameter name: 1-2048 letters, digits or _ . - /, a path starting with / (at most 15 levels), not starting with aws or ssm, e.g. /team/test/API_KEY",
            Field::KmsKeyId => "a KMS key id, key ARN, alias/NAME or alias ARN, e.g. alias/keyrack or 1234abcd-12ab-34cd-56ef-1234567890ab",
        }
    }

    /// A short name for messages.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Field::StartUrl => "start URL",
            Field::SsoRegion => "SSO region",
            Field::Region => "region",
            Field::AccountId => "account id",
            Field::RoleName => "role name",
            Field::ProfileName => "profile name",
            Field::SessionName => "sso-session name",
            Field::ParameterName => "SSM parameter name",
            Field::KmsKeyId => "KMS key id",
        }
    }
}

/// A value that is not a valid AWS name, with why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameError {
    /// What it was meant to be.
    pub field: Field,
    /// The value, made safe to print (control characters escaped, shortened).
    pub shown: String,
    /// Why it is refused.
    pub reason: String,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} '{}' is refused: {}; expected {}",
            self.field.describe(),
            self.shown,
            self.reason,
            self.field.expected()
        )
    }
}

impl NameError {
    fn new(field: Field, value: &str, reason: impl Into<String>) -> Self {
        NameError {
            field,
            shown: shown(value),
            reason: reason.into(),
        }
    }

    /// As the error of a command-line flag (exit 1: bad usage).
    pub(crate) fn for_flag(self) -> Error {
        Error::InvalidInput {
            what: self.field.flag(),
            value: self.shown,
            reason: self.reason,
            hint: Some(format!("pass {}", self.field.expected())),
        }
    }

    /// As the error of a value typed in the guided set-up.
    pub fn for_prompt(self) -> Error {
        Error::InvalidInput {
            what: self.field.describe(),
            value: self.shown,
            reason: self.reason,
            hint: Some(format!("enter {}", self.field.expected())),
        }
    }

    /// As the error of a value an AWS service answered with.
    pub(crate) fn for_service(self, what: &str) -> Error {
        Error::Aws {
            source: None,
            message: format!(
                "{what}: AWS answered a {} that keyrack refuses to use: '{}' ({})",
                self.field.describe(),
                self.shown,
                self.reason
            ),
            hint: format!(
                "ask your AWS administrator about it; keyrack accepts {}",
                self.field.expected()
            ),
        }
    }

    /// As the error of a setting in a config file, naming `file:line`.
    pub(crate) fn in_file(self, path: &Path, line: usize) -> Error {
        Error::Aws {
            source: None,
            message: format!(
                "{}:{line}: {} = '{}' is refused: {}; keyrack will not use this profile (nor send its SSO token anywhere) until it is fixed",
                path.display(),
                self.field.config_key(),
                self.shown,
                self.reason
            ),
            hint: format!(
                "edit {}:{line} so that {} is {}",
                path.display(),
                self.field.config_key(),
                self.field.expected()
            ),
        }
    }
}

/// `value` made safe to print on a terminal: control, bidi and other invisible format
/// characters escaped (`\n`, `\u{202e}`), at most 120 characters.
pub fn shown(value: &str) -> String {
    let mut out = String::new();
    for (i, c) in value.chars().enumerate() {
        if i == 120 {
            out.push('…');
            break;
        }
        if is_unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `c` must never reach a terminal or a line-based file raw: control characters
/// (C0, DEL, C1), bidi controls and overrides, zero-width and other invisible format
/// characters, line and paragraph separators.
pub(crate) fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061C}'                  // arabic letter mark
            | '\u{200B}'..='\u{200F}'   // zero-width space/joiners, LRM, RLM
            | '\u{2028}' | '\u{2029}'   // line / paragraph separator
            | '\u{202A}'..='\u{202E}'   // bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}'   // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}'   // bidi isolates
            | '\u{FEFF}'                // BOM / zero-width no-break space
            | '\u{FFF9}'..='\u{FFFB}') // interlinear annotations
}

/// The first character of `value` that is unsafe (see [`is_unsafe_char`]), described.
fn unsafe_char(value: &str) -> Option<String> {
    value.chars().find(|c| is_unsafe_char(*c)).map(|c| {
        let name = match c {
            '\n' => "a newline",
            '\r' => "a carriage return",
            '\t' => "a tab",
            '\u{1b}' => "an escape character",
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' => {
                "a bidi control character"
            }
            c if c.is_control() => "a control character",
            _ => "an invisible formatting character",
        };
        format!("it contains {name} (U+{:04X})", c as u32)
    })
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $field:expr, $check:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Parses and validates `value` (no trimming: what is checked is what is used).
            pub fn parse(value: &str) -> Result<Self, NameError> {
                if let Some(why) = unsafe_char(value) {
                    return Err(NameError::new($field, value, why));
                }
                $check(value).map_err(|why| NameError::new($field, value, why))?;
                Ok($name(value.to_string()))
            }

            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
    };
}

name_type!(
    /// An AWS region: `^[a-z]{2}(-[a-z]+)+-\d+$`.
    Region,
    Field::Region,
    check_region
);
name_type!(
    /// A 12-digit account id.
    AccountId,
    Field::AccountId,
    check_account_id
);
name_type!(
    /// A portal start URL (`https://`, DNS host, no userinfo).
    StartUrl,
    Field::StartUrl,
    check_start_url
);
name_type!(
    /// An IAM role / permission-set name.
    RoleName,
    Field::RoleName,
    check_role_name
);
name_type!(
    /// A profile name.
    ProfileName,
    Field::ProfileName,
    check_config_name
);
name_type!(
    /// An sso-session name.
    SessionName,
    Field::SessionName,
    check_config_name
);

name_type!(
    /// An SSM Parameter Store parameter name: `^/?[a-zA-Z0-9_.\-/]{1,2048}$`, not `aws…`/`ssm…`.
    ParameterName,
    Field::ParameterName,
    check_parameter_name
);
name_type!(
    /// A KMS key id, key ARN, alias name or alias ARN.
    KmsKeyId,
    Field::KmsKeyId,
    check_kms_key_id
);

impl Region {
    /// Parses a value meant as the SSO region (same grammar; errors name `sso_region`).
    pub fn parse_sso(value: &str) -> Result<Self, NameError> {
        Region::parse(value).map_err(|mut e| {
            e.field = Field::SsoRegion;
            e
        })
    }

    /// The DNS suffix of the region's partition, from the partition table of the SDKs
    /// (botocore's `partitions.json`): `amazonaws.com` (aws, aws-us-gov), `amazonaws.com.cn`
    /// for `cn-`, `amazonaws.eu` for the European Sovereign Cloud (`eusc-`), and the isolated
    /// partitions' own suffixes.
    pub(crate) fn dns_suffix(&self) -> &'static str {
        const PARTITIONS: [(&str, &str); 6] = [
            ("cn-", "amazonaws.com.cn"),
            ("eusc-", "amazonaws.eu"),
            ("us-iso-", "c2s.ic.gov"),
            ("us-isob-", "sc2s.sgov.gov"),
            ("us-isof-", "csp.hci.ic.gov"),
            ("eu-isoe-", "cloud.adc-e.uk"),
        ];
        PARTITIONS
            .iter()
            .find(|(prefix, _)| self.0.starts_with(prefix))
            .map_or("amazonaws.com", |(_, suffix)| suffix)
    }
}

impl StartUrl {
    /// The URL's host (lower-case as written).
    pub(crate) fn host(&self) -> &str {
        let rest = &self.0["https://".len()..];
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        authority.split(':').next().unwrap_or(authority)
    }
}

fn check_region(v: &str) -> Result<(), String> {
    // ^([a-z]{2}|eusc)(-[a-z]+)+-\d+$ (eusc: the European Sovereign Cloud, eusc-de-east-1)
    if v.len() > 64 {
        return Err("it is longer than any AWS region".into());
    }
    let parts: Vec<&str> = v.split('-').collect();
    let ok = parts.len() >= 3
        && (parts[0].len() == 2 || parts[0] == "eusc")
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err("it is not an AWS region name".into())
    }
}

fn check_account_id(v: &str) -> Result<(), String> {
    if v.len() == 12 && v.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err("an account id is exactly 12 digits".into())
    }
}

fn check_role_name(v: &str) -> Result<(), String> {
    if v.is_empty() || v.len() > 64 {
        return Err("a role name is 1 to 64 characters".into());
    }
    match v
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_+=,.@-".contains(*c)))
    {
        Some(c) => Err(format!(
            "'{}' is not allowed in a role name",
            shown(&c.to_string())
        )),
        None => Ok(()),
    }
}

fn check_config_name(v: &str) -> Result<(), String> {
    if v.is_empty() || v.len() > 128 {
        return Err("a name is 1 to 128 characters".into());
    }
    if v.starts_with('-') {
        return Err("a name may not start with '-'".into());
    }
    match v
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_-/.%@:+".contains(*c)))
    {
        Some(' ') => Err("it contains a space".into()),
        Some(c) => Err(format!(
            "'{}' is not allowed (AWS tools ignore such profiles, and [ ] = ; # would change the file's structure)",
            shown(&c.to_string())
        )),
        None => Ok(()),
    }
}

fn check_parameter_name(v: &str) -> Result<(), String> {
    // SSM's grammar ^/?[a-zA-Z0-9_.\-/]{1,2048}$ (the documented length limit counts the
    // fully qualified name) and its rules: no aws/ssm prefix, a hierarchy starts with '/',
    // at most 15 levels, no empty level.
    if v.is_empty() || v.len() > 2048 {
        return Err("a parameter name is 1 to 2048 characters".into());
    }
    if let Some(c) = v
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.-/".contains(*c)))
    {
        return Err(if c == ' ' {
            "it contains a space".into()
        } else {
            format!(
                "'{}' is not allowed in a parameter name",
                shown(&c.to_string())
            )
        });
    }
    let bare = v.strip_prefix('/').unwrap_or(v).to_ascii_lowercase();
    if bare.starts_with("aws") || bare.starts_with("ssm") {
        return Err("names starting with aws or ssm are reserved by AWS".into());
    }
    if v.contains('/') {
        if !v.starts_with('/') {
            return Err("a name with a path must start with '/'".into());
        }
        if v.ends_with('/') || v.contains("//") {
            return Err("it has an empty path level ('//' or a trailing '/')".into());
        }
        if v.matches('/').count() > 15 {
            return Err("it has more than 15 levels".into());
        }
    }
    Ok(())
}

fn check_kms_key_id(v: &str) -> Result<(), String> {
    if v.is_empty() || v.len() > 2048 {
        return Err("a KMS key id is 1 to 2048 characters".into());
    }
    match v
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || ":/_-.".contains(*c)))
    {
        Some(c) => Err(format!(
            "'{}' is not allowed in a KMS key id, ARN or alias",
            shown(&c.to_string())
        )),
        None => Ok(()),
    }
}

fn check_start_url(v: &str) -> Result<(), String> {
    if v.len() > 1024 {
        return Err("it is longer than 1024 characters".into());
    }
    if let Some(c) = v.chars().find(|c| !(c.is_ascii_graphic())) {
        return Err(if c == ' ' {
            "it contains a space".into()
        } else {
            format!(
                "it contains '{}', which is not printable ASCII",
                shown(&c.to_string())
            )
        });
    }
    if v.contains('\\') {
        return Err("it contains a backslash".into());
    }
    let Some(rest) = v.strip_prefix("https://") else {
        return Err(if v.contains("://") {
            "it is not an https:// URL".into()
        } else {
            "it is not a URL (it must start with https://)".into()
        });
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.contains('@') {
        return Err("it has a user@ part, which would change the host the sign-in goes to".into());
    }
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err("its port is not a number".into());
        }
        if p.parse::<u32>().map_or(true, |n| n == 0 || n > 65535) {
            return Err("its port is out of range".into());
        }
    }
    if host.is_empty() {
        return Err("it has no host".into());
    }
    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() < 2 {
        return Err(format!(
            "its host '{host}' is not a domain name (expected e.g. d-1234567890.awsapps.com)"
        ));
    }
    for l in &labels {
        let ok = !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-');
        if !ok {
            return Err(format!("its host '{host}' is not a valid domain name"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssm_parameter_names_follow_ssm_rules() {
        for good in [
            "/keyrack/acme/test/API_KEY",
            "/keyrack/_all_/all/TOKEN",
            "plain_name",
            "a.b-c_d",
            "/team/test/db.password-1",
            &format!("/{}", ["l"; 15].join("/")),
        ] {
            assert!(ParameterName::parse(good).is_ok(), "{good:?}");
        }
        for bad in [
            "",
            "/aws/reference/secretsmanager/x",
            "aws-thing",
            "/AWS/x",
            "ssm.x",
            "/Ssm/x",
            "team/test/x",
            "/a//b",
            "/a/b/",
            "/has space",
            "/a\nb",
            "/a:b",
            "/ünï",
            &format!("/{}", ["l"; 16].join("/")),
            &format!("/{}", "x".repeat(2048)),
        ] {
            let e = ParameterName::parse(bad).unwrap_err();
            assert_eq!(e.field, Field::ParameterName, "{bad:?}");
        }
        let err = ParameterName::parse("/aws/x").unwrap_err().for_flag();
        assert!(err.to_string().contains("--exid"), "{err}");
        assert!(err.to_string().contains("reserved"), "{err}");
    }

    #[test]
    fn kms_key_ids() {
        for good in [
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "alias/keyrack",
            "arn:aws:kms:us-east-1:123456789012:alias/keyrack",
        ] {
            assert!(KmsKeyId::parse(good).is_ok(), "{good:?}");
        }
        for bad in ["", "alias/a b", "key\n", "x\"y"] {
            assert!(KmsKeyId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn regions() {
        for ok in [
            "us-east-1",
            "eu-central-2",
            "ap-southeast-4",
            "cn-north-1",
            "us-gov-west-1",
            "il-central-1",
        ] {
            assert!(Region::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "us-east",
            "useast1",
            "US-EAST-1",
            "us-east-1\n",
            "us-east-1\ncredential_process = x",
            "x@127.0.0.1:4711/#",
            "us-east-1.evil.com/#",
            "u-east-1",
            "us--1",
            "us-east-1a",
            " us-east-1",
        ] {
            assert!(Region::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Region::parse("cn-north-1").unwrap().dns_suffix(),
            "amazonaws.com.cn"
        );
        for (region, suffix) in [
            ("us-east-1", "amazonaws.com"),
            ("us-gov-west-1", "amazonaws.com"),
            ("cn-northwest-1", "amazonaws.com.cn"),
            ("eusc-de-east-1", "amazonaws.eu"),
            ("us-iso-east-1", "c2s.ic.gov"),
            ("us-isob-east-1", "sc2s.sgov.gov"),
            ("us-isof-south-1", "csp.hci.ic.gov"),
            ("eu-isoe-west-1", "cloud.adc-e.uk"),
        ] {
            assert_eq!(
                Region::parse(region).unwrap().dns_suffix(),
                suffix,
                "{region}"
            );
        }
        for bad in ["eusx-de-east-1", "euscx-de-east-1"] {
            assert!(Region::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn account_ids() {
        assert!(AccountId::parse("123456789012").is_ok());
        for bad in [
            "",
            "12345678901",
            "1234567890123",
            "12345678901a",
            "123456789012\n",
            "١٢٣٤٥٦٧٨٩٠١٢",
        ] {
            assert!(AccountId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn start_urls() {
        for ok in [
            "https://d-1234567890.awsapps.com/start",
            "https://d-1234567890.awsapps.com/start/",
            "https://d-1234567890.awsapps.com/start/#",
            "https://my-org.awsapps.com/start",
            "https://identitycenter.amazonaws.com/ssoins-1234567890abcdef",
            "https://start.us-gov-home.awsapps.com/directory/d-9067230000",
            "https://d-1234567890.awsapps.cn/start",
        ] {
            assert!(StartUrl::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "acme",
            "http://d-1.awsapps.com/start",
            "https://",
            "https:///start",
            "https://acme",
            "https://user@d-1.awsapps.com/start",
            "https://d-1.awsapps.com@evil.example/start",
            "https://d-1.awsapps.com/start\ncredential_process = evil",
            "https://d-1.awsapps.com/st art",
            "https://d-1.awsapps.com\\@evil.example/",
            "https://d-1.awsapps.com:99999/start",
            "https://-x.awsapps.com/start",
            "https://d-1.awsapps.com/\u{202e}",
        ] {
            assert!(StartUrl::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            StartUrl::parse("https://d-1.awsapps.com:443/start")
                .unwrap()
                .host(),
            "d-1.awsapps.com"
        );
    }

    #[test]
    fn role_names() {
        for ok in ["AdministratorAccess", "Read_Only+x=y,z.a@b-c", "a"] {
            assert!(RoleName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Admin\ncredential_process = evil",
            "Admin Access",
            "Admin]",
            &"a".repeat(65),
            "Admin#",
        ] {
            assert!(RoleName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn profile_and_session_names() {
        for ok in [
            "acme.test",
            "default",
            "acme-prod",
            "a/b:c@d+e%f_g",
            "ACME.Test.2",
        ] {
            assert!(ProfileName::parse(ok).is_ok(), "{ok}");
            assert!(SessionName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "acme test",
            "acme]\n[profile x",
            "acme\ncredential_process = evil",
            "acme=1",
            "acme;x",
            "acme#x",
            "[acme]",
            "-x",
            "--help",
            "acme\"",
            "acme'",
            "acmé",
            "acme\u{1b}[31m",
        ] {
            assert!(ProfileName::parse(bad).is_err(), "{bad:?}");
            assert!(SessionName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn errors_show_values_safely_and_say_what_is_expected() {
        let e = Region::parse_sso("us-east-1\n\u{1b}[2Jcredential_process = evil").unwrap_err();
        let text = e.to_string();
        assert!(!text.contains('\n') && !text.contains('\u{1b}'), "{text}");
        assert!(text.contains("\\n"), "{text}");
        assert!(text.contains("U+000A"), "{text}");
        assert!(text.contains("us-east-1"), "expected form: {text}");
        assert_eq!(e.field, Field::SsoRegion);
        let err = e.for_flag();
        assert_eq!(err.exit_code(), 1);
        assert!(err.to_string().contains("--sso-region"));
        assert_eq!(shown(&"x".repeat(500)).chars().count(), 121);
    }
}
