//! When keyrack's own sign-in clients expire, readable without decrypting anything.
//!
//! A client registration (the OIDC client the consent page names) lives about 90 days
//! (`clientSecretExpiresAt`); after it, refresh stops working and a new registration needs a
//! browser authorization. keyrack renews it at a browser authorization that happens anyway
//! (less than [`RENEW_WITHIN_SECS`] left), and `status` / `doctor` warn when less than
//! [`WARN_WITHIN_SECS`] is left. The registration itself is kept encrypted
//! (`client-<digest>.age`); next to it a plain side file (`client-<digest>.json`, mode 0600)
//! records only what is not secret: the start URL, the SSO region, the client name and the
//! expiry. `status` reads those, so it needs no identity and no passphrase.
//!
//! [`RENEW_WITHIN_SECS`]: super::oidc::RENEW_WITHIN_SECS
//! [`WARN_WITHIN_SECS`]: super::oidc::WARN_WITHIN_SECS

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::oidc::{Registration, WARN_WITHIN_SECS};
use crate::error::Result;
use crate::fsio;
use crate::home::Home;

const KIND: &str = "aws.config/client-expiry";

/// A sign-in client keyrack registered, as its side file records it (no secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientExpiry {
    /// The portal start URL the client was registered for.
    pub start_url: String,
    /// The SSO region.
    pub sso_region: String,
    /// The client name (what the consent page shows), when recorded.
    pub client_name: Option<String>,
    /// When the registration expires.
    pub expires_at: jiff::Timestamp,
}

/// The side file's JSON.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SideFile {
    /// What the file is (`aws.config/client-expiry`).
    keyrack: String,
    start_url: String,
    sso_region: String,
    #[serde(default)]
    client_name: Option<String>,
    /// RFC 3339 (UTC).
    expires_at: String,
}

impl SideFile {
    fn entry(self) -> Option<ClientExpiry> {
        (self.keyrack == KIND).then_some(())?;
        Some(ClientExpiry {
            start_url: self.start_url,
            sso_region: self.sso_region,
            client_name: self.client_name,
            expires_at: self.expires_at.parse().ok()?,
        })
    }
}

impl ClientExpiry {
    /// Days left, rounded to the nearest day (0 in its last day; negative once expired).
    pub(crate) fn days_left(&self, now: jiff::Timestamp) -> i64 {
        let secs = self.expires_at.as_second() - now.as_second();
        if (0..86400).contains(&secs) {
            return 0;
        }
        (secs + 43200).div_euclid(86400)
    }

    /// The warning `status` and `doctor` show.
    pub fn warning(&self, now: jiff::Timestamp) -> String {
        let when = if self.expires_at <= now {
            format!(
                "expired at {}",
                super::token_cache::format_z(self.expires_at)
            )
        } else {
            match self.days_left(now) {
                0 => "expires in less than a day".to_string(),
                1 => "expires in 1 day".to_string(),
                n => format!("expires in {n} days"),
            }
        };
        format!(
            "keyrack's sign-in client for {} {when}; the next browser sign-in renews it",
            super::names::shown(&self.start_url)
        )
    }
}

/// The side file of the encrypted registration at `sealed`.
fn side_file(sealed: &Path) -> PathBuf {
    sealed.with_extension("json")
}

/// Records when the registration kept (encrypted) at `sealed` expires.
pub(crate) fn record(sealed: &Path, reg: &Registration) -> Result<()> {
    let Ok(expires_at) = jiff::Timestamp::from_second(reg.expires_at) else {
        return Ok(()); // an expiry out of range: nothing to warn about
    };
    let entry = SideFile {
        keyrack: KIND.into(),
        start_url: reg.start_url.clone(),
        sso_region: reg.region.clone(),
        client_name: reg.client_name.clone(),
        expires_at: super::token_cache::format_z(expires_at),
    };
    let json = serde_json::to_vec_pretty(&entry).expect("serialises");
    fsio::write_atomic(&side_file(sealed), &json, 0o600)
}

/// Every sign-in client of `home` whose registration is still kept, soonest expiry first.
/// Unreadable side files are skipped: they only feed warnings.
pub(crate) fn all(home: &Home) -> Vec<ClientExpiry> {
    let dir = home.vault_dir("aws.config");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<ClientExpiry> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            name.is_some_and(|n| n.starts_with("client-") && n.ends_with(".json"))
                && p.with_extension("age").is_file()
        })
        .filter_map(|p| std::fs::read(&p).ok())
        .filter_map(|bytes| serde_json::from_slice::<SideFile>(&bytes).ok())
        .filter_map(SideFile::entry)
        .collect();
    out.sort_by_key(|c| c.expires_at);
    out
}

/// The sign-in clients that expire within 7 days (or have expired): `status` and `doctor` warn.
pub(crate) fn expiring(home: &Home, now: jiff::Timestamp) -> Vec<ClientExpiry> {
    all(home)
        .into_iter()
        .filter(|c| c.expires_at.as_second() - now.as_second() < WARN_WITHIN_SECS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::slug::Owner;

    fn reg(days: i64) -> Registration {
        Registration {
            region: "us-east-1".into(),
            start_url: "https://d-1.awsapps.com/start".into(),
            client_id: "c".into(),
            client_secret: Secret::new("s".into()),
            expires_at: jiff::Timestamp::now().as_second() + days * 86400 + 60,
            client_name: Some("keyrack".into()),
        }
    }

    #[test]
    fn side_files_feed_the_warning_only_while_the_registration_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path(), Owner::default());
        let vault = home.vault_dir("aws.config");
        std::fs::create_dir_all(&vault).unwrap();
        let sealed = vault.join("client-abc.age");
        std::fs::write(&sealed, "sealed").unwrap();
        let now = jiff::Timestamp::now();

        record(&sealed, &reg(30)).unwrap();
        assert_eq!(all(&home).len(), 1);
        assert!(expiring(&home, now).is_empty(), "30 days left: no warning");

        record(&sealed, &reg(5)).unwrap();
        let soon = expiring(&home, now);
        assert_eq!(soon.len(), 1);
        assert_eq!(
            soon[0].warning(now),
            "keyrack's sign-in client for https://d-1.awsapps.com/start expires in 5 days; the next browser sign-in renews it"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(vault.join("client-abc.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        std::fs::remove_file(&sealed).unwrap();
        assert!(all(&home).is_empty(), "no registration kept: no warning");
    }

    #[test]
    fn the_last_day_and_an_expired_client_read_plainly() {
        let now = jiff::Timestamp::now();
        let mut c = ClientExpiry {
            start_url: "https://x.awsapps.com/start".into(),
            sso_region: "us-east-1".into(),
            client_name: None,
            expires_at: now + jiff::SignedDuration::from_secs(3600),
        };
        assert!(c.warning(now).contains("expires in less than a day"));
        c.expires_at = now - jiff::SignedDuration::from_secs(60);
        assert!(c.warning(now).contains("expired at "), "{}", c.warning(now));
    }
}
