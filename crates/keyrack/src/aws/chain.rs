//! The standard AWS credential chain, for machine-wide (`--org @all`) aws.params keys on CI
//! runners, containers and EC2. Tried in the SDKs' order, first match wins:
//!
//! 1. **Environment**: `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`).
//! 2. **Container** (ECS, EKS Pod Identity, CodeBuild): `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`
//!    (on `http://169.254.170.2`) or `AWS_CONTAINER_CREDENTIALS_FULL_URI` (`https://` anywhere;
//!    `http://` only to a loopback address or the ECS/EKS agents `169.254.170.2`,
//!    `169.254.170.23`, `[fd00:ec2::23]`), with the `Authorization` header from
//!    `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` or `AWS_CONTAINER_AUTHORIZATION_TOKEN`.
//! 3. **Instance metadata** (EC2), IMDSv2 only: a session token (`PUT /latest/api/token`), then
//!    the instance role's credentials. `AWS_EC2_METADATA_SERVICE_ENDPOINT` moves it,
//!    `AWS_EC2_METADATA_DISABLED=true` skips it.
//!
//! Not part of keyrack's chain: the shared files (`~/.aws/credentials`, `AWS_PROFILE`, SSO,
//! `credential_process`) and web-identity federation. keyrack never signs with an ambient
//! profile: a repository's aws.params keys sign with its own unlocked aws.config key.
//!
//! The metadata endpoints are local (loopback or link-local): they are reached directly, never
//! through a proxy, with short timeouts.

use std::time::Duration;

use serde::Deserialize;

use super::http;
use super::ssm::SigningCredentials;
use crate::error::{Error, Result};
use crate::secret::Secret;

const ECS_AGENT: &str = "http://169.254.170.2";
const IMDS: &str = "http://169.254.169.254";

/// What the chain found nowhere, as the error of an `@all` key.
fn none_found(tried: &[String]) -> Error {
    Error::Aws {
        message: format!(
            "no AWS credentials for a machine-wide aws.params key (tried: {})",
            tried.join("; ")
        ),
        hint: "export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), or run where a container or instance role provides them (ECS/EKS/EC2); a repository key (without --org @all) signs with its AWS_PROFILE key instead".into(),
        source: None,
    }
}

/// Resolves credentials from the chain.
pub fn resolve() -> Result<SigningCredentials> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut tried = Vec::new();
    match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => {
            return Ok(SigningCredentials {
                access_key_id: id,
                secret_access_key: Secret::new(secret),
                session_token: var("AWS_SESSION_TOKEN").map(Secret::new),
                expiration: None,
                source: "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY from the environment".into(),
            })
        }
        (Some(_), None) => {
            tried.push("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not".into())
        }
        (None, Some(_)) => {
            tried.push("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not".into())
        }
        (None, None) => tried.push("no AWS_ACCESS_KEY_ID in the environment".into()),
    }
    if let Some(url) = container_url(&var)? {
        return container(&url);
    }
    tried.push("no AWS_CONTAINER_CREDENTIALS_* in the environment".into());
    if var("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        tried.push("instance metadata disabled (AWS_EC2_METADATA_DISABLED)".into());
        return Err(none_found(&tried));
    }
    let base = var("AWS_EC2_METADATA_SERVICE_ENDPOINT").unwrap_or_else(|| IMDS.into());
    match imds(base.trim_end_matches('/')) {
        Ok(Some(c)) => Ok(c),
        Ok(None) => {
            tried.push(format!("no instance role at {base}"));
            Err(none_found(&tried))
        }
        Err(reason) => {
            tried.push(format!("instance metadata at {base}: {reason}"));
            Err(none_found(&tried))
        }
    }
}

/// The container credentials URL, when the environment (`var`) names one (a refused FULL_URI is
/// an error: it names a host that must not receive the authorization token).
fn container_url(var: &dyn Fn(&str) -> Option<String>) -> Result<Option<String>> {
    if let Some(rel) = var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
        if !rel.starts_with('/') {
            return Err(refused_container(
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                &rel,
                "it must be a path starting with /",
            ));
        }
        return Ok(Some(format!("{ECS_AGENT}{rel}")));
    }
    let Some(full) = var("AWS_CONTAINER_CREDENTIALS_FULL_URI") else {
        return Ok(None);
    };
    if full.starts_with("https://") {
        return Ok(Some(full));
    }
    let Some(rest) = full.strip_prefix("http://") else {
        return Err(refused_container(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            &full,
            "it is neither an http:// nor an https:// URL",
        ));
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.contains('@') {
        return Err(refused_container(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            &full,
            "it has a user@ part",
        ));
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    let allowed = host == "localhost"
        || host == "169.254.170.2"
        || host == "169.254.170.23"
        || host.eq_ignore_ascii_case("fd00:ec2::23")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !allowed {
        return Err(refused_container(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            &full,
            "an http:// URL must be a loopback address or the ECS/EKS agent (169.254.170.2, 169.254.170.23, [fd00:ec2::23]); use https:// for any other host",
        ));
    }
    Ok(Some(full))
}

fn refused_container(var: &str, value: &str, reason: &str) -> Error {
    Error::Aws {
        message: format!(
            "{var}='{}' is refused: {reason}; nothing was sent",
            crate::aws::names::shown(value)
        ),
        hint: format!("fix or unset {var}"),
        source: None,
    }
}

/// A local agent (container or instance metadata): direct, never through a proxy, short timeouts.
fn local_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_connect(Some(Duration::from_secs(1)))
        .timeout_global(Some(Duration::from_secs(3)))
        .user_agent(concat!("keyrack/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// The JSON the container agent and the instance metadata answer.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    access_key_id: String,
    secret_access_key: Secret,
    #[serde(default)]
    token: Option<Secret>,
    #[serde(default)]
    expiration: Option<String>,
}

impl Answer {
    fn into_credentials(self, source: String) -> SigningCredentials {
        let expiration = self
            .expiration
            .as_deref()
            .and_then(|e| e.parse::<jiff::Timestamp>().ok());
        SigningCredentials {
            access_key_id: self.access_key_id,
            secret_access_key: self.secret_access_key,
            session_token: self.token,
            expiration,
            source,
        }
    }
}

fn container(url: &str) -> Result<SigningCredentials> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let token = match var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
        Some(path) => Some(Secret::new(
            std::fs::read_to_string(&path)
                .map_err(|e| Error::io("read", &path, e))?
                .trim()
                .to_string(),
        )),
        None => var("AWS_CONTAINER_AUTHORIZATION_TOKEN").map(Secret::new),
    };
    if token
        .as_ref()
        .is_some_and(|t| t.expose().contains(['\r', '\n']))
    {
        return Err(Error::Aws {
            message: "the container authorization token contains a line break; nothing was sent"
                .into(),
            hint: "fix AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE)".into(),
            source: None,
        });
    }
    let failed = |reason: String| Error::Aws {
        message: format!("cannot get container credentials from {url}: {reason}"),
        hint: "check the task/pod role and the AWS_CONTAINER_CREDENTIALS_* variables".into(),
        source: None,
    };
    let body = if url.starts_with("https://") {
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(t) = &token {
            headers.push(("Authorization", t.expose()));
        }
        http::send("GET", url, &headers, None)
            .map_err(|e| e.into_error("getting container credentials"))?
            .body
    } else {
        let mut req = local_agent().get(url);
        if let Some(t) = &token {
            req = req.header("Authorization", t.expose());
        }
        let mut resp = req.call().map_err(|e| failed(e.to_string()))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| failed(e.to_string()))?;
        if !(200..300).contains(&status) {
            return Err(failed(format!("HTTP {status}")));
        }
        text
    };
    let body = zeroize::Zeroizing::new(body);
    let a: Answer = serde_json::from_str(&body).map_err(|e| {
        failed(format!(
            "not the documented JSON ({})",
            super::ssm::json_problem(&e)
        ))
    })?;
    Ok(a.into_credentials(format!("container credentials from {url}")))
}

/// IMDSv2: `Ok(None)` when the instance has no role.
fn imds(base: &str) -> std::result::Result<Option<SigningCredentials>, String> {
    let agent = local_agent();
    let mut resp = agent
        .put(&format!("{base}/latest/api/token"))
        .header("X-aws-ec2-metadata-token-ttl-seconds", "21600")
        .send_empty()
        .map_err(|e| format!("not reachable ({e})"))?;
    if resp.status().as_u16() != 200 {
        return Err(format!(
            "the session token was refused (HTTP {})",
            resp.status().as_u16()
        ));
    }
    let token = Secret::new(
        resp.body_mut()
            .read_to_string()
            .map_err(|e| e.to_string())?
            .trim()
            .to_string(),
    );
    let get = |path: &str| -> std::result::Result<(u16, zeroize::Zeroizing<String>), String> {
        let mut r = agent
            .get(&format!("{base}{path}"))
            .header("X-aws-ec2-metadata-token", token.expose())
            .call()
            .map_err(|e| format!("not reachable ({e})"))?;
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().map_err(|e| e.to_string())?;
        Ok((status, zeroize::Zeroizing::new(text)))
    };
    let (status, roles) = get("/latest/meta-data/iam/security-credentials/")?;
    if status == 404 {
        return Ok(None);
    }
    if status != 200 {
        return Err(format!("listing the instance role answered HTTP {status}"));
    }
    let Some(role) = roles.lines().map(str::trim).find(|l| !l.is_empty()) else {
        return Ok(None);
    };
    if !role
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
    {
        return Err("the instance role name is not an IAM role name".into());
    }
    let (status, body) = get(&format!(
        "/latest/meta-data/iam/security-credentials/{role}"
    ))?;
    if status != 200 {
        return Err(format!("the role's credentials answered HTTP {status}"));
    }
    let a: Answer = serde_json::from_str(&body)
        .map_err(|e| format!("not the documented JSON ({})", super::ssm::json_problem(&e)))?;
    Ok(Some(a.into_credentials(format!(
        "the instance role {role} (instance metadata)"
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url_for(vars: &[(&str, &str)]) -> Result<Option<String>> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        container_url(&move |k: &str| {
            vars.iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn container_urls_go_to_the_agent_loopback_or_https_only() {
        assert_eq!(url_for(&[]).unwrap(), None);
        assert_eq!(
            url_for(&[(
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "/v2/credentials/abc"
            )])
            .unwrap(),
            Some("http://169.254.170.2/v2/credentials/abc".into())
        );
        for ok in [
            "https://creds.example.com/x",
            "http://127.0.0.1:51679/creds",
            "http://localhost/creds",
            "http://[::1]:8080/creds",
            "http://169.254.170.23/v1/credentials",
            "http://[fd00:ec2::23]/v1/credentials",
        ] {
            assert_eq!(
                url_for(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", ok)]).unwrap(),
                Some(ok.to_string()),
                "{ok}"
            );
        }
        for bad in [
            "http://example.com/creds",
            "http://127.0.0.1.evil.example/creds",
            "http://user@127.0.0.1/creds",
            "http://10.0.0.1/creds",
            "ftp://127.0.0.1/creds",
        ] {
            let e = url_for(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", bad)]).unwrap_err();
            assert!(e.to_string().contains("nothing was sent"), "{bad}: {e}");
        }
        assert!(url_for(&[("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "@evil.example/x")]).is_err());
    }
}
