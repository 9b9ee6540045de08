//! The SSO token cache every AWS tool reads: `~/.aws/sso/cache/<sha1 hex>.json`, keyed by the
//! sha1 of the sso-session name (legacy profiles: of the start URL). Field names are exact;
//! `expiresAt` is written as `YYYY-MM-DDTHH:MM:SSZ` (the Rust aws-config rejects offsets) and
//! read in any RFC 3339 form.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use crate::error::{Error, Result};
use crate::fsio;
use crate::home::user_home;
use crate::secret::Secret;

/// An SSO access token with what refreshes it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SsoToken {
    /// The portal start URL.
    pub start_url: String,
    /// The SSO region.
    pub region: String,
    /// The bearer token.
    pub access_token: Secret,
    /// When the access token expires.
    #[serde(with = "z_time")]
    pub expires_at: jiff::Timestamp,
    /// The OIDC client that obtained it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// That client's secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
    /// When that client registration expires.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "z_time_opt")]
    pub registration_expires_at: Option<jiff::Timestamp>,
    /// The refresh token (present when `sso:account:access` was registered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<Secret>,
}

impl SsoToken {
    /// Seconds until the access token expires (negative when expired).
    pub fn seconds_left(&self) -> i64 {
        self.expires_at.as_second() - jiff::Timestamp::now().as_second()
    }

    /// Whether the token can be refreshed now (refresh token and a live registration).
    pub fn refreshable(&self) -> bool {
        self.refresh_token.is_some()
            && self.client_id.is_some()
            && self.client_secret.is_some()
            && self
                .registration_expires_at
                .is_none_or(|t| t > jiff::Timestamp::now())
    }
}

/// Formats a timestamp the way every AWS tool accepts: `2026-01-02T03:04:05Z`.
pub fn format_z(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Parses RFC 3339 with `Z` or an offset, with or without fractional seconds. Times before
/// year 0 (UTC) are refused: [`format_z`] could not write them back in four digits.
pub(crate) fn parse_time(s: &str) -> std::result::Result<jiff::Timestamp, String> {
    let t = s
        .trim()
        .parse::<jiff::Timestamp>()
        .map_err(|e| format!("'{s}' is not an RFC 3339 time ({e})"))?;
    if t.to_zoned(jiff::tz::TimeZone::UTC).year() < 0 {
        return Err(format!("'{s}' is before the year 0"));
    }
    Ok(t)
}

mod z_time {
    use serde::{Deserialize, Deserializer, Serializer};
    pub(crate) fn serialize<S: Serializer>(t: &jiff::Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_z(*t))
    }
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<jiff::Timestamp, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_time(&s).map_err(serde::de::Error::custom)
    }
}

mod z_time_opt {
    use serde::{Deserialize, Deserializer, Serializer};
    pub(crate) fn serialize<S: Serializer>(
        t: &Option<jiff::Timestamp>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::format_z(*t)),
            None => s.serialize_none(),
        }
    }
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<jiff::Timestamp>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(s) => super::parse_time(&s)
                .map(Some)
                .map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

/// `~/.aws/sso/cache`.
pub(crate) fn cache_dir() -> Result<PathBuf> {
    Ok(user_home()?.join(".aws").join("sso").join("cache"))
}

/// sha1 hex of `name` (an sso-session name, or a legacy profile's start URL).
pub(crate) fn cache_key(name: &str) -> String {
    hex::encode(Sha1::digest(name.as_bytes()))
}

/// The cache file of an sso-session.
pub(crate) fn cache_file(session_or_url: &str) -> Result<PathBuf> {
    Ok(cache_dir()?.join(format!("{}.json", cache_key(session_or_url))))
}

/// Writes the token (0600 in a 0700 dir, atomically).
pub(crate) fn write(path: &Path, token: &SsoToken) -> Result<()> {
    let dir = path.parent().expect("cache file has a parent");
    fsio::ensure_private_dir(dir)?;
    let json = zeroize::Zeroizing::new(serde_json::to_vec_pretty(token).expect("token serialises"));
    fsio::write_atomic(path, &json, 0o600)
}

/// Reads a cache file; `Ok(None)` when absent.
pub(crate) fn read(path: &Path) -> Result<Option<SsoToken>> {
    match std::fs::read(path) {
        Ok(bytes) => parse(path, &bytes).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// Decodes the content of the cache file at `path` (`path` is only named in errors).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<SsoToken> {
    serde_json::from_slice(bytes).map_err(|e| Error::CorruptFile {
        path: path.to_path_buf(),
        reason: format!("not an SSO token cache file ({e})"),
        hint: format!(
            "remove it (rm {}) and run keyrack unlock to sign in again",
            path.display()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keys_match_botocore() {
        assert_eq!(
            cache_key("acme"),
            "293abb6b76d7791c0732cc517d38c4b5c734b87f"
        );
        assert_eq!(
            cache_key("https://d-12345abcde.awsapps.com/start"),
            "e9fb8e921a85c92706f902aefe8919e4145eff9c"
        );
    }

    #[test]
    fn times_are_written_with_z_and_read_in_any_form() {
        let json = r#"{"startUrl":"u","region":"us-east-1","accessToken":"t","expiresAt":"2030-01-02T03:04:05+00:00","registrationExpiresAt":"2030-01-02T03:04:05.123Z"}"#;
        let t: SsoToken = serde_json::from_str(json).unwrap();
        let out = serde_json::to_string(&t).unwrap();
        assert!(
            out.contains(r#""expiresAt":"2030-01-02T03:04:05Z""#),
            "{out}"
        );
        assert!(
            out.contains(r#""registrationExpiresAt":"2030-01-02T03:04:05Z""#),
            "{out}"
        );
        assert!(!out.contains("refreshToken"));
    }

    #[test]
    fn times_that_cannot_be_written_back_are_refused() {
        // 0000-01-01 at +02:00 is year -1 in UTC: format_z would write "-001-12-31T22:00:00Z"
        let e = parse_time("0000-01-01T00:00:00+02:00").unwrap_err();
        assert!(e.contains("before the year 0"), "{e}");
        let t = parse_time("0000-01-01T00:00:00Z").unwrap();
        assert_eq!(parse_time(&format_z(t)).unwrap(), t);
    }
}
