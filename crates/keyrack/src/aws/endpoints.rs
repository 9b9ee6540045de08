//! Endpoint resolution, as the AWS SDKs do it: the service-specific `AWS_ENDPOINT_URL_<SERVICE>`,
//! then the catch-all `AWS_ENDPOINT_URL`, then the regional default.

/// The services keyrack talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// SSO OIDC (client registration, tokens).
    SsoOidc,
    /// The SSO portal (accounts, roles, role credentials, logout).
    Sso,
    /// STS (GetCallerIdentity).
    Sts,
}

impl Service {
    fn env_var(self) -> &'static str {
        match self {
            Service::SsoOidc => "AWS_ENDPOINT_URL_SSO_OIDC",
            Service::Sso => "AWS_ENDPOINT_URL_SSO",
            Service::Sts => "AWS_ENDPOINT_URL_STS",
        }
    }

    fn default_url(self, region: &str) -> String {
        match self {
            Service::SsoOidc => format!("https://oidc.{region}.amazonaws.com"),
            Service::Sso => format!("https://portal.sso.{region}.amazonaws.com"),
            Service::Sts => format!("https://sts.{region}.amazonaws.com"),
        }
    }
}

/// The base URL (no trailing slash) of `service` in `region`.
pub fn endpoint(service: Service, region: &str) -> String {
    let from_env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    from_env(service.env_var())
        .or_else(|| from_env("AWS_ENDPOINT_URL"))
        .unwrap_or_else(|| service.default_url(region))
        .trim_end_matches('/')
        .to_string()
}
