//! STS `GetCallerIdentity`, SigV4-signed with role credentials (via `aws-sigv4`): who signed in.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

use super::endpoints::{endpoint, Service};
use super::http::{self, AwsError};
use super::portal::RoleCredentials;

/// The caller's ARN and the user (the last ARN segment of an assumed role).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CallerIdentity {
    /// `arn:aws:sts::123:assumed-role/Role/user@example.com`.
    pub arn: String,
    /// `user@example.com`.
    pub user: String,
}

/// Calls GetCallerIdentity in `region`.
pub(crate) fn caller_identity(
    region: &str,
    creds: &RoleCredentials,
) -> Result<CallerIdentity, AwsError> {
    let url = format!("{}/", endpoint(Service::Sts, region)?);
    let body = "Action=GetCallerIdentity&Version=2011-06-15";
    let identity = Credentials::new(
        creds.access_key_id.clone(),
        creds.secret_access_key.expose().to_string(),
        Some(creds.session_token.expose().to_string()),
        None,
        "keyrack",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| AwsError::Malformed {
            url: url.clone(),
            reason: format!("cannot sign: {e}"),
        })?
        .into();
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let signable = SignableRequest::new(
        "POST",
        &url,
        [("content-type", content_type)].into_iter(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .map_err(|e| AwsError::Malformed {
        url: url.clone(),
        reason: format!("cannot sign: {e}"),
    })?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| AwsError::Malformed {
            url: url.clone(),
            reason: format!("cannot sign: {e}"),
        })?
        .into_parts();
    let mut req = ::http::Request::builder()
        .method("POST")
        .uri(&url)
        .body(())
        .expect("request");
    instructions.apply_to_request_http1x(&mut req);
    let mut headers: Vec<(String, String)> = vec![("content-type".into(), content_type.into())];
    for (k, v) in req.headers() {
        headers.push((
            k.as_str().to_string(),
            v.to_str().unwrap_or_default().to_string(),
        ));
    }
    let hrefs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let reply = http::send("POST", &url, &hrefs, Some(body))?;
    let arn = http::xml_tag(&reply.body, "Arn").ok_or_else(|| AwsError::Malformed {
        url: url.clone(),
        reason: "no <Arn> in the GetCallerIdentity answer".into(),
    })?;
    let user = arn.rsplit('/').next().unwrap_or(&arn).to_string();
    Ok(CallerIdentity { arn, user })
}
