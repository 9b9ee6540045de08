//! AWS Systems Manager Parameter Store, the store behind the `aws.params` vault: `GetParameters`
//! (at most [`MAX_NAMES_PER_CALL`] names a call, AWS's limit), `GetParameter`, `PutParameter`
//! (`SecureString`, overwrite) and `DeleteParameter`, over the AWS JSON 1.1 protocol
//! (`POST /`, `X-Amz-Target: AmazonSSM.<Operation>`, `Content-Type: application/x-amz-json-1.1`),
//! SigV4-signed with `aws-sigv4` and sent on the shared transport ([`super::http`]).
//!
//! This client knows nothing of vaults: it is given a region and credentials, and answers
//! parameters or a classified [`SsmError`] that says what to do about it — a paste-ready IAM
//! statement for `AccessDeniedException` (`ssm:*` or `kms:*`), not found, throttled (already
//! retried with exponential backoff, at most [`MAX_ATTEMPTS`] tries), or a plain refusal.
//!
//! Values travel in zeroized buffers: the request body of `PutParameter` and the answer bodies
//! of reads are wiped when dropped, and parameter values are [`Secret`]s.

use std::cell::Cell;
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::endpoints::{endpoint, Service};
use super::http::{self, AwsError};
use super::names::{KmsKeyId, ParameterName, Region};
use super::portal::RoleCredentials;
use crate::secret::Secret;

/// The most names one `GetParameters` call may carry (AWS's limit).
pub const MAX_NAMES_PER_CALL: usize = 10;

/// How many times a throttled (or 5xx) call is tried before its error is returned.
pub const MAX_ATTEMPTS: u32 = 5;

/// The first backoff delay; each retry doubles it (100, 200, 400, 800 ms).
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// Credentials that sign SSM calls, and where they come from (for messages; never secret).
#[derive(Clone, Debug)]
pub struct SigningCredentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// The session token of temporary credentials.
    pub session_token: Option<Secret>,
    /// When they expire, if they do.
    pub expiration: Option<jiff::Timestamp>,
    /// Where they come from: "the role credentials of acme.test.AWS_PROFILE", "AWS_ACCESS_KEY_ID".
    pub source: String,
}

impl SigningCredentials {
    /// Role credentials (from the SSO portal), described by `source`.
    pub(crate) fn from_role(creds: &RoleCredentials, source: impl Into<String>) -> Self {
        SigningCredentials {
            access_key_id: creds.access_key_id.clone(),
            secret_access_key: creds.secret_access_key.clone(),
            session_token: Some(creds.session_token.clone()),
            expiration: Some(creds.expiration),
            source: source.into(),
        }
    }
}

/// The type of a parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParameterType {
    /// Encrypted with KMS: the only type keyrack hands out.
    SecureString,
    /// Plain text (not a secret).
    String,
    /// A comma-separated plain-text list (not a secret).
    StringList,
    /// A type this client does not know.
    Other(String),
}

impl ParameterType {
    fn parse(s: &str) -> Self {
        match s {
            "SecureString" => ParameterType::SecureString,
            "String" => ParameterType::String,
            "StringList" => ParameterType::StringList,
            other => ParameterType::Other(other.to_string()),
        }
    }

    /// The name AWS uses.
    pub fn as_str(&self) -> &str {
        match self {
            ParameterType::SecureString => "SecureString",
            ParameterType::String => "String",
            ParameterType::StringList => "StringList",
            ParameterType::Other(s) => s,
        }
    }
}

/// A parameter as read (with decryption).
#[derive(Clone, Debug)]
pub struct Parameter {
    /// Its name, as AWS answered it.
    pub name: String,
    /// Its type.
    pub kind: ParameterType,
    /// Its value (decrypted).
    pub value: Secret,
    /// Its version.
    pub version: u64,
}

/// Which SSM operation failed (to name the IAM action it needs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// `GetParameters` / `GetParameter` with decryption.
    Read,
    /// `PutParameter`.
    Write,
    /// `DeleteParameter`.
    Delete,
}

impl Operation {
    /// The IAM actions the operation needs on the parameter.
    pub fn ssm_actions(self) -> &'static [&'static str] {
        match self {
            Operation::Read => &["ssm:GetParameters", "ssm:GetParameter"],
            Operation::Write => &["ssm:PutParameter", "ssm:GetParameter"],
            Operation::Delete => &["ssm:DeleteParameter"],
        }
    }

    /// The KMS action a SecureString needs for this operation.
    pub fn kms_action(self) -> Option<&'static str> {
        match self {
            Operation::Read => Some("kms:Decrypt"),
            Operation::Write => Some("kms:Encrypt"),
            Operation::Delete => None,
        }
    }
}

/// What an SSM call failed with, classified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SsmError {
    /// `AccessDeniedException` (or a KMS refusal while decrypting/encrypting).
    AccessDenied {
        /// The IAM action refused (`ssm:GetParameters`, `kms:Decrypt`), when AWS named it.
        action: Option<String>,
        /// The resource ARN refused, when AWS named it.
        resource: Option<String>,
        /// The caller's ARN, when AWS named it.
        principal: Option<String>,
        /// AWS's message.
        message: String,
    },
    /// `ParameterNotFound`.
    NotFound,
    /// Still throttled (`ThrottlingException`) or failing (5xx) after [`MAX_ATTEMPTS`] tries.
    Throttled {
        /// How many tries were made.
        attempts: u32,
        /// The last error code.
        code: String,
    },
    /// The request was refused (`ValidationException`, `ParameterLimitExceeded`,
    /// `InvalidKeyId`, `UnrecognizedClientException`, …).
    Refused {
        /// The error code.
        code: String,
        /// AWS's message.
        message: String,
    },
    /// The transport failed (unreachable, bad answer, endpoint refused).
    Transport(AwsError),
}

impl SsmError {
    fn classify(e: AwsError) -> Self {
        let AwsError::Service { code, message, .. } = &e else {
            return SsmError::Transport(e);
        };
        let code = short_code(code);
        match code.as_str() {
            "ParameterNotFound" | "ParameterVersionNotFound" => SsmError::NotFound,
            c if c.contains("AccessDenied")
                || (c.starts_with("KMS") && message.contains("not authorized")) =>
            {
                let (principal, action, resource) = parse_denial(message);
                SsmError::AccessDenied {
                    action,
                    resource,
                    principal,
                    message: message.clone(),
                }
            }
            _ => SsmError::Refused {
                code,
                message: message.clone(),
            },
        }
    }

    /// Whether the call is worth trying again (throttling, AWS faults).
    fn retryable(e: &AwsError) -> bool {
        match e {
            AwsError::Service { status, code, .. } => {
                let c = short_code(code);
                *status == 429
                    || *status >= 500
                    || c.contains("Throttl")
                    || c == "TooManyUpdates"
                    || c == "RequestLimitExceeded"
            }
            _ => false,
        }
    }
}

/// `com.amazonaws.ssm#ParameterNotFound` → `ParameterNotFound`.
fn short_code(code: &str) -> String {
    code.rsplit('#').next().unwrap_or(code).to_string()
}

/// Reads `User: <principal> is not authorized to perform: <action> on resource: <resource>`
/// out of an access-denied message.
fn parse_denial(message: &str) -> (Option<String>, Option<String>, Option<String>) {
    let word_after = |marker: &str| {
        message.find(marker).and_then(|i| {
            let rest = message[i + marker.len()..].trim_start();
            let w: String = rest
                .chars()
                .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | ';' | '(' | ')'))
                .collect();
            let w = w.trim_end_matches('.').to_string();
            (!w.is_empty()).then_some(w)
        })
    };
    let principal = word_after("User:").filter(|p| p.starts_with("arn:"));
    let action = word_after("perform:").filter(|a| a.contains(':'));
    let resource = word_after("resource:").filter(|r| r.starts_with("arn:"));
    (principal, action, resource)
}

/// The ARN partition of a region (`aws`, `aws-cn`, `aws-us-gov`).
pub fn partition(region: &Region) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The ARN of a parameter (`account` `*` when unknown; names without a leading `/` get one).
pub fn parameter_arn(region: &Region, account: &str, name: &str) -> String {
    format!(
        "arn:{}:ssm:{region}:{account}:parameter/{}",
        partition(region),
        name.trim_start_matches('/')
    )
}

/// The account id in an ARN (`arn:aws:sts::123456789012:assumed-role/…`).
fn account_of(arn: &str) -> Option<String> {
    let account = arn.split(':').nth(4)?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))
        .then(|| account.to_string())
}

/// A paste-ready IAM policy statement (one line of JSON) that grants what an
/// [`SsmError::AccessDenied`] refused: the SSM actions of `op` on `resource` (a parameter ARN,
/// wildcards allowed), or the KMS action on the key AWS named (else any key, but only through
/// SSM in `region`).
pub fn iam_statement(
    op: Operation,
    region: &Region,
    denied_action: Option<&str>,
    denied_resource: Option<&str>,
    parameter_resource: &str,
) -> String {
    let kms = denied_action.is_some_and(|a| a.starts_with("kms:"));
    if kms {
        let action = denied_action
            .or(op.kms_action())
            .unwrap_or("kms:Decrypt")
            .to_string();
        return match denied_resource.filter(|r| r.contains(":kms:")) {
            Some(key) => serde_json::json!({
                "Effect": "Allow",
                "Action": action,
                "Resource": key,
            }),
            None => serde_json::json!({
                "Effect": "Allow",
                "Action": action,
                "Resource": "*",
                "Condition": {"StringEquals": {"kms:ViaService": format!("ssm.{region}.{}", region.dns_suffix())}},
            }),
        }
        .to_string();
    }
    serde_json::json!({
        "Effect": "Allow",
        "Action": op.ssm_actions(),
        "Resource": parameter_resource,
    })
    .to_string()
}

/// The account named in an access-denied error (the caller's, else the resource's).
pub fn denied_account(e: &SsmError) -> Option<String> {
    match e {
        SsmError::AccessDenied {
            principal,
            resource,
            ..
        } => principal
            .as_deref()
            .and_then(account_of)
            .or_else(|| resource.as_deref().and_then(account_of)),
        _ => None,
    }
}

/// A Parameter Store client for one region and one set of credentials.
pub struct Ssm<'a> {
    region: Region,
    url: String,
    creds: &'a SigningCredentials,
    calls: Cell<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawParameter {
    name: String,
    #[serde(rename = "Type")]
    kind: String,
    value: Secret,
    #[serde(default)]
    version: u64,
}

impl RawParameter {
    fn into_parameter(self) -> Parameter {
        Parameter {
            name: self.name,
            kind: ParameterType::parse(&self.kind),
            value: self.value,
            version: self.version,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetParametersOut {
    #[serde(default)]
    parameters: Vec<RawParameter>,
    #[serde(default)]
    invalid_parameters: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetParameterOut {
    parameter: RawParameter,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutParameterOut {
    #[serde(default)]
    version: u64,
}

impl<'a> Ssm<'a> {
    /// A client for `region` (endpoint: `AWS_ENDPOINT_URL_SSM`, then `AWS_ENDPOINT_URL`, then
    /// `https://ssm.{region}.amazonaws.com`, `.com.cn` for China).
    pub fn new(region: &Region, creds: &'a SigningCredentials) -> Result<Self, SsmError> {
        let url = format!(
            "{}/",
            endpoint(Service::Ssm, region).map_err(SsmError::Transport)?
        );
        Ok(Ssm {
            region: region.clone(),
            url,
            creds,
            calls: Cell::new(0),
        })
    }

    /// The region.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The endpoint calls go to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many HTTP requests this client sent (retries included).
    pub fn calls(&self) -> u32 {
        self.calls.get()
    }

    /// Reads `names` with decryption, [`MAX_NAMES_PER_CALL`] a call. The answer is aligned
    /// with `names`: the parameter, `None` when AWS does not have it, or the error of the call
    /// that carried it. A batch refused with `AccessDeniedException` is asked again one name a
    /// call, so only the names really refused carry the error.
    pub fn get_parameters(
        &self,
        names: &[ParameterName],
    ) -> Vec<Result<Option<Parameter>, SsmError>> {
        let mut out = Vec::with_capacity(names.len());
        for chunk in names.chunks(MAX_NAMES_PER_CALL) {
            match self.get_batch(chunk) {
                Err(SsmError::AccessDenied { .. }) if chunk.len() > 1 => {
                    for name in chunk {
                        out.push(
                            self.get_batch(std::slice::from_ref(name))
                                .and_then(|mut v| v.pop().ok_or(SsmError::NotFound)),
                        );
                    }
                }
                Err(e) => out.extend(chunk.iter().map(|_| Err(e.clone()))),
                Ok(found) => out.extend(found.into_iter().map(Ok)),
            }
        }
        out
    }

    fn get_batch(&self, names: &[ParameterName]) -> Result<Vec<Option<Parameter>>, SsmError> {
        let body = serde_json::json!({
            "Names": names.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
            "WithDecryption": true,
        })
        .to_string();
        let reply = self.call("GetParameters", Zeroizing::new(body))?;
        let parsed: GetParametersOut =
            serde_json::from_str(&reply).map_err(|e| self.malformed("GetParameters", e))?;
        let mut found: Vec<RawParameter> = parsed.parameters;
        Ok(names
            .iter()
            .map(|n| {
                if parsed.invalid_parameters.iter().any(|i| i == n.as_str()) {
                    return None;
                }
                found
                    .iter()
                    .position(|p| p.name == n.as_str())
                    .map(|i| found.swap_remove(i).into_parameter())
            })
            .collect())
    }

    /// Reads one parameter with decryption (`None`: AWS does not have it).
    pub fn get_parameter(&self, name: &ParameterName) -> Result<Option<Parameter>, SsmError> {
        let body = serde_json::json!({ "Name": name.as_str(), "WithDecryption": true }).to_string();
        match self.call("GetParameter", Zeroizing::new(body)) {
            Ok(reply) => {
                let parsed: GetParameterOut =
                    serde_json::from_str(&reply).map_err(|e| self.malformed("GetParameter", e))?;
                Ok(Some(parsed.parameter.into_parameter()))
            }
            Err(SsmError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes `value` as a `SecureString` (overwriting), encrypted with `kms_key_id` or the
    /// account's default key (`alias/aws/ssm`). Returns the new version.
    pub fn put_parameter(
        &self,
        name: &ParameterName,
        value: &Secret,
        kms_key_id: Option<&KmsKeyId>,
    ) -> Result<u64, SsmError> {
        let body = put_body(name, value, kms_key_id);
        let reply = self.call("PutParameter", body)?;
        let parsed: PutParameterOut =
            serde_json::from_str(&reply).map_err(|e| self.malformed("PutParameter", e))?;
        Ok(parsed.version)
    }

    /// Deletes a parameter; `false` when AWS did not have it.
    pub fn delete_parameter(&self, name: &ParameterName) -> Result<bool, SsmError> {
        let body = serde_json::json!({ "Name": name.as_str() }).to_string();
        match self.call("DeleteParameter", Zeroizing::new(body)) {
            Ok(_) => Ok(true),
            Err(SsmError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn malformed(&self, op: &str, e: serde_json::Error) -> SsmError {
        SsmError::Transport(AwsError::Malformed {
            url: self.url.clone(),
            reason: format!(
                "the {op} answer is not the documented JSON ({})",
                json_problem(&e)
            ),
        })
    }

    /// One operation, signed, retried while throttled. Answers the (wiped-on-drop) body.
    fn call(&self, op: &str, body: Zeroizing<String>) -> Result<Zeroizing<String>, SsmError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let headers = self.signed_headers(op, &body)?;
            let hrefs: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            self.calls.set(self.calls.get() + 1);
            match http::send("POST", &self.url, &hrefs, Some(&body)) {
                Ok(reply) => return Ok(Zeroizing::new(reply.body)),
                Err(e) if SsmError::retryable(&e) => {
                    if attempt >= MAX_ATTEMPTS {
                        return Err(SsmError::Throttled {
                            attempts: attempt,
                            code: e.code().map(short_code).unwrap_or_default(),
                        });
                    }
                    std::thread::sleep(FIRST_BACKOFF * 2u32.pow(attempt - 1));
                }
                Err(e) => return Err(SsmError::classify(e)),
            }
        }
    }

    fn signed_headers(&self, op: &str, body: &str) -> Result<Vec<(String, String)>, SsmError> {
        let cannot = |e: &dyn std::fmt::Display| {
            SsmError::Transport(AwsError::Malformed {
                url: self.url.clone(),
                reason: format!("cannot sign: {e}"),
            })
        };
        let identity = Credentials::new(
            self.creds.access_key_id.clone(),
            self.creds.secret_access_key.expose().to_string(),
            self.creds
                .session_token
                .as_ref()
                .map(|t| t.expose().to_string()),
            None,
            "keyrack",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(self.region.as_str())
            .name("ssm")
            .time(std::time::SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| cannot(&e))?
            .into();
        let target = format!("AmazonSSM.{op}");
        let signable = SignableRequest::new(
            "POST",
            &self.url,
            [("content-type", CONTENT_TYPE), ("x-amz-target", &target)].into_iter(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(|e| cannot(&e))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| cannot(&e))?
            .into_parts();
        let mut req = ::http::Request::builder()
            .method("POST")
            .uri(&self.url)
            .body(())
            .map_err(|e| cannot(&e))?;
        instructions.apply_to_request_http1x(&mut req);
        let mut headers: Vec<(String, String)> = vec![
            ("content-type".into(), CONTENT_TYPE.into()),
            ("x-amz-target".into(), target),
        ];
        for (k, v) in req.headers() {
            headers.push((
                k.as_str().to_string(),
                v.to_str().unwrap_or_default().to_string(),
            ));
        }
        Ok(headers)
    }
}

/// Where and how a JSON answer failed to parse, without serde's message: that can quote the
/// offending value, and answers carry secrets.
pub fn json_problem(e: &serde_json::Error) -> String {
    let kind = match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected field type or shape",
        serde_json::error::Category::Eof => "cut short",
    };
    format!("{kind} at line {}, column {}", e.line(), e.column())
}

/// The `PutParameter` request: a `SecureString`, overwriting, with `KeyId` when given. The
/// value goes in last, straight into a buffer that is wiped when dropped.
fn put_body(
    name: &ParameterName,
    value: &Secret,
    kms_key_id: Option<&KmsKeyId>,
) -> Zeroizing<String> {
    let mut req = serde_json::Map::new();
    req.insert("Name".into(), name.as_str().into());
    req.insert("Type".into(), "SecureString".into());
    req.insert("Overwrite".into(), true.into());
    if let Some(k) = kms_key_id {
        req.insert("KeyId".into(), k.as_str().into());
    }
    let head = serde_json::Value::Object(req).to_string();
    let quoted =
        Zeroizing::new(serde_json::to_string(value.expose()).expect("a string serialises"));
    let mut body = Zeroizing::new(String::with_capacity(head.len() + quoted.len() + 10));
    body.push_str(&head[..head.len() - 1]);
    body.push_str(",\"Value\":");
    body.push_str(&quoted);
    body.push('}');
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_denied_messages_name_principal_action_and_resource() {
        let m = "User: arn:aws:sts::123456789012:assumed-role/Dev/alice@example.com is not authorized to perform: ssm:GetParameters on resource: arn:aws:ssm:us-east-1:123456789012:parameter/keyrack/acme/test/API_KEY because no identity-based policy allows the ssm:GetParameters action";
        let (p, a, r) = parse_denial(m);
        assert_eq!(
            p.as_deref(),
            Some("arn:aws:sts::123456789012:assumed-role/Dev/alice@example.com")
        );
        assert_eq!(a.as_deref(), Some("ssm:GetParameters"));
        assert_eq!(
            r.as_deref(),
            Some("arn:aws:ssm:us-east-1:123456789012:parameter/keyrack/acme/test/API_KEY")
        );
        let kms = "User: arn:aws:sts::123456789012:assumed-role/Dev/alice is not authorized to perform: kms:Decrypt on resource: arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab because no identity-based policy allows the kms:Decrypt action (Service: AWSKMS; Status Code: 400)";
        let (_, a, r) = parse_denial(kms);
        assert_eq!(a.as_deref(), Some("kms:Decrypt"));
        assert_eq!(
            r.as_deref(),
            Some("arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab")
        );
        assert_eq!((None, None, None), parse_denial("Access denied"));
    }

    #[test]
    fn statements_are_valid_json_with_the_right_action_and_resource() {
        let r = Region::parse("eu-west-1").unwrap();
        let arn = parameter_arn(&r, "123456789012", "/keyrack/acme/test/*");
        assert_eq!(
            arn,
            "arn:aws:ssm:eu-west-1:123456789012:parameter/keyrack/acme/test/*"
        );
        let s: serde_json::Value = serde_json::from_str(&iam_statement(
            Operation::Read,
            &r,
            Some("ssm:GetParameters"),
            None,
            &arn,
        ))
        .unwrap();
        assert_eq!(s["Effect"], "Allow");
        assert_eq!(
            s["Action"],
            serde_json::json!(["ssm:GetParameters", "ssm:GetParameter"])
        );
        assert_eq!(s["Resource"], arn.as_str());

        let key = "arn:aws:kms:eu-west-1:123456789012:key/abcd";
        let s: serde_json::Value = serde_json::from_str(&iam_statement(
            Operation::Read,
            &r,
            Some("kms:Decrypt"),
            Some(key),
            &arn,
        ))
        .unwrap();
        assert_eq!(s["Action"], "kms:Decrypt");
        assert_eq!(s["Resource"], key);
        let s: serde_json::Value = serde_json::from_str(&iam_statement(
            Operation::Read,
            &r,
            Some("kms:Decrypt"),
            None,
            &arn,
        ))
        .unwrap();
        assert_eq!(
            s["Condition"]["StringEquals"]["kms:ViaService"],
            "ssm.eu-west-1.amazonaws.com"
        );
        let cn = Region::parse("cn-north-1").unwrap();
        assert!(parameter_arn(&cn, "*", "x").starts_with("arn:aws-cn:ssm:cn-north-1:*:"));
    }

    #[test]
    fn error_codes_are_classified() {
        let svc = |status, code: &str, message: &str| AwsError::Service {
            status,
            code: code.into(),
            message: message.into(),
        };
        assert_eq!(
            SsmError::classify(svc(400, "ParameterNotFound", "")),
            SsmError::NotFound
        );
        assert_eq!(
            SsmError::classify(svc(400, "com.amazonaws.ssm#ParameterNotFound", "")),
            SsmError::NotFound
        );
        assert!(matches!(
            SsmError::classify(svc(400, "AccessDeniedException", "User: arn:aws:sts::123456789012:assumed-role/R/u is not authorized to perform: ssm:PutParameter on resource: arn:aws:ssm:us-east-1:123456789012:parameter/x")),
            SsmError::AccessDenied { action: Some(a), .. } if a == "ssm:PutParameter"
        ));
        assert!(matches!(
            SsmError::classify(svc(400, "ValidationException", "too long")),
            SsmError::Refused { code, .. } if code == "ValidationException"
        ));
        assert!(SsmError::retryable(&svc(400, "ThrottlingException", "")));
        assert!(SsmError::retryable(&svc(503, "ServiceUnavailable", "")));
        assert!(!SsmError::retryable(&svc(400, "AccessDeniedException", "")));
        assert!(!SsmError::retryable(&AwsError::Unreachable {
            url: "u".into(),
            reason: "refused".into()
        }));
    }

    #[test]
    fn a_malformed_answer_is_described_without_its_values() {
        let e = serde_json::from_str::<GetParameterOut>(
            r#"{"Parameter": {"Name": "/x", "Type": "SecureString", "Value": 123456789, "Version": 1}}"#,
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("123456789"), "serde quotes it: {e}");
        let shown = json_problem(&e);
        assert!(!shown.contains("123456789"), "{shown}");
        assert!(shown.contains("line 1"), "{shown}");
    }

    #[test]
    fn the_put_body_is_a_secure_string_overwrite_with_the_exact_value() {
        let name = ParameterName::parse("/keyrack/acme/test/K").unwrap();
        let value = Secret::new("a \"quoted\"\nvalue ü \\ }".into());
        let v: serde_json::Value = serde_json::from_str(&put_body(&name, &value, None)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"Name": "/keyrack/acme/test/K", "Type": "SecureString", "Overwrite": true, "Value": value.expose()})
        );
        let key = KmsKeyId::parse("alias/keyrack").unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&put_body(&name, &value, Some(&key))).unwrap();
        assert_eq!(v["KeyId"], "alias/keyrack");
        assert_eq!(v["Value"], value.expose());
    }
}
