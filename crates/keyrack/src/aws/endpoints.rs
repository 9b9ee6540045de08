//! Endpoint resolution, as the AWS SDKs do it: the service-specific `AWS_ENDPOINT_URL_<SERVICE>`,
//! then the catch-all `AWS_ENDPOINT_URL`, then the regional default.
//!
//! The regional default is built only from a region that passes [`Region::parse`], and the URL
//! built is checked to have exactly the host `<service>.<region>.<partition suffix>`: a region
//! is never able to move the SSO bearer token (or signed STS requests) to another host.

use super::http::AwsError;
use super::names::Region;

/// The services keyrack talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Service {
    /// SSO OIDC (client registration, tokens).
    SsoOidc,
    /// The SSO portal (accounts, roles, role credentials, logout).
    Sso,
    /// STS (GetCallerIdentity).
    Sts,
    /// Systems Manager (Parameter Store, the aws.params vault).
    Ssm,
}

impl Service {
    fn env_var(self) -> &'static str {
        match self {
            Service::SsoOidc => "AWS_ENDPOINT_URL_SSO_OIDC",
            Service::Sso => "AWS_ENDPOINT_URL_SSO",
            Service::Sts => "AWS_ENDPOINT_URL_STS",
            Service::Ssm => "AWS_ENDPOINT_URL_SSM",
        }
    }

    fn host_prefix(self) -> &'static str {
        match self {
            Service::SsoOidc => "oidc",
            Service::Sso => "portal.sso",
            Service::Sts => "sts",
            Service::Ssm => "ssm",
        }
    }

    /// The host of the service in `region`: `oidc.us-east-1.amazonaws.com`, …
    pub(crate) fn default_host(self, region: &Region) -> String {
        format!("{}.{region}.{}", self.host_prefix(), region.dns_suffix())
    }
}

/// The base URL (no trailing slash) of `service` in `region`. Refuses a region that is not an
/// AWS region name, even when an `AWS_ENDPOINT_URL_*` override makes the region irrelevant to
/// the URL: such a value never comes from a sound configuration.
pub(crate) fn endpoint(service: Service, region: &str) -> Result<String, AwsError> {
    let region = Region::parse(region).map_err(|e| AwsError::Refused {
        reason: e.to_string(),
    })?;
    let from_env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let Some(url) = from_env(service.env_var()).or_else(|| from_env("AWS_ENDPOINT_URL")) {
        return Ok(url.trim_end_matches('/').to_string());
    }
    let host = service.default_host(&region);
    let url = format!("https://{host}");
    // Defence in depth: the URL's authority is exactly the expected host.
    let authority = url
        .strip_prefix("https://")
        .and_then(|rest| rest.split(['/', '?', '#']).next())
        .unwrap_or_default();
    let host_chars_ok = host
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if authority != host || !host_chars_ok {
        return Err(AwsError::Refused {
            reason: format!("the endpoint built for region {region} does not have the host {host}"),
        });
    }
    Ok(url)
}

/// The variable that points the AWS sign-in (console federation) endpoint elsewhere.
pub(crate) const SIGNIN_ENV: &str = "AWS_ENDPOINT_URL_SIGNIN";

/// The base URL (no trailing slash) of the AWS sign-in endpoint: `AWS_ENDPOINT_URL_SIGNIN`, then
/// the catch-all `AWS_ENDPOINT_URL` (as for every other service), then `default`, the sign-in
/// host of the credentials' partition (`https://signin.aws.amazon.com`, …).
pub(crate) fn signin(default: &str) -> String {
    let from_env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    from_env(SIGNIN_ENV)
        .or_else(|| from_env("AWS_ENDPOINT_URL"))
        .unwrap_or_else(|| default.to_string())
        .trim_end_matches('/')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` with the endpoint overrides cleared (tests in this module do not set them).
    fn without_overrides<T>(f: impl FnOnce() -> T) -> T {
        for k in [
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_SSO",
            "AWS_ENDPOINT_URL_SSO_OIDC",
            "AWS_ENDPOINT_URL_STS",
            "AWS_ENDPOINT_URL_SSM",
            SIGNIN_ENV,
        ] {
            assert!(
                std::env::var_os(k).is_none(),
                "{k} is set in the test environment"
            );
        }
        f()
    }

    #[test]
    fn regional_hosts_are_exact_and_china_has_its_suffix() {
        without_overrides(|| {
            assert_eq!(
                endpoint(Service::SsoOidc, "us-east-1").unwrap(),
                "https://oidc.us-east-1.amazonaws.com"
            );
            assert_eq!(
                endpoint(Service::Sso, "eu-west-1").unwrap(),
                "https://portal.sso.eu-west-1.amazonaws.com"
            );
            assert_eq!(
                endpoint(Service::Sts, "cn-north-1").unwrap(),
                "https://sts.cn-north-1.amazonaws.com.cn"
            );
            assert_eq!(
                endpoint(Service::Sso, "cn-northwest-1").unwrap(),
                "https://portal.sso.cn-northwest-1.amazonaws.com.cn"
            );
            assert_eq!(
                endpoint(Service::SsoOidc, "cn-north-1").unwrap(),
                "https://oidc.cn-north-1.amazonaws.com.cn"
            );
            assert_eq!(
                endpoint(Service::SsoOidc, "eusc-de-east-1").unwrap(),
                "https://oidc.eusc-de-east-1.amazonaws.eu"
            );
            assert_eq!(
                endpoint(Service::Sso, "us-gov-west-1").unwrap(),
                "https://portal.sso.us-gov-west-1.amazonaws.com"
            );
            assert_eq!(
                endpoint(Service::Ssm, "eu-west-1").unwrap(),
                "https://ssm.eu-west-1.amazonaws.com"
            );
            assert_eq!(
                endpoint(Service::Ssm, "cn-north-1").unwrap(),
                "https://ssm.cn-north-1.amazonaws.com.cn"
            );
        });
    }

    #[test]
    fn a_region_cannot_move_the_host() {
        without_overrides(|| {
            for bad in [
                "x@127.0.0.1:4711/#",
                "us-east-1.evil.example/#",
                "us-east-1@evil.example",
                "us-east-1\n",
                "",
            ] {
                let e = endpoint(Service::Sso, bad).unwrap_err();
                assert!(matches!(e, AwsError::Refused { .. }), "{bad:?}: {e:?}");
            }
        });
    }
}
