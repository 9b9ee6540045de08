//! `keyrack aws console --profile P`: a federated AWS console sign-in from the unlocked role
//! credentials, as the IAM User Guide's "custom identity broker" describes it:
//!
//! 1. `GET {signin}/federation?Action=getSigninToken[&SessionDuration=N]&Session=<url-encoded
//!    {"sessionId","sessionKey","sessionToken"}>` → `{"SigninToken": …}`;
//! 2. `{signin}/federation?Action=login&Issuer=keyrack&Destination=<console URL>&SigninToken=…`.
//!
//! `{signin}` is the sign-in endpoint of the credentials' partition (`https://signin.aws.amazon.com`,
//! `https://signin.amazonaws.cn`, `https://signin.amazonaws-us-gov.com`), or
//! `AWS_ENDPOINT_URL_SIGNIN` / `AWS_ENDPOINT_URL`; TLS trust and proxies are those of every AWS
//! call ([`crate::aws::net`]).
//!
//! **Duration.** Without `--duration` no `SessionDuration` is sent, and AWS makes the console
//! session last as long as the credentials. A requested duration is kept within AWS's limits
//! (900–43200 s) and never beyond the role credentials' own end: the SSO role credentials are
//! temporary, and a console session must not outlive them. Every adjustment is reported.
//!
//! **The URL is a credential** (anyone holding it is signed in for 15 minutes): it is returned
//! as a [`Secret`] for the front end to open or print, and no error of this module ever contains
//! it, the sign-in token or the role credentials.

use std::time::Duration;

use serde::Serialize;
use zeroize::Zeroizing;

use crate::aws::config_file::AwsConfig;
use crate::aws::endpoints;
use crate::aws::http::{self, enc, AwsError};
use crate::aws::names::Region;
use crate::aws::net::ProfileTrust;
use crate::aws::token_cache::{format_z, parse_time};
use crate::error::{Error, Result};
use crate::ops::aws::profile_arg;
use crate::ops::Rack;
use crate::secret::Secret;

/// AWS's shortest console session (`SessionDuration`), in seconds.
pub(crate) const MIN_SESSION: u64 = 900;
/// AWS's longest console session (`SessionDuration`), in seconds.
pub(crate) const MAX_SESSION: u64 = 43_200;

/// The AWS partitions whose console keyrack knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Partition {
    /// `aws`: the commercial regions.
    #[serde(rename = "aws")]
    Aws,
    /// `aws-cn`: the China regions (`cn-…`).
    #[serde(rename = "aws-cn")]
    AwsCn,
    /// `aws-us-gov`: AWS GovCloud (US) (`us-gov-…`).
    #[serde(rename = "aws-us-gov")]
    AwsUsGov,
}

impl Partition {
    /// The partition of `region`; `None` for partitions whose console keyrack does not know
    /// (the European Sovereign Cloud, the isolated partitions).
    pub(crate) fn of(region: &Region) -> Option<Partition> {
        if region.starts_with("us-gov-") {
            Some(Partition::AwsUsGov)
        } else if region.starts_with("cn-") {
            Some(Partition::AwsCn)
        } else if region.dns_suffix() == "amazonaws.com" {
            Some(Partition::Aws)
        } else {
            None
        }
    }

    /// The partition's sign-in (federation) endpoint.
    pub(crate) fn signin_url(self) -> &'static str {
        match self {
            Partition::Aws => "https://signin.aws.amazon.com",
            Partition::AwsCn => "https://signin.amazonaws.cn",
            Partition::AwsUsGov => "https://signin.amazonaws-us-gov.com",
        }
    }

    /// The console's home page for `region`.
    pub(crate) fn console_url(self, region: &Region) -> String {
        let host = match self {
            Partition::Aws => "console.aws.amazon.com",
            Partition::AwsCn => "console.amazonaws.cn",
            Partition::AwsUsGov => "console.amazonaws-us-gov.com",
        };
        format!("https://{host}/console/home?region={region}")
    }

    /// The partition's name (`aws`, `aws-cn`, `aws-us-gov`).
    pub fn name(self) -> &'static str {
        match self {
            Partition::Aws => "aws",
            Partition::AwsCn => "aws-cn",
            Partition::AwsUsGov => "aws-us-gov",
        }
    }
}

/// What `aws console` was asked for.
#[derive(Debug, Clone)]
pub struct ConsoleOptions {
    /// The profile (unlocked in the daemon).
    pub profile: String,
    /// The console session's requested length (`--duration`).
    pub duration: Option<Duration>,
}

/// The `SessionDuration` to send, and what was adjusted to get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionLength {
    /// Seconds to send as `SessionDuration` (`None`: not sent; the session lasts as long as
    /// the credentials).
    pub seconds: Option<u64>,
    /// Each adjustment, in words.
    pub notes: Vec<String>,
}

fn human(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m, s) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

/// The console session's length: `requested` kept within AWS's limits and within the
/// `credentials_left` seconds the role credentials have.
pub(crate) fn session_length(requested: Option<Duration>, credentials_left: u64) -> SessionLength {
    let Some(requested) = requested else {
        return SessionLength {
            seconds: None,
            notes: vec![],
        };
    };
    let mut notes = Vec::new();
    let asked = requested.as_secs();
    let mut s = asked;
    if s < MIN_SESSION {
        s = MIN_SESSION;
        notes.push(format!(
            "--duration {} raised to 15m, the shortest console session AWS grants",
            human(asked)
        ));
    }
    if s > MAX_SESSION {
        s = MAX_SESSION;
        notes.push(format!(
            "--duration {} lowered to 12h, the longest console session AWS grants",
            human(asked)
        ));
    }
    if s > credentials_left {
        if credentials_left >= MIN_SESSION {
            notes.push(format!(
                "console session shortened to {}: it cannot outlive the role credentials it is made from (they end then)",
                human(credentials_left)
            ));
            s = credentials_left;
        } else {
            notes.push(format!(
                "the role credentials end in {}, sooner than AWS's 15-minute minimum: the console session ends with them",
                human(credentials_left)
            ));
            return SessionLength {
                seconds: None,
                notes,
            };
        }
    }
    SessionLength {
        seconds: Some(s),
        notes,
    }
}

/// A console sign-in, ready to open or print.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleLink {
    /// The profile.
    pub profile: String,
    /// The account id.
    pub account_id: String,
    /// The role.
    pub role_name: String,
    /// The console's region.
    pub region: String,
    /// The partition.
    pub partition: Partition,
    /// The page the sign-in lands on.
    pub destination: String,
    /// The `SessionDuration` sent (none: as long as the credentials).
    pub session_duration: Option<u64>,
    /// When the console session ends at the latest (RFC 3339, UTC).
    pub session_ends_at: String,
    /// What was adjusted (duration limits), in words.
    pub notes: Vec<String>,
    /// The sign-in URL: a credential (valid 15 minutes). Serialised only where the user asked
    /// for it (`--print --json`).
    #[serde(skip)]
    pub url: Secret,
}

/// `e` without any trace of the request: `url` becomes `safe_url`, each of `secrets` (the
/// session JSON, encoded or not, and the credentials) becomes `…`.
fn scrub(e: AwsError, url: &str, secrets: &[&str], safe_url: &str) -> AwsError {
    let clean = |s: String| {
        let mut s = s.replace(url, safe_url);
        for secret in secrets.iter().filter(|x| !x.is_empty()) {
            if s.contains(secret) {
                s = s.replace(secret, "…");
            }
        }
        s
    };
    match e {
        AwsError::Unreachable { url, reason } => AwsError::Unreachable {
            url: clean(url),
            reason: clean(reason),
        },
        AwsError::Service {
            status,
            code,
            message,
        } => AwsError::Service {
            status,
            code: clean(code),
            message: clean(message),
        },
        AwsError::Malformed { url, reason } => AwsError::Malformed {
            url: clean(url),
            reason: clean(reason),
        },
        AwsError::Refused { reason } => AwsError::Refused {
            reason: clean(reason),
        },
        AwsError::UnreachableViaProxy {
            url,
            proxy,
            var,
            reason,
        } => AwsError::UnreachableViaProxy {
            url: clean(url),
            proxy,
            var,
            reason: clean(reason),
        },
        AwsError::Untrusted {
            host,
            reason,
            proxy,
        } => AwsError::Untrusted {
            host,
            reason: clean(reason),
            proxy,
        },
        AwsError::Settings {
            setting,
            reason,
            hint,
        } => AwsError::Settings {
            setting,
            reason: clean(reason),
            hint,
        },
    }
}

/// A sign-in token for `session_json` at `signin` (`GetSigninToken`).
fn signin_token(
    signin: &str,
    session_json: &str,
    session_duration: Option<u64>,
    secrets: &[&str],
) -> std::result::Result<Secret, AwsError> {
    let base = format!("{signin}/federation");
    let encoded = Zeroizing::new(enc(session_json));
    let mut url = Zeroizing::new(format!("{base}?Action=getSigninToken"));
    if let Some(s) = session_duration {
        url.push_str(&format!("&SessionDuration={s}"));
    }
    url.push_str("&Session=");
    url.push_str(&encoded);
    // What an error may show instead of the request: the endpoint, never the query.
    let safe = format!("{base}?Action=getSigninToken&Session=…");
    let mut all: Vec<&str> = vec![encoded.as_str(), session_json];
    all.extend_from_slice(secrets);
    let scrubbed = |e: AwsError| scrub(e, &url, &all, &safe);
    let reply = http::send("GET", &url, &[], None).map_err(scrubbed)?;
    #[derive(serde::Deserialize)]
    struct Out {
        #[serde(rename = "SigninToken")]
        signin_token: Secret,
    }
    let out: Out = reply.json(&safe).map_err(scrubbed)?;
    let token = out.signin_token;
    if token.expose().is_empty() || token.expose().chars().any(|c| !c.is_ascii_graphic()) {
        return Err(AwsError::Malformed {
            url: safe,
            reason: "the SigninToken is empty or not printable ASCII".into(),
        });
    }
    Ok(token)
}

/// A console sign-in URL for the unlocked `profile` (served from the daemon; never signs in).
pub fn console_link(rack: &Rack, opts: &ConsoleOptions) -> Result<ConsoleLink> {
    let name = profile_arg("--profile", &opts.profile)?;
    // Locked (exit 2, with the unlock command) before anything else is looked at.
    let creds = super::unlocked_credentials(rack, &opts.profile)?;
    let config = AwsConfig::load_default()?;
    let profile = config.sso_profile(&name)?;
    let _trust = ProfileTrust::of_profile(&config, &name);
    let partition = Partition::of(&profile.sso_region).ok_or_else(|| Error::Aws {
        source: None,
        message: format!(
            "keyrack does not know the AWS console of the partition of {} (profile {name})",
            profile.sso_region
        ),
        hint: "sign in to the console through your access portal instead".into(),
    })?;
    // The console opens in the profile's region when it is in the same partition.
    let region = profile
        .region
        .clone()
        .filter(|r| Partition::of(r) == Some(partition))
        .unwrap_or_else(|| profile.sso_region.clone());
    let expires = parse_time(&creds.expiration).map_err(|why| Error::Aws {
        source: None,
        message: format!("the role credentials of {name} have an unreadable expiry ({why})"),
        hint: format!(
            "relock and unlock again: keyrack relock, then keyrack unlock (profile {name})"
        ),
    })?;
    let now = jiff::Timestamp::now();
    let left = u64::try_from((expires.as_second() - now.as_second()).max(0)).unwrap_or(0);
    let length = session_length(opts.duration, left);
    let ends = match length.seconds {
        Some(s) => now + jiff::SignedDuration::from_secs(s as i64),
        None => expires,
    };
    let signin = endpoints::signin(partition.signin_url());
    let session_json = Zeroizing::new(
        serde_json::json!({
            "sessionId": creds.access_key_id,
            "sessionKey": creds.secret_access_key,
            "sessionToken": creds.session_token,
        })
        .to_string(),
    );
    let token = signin_token(
        &signin,
        &session_json,
        length.seconds,
        &[&creds.secret_access_key, &creds.session_token],
    )
    .map_err(|e| e.into_error("getting a console sign-in token"))?;
    drop(session_json);
    let destination = partition.console_url(&region);
    let url = Secret::new(format!(
        "{signin}/federation?Action=login&Issuer=keyrack&Destination={}&SigninToken={}",
        enc(&destination),
        enc(token.expose())
    ));
    Ok(ConsoleLink {
        profile: name.to_string(),
        account_id: profile.account_id.to_string(),
        role_name: profile.role_name.to_string(),
        region: region.to_string(),
        partition,
        destination,
        session_duration: length.seconds,
        session_ends_at: format_z(ends),
        notes: length.notes,
        url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Region {
        Region::parse(s).unwrap()
    }

    #[test]
    fn partitions_have_their_signin_and_console() {
        let aws = Partition::of(&r("eu-west-1")).unwrap();
        assert_eq!(aws.signin_url(), "https://signin.aws.amazon.com");
        assert_eq!(
            aws.console_url(&r("eu-west-1")),
            "https://console.aws.amazon.com/console/home?region=eu-west-1"
        );
        let cn = Partition::of(&r("cn-north-1")).unwrap();
        assert_eq!(cn.signin_url(), "https://signin.amazonaws.cn");
        assert!(cn
            .console_url(&r("cn-north-1"))
            .starts_with("https://console.amazonaws.cn/"));
        let gov = Partition::of(&r("us-gov-west-1")).unwrap();
        assert_eq!(gov.signin_url(), "https://signin.amazonaws-us-gov.com");
        assert!(gov
            .console_url(&r("us-gov-west-1"))
            .starts_with("https://console.amazonaws-us-gov.com/"));
        assert_eq!(Partition::of(&r("us-iso-east-1")), None);
        assert_eq!(Partition::of(&r("eusc-de-east-1")), None);
    }

    #[test]
    fn the_session_length_stays_within_aws_limits_and_the_credentials() {
        let h = |n: u64| Some(Duration::from_secs(n * 3600));
        // nothing asked: nothing sent, AWS uses the credentials' own end
        assert_eq!(session_length(None, 3000).seconds, None);
        // within everything: as asked, no note
        let l = session_length(Some(Duration::from_secs(1800)), 3600);
        assert_eq!((l.seconds, l.notes.len()), (Some(1800), 0));
        // under AWS's minimum: raised
        let l = session_length(Some(Duration::from_secs(60)), 3600);
        assert_eq!(l.seconds, Some(900));
        assert!(l.notes[0].contains("raised to 15m"), "{:?}", l.notes);
        // over AWS's maximum and over the credentials: both said
        let l = session_length(h(24), 3500);
        assert_eq!(l.seconds, Some(3500));
        assert!(l.notes[0].contains("lowered to 12h"), "{:?}", l.notes);
        assert!(l.notes[1].contains("cannot outlive"), "{:?}", l.notes);
        // long-lived credentials: AWS's maximum
        assert_eq!(session_length(h(24), 20 * 3600).seconds, Some(43_200));
        // credentials ending under the minimum: not sent, ends with them
        let l = session_length(h(1), 600);
        assert_eq!(l.seconds, None);
        assert!(l.notes[0].contains("ends with them"), "{:?}", l.notes);
    }

    #[test]
    fn errors_never_carry_the_request() {
        let url = "https://signin.example/federation?Action=getSigninToken&Session=%7Bsecret%7D";
        let e = AwsError::Unreachable {
            url: url.into(),
            reason: format!("connection refused for {url}"),
        };
        let safe = "https://signin.example/federation?Action=getSigninToken&Session=…";
        let scrubbed = scrub(e, url, &["%7Bsecret%7D", "TOKENSECRET"], safe);
        let text = format!("{scrubbed:?}");
        assert!(!text.contains("secret%7D"), "{text}");
        let e = AwsError::Service {
            status: 400,
            code: "X".into(),
            message: "bad TOKENSECRET".into(),
        };
        let text = format!("{:?}", scrub(e, url, &["TOKENSECRET"], safe));
        assert!(!text.contains("TOKENSECRET"), "{text}");
    }
}
