//! SSO OIDC: client registration, device authorization, tokens (device code, authorization code
//! with PKCE, refresh). Unsigned REST-JSON at `https://oidc.{region}.amazonaws.com`.

use serde::{Deserialize, Serialize};

use super::endpoints::{endpoint, Service};
use super::http::{self, AwsError};
use super::SCOPE;
use crate::secret::Secret;

/// The redirect URI registered for PKCE (the port is added per sign-in).
pub(crate) const REDIRECT_URI: &str = "http://127.0.0.1/oauth/callback";

/// A registered OIDC client (cached, encrypted, until it expires: ~90 days).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Registration {
    /// The SSO region it was registered in.
    pub region: String,
    /// The start URL (issuer) it was registered for.
    pub start_url: String,
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: Secret,
    /// Unix seconds when the registration expires.
    pub expires_at: i64,
    /// The client name it was registered with (what the consent page shows); `None` for a
    /// registration kept from before the name was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
}

/// A browser authorization that happens anyway brings a new registration when the kept one has
/// less than this left (14 days), so a refresh never meets an expired client.
pub(crate) const RENEW_WITHIN_SECS: i64 = 14 * 86400;

/// `status` and `doctor` warn when keyrack's registration has less than this left (7 days).
pub(crate) const WARN_WITHIN_SECS: i64 = 7 * 86400;

impl Registration {
    /// Whether it is still valid for at least an hour.
    pub(crate) fn is_fresh(&self) -> bool {
        self.seconds_left() > 3600
    }

    /// Seconds until it expires (negative once it has).
    pub(crate) fn seconds_left(&self) -> i64 {
        self.expires_at - jiff::Timestamp::now().as_second()
    }

    /// Whether a browser authorization (which happens anyway) should come with a new
    /// registration: less than [`RENEW_WITHIN_SECS`] left, or registered under a client name
    /// other than `client_name` (the configured name shows from the next browser trip on).
    pub(crate) fn due_for_renewal(&self, client_name: &str) -> bool {
        self.seconds_left() < RENEW_WITHIN_SECS
            || self
                .client_name
                .as_deref()
                .is_some_and(|n| n != client_name)
    }
}

/// Registers a public client named `name` for PKCE, device code and refresh.
pub fn register(region: &str, start_url: &str, name: &str) -> Result<Registration, AwsError> {
    let url = format!("{}/client/register", endpoint(Service::SsoOidc, region)?);
    let body = serde_json::json!({
        "clientName": name,
        "clientType": "public",
        "scopes": [SCOPE],
        "grantTypes": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"],
        "redirectUris": [REDIRECT_URI],
        "issuerUrl": start_url,
    });
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Out {
        client_id: String,
        client_secret: String,
        client_secret_expires_at: i64,
    }
    let out: Out = http::send(
        "POST",
        &url,
        &[("content-type", "application/json")],
        Some(&body.to_string()),
    )?
    .json(&url)?;
    Ok(Registration {
        region: region.into(),
        start_url: start_url.into(),
        client_id: out.client_id,
        client_secret: Secret::new(out.client_secret),
        expires_at: out.client_secret_expires_at,
        client_name: Some(name.to_string()),
    })
}

/// A started device authorization.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeviceAuthorization {
    /// Polled with.
    pub device_code: String,
    /// Shown to the user.
    pub user_code: String,
    /// Where the user confirms.
    pub verification_uri_complete: String,
    /// Seconds until the device code expires.
    pub expires_in: u64,
    /// Seconds between polls.
    #[serde(default = "default_interval")]
    pub interval: u64,
}

fn default_interval() -> u64 {
    5
}

/// Starts a device authorization.
pub(crate) fn device_authorization(
    reg: &Registration,
    start_url: &str,
) -> Result<DeviceAuthorization, AwsError> {
    let url = format!(
        "{}/device_authorization",
        endpoint(Service::SsoOidc, &reg.region)?
    );
    let body = serde_json::json!({
        "clientId": reg.client_id,
        "clientSecret": reg.client_secret.expose(),
        "startUrl": start_url,
    });
    http::send(
        "POST",
        &url,
        &[("content-type", "application/json")],
        Some(&body.to_string()),
    )?
    .json(&url)
}

/// How a token is obtained.
pub(crate) enum Grant<'a> {
    /// Device code flow.
    DeviceCode(&'a str),
    /// Authorization code with PKCE.
    AuthorizationCode {
        /// The code from the redirect.
        code: &'a str,
        /// The PKCE verifier.
        verifier: &'a str,
        /// The exact redirect URI used.
        redirect_uri: &'a str,
    },
    /// A refresh.
    Refresh(&'a Secret),
}

/// A token answer.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TokenAnswer {
    /// The access token.
    pub access_token: Secret,
    /// Seconds it lives.
    pub expires_in: i64,
    /// A (new) refresh token.
    #[serde(default)]
    pub refresh_token: Option<Secret>,
}

/// Exchanges a grant for a token.
pub(crate) fn create_token(reg: &Registration, grant: Grant<'_>) -> Result<TokenAnswer, AwsError> {
    create_token_at(&endpoint(Service::SsoOidc, &reg.region)?, reg, grant)
}

/// [`create_token`] at the SSO OIDC endpoint `base` resolved earlier (the session daemon
/// refreshes at the endpoint the unlock resolved: it has no `AWS_ENDPOINT_URL_*` of its own).
pub(crate) fn create_token_at(
    base: &str,
    reg: &Registration,
    grant: Grant<'_>,
) -> Result<TokenAnswer, AwsError> {
    let url = format!("{}/token", base.trim_end_matches('/'));
    let mut body = serde_json::json!({
        "clientId": reg.client_id,
        "clientSecret": reg.client_secret.expose(),
    });
    match grant {
        Grant::DeviceCode(code) => {
            body["grantType"] = "urn:ietf:params:oauth:grant-type:device_code".into();
            body["deviceCode"] = code.into();
        }
        Grant::AuthorizationCode {
            code,
            verifier,
            redirect_uri,
        } => {
            body["grantType"] = "authorization_code".into();
            body["code"] = code.into();
            body["codeVerifier"] = verifier.into();
            body["redirectUri"] = redirect_uri.into();
        }
        Grant::Refresh(token) => {
            body["grantType"] = "refresh_token".into();
            body["refreshToken"] = token.expose().into();
        }
    }
    let body = zeroize::Zeroizing::new(body.to_string());
    http::send(
        "POST",
        &url,
        &[("content-type", "application/json")],
        Some(&body),
    )?
    .json(&url)
}
