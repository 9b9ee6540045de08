//! The network settings of keyrack's AWS calls, read as the AWS SDKs read them.
//!
//! **Trust.** A server certificate is verified against the operating system's trust store
//! (`SSL_CERT_FILE` / `SSL_CERT_DIR` when set — read as `rustls-native-certs` reads them, and
//! captured with the other settings, so the session daemon trusts what each grant's unlock
//! trusted — else the distribution's bundle, as the Rust AWS SDK does) **plus** the PEM bundle named by `AWS_CA_BUNDLE`, else by `ca_bundle`
//! in the profile being unlocked (botocore's order: the variable wins over the file). A
//! TLS-inspecting corporate proxy's CA goes there. A bundle that is missing, unreadable or holds
//! no usable certificate is an error naming it; nothing is sent. An untrusted certificate is
//! [`AwsError::Untrusted`], which names the host and `AWS_CA_BUNDLE`.
//!
//! **Proxies.** As botocore: `https_proxy`/`HTTPS_PROXY` for `https://` endpoints,
//! `http_proxy`/`HTTP_PROXY` for `http://` ones (the lower-case variable wins, an empty one
//! unsets; under CGI, `REQUEST_METHOD` set, the upper-case `HTTP_PROXY` is ignored); a value
//! without a scheme means `http://`. `ALL_PROXY` is not read (botocore does not). The proxy is
//! spoken to with HTTP `CONNECT` (also for `http://` endpoints), over TLS when its URL is
//! `https://`; `user:password@` in its URL is sent as Basic proxy authorization.
//! `no_proxy`/`NO_PROXY` bypasses it for a host when an entry is `*`, the host itself, a domain
//! the host is in (`example.com` and `.example.com` both match `example.com` and
//! `a.example.com`; `*.example.com` too), `host:port` (that port only), or an IP network
//! (`10.0.0.0/8`, as the Rust SDK). Loopback is not bypassed implicitly (botocore does not):
//! list `127.0.0.1,localhost` to reach a local endpoint directly.

use std::cell::RefCell;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use super::http::AwsError;

/// The environment variable naming an extra PEM bundle of trusted CA certificates.
pub(crate) const CA_BUNDLE_ENV: &str = "AWS_CA_BUNDLE";

thread_local! {
    static PROFILE_CA_BUNDLE: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
    static CAPTURED: RefCell<Option<std::collections::BTreeMap<String, String>>> = const { RefCell::new(None) };
}

/// The variables that decide trust and proxies ([`Settings`] captures exactly these).
pub const SETTINGS_VARS: [&str; 10] = [
    CA_BUNDLE_ENV,
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "https_proxy",
    "HTTPS_PROXY",
    "http_proxy",
    "HTTP_PROXY",
    "no_proxy",
    "NO_PROXY",
    "REQUEST_METHOD",
];

/// The network settings of one process, captured so another can use them: the variables of
/// [`SETTINGS_VARS`] (a relative `AWS_CA_BUNDLE` made absolute) and the `ca_bundle` of the
/// profile being worked on. `unlock` captures them into an aws.config grant; the session daemon,
/// which runs with a clean environment and may have been started from another shell, renews
/// that grant with exactly them ([`Settings::enter`]), so a refresh goes through the same proxy
/// and trusts the same CAs as the unlock that made the grant.
///
/// Secret (a proxy URL may hold a password): kept only inside a grant's payload, never printed.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    vars: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    profile_ca_bundle: Option<PathBuf>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .field("profile_ca_bundle", &self.profile_ca_bundle)
            .finish()
    }
}

impl Settings {
    /// The settings this thread's AWS calls use now (its environment, and the profile bundle of
    /// a [`ProfileTrust`] in force).
    pub fn capture() -> Settings {
        let absolute = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
        let vars = SETTINGS_VARS
            .iter()
            .filter_map(|k| {
                let v = env_var(k)?;
                let v = if *k == CA_BUNDLE_ENV && !v.is_empty() {
                    absolute(PathBuf::from(&v)).to_string_lossy().into_owned()
                } else {
                    v
                };
                Some((k.to_string(), v))
            })
            .collect();
        Settings {
            vars,
            profile_ca_bundle: PROFILE_CA_BUNDLE.with(|c| c.borrow().clone()).map(absolute),
        }
    }

    /// Until the guard is dropped, AWS calls on this thread use these settings instead of the
    /// process environment's (a variable they do not hold is unset).
    pub fn enter(&self) -> SettingsGuard {
        let previous = CAPTURED.with(|c| c.replace(Some(self.vars.clone())));
        let bundle = self
            .profile_ca_bundle
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned());
        SettingsGuard {
            previous,
            _trust: ProfileTrust::enter(bundle.as_deref()),
        }
    }
}

/// Restores the environment's settings when dropped (see [`Settings::enter`]).
pub struct SettingsGuard {
    previous: Option<std::collections::BTreeMap<String, String>>,
    _trust: ProfileTrust,
}

impl Drop for SettingsGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CAPTURED.with(|c| *c.borrow_mut() = previous);
    }
}

/// A network variable as this thread's AWS calls see it: the entered [`Settings`], else the
/// process environment.
fn env_var(k: &str) -> Option<String> {
    match CAPTURED.with(|c| c.borrow().as_ref().map(|m| m.get(k).cloned())) {
        Some(v) => v,
        None => std::env::var(k).ok(),
    }
}

/// While alive, AWS calls on this thread also trust the `ca_bundle` of the profile being
/// worked on (unless `AWS_CA_BUNDLE` is set, which wins as in botocore).
pub(crate) struct ProfileTrust {
    previous: Option<PathBuf>,
}

impl ProfileTrust {
    /// Trusts the `ca_bundle` of profile `name` in `config`, if it has one, until dropped.
    pub(crate) fn of_profile(config: &super::config_file::AwsConfig, name: &str) -> Self {
        let section = super::config_file::Section::profile(name);
        let bundle = config
            .get(&section)
            .and_then(|values| values.get("ca_bundle").cloned());
        Self::enter(bundle.as_deref())
    }

    /// Trusts `bundle` (the profile's `ca_bundle` value, if any) until dropped.
    pub(crate) fn enter(bundle: Option<&str>) -> Self {
        let bundle = bundle.filter(|b| !b.is_empty()).map(PathBuf::from);
        let previous = PROFILE_CA_BUNDLE.with(|c| c.replace(bundle));
        ProfileTrust { previous }
    }
}

impl Drop for ProfileTrust {
    fn drop(&mut self) {
        let previous = self.previous.take();
        PROFILE_CA_BUNDLE.with(|c| *c.borrow_mut() = previous);
    }
}

/// Where the extra trusted certificates come from, for messages.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum BundleSource {
    Env(PathBuf),
    Profile(PathBuf),
}

impl BundleSource {
    fn path(&self) -> &Path {
        match self {
            BundleSource::Env(p) | BundleSource::Profile(p) => p,
        }
    }

    fn setting(&self) -> String {
        match self {
            BundleSource::Env(p) => format!("{CA_BUNDLE_ENV}={}", p.display()),
            BundleSource::Profile(p) => format!("ca_bundle = {} (AWS config file)", p.display()),
        }
    }
}

fn bundle_source(env: &dyn Fn(&str) -> Option<String>) -> Option<BundleSource> {
    if let Some(v) = env(CA_BUNDLE_ENV).filter(|v| !v.is_empty()) {
        return Some(BundleSource::Env(PathBuf::from(v)));
    }
    PROFILE_CA_BUNDLE
        .with(|c| c.borrow().clone())
        .map(BundleSource::Profile)
}

fn settings_error(setting: String, reason: String, hint: &str) -> AwsError {
    AwsError::Settings {
        setting,
        reason,
        hint: hint.to_string(),
    }
}

const BUNDLE_HINT: &str = "point AWS_CA_BUNDLE (or ca_bundle in the profile) at a readable PEM file of CA certificates, e.g. the one your network's TLS-inspecting proxy uses, or unset it";

/// The certificates of a PEM bundle; every certificate in it must be usable as a trust anchor.
fn read_bundle(
    source: &BundleSource,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, AwsError> {
    let path = source.path();
    let bytes = std::fs::read(path).map_err(|e| {
        settings_error(
            source.setting(),
            match e.kind() {
                std::io::ErrorKind::NotFound => "the file does not exist".to_string(),
                std::io::ErrorKind::PermissionDenied => {
                    "the file is not readable by you".to_string()
                }
                _ => format!("the file cannot be read ({e})"),
            },
            BUNDLE_HINT,
        )
    })?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&bytes) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => {
                let der = rustls::pki_types::CertificateDer::from(c.der().to_vec());
                let mut probe = rustls::RootCertStore::empty();
                probe.add(der.clone()).map_err(|e| {
                    settings_error(
                        source.setting(),
                        format!(
                            "certificate {} in it is not a usable CA certificate ({e})",
                            certs.len() + 1
                        ),
                        BUNDLE_HINT,
                    )
                })?;
                certs.push(der);
            }
            Ok(_) => {}
            Err(e) => {
                return Err(settings_error(
                    source.setting(),
                    format!("it is not a PEM bundle ({e})"),
                    BUNDLE_HINT,
                ))
            }
        }
    }
    if certs.is_empty() {
        return Err(settings_error(
            source.setting(),
            "it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
            BUNDLE_HINT,
        ));
    }
    Ok(certs)
}

/// The system trust store as `SSL_CERT_FILE` / `SSL_CERT_DIR` place it: the certificates of the
/// file and of the files in the directory when either is set (as `rustls-native-certs` reads
/// them; a file that holds no certificate is skipped), else the distribution's store (read once
/// per process). [`roots`] keeps what it returns per placement.
fn system_roots(
    file: Option<&str>,
    dir: Option<&str>,
) -> Arc<Vec<rustls::pki_types::CertificateDer<'static>>> {
    static DEFAULT: OnceLock<Arc<Vec<rustls::pki_types::CertificateDer<'static>>>> =
        OnceLock::new();
    if file.is_none() && dir.is_none() {
        return Arc::clone(
            DEFAULT.get_or_init(|| Arc::new(rustls_native_certs::load_native_certs().certs)),
        );
    }
    let mut certs = Vec::new();
    if let Some(file) = file {
        certs.extend(pem_certs(Path::new(file)));
    }
    if let Some(dir) = dir {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        for f in files.iter().filter(|f| f.is_file()) {
            certs.extend(pem_certs(f));
        }
    }
    Arc::new(certs)
}

/// The certificates of a PEM file of the system store (none when it holds none).
fn pem_certs(path: &Path) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    ureq::tls::parse_pem(&bytes)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => {
                Some(rustls::pki_types::CertificateDer::from(c.der().to_vec()))
            }
            _ => None,
        })
        .collect()
}

type Roots = Arc<Vec<ureq::tls::Certificate<'static>>>;

/// The trusted roots for a request: the system store plus the bundle, cached per bundle.
fn roots(env: &dyn Fn(&str) -> Option<String>) -> Result<Roots, AwsError> {
    type Key = (Option<BundleSource>, Option<String>, Option<String>);
    static CACHE: Mutex<Vec<(Key, Roots)>> = Mutex::new(Vec::new());
    let placed = |k: &str| env(k).filter(|v| !v.is_empty());
    let key: Key = (
        bundle_source(env),
        placed("SSL_CERT_FILE"),
        placed("SSL_CERT_DIR"),
    );
    if let Some((_, r)) = CACHE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .find(|(k, _)| *k == key)
    {
        return Ok(Arc::clone(r));
    }
    let extra = match &key.0 {
        Some(s) => read_bundle(s)?,
        None => Vec::new(),
    };
    let system = system_roots(key.1.as_deref(), key.2.as_deref());
    if system.is_empty() && extra.is_empty() {
        return Err(settings_error(
            "the system trust store".into(),
            "no CA certificate was found in it (SSL_CERT_FILE, SSL_CERT_DIR, or the distribution's bundle)".into(),
            "install the system CA certificates (e.g. the ca-certificates package), or point AWS_CA_BUNDLE at a PEM bundle",
        ));
    }
    let all: Roots = Arc::new(
        system
            .iter()
            .chain(extra.iter())
            .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
            .collect(),
    );
    CACHE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((key, Arc::clone(&all)));
    Ok(all)
}

/// A proxy chosen for a request, with the name of the variable it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProxyChoice {
    /// The variable (`HTTPS_PROXY`, `http_proxy`, …).
    pub var: &'static str,
    /// The proxy URL, with a scheme.
    pub url: String,
}

impl ProxyChoice {
    /// The URL without any `user:password@`, for messages.
    pub(crate) fn shown(&self) -> String {
        match self.url.split_once("://") {
            Some((scheme, rest)) => {
                let authority_end = rest.find('/').unwrap_or(rest.len());
                match rest[..authority_end].rfind('@') {
                    Some(at) => format!("{scheme}://…@{}", &rest[at + 1..]),
                    None => self.url.clone(),
                }
            }
            None => self.url.clone(),
        }
    }
}

/// A variable pair as Python's `getproxies_environment` reads it: the lower-case one wins when
/// set (empty unsets), else the upper-case one when not empty.
fn env_pair(
    env: &dyn Fn(&str) -> Option<String>,
    lower: &'static str,
    upper: &'static str,
) -> Option<(&'static str, String)> {
    match env(lower) {
        Some(v) if v.is_empty() => None,
        Some(v) => Some((lower, v)),
        None => env(upper).filter(|v| !v.is_empty()).map(|v| (upper, v)),
    }
}

/// The proxy for `scheme://host:port`, or `None` to connect directly.
pub(crate) fn proxy_for(
    env: &dyn Fn(&str) -> Option<String>,
    scheme: &str,
    host: &str,
    port: u16,
) -> Option<ProxyChoice> {
    let (var, value) = match scheme {
        "https" => env_pair(env, "https_proxy", "HTTPS_PROXY")?,
        "http" => {
            let cgi = env("REQUEST_METHOD").is_some();
            match env_pair(env, "http_proxy", "HTTP_PROXY")? {
                ("HTTP_PROXY", _) if cgi => return None,
                found => found,
            }
        }
        _ => return None,
    };
    if let Some((_, no_proxy)) = env_pair(env, "no_proxy", "NO_PROXY") {
        if bypasses(&no_proxy, host, port) {
            return None;
        }
    }
    let value = value.trim();
    let url = if value.starts_with("http:") || value.starts_with("https:") || value.contains("://")
    {
        value.to_string()
    } else if let Some(rest) = value.strip_prefix("//") {
        format!("http://{rest}")
    } else {
        format!("http://{value}")
    };
    Some(ProxyChoice { var, url })
}

/// Whether a `NO_PROXY` list bypasses the proxy for `host` (no brackets needed) and `port`.
pub(crate) fn bypasses(no_proxy: &str, host: &str, port: u16) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let host_ip: Option<IpAddr> = host.parse().ok();
    no_proxy.split(',').map(str::trim).any(|entry| {
        if entry.is_empty() {
            return false;
        }
        if entry == "*" {
            return true;
        }
        let (name, entry_port) = split_entry_port(entry);
        if entry_port.is_some_and(|p| p != port) {
            return false;
        }
        let name = name.trim_start_matches('[').trim_end_matches(']');
        if let Some((net, bits)) = name.split_once('/') {
            return match (net.parse::<IpAddr>(), bits.parse::<u8>(), host_ip) {
                (Ok(net), Ok(bits), Some(ip)) => in_network(ip, net, bits),
                _ => false,
            };
        }
        if let (Ok(ip), Some(h)) = (name.parse::<IpAddr>(), host_ip) {
            return ip == h;
        }
        let domain = name
            .trim_start_matches("*.")
            .trim_start_matches('.')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        !domain.is_empty()
            && host_ip.is_none()
            && (host == domain || host.ends_with(&format!(".{domain}")))
    })
}

/// `host:port` → (`host`, port); an IPv6 address without brackets has no port.
fn split_entry_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[') {
        if let Some((addr, after)) = rest.split_once(']') {
            let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
            return (addr, port);
        }
    }
    match entry.rsplit_once(':') {
        Some((h, p))
            if !h.contains(':') && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) =>
        {
            (h, p.parse().ok())
        }
        _ => (entry, None),
    }
}

fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// How a request goes out: the agent, and the proxy it goes through (for messages).
pub(crate) struct Route {
    /// The configured agent.
    pub agent: ureq::Agent,
    /// The proxy, when one is used.
    pub proxy: Option<ProxyChoice>,
}

/// The agent for one request to `url`, with the trust and proxy settings of this process.
pub fn route(url: &str, timeout: std::time::Duration) -> Result<Route, AwsError> {
    let env = |k: &str| env_var(k);
    let uri: ::http::Uri = url.parse().map_err(|e| AwsError::Refused {
        reason: format!("{url} is not a URL ({e})"),
    })?;
    let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
    let host = uri.host().unwrap_or_default().to_string();
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "http" { 80 } else { 443 });
    let proxy = proxy_for(&env, &scheme, &host, port);
    let ureq_proxy = match &proxy {
        None => None,
        Some(p) => {
            let parsed = ureq::Proxy::new(&p.url).map_err(|e| {
                settings_error(
                    format!("{}={}", p.var, p.shown()),
                    format!("it is not a proxy URL ({e})"),
                    "set it to the proxy's URL, e.g. http://proxy.example.com:3128, or unset it",
                )
            })?;
            if !matches!(
                parsed.protocol(),
                ureq::ProxyProtocol::Http | ureq::ProxyProtocol::Https
            ) {
                return Err(settings_error(
                    format!("{}={}", p.var, p.shown()),
                    "keyrack speaks to HTTP proxies only (http:// or https://), not SOCKS".into(),
                    "set it to the HTTP proxy's URL, e.g. http://proxy.example.com:3128, or unset it",
                ));
            }
            Some(parsed)
        }
    };
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(ring_provider());
    // Only HTTPS needs the trusted roots (and reading them): a plain-HTTP endpoint without an
    // https:// proxy never does TLS (redirects are not followed), and trusts nothing.
    let needs_tls =
        scheme == "https" || proxy.as_ref().is_some_and(|p| p.url.starts_with("https:"));
    let roots = if needs_tls {
        roots(&env)?
    } else {
        Arc::new(Vec::new())
    };
    let tls = tls.root_certs(ureq::tls::RootCerts::Specific(roots));
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        // As the SDKs, AWS API calls follow no redirect: a redirect would carry the
        // `x-amz-sso_bearer_token` header (ureq drops only Authorization and Cookie) to
        // whatever host the answer names.
        .max_redirects(0)
        .timeout_global(Some(timeout))
        .user_agent(concat!("keyrack/", env!("CARGO_PKG_VERSION")))
        .proxy(ureq_proxy)
        .tls_config(tls.build())
        .build()
        .into();
    Ok(Route { agent, proxy })
}

fn ring_provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())))
}

/// The rustls error inside a ureq error, if the failure was TLS.
fn rustls_error(e: &ureq::Error) -> Option<&rustls::Error> {
    match e {
        ureq::Error::Rustls(r) => Some(r),
        ureq::Error::Io(io) => io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()),
        _ => None,
    }
}

/// A transport failure as an [`AwsError`]: an untrusted certificate names the host and
/// `AWS_CA_BUNDLE`; anything else is unreachable, through the proxy when one was used.
pub(crate) fn classify(url: &str, route_proxy: Option<&ProxyChoice>, e: ureq::Error) -> AwsError {
    let host = url
        .split_once("://")
        .map(|(_, rest)| &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())])
        .unwrap_or(url)
        .to_string();
    if let Some(rustls::Error::InvalidCertificate(cert)) = rustls_error(&e) {
        return AwsError::Untrusted {
            host,
            reason: certificate_reason(cert),
            proxy: route_proxy.map(ProxyChoice::shown),
        };
    }
    let reason = match e {
        ureq::Error::ConnectProxyFailed(why) => why.replace(" responded ", " answered "),
        e => e.to_string(),
    };
    match route_proxy {
        Some(p) => AwsError::UnreachableViaProxy {
            url: url.into(),
            proxy: p.shown(),
            var: p.var.into(),
            reason,
        },
        None => AwsError::Unreachable {
            url: url.into(),
            reason,
        },
    }
}

fn certificate_reason(e: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    match e {
        C::UnknownIssuer => "it is signed by a CA that is not trusted here".into(),
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "it is not issued for this host name".into()
        }
        C::Expired | C::ExpiredContext { .. } => "it has expired".into(),
        C::NotValidYet | C::NotValidYetContext { .. } => "it is not valid yet".into(),
        C::Revoked => "it has been revoked".into(),
        C::BadSignature => "its signature does not verify".into(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| m.get(k).cloned()
    }

    #[test]
    fn the_scheme_picks_the_variable_and_lower_case_wins() {
        let env = env_of(&[
            ("HTTPS_PROXY", "http://upper:1"),
            ("HTTP_PROXY", "http://plain:2"),
        ]);
        let p = proxy_for(&env, "https", "oidc.us-east-1.amazonaws.com", 443).unwrap();
        assert_eq!((p.var, p.url.as_str()), ("HTTPS_PROXY", "http://upper:1"));
        let p = proxy_for(&env, "http", "127.0.0.1", 80).unwrap();
        assert_eq!((p.var, p.url.as_str()), ("HTTP_PROXY", "http://plain:2"));

        let env = env_of(&[
            ("HTTPS_PROXY", "http://upper:1"),
            ("https_proxy", "lower:3"),
        ]);
        let p = proxy_for(&env, "https", "x.example", 443).unwrap();
        assert_eq!((p.var, p.url.as_str()), ("https_proxy", "http://lower:3"));

        // an empty lower-case variable unsets, as in Python
        let env = env_of(&[("HTTPS_PROXY", "http://upper:1"), ("https_proxy", "")]);
        assert_eq!(proxy_for(&env, "https", "x.example", 443), None);
        // ALL_PROXY is not read; HTTP_PROXY does not carry https
        let env = env_of(&[("ALL_PROXY", "http://all:1"), ("HTTP_PROXY", "http://p:2")]);
        assert_eq!(proxy_for(&env, "https", "x.example", 443), None);
        // CGI: the upper-case HTTP_PROXY may come from a request header
        let env = env_of(&[("HTTP_PROXY", "http://p:2"), ("REQUEST_METHOD", "GET")]);
        assert_eq!(proxy_for(&env, "http", "x.example", 80), None);
        let env = env_of(&[("HTTPS_PROXY", "//p:8")]);
        assert_eq!(
            proxy_for(&env, "https", "x", 443).unwrap().url,
            "http://p:8"
        );
    }

    #[test]
    fn no_proxy_entries_as_the_sdks_read_them() {
        let h = "oidc.us-east-1.amazonaws.com";
        for yes in [
            "*",
            "amazonaws.com",
            ".amazonaws.com",
            "*.amazonaws.com",
            "AMAZONAWS.COM",
            " foo , us-east-1.amazonaws.com ",
            h,
            "oidc.us-east-1.amazonaws.com:443",
            "x.example,*",
        ] {
            assert!(bypasses(yes, h, 443), "{yes:?}");
        }
        for no in [
            "",
            "ws.com",
            "zonaws.com",
            "oidc.us-east-1.amazonaws.com:8443",
            "portal.sso.us-east-1.amazonaws.com",
            "example.com",
            ",",
        ] {
            assert!(!bypasses(no, h, 443), "{no:?}");
        }
        assert!(bypasses("127.0.0.1", "127.0.0.1", 4711));
        assert!(bypasses("127.0.0.1:4711", "127.0.0.1", 4711));
        assert!(!bypasses("127.0.0.1:4712", "127.0.0.1", 4711));
        assert!(bypasses("127.0.0.0/8", "127.0.0.1", 4711));
        assert!(!bypasses("10.0.0.0/8", "127.0.0.1", 4711));
        assert!(!bypasses("0.0.1", "127.0.0.1", 4711), "IPs match whole");
        assert!(bypasses("::1", "[::1]", 443));
        assert!(bypasses("[::1]:443", "::1", 443));
        assert!(bypasses("fd00::/8", "fd12::1", 443));
        assert!(
            !bypasses("localhost", "127.0.0.1", 443),
            "no implicit loopback"
        );
    }

    #[test]
    fn no_proxy_applies_to_the_chosen_proxy() {
        let env = env_of(&[
            ("HTTPS_PROXY", "http://p:1"),
            ("NO_PROXY", ".amazonaws.com"),
        ]);
        assert_eq!(
            proxy_for(&env, "https", "sts.us-east-1.amazonaws.com", 443),
            None
        );
        assert!(proxy_for(&env, "https", "d-1.awsapps.com", 443).is_some());
        let env = env_of(&[
            ("HTTPS_PROXY", "http://p:1"),
            ("NO_PROXY", "*"),
            ("no_proxy", "other.example"),
        ]);
        assert!(
            proxy_for(&env, "https", "x.example", 443).is_some(),
            "the lower-case no_proxy wins"
        );
    }

    #[test]
    fn proxy_credentials_are_not_shown() {
        let p = ProxyChoice {
            var: "HTTPS_PROXY",
            url: "http://me:s3cret@proxy.example:3128".into(),
        };
        assert_eq!(p.shown(), "http://…@proxy.example:3128");
        assert!(!format!(
            "{:?}",
            classify("https://x/", Some(&p), ureq::Error::ConnectionFailed)
        )
        .contains("s3cret"));
    }

    #[test]
    fn bundles_that_cannot_be_used_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "this is not a certificate\n").unwrap();
        let broken = dir.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        for (path, says) in [
            (&missing, "does not exist"),
            (&garbage, "no PEM certificate"),
            (&broken, "not a usable CA certificate"),
        ] {
            let e = read_bundle(&BundleSource::Env(path.clone())).unwrap_err();
            let AwsError::Settings {
                setting,
                reason,
                hint,
            } = &e
            else {
                panic!("{e:?}")
            };
            assert!(setting.starts_with("AWS_CA_BUNDLE="), "{setting}");
            assert!(setting.contains(&path.display().to_string()), "{setting}");
            assert!(reason.contains(says), "{reason}");
            assert!(hint.contains("AWS_CA_BUNDLE"), "{hint}");
        }
    }

    #[test]
    fn the_variable_wins_over_the_profile() {
        let _scope = ProfileTrust::enter(Some("/from/profile.pem"));
        let none = env_of(&[]);
        assert_eq!(
            bundle_source(&none),
            Some(BundleSource::Profile("/from/profile.pem".into()))
        );
        let set = env_of(&[("AWS_CA_BUNDLE", "/from/env.pem")]);
        assert_eq!(
            bundle_source(&set),
            Some(BundleSource::Env("/from/env.pem".into()))
        );
        drop(_scope);
        assert_eq!(bundle_source(&none), None);
    }
}
