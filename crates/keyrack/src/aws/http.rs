//! The blocking HTTP transport for AWS calls, and decoding of AWS error responses
//! (`x-amzn-ErrorType` header, `{error, error_description}` or `{message}` bodies). Trust
//! (system store + `AWS_CA_BUNDLE`) and proxies (`HTTPS_PROXY`, `NO_PROXY`) are [`super::net`]'s.

use std::time::Duration;

use crate::error::Error;

/// What an AWS call can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwsError {
    /// The endpoint could not be reached (DNS, refused, timeout, TLS).
    #[error("cannot reach {url} ({reason})")]
    Unreachable {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The service answered with an error.
    #[error("AWS answered {status} {code}: {message}")]
    Service {
        /// HTTP status.
        status: u16,
        /// The error type (`UnauthorizedException`, `AuthorizationPendingException`, …).
        code: String,
        /// The service's message.
        message: String,
    },
    /// The answer was not what the API documents.
    #[error("unexpected answer from {url}: {reason}")]
    Malformed {
        /// The URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// keyrack refused to send the request (the endpoint would not be AWS's), nothing was sent.
    #[error("nothing was sent: {reason}")]
    Refused {
        /// Why.
        reason: String,
    },
    /// The endpoint could not be reached through the proxy (`HTTPS_PROXY`, …) in use.
    #[error("cannot reach {url} through the proxy {proxy} ({var}): {reason}")]
    UnreachableViaProxy {
        /// The URL.
        url: String,
        /// The proxy URL (credentials not shown).
        proxy: String,
        /// The variable the proxy came from.
        var: String,
        /// Why.
        reason: String,
    },
    /// The server's TLS certificate is not trusted here (unknown CA, wrong name, expired).
    #[error("the TLS certificate of {host} is not trusted: {reason}{}", proxy.as_ref().map(|p| format!(" (connected through the proxy {p})")).unwrap_or_default())]
    Untrusted {
        /// The host (and port) connected to.
        host: String,
        /// What is wrong with the certificate.
        reason: String,
        /// The proxy the connection went through, if any (credentials not shown).
        proxy: Option<String>,
    },
    /// A network setting (`AWS_CA_BUNDLE`, `ca_bundle`, `HTTPS_PROXY`, …) cannot be used;
    /// nothing was sent.
    #[error("nothing was sent: {setting}: {reason}")]
    Settings {
        /// The setting, as the user wrote it (`AWS_CA_BUNDLE=/path`).
        setting: String,
        /// What is wrong with it.
        reason: String,
        /// How to fix it.
        hint: String,
    },
}

impl AwsError {
    /// The error type, when the service gave one.
    pub(crate) fn code(&self) -> Option<&str> {
        match self {
            AwsError::Service { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether the SSO session is dead (sign in again).
    pub(crate) fn is_unauthorized(&self) -> bool {
        matches!(self, AwsError::Service { status: 401, .. })
            || self.code().is_some_and(|c| {
                c.contains("Unauthorized")
                    || c.contains("InvalidGrant")
                    || c.contains("ExpiredToken")
                    || c.contains("InvalidClient")
            })
    }

    /// As a keyrack error saying what keyrack was `doing`, with the fix; this error is its source.
    pub(crate) fn into_error(self, doing: &str) -> Error {
        let hint = match &self {
            AwsError::Unreachable { .. } => {
                "check the network (and AWS_ENDPOINT_URL_* if set), then retry".to_string()
            }
            AwsError::Service { status, .. } if *status >= 500 => {
                "AWS had a fault; retry in a moment".to_string()
            }
            AwsError::Service { .. } if self.is_unauthorized() => {
                "the SSO session is no longer valid: keyrack unlock signs in again".to_string()
            }
            AwsError::Service { .. } => {
                "check the SSO settings of the profile (start URL, region, account, role)"
                    .to_string()
            }
            AwsError::Malformed { .. } => {
                "check AWS_ENDPOINT_URL_* points at AWS, then retry".to_string()
            }
            AwsError::Refused { .. } => {
                "fix the region in the profile's settings (keyrack set … --sso-region <region>, or edit the AWS config file)".to_string()
            }
            AwsError::UnreachableViaProxy { var, .. } => format!(
                "check that the proxy in {var} is up and lets you CONNECT to that host, or list the host in NO_PROXY to go direct"
            ),
            AwsError::Untrusted { .. } => {
                "if your network inspects TLS (a corporate proxy), export AWS_CA_BUNDLE=/path/to/its-ca-certificates.pem and retry; if it does not, the connection is being intercepted: do not sign in".to_string()
            }
            AwsError::Settings { hint, .. } => hint.clone(),
        };
        Error::Aws {
            message: doing.to_string(),
            hint,
            source: Some(Box::new(self)),
        }
    }
}

/// A successful answer.
pub(crate) struct Reply {
    /// The body.
    pub body: String,
}

impl Reply {
    /// Parses the body as JSON.
    pub(crate) fn json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, AwsError> {
        serde_json::from_str(&self.body).map_err(|e| AwsError::Malformed {
            url: url.into(),
            reason: format!("not the documented JSON ({e})"),
        })
    }
}

/// Sends a request; `body` is sent when given.
pub(crate) fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<Reply, AwsError> {
    let route = super::net::route(url, Duration::from_secs(20))?;
    let agent = route.agent;
    let unreachable = |e: ureq::Error| super::net::classify(url, route.proxy.as_ref(), e);
    let mut resp = match (method, body) {
        ("GET", _) => {
            let mut r = agent.get(url);
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            r.call().map_err(unreachable)?
        }
        (_, b) => {
            let mut r = agent.post(url);
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            match b {
                Some(b) => r.send(b).map_err(unreachable)?,
                None => r.send_empty().map_err(unreachable)?,
            }
        }
    };
    let status = resp.status().as_u16();
    let error_type = resp
        .headers()
        .get("x-amzn-ErrorType")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(':').next().unwrap_or(v).to_string());
    let text = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| AwsError::Malformed {
            url: url.into(),
            reason: format!("unreadable body ({e})"),
        })?;
    if (200..300).contains(&status) {
        return Ok(Reply { body: text });
    }
    let parsed: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    let code = error_type
        .or_else(|| {
            parsed
                .get("error")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        })
        .or_else(|| {
            parsed
                .get("__type")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        })
        .or_else(|| xml_tag(&text, "Code"))
        .unwrap_or_else(|| format!("HTTP{status}"));
    let message = parsed
        .get("error_description")
        .or_else(|| parsed.get("message"))
        .or_else(|| parsed.get("Message"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .or_else(|| xml_tag(&text, "Message"))
        .unwrap_or_else(|| text.chars().take(200).collect());
    Err(AwsError::Service {
        status,
        code: printable_code(&code),
        message: printable_message(&message),
    })
}

/// An error code from a server as it may be shown and matched: AWS's codes are names
/// (`InvalidGrantException`, `ThrottlingException`); anything else a hostile or confused endpoint
/// sends (escape sequences, line breaks, a page of HTML) is cut to the characters a name has.
fn printable_code(code: &str) -> String {
    let kept: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
        .take(64)
        .collect();
    if kept.is_empty() {
        "unnamed".into()
    } else {
        kept
    }
}

/// A server's error message as it may be shown on a terminal: control characters (escape
/// sequences, line breaks) become spaces, and it is cut at 300 characters.
fn printable_message(message: &str) -> String {
    message
        .chars()
        .take(300)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The text of the first `<tag>…</tag>` in an XML body.
pub(crate) fn xml_tag(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].trim().to_string())
}

/// Percent-encodes a query or form value.
pub(crate) fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
        .to_string()
        .replace("%2D", "-")
        .replace("%2E", ".")
        .replace("%5F", "_")
        .replace("%7E", "~")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_error_text_reaches_no_terminal_raw() {
        assert_eq!(
            printable_code("InvalidGrantException\u{1b}[2J\n<html>"),
            "InvalidGrantException2Jhtml"
        );
        assert_eq!(printable_code("\u{1b}\u{7}"), "unnamed");
        assert_eq!(printable_code(&"A".repeat(500)).len(), 64);
        let m = printable_message("line one\nline two\u{1b}]0;title\u{7}");
        assert!(!m.chars().any(char::is_control), "{m:?}");
        assert_eq!(printable_message(&"é".repeat(1000)).chars().count(), 300);
    }
}
