//! AWS IAM Identity Center (SSO): config file, token cache, the OIDC / portal / STS clients and
//! native sign-in; Parameter Store (SSM). Only `unlock`, `set`, `del`, `aws …` commands reach
//! this module; `get` never does.
//!
//! - [`config_file`]: a line-based `~/.aws/config` reader/editor that keeps every byte it does not own.
//! - [`token_cache`]: `~/.aws/sso/cache/<sha1>.json` in the exact shape botocore and aws-config read.
//! - [`names`]: the one validation of every AWS name keyrack reads or writes (region, account id,
//!   start URL, role, profile and sso-session names).
//! - [`endpoints`]: endpoint resolution honouring `AWS_ENDPOINT_URL_*`.
//! - [`http`]: the blocking HTTP transport and AWS error decoding.
//! - [`net`]: TLS trust (system store + `AWS_CA_BUNDLE`) and proxies (`HTTPS_PROXY`, `NO_PROXY`).
//! - [`oidc`], [`portal`], [`sts`]: the three SSO services.
//! - [`ssm`]: Parameter Store (the aws.params vault); [`chain`]: the standard credential chain
//!   its machine-wide keys sign with.
//! - [`login`]: PKCE (loopback) and device-code sign-in, and the opt-in `aws sso login` driver.
//! - [`client_expiry`]: when keyrack's sign-in clients expire (plain side files for `status`).

pub mod chain;
pub mod client_expiry;
pub mod config_file;
pub(crate) mod endpoints;
pub(crate) mod http;
pub mod login;
pub mod names;
pub(crate) mod net;
pub mod oidc;
pub mod portal;
pub mod ssm;
pub mod sts;
pub mod token_cache;

/// The OAuth scope that makes SSO tokens refreshable.
pub(crate) const SCOPE: &str = "sso:account:access";

/// The OIDC client name keyrack registers: what the browser's consent page ("Allow <name> to
/// access your data?") shows. `keyrack`, or `KEYRACK_AWS_CLIENT_NAME` (a change shows from the
/// next browser sign-in, which registers the client anew).
pub(crate) fn client_name() -> String {
    std::env::var("KEYRACK_AWS_CLIENT_NAME")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && !s.chars().any(char::is_control))
        .unwrap_or_else(|| "keyrack".into())
}
