//! GitHub: the REST API behind the `github.app` mech ([`app`]).
//!
//! The API is `GITHUB_API_URL` when set (GitHub Enterprise Server: `https://HOST/api/v3`; the
//! Actions runner sets it too), else `https://api.github.com`. Calls go through the same blocking
//! HTTP transport as AWS ([`crate::aws::http`]), so they share its trust and proxy settings.

pub mod app;

/// The public GitHub REST API.
pub(crate) const DEFAULT_API_URL: &str = "https://api.github.com";

/// The variable that points keyrack at another GitHub API (GitHub Enterprise Server).
pub(crate) const API_URL_VAR: &str = "GITHUB_API_URL";

/// The REST API base URL (no trailing `/`): `GITHUB_API_URL` when set and not empty, else
/// [`DEFAULT_API_URL`]. See [`check_api_url`].
pub(crate) fn api_url() -> Result<String, app::AppError> {
    match std::env::var(API_URL_VAR) {
        Ok(v) if !v.trim().is_empty() => check_api_url(&v),
        _ => Ok(DEFAULT_API_URL.to_string()),
    }
}

/// Checks an API base URL: `https://…`, or `http://` to a loopback address only (a local test
/// server): a JWT and the installation token it buys never cross a network in clear text.
pub(crate) fn check_api_url(url: &str) -> Result<String, app::AppError> {
    let url = url.trim().trim_end_matches('/');
    let refuse = |reason: &str| app::AppError::ApiUrl {
        value: url.to_string(),
        reason: reason.to_string(),
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| refuse("it is not a URL (https://…)"))?;
    let host_port = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host_port.is_empty() || host_port.contains('@') {
        return Err(refuse("it names no host (or carries credentials)"));
    }
    if rest.contains(['?', '#']) || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(refuse("it has a query, a fragment or blanks"));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(url.to_string()),
        "http" if is_loopback(host_port) => Ok(url.to_string()),
        "http" => Err(refuse(
            "plain http is only accepted to a loopback address; GitHub App tokens travel over https",
        )),
        _ => Err(refuse("only https:// is accepted")),
    }
}

fn is_loopback(host_port: &str) -> bool {
    let host = if let Some(rest) = host_port.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_urls_are_https_or_loopback() {
        assert_eq!(
            check_api_url("https://ghe.example.com/api/v3/").unwrap(),
            "https://ghe.example.com/api/v3"
        );
        assert_eq!(
            check_api_url("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(check_api_url("http://[::1]:9/").is_ok());
        assert!(check_api_url("http://localhost:9").is_ok());
        for bad in [
            "http://api.github.com",
            "http://127.0.0.1.evil.com",
            "ftp://x",
            "api.github.com",
            "https://",
            "https://user:pw@ghe.example.com",
            "https://ghe.example.com/?x=1",
        ] {
            assert!(check_api_url(bad).is_err(), "{bad}");
        }
    }
}
