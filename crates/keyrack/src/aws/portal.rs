//! The SSO portal: accounts, roles (paginated), role credentials, logout. Unsigned; the SSO
//! access token goes in `x-amz-sso_bearer_token`.

use serde::{Deserialize, Serialize};

use super::endpoints::{endpoint, Service};
use super::http::{self, enc, AwsError};
use crate::secret::Secret;

/// An account the user can access.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Account {
    /// The 12-digit id.
    pub account_id: String,
    /// Its name.
    #[serde(default)]
    pub account_name: String,
    /// Its email.
    #[serde(default)]
    pub email_address: String,
}

/// Short-lived role credentials.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RoleCredentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: Secret,
    /// Session token.
    pub session_token: Secret,
    /// Expiry (unix milliseconds on the wire, as the portal sends it).
    #[serde(with = "crate::grant::time::millis")]
    pub expiration: jiff::Timestamp,
}

fn get(region: &str, path_and_query: &str, token: &Secret) -> Result<http::Reply, AwsError> {
    let url = format!("{}{path_and_query}", endpoint(Service::Sso, region)?);
    http::send(
        "GET",
        &url,
        &[("x-amz-sso_bearer_token", token.expose())],
        None,
    )
}

fn paginate<T: serde::de::DeserializeOwned>(
    region: &str,
    base: &str,
    field: &str,
    token: &Secret,
) -> Result<Vec<T>, AwsError> {
    let mut out = Vec::new();
    let mut next: Option<String> = None;
    for _ in 0..1000 {
        let mut q = format!(
            "{base}{}max_result=100",
            if base.contains('?') { "&" } else { "?" }
        );
        if let Some(n) = &next {
            q.push_str(&format!("&next_token={}", enc(n)));
        }
        let reply = get(region, &q, token)?;
        let v: serde_json::Value = reply.json(&q)?;
        let items = v
            .get(field)
            .cloned()
            .unwrap_or(serde_json::Value::Array(vec![]));
        let items: Vec<T> = serde_json::from_value(items).map_err(|e| AwsError::Malformed {
            url: q.clone(),
            reason: e.to_string(),
        })?;
        out.extend(items);
        next = v
            .get("nextToken")
            .and_then(|n| n.as_str())
            .map(str::to_string)
            .filter(|n| !n.is_empty());
        if next.is_none() {
            break;
        }
    }
    Ok(out)
}

/// Every account, sorted by name.
pub(crate) fn list_accounts(region: &str, token: &Secret) -> Result<Vec<Account>, AwsError> {
    let mut v: Vec<Account> = paginate(region, "/assignment/accounts", "accountList", token)?;
    v.sort_by(|a, b| {
        a.account_name
            .to_lowercase()
            .cmp(&b.account_name.to_lowercase())
            .then(a.account_id.cmp(&b.account_id))
    });
    Ok(v)
}

/// Every role in `account_id`, sorted by name.
pub(crate) fn list_roles(
    region: &str,
    token: &Secret,
    account_id: &str,
) -> Result<Vec<String>, AwsError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Role {
        role_name: String,
    }
    let roles: Vec<Role> = paginate(
        region,
        &format!("/assignment/roles?account_id={}", enc(account_id)),
        "roleList",
        token,
    )?;
    let mut names: Vec<String> = roles.into_iter().map(|r| r.role_name).collect();
    names.sort_by_key(|n| n.to_lowercase());
    Ok(names)
}

/// Role credentials for `account_id`/`role_name` — the server-side validity check of a token.
pub(crate) fn role_credentials(
    region: &str,
    token: &Secret,
    account_id: &str,
    role_name: &str,
) -> Result<RoleCredentials, AwsError> {
    role_credentials_at(
        &endpoint(Service::Sso, region)?,
        token,
        account_id,
        role_name,
    )
}

/// [`role_credentials`] from the portal at `base` (an endpoint resolved earlier, e.g. by the
/// process that unlocked the grant now renewed by the session daemon).
pub(crate) fn role_credentials_at(
    base: &str,
    token: &Secret,
    account_id: &str,
    role_name: &str,
) -> Result<RoleCredentials, AwsError> {
    let q = format!(
        "/federation/credentials?account_id={}&role_name={}",
        enc(account_id),
        enc(role_name)
    );
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Out {
        role_credentials: RoleCredentials,
    }
    let url = format!("{base}{q}");
    let reply = http::send(
        "GET",
        &url,
        &[("x-amz-sso_bearer_token", token.expose())],
        None,
    )?;
    let out: Out = reply.json(&q)?;
    Ok(out.role_credentials)
}

/// Signs the session out server-side.
pub(crate) fn logout(region: &str, token: &Secret) -> Result<(), AwsError> {
    let url = format!("{}/logout", endpoint(Service::Sso, region)?);
    http::send(
        "POST",
        &url,
        &[("x-amz-sso_bearer_token", token.expose())],
        None,
    )
    .map(|_| ())
}
