//! `~/.aws/config` (or `$AWS_CONFIG_FILE`): a line-based reader and editor.
//!
//! INI crates were measured to destroy real config files (comments, nested `s3 =` sub-sections,
//! `[services]`), so this editor works on lines: it changes only the `key = value` lines of the
//! sections it is asked to write, appends new sections at the end, and keeps every other byte.
//!
//! Every value keyrack uses from the file is validated by [`super::names`] (a refusal names
//! `file:line`), and the writer refuses any section name or value that could add a line.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::names::{
    is_unsafe_char, shown, AccountId, NameError, ProfileName, Region, RoleName, SessionName,
    StartUrl,
};
use crate::error::{Error, Result};
use crate::fsio;
use crate::home::user_home;

/// A section header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Section {
    /// `[default]` (or `[profile default]`).
    Default,
    /// `[profile NAME]`.
    Profile(String),
    /// `[sso-session NAME]`.
    SsoSession(String),
    /// Anything else (`[services x]`, …), kept verbatim.
    Other(String),
}

impl Section {
    /// The section for a profile name (`default` maps to `[default]`).
    pub fn profile(name: &str) -> Self {
        if name == "default" {
            Section::Default
        } else {
            Section::Profile(name.into())
        }
    }

    fn header(&self) -> String {
        match self {
            Section::Default => "[default]".into(),
            Section::Profile(n) => format!("[profile {n}]"),
            Section::SsoSession(n) => format!("[sso-session {n}]"),
            Section::Other(raw) => format!("[{raw}]"),
        }
    }

    fn parse(line: &str) -> Option<Section> {
        let t = line.trim();
        let inner = t.strip_prefix('[')?;
        let inner = &inner[..inner.find(']')?];
        let inner = inner.trim();
        let mut words = inner.splitn(2, char::is_whitespace);
        Some(match (words.next(), words.next().map(str::trim)) {
            (Some("default"), None) | (Some("profile"), Some("default")) => Section::Default,
            (Some("profile"), Some(n)) => Section::Profile(n.into()),
            (Some("sso-session"), Some(n)) => Section::SsoSession(n.into()),
            _ => Section::Other(inner.into()),
        })
    }
}

/// An SSO profile, resolved through its `sso_session` (or legacy inline fields). Every field
/// is validated: a profile that reaches the rest of keyrack cannot point a token elsewhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SsoProfile {
    /// The profile name.
    pub name: ProfileName,
    /// The sso-session name (`None` for legacy inline profiles).
    pub session: Option<SessionName>,
    /// The portal start URL.
    pub start_url: StartUrl,
    /// The SSO region.
    pub sso_region: Region,
    /// The account id.
    pub account_id: AccountId,
    /// The role name.
    pub role_name: RoleName,
    /// The profile's default region.
    pub region: Option<Region>,
}

impl SsoProfile {
    /// The name the token cache is keyed by (session name; legacy: start URL).
    pub(crate) fn cache_name(&self) -> &str {
        match &self.session {
            Some(s) => s.as_str(),
            None => self.start_url.as_str(),
        }
    }

    /// The region for STS and other regional calls: the profile's, else the SSO region.
    pub(crate) fn call_region(&self) -> &Region {
        self.region.as_ref().unwrap_or(&self.sso_region)
    }
}

struct Span {
    section: Section,
    header: usize,
    end: usize,
}

/// A loaded config file.
pub struct AwsConfig {
    path: PathBuf,
    lines: Vec<String>,
    mode: Option<u32>,
}

/// `$AWS_CONFIG_FILE`, else `~/.aws/config`.
pub(crate) fn default_path() -> Result<PathBuf> {
    match std::env::var_os("AWS_CONFIG_FILE").filter(|v| !v.is_empty()) {
        Some(p) => Ok(PathBuf::from(p)),
        None => Ok(user_home()?.join(".aws").join("config")),
    }
}

fn key_of(line: &str) -> Option<(&str, &str)> {
    if line.starts_with([' ', '\t', '#', ';', '[']) {
        return None;
    }
    let (k, v) = line.split_once('=')?;
    Some((k.trim(), v.trim_end_matches(['\r', '\n']).trim()))
}

fn refuse_write(what: &'static str, value: &str, reason: &str) -> Error {
    Error::InvalidInput {
        what,
        value: shown(value),
        reason: format!("{reason}; keyrack does not write it to the AWS config file"),
        hint: Some("use names and values from AWS's own grammar (see keyrack set --help)".into()),
    }
}

/// The writer's own guard: nothing it writes can start a new line, section or setting.
fn check_writable(section: &Section, values: &[(&str, &str)]) -> Result<()> {
    match section {
        Section::Default => {}
        Section::Profile(n) => {
            ProfileName::parse(n).map_err(NameError::for_flag)?;
        }
        Section::SsoSession(n) => {
            SessionName::parse(n).map_err(NameError::for_flag)?;
        }
        Section::Other(raw) => {
            if raw.is_empty()
                || raw
                    .chars()
                    .any(|c| is_unsafe_char(c) || c == '[' || c == ']')
            {
                return Err(refuse_write(
                    "AWS config section",
                    raw,
                    "it is not a section name",
                ));
            }
        }
    }
    for (k, v) in values {
        let key_ok = !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !key_ok {
            return Err(refuse_write(
                "AWS config key",
                k,
                "it is not a setting name",
            ));
        }
        if v.chars().any(is_unsafe_char) {
            return Err(refuse_write(
                "AWS config value",
                v,
                "it contains a control character",
            ));
        }
        if v.trim() != *v {
            return Err(refuse_write(
                "AWS config value",
                v,
                "it starts or ends with a space",
            ));
        }
    }
    Ok(())
}

fn is_content(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && !t.starts_with('#') && !t.starts_with(';')
}

impl AwsConfig {
    /// Loads the default config file (an absent file is an empty config).
    pub fn load_default() -> Result<Self> {
        Self::load(&default_path()?)
    }

    /// Loads `path`.
    pub(crate) fn load(path: &Path) -> Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let mut config = Self::from_bytes(path, bytes)?;
                config.mode = std::fs::metadata(path)
                    .ok()
                    .map(|m| m.permissions().mode() & 0o7777);
                Ok(config)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Self::from_bytes(path, Vec::new())
            }
            Err(e) => Err(Error::io("read the AWS config file", path, e)),
        }
    }

    /// Reads the content of the config file at `path` (nothing is read from disk;
    /// [`AwsConfig::save`] writes it back to `path` with mode 0600).
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self> {
        let text = String::from_utf8(bytes).map_err(|_| Error::CorruptFile {
            path: path.to_path_buf(),
            reason: "the AWS config file is not UTF-8 text".into(),
            hint: format!(
                "fix the encoding of {} (or point AWS_CONFIG_FILE elsewhere)",
                path.display()
            ),
        })?;
        Ok(AwsConfig {
            path: path.to_path_buf(),
            lines: text.split_inclusive('\n').map(str::to_string).collect(),
            mode: None,
        })
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The whole text.
    pub fn text(&self) -> String {
        self.lines.concat()
    }

    fn spans(&self) -> Vec<Span> {
        let mut spans: Vec<Span> = Vec::new();
        for (i, line) in self.lines.iter().enumerate() {
            if line.trim_start().starts_with('[') {
                if let Some(section) = Section::parse(line) {
                    if let Some(last) = spans.last_mut() {
                        last.end = i;
                    }
                    spans.push(Span {
                        section,
                        header: i,
                        end: self.lines.len(),
                    });
                }
            }
        }
        spans
    }

    fn span(&self, section: &Section) -> Option<Span> {
        self.spans().into_iter().find(|s| &s.section == section)
    }

    /// The top-level `key = value` pairs of a section (nested sub-section lines are skipped).
    pub fn get(&self, section: &Section) -> Option<BTreeMap<String, String>> {
        Some(
            self.get_lines(section)?
                .into_iter()
                .map(|(k, (v, _))| (k, v))
                .collect(),
        )
    }

    /// Like [`AwsConfig::get`], with the 1-based line number of each value.
    fn get_lines(&self, section: &Section) -> Option<BTreeMap<String, (String, usize)>> {
        let span = self.span(section)?;
        Some(
            (span.header + 1..span.end)
                .filter_map(|i| key_of(&self.lines[i]).map(|(k, v)| (i, k, v)))
                .map(|(i, k, v)| (k.to_string(), (v.to_string(), i + 1)))
                .collect(),
        )
    }

    /// The 1-based line of a section's header.
    fn header_line(&self, section: &Section) -> usize {
        self.span(section).map_or(0, |s| s.header + 1)
    }

    /// The text of a section (header to last content line), for diffs.
    pub fn section_text(&self, section: &Section) -> Option<String> {
        let span = self.span(section)?;
        let last = (span.header..span.end)
            .rev()
            .find(|&i| is_content(&self.lines[i]))?;
        Some(self.lines[span.header..=last].concat())
    }

    /// Every profile name.
    pub fn profile_names(&self) -> Vec<String> {
        self.spans()
            .into_iter()
            .filter_map(|s| match s.section {
                Section::Default => Some("default".into()),
                Section::Profile(n) => Some(n),
                _ => None,
            })
            .collect()
    }

    /// Every sso-session: (name, start URL, region).
    pub fn sso_sessions(&self) -> Vec<(String, String, String)> {
        self.spans()
            .into_iter()
            .filter_map(|s| match &s.section {
                Section::SsoSession(n) => {
                    let kv = self.get(&s.section)?;
                    Some((
                        n.clone(),
                        kv.get("sso_start_url")?.clone(),
                        kv.get("sso_region").cloned().unwrap_or_default(),
                    ))
                }
                _ => None,
            })
            .collect()
    }

    /// The sso-session that already serves `start_url`, if any (its name validated: a refusal
    /// names the header's line).
    pub fn session_for_url(&self, start_url: &str) -> Result<Option<SessionName>> {
        let norm = |u: &str| {
            u.trim()
                .trim_end_matches('#')
                .trim_end_matches('/')
                .to_string()
        };
        match self
            .sso_sessions()
            .into_iter()
            .find(|(_, url, _)| norm(url) == norm(start_url))
        {
            Some((n, _, _)) => SessionName::parse(&n).map(Some).map_err(|e| {
                e.in_file(
                    &self.path,
                    self.header_line(&Section::SsoSession(n.clone())),
                )
            }),
            None => Ok(None),
        }
    }

    /// The validated start URL and SSO region of an sso-session section.
    pub(crate) fn session_settings(&self, name: &str) -> Result<(StartUrl, Region)> {
        let section = Section::SsoSession(name.into());
        let kv = self.get_lines(&section).ok_or_else(|| Error::Aws {
            source: None,
            message: format!(
                "[sso-session {}] is not in {}",
                shown(name),
                self.path.display()
            ),
            hint: format!(
                "add a [sso-session {}] section with sso_start_url and sso_region",
                shown(name)
            ),
        })?;
        let missing = |what: &str| Error::Aws {
            source: None,
            message: format!(
                "{}:{}: [sso-session {}] has no {what}",
                self.path.display(),
                self.header_line(&section),
                shown(name)
            ),
            hint: format!("add {what} to that section"),
        };
        let (url, url_line) = kv
            .get("sso_start_url")
            .ok_or_else(|| missing("sso_start_url"))?;
        let (region, region_line) = kv.get("sso_region").ok_or_else(|| missing("sso_region"))?;
        Ok((
            StartUrl::parse(url).map_err(|e| e.in_file(&self.path, *url_line))?,
            Region::parse_sso(region).map_err(|e| e.in_file(&self.path, *region_line))?,
        ))
    }

    /// Resolves an SSO profile (through `sso_session`, or legacy inline fields). Every value is
    /// validated ([`super::names`]); a refusal names `file:line`, so a hostile `sso_region`
    /// never becomes a URL the SSO token is sent to.
    pub fn sso_profile(&self, name: &ProfileName) -> Result<SsoProfile> {
        let section = Section::profile(name);
        let kv = self.get_lines(&section).ok_or_else(|| Error::Aws {
            source: None,
            message: format!("profile '{name}' is not in {}", self.path.display()),
            hint: format!(
                "pick one of: {} — or create it with: keyrack set --key AWS_PROFILE (guided)",
                self.profile_names()
                    .iter()
                    .map(|n| shown(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
        let header = self.header_line(&section);
        let incomplete = |what: &str| {
            Error::Aws {
            source: None,
            message: format!(
                "{}:{header}: profile '{name}' has no {what}: it is not an SSO profile",
                self.path.display()
            ),
            hint: "add the sso_* settings, or let keyrack write the profile: keyrack set --key AWS_PROFILE --sso-start-url … --sso-region … --account-id … --role-name … --profile-name …".into(),
        }
        };
        let field = |key: &str| kv.get(key).ok_or_else(|| incomplete(key));
        let at = |e: NameError, line: usize| e.in_file(&self.path, line);
        let (session, start_url, sso_region) = match kv.get("sso_session") {
            Some((s, line)) => {
                let session = SessionName::parse(s).map_err(|e| at(e, *line))?;
                let (url, region) = self.session_settings(&session)?;
                (Some(session), url, region)
            }
            None => {
                let (url, url_line) = field("sso_start_url")?;
                let (region, region_line) = field("sso_region")?;
                (
                    None,
                    StartUrl::parse(url).map_err(|e| at(e, *url_line))?,
                    Region::parse_sso(region).map_err(|e| at(e, *region_line))?,
                )
            }
        };
        let (account, account_line) = field("sso_account_id")?;
        let (role, role_line) = field("sso_role_name")?;
        let region = match kv.get("region") {
            Some((r, line)) => Some(Region::parse(r).map_err(|e| at(e, *line))?),
            None => None,
        };
        Ok(SsoProfile {
            name: name.clone(),
            session,
            start_url,
            sso_region,
            account_id: AccountId::parse(account).map_err(|e| at(e, *account_line))?,
            role_name: RoleName::parse(role).map_err(|e| at(e, *role_line))?,
            region,
        })
    }

    /// Sets `values` in `section`, creating it at the end if absent. Only the named keys' lines
    /// change; everything else in and around the section is kept. Returns whether anything changed.
    ///
    /// Refuses (changing nothing) a section name outside the AWS grammar and any key or value
    /// that could add a line or a section: newlines, control and bidi characters, `[`/`=` in
    /// keys, leading or trailing spaces.
    pub fn set_section(&mut self, section: &Section, values: &[(&str, &str)]) -> Result<bool> {
        check_writable(section, values)?;
        let eol = if self.lines.iter().any(|l| l.ends_with("\r\n")) {
            "\r\n"
        } else {
            "\n"
        };
        let Some(span) = self.span(section) else {
            if let Some(last) = self.lines.last_mut() {
                if !last.ends_with('\n') {
                    last.push_str(eol);
                }
            }
            if self.lines.last().is_some_and(|l| !l.trim().is_empty()) {
                self.lines.push(eol.to_string());
            }
            self.lines.push(format!("{}{eol}", section.header()));
            for (k, v) in values {
                self.lines.push(format!("{k} = {v}{eol}"));
            }
            return Ok(true);
        };
        let mut changed = false;
        let mut end = span.end;
        for (k, v) in values {
            // Every line of the key: readers disagree on which duplicate wins (get: the last).
            let found: Vec<usize> = (span.header + 1..end)
                .filter(|&i| key_of(&self.lines[i]).is_some_and(|(key, _)| key == *k))
                .collect();
            for &i in &found {
                if key_of(&self.lines[i]).map(|(_, val)| val) != Some(*v) {
                    let line_eol = if self.lines[i].ends_with("\r\n") {
                        "\r\n"
                    } else if self.lines[i].ends_with('\n') {
                        "\n"
                    } else {
                        ""
                    };
                    self.lines[i] = format!("{k} = {v}{line_eol}");
                    changed = true;
                }
            }
            if found.is_empty() {
                let last = (span.header..end)
                    .rev()
                    .find(|&i| is_content(&self.lines[i]))
                    .unwrap_or(span.header);
                if !self.lines[last].ends_with('\n') {
                    self.lines[last].push_str(eol);
                }
                self.lines.insert(last + 1, format!("{k} = {v}{eol}"));
                end += 1;
                changed = true;
            }
        }
        Ok(changed)
    }

    /// Removes a section (header through its last content line). Returns whether it existed.
    pub fn remove_section(&mut self, section: &Section) -> bool {
        let Some(span) = self.span(section) else {
            return false;
        };
        let last = (span.header..span.end)
            .rev()
            .find(|&i| is_content(&self.lines[i]))
            .unwrap_or(span.header);
        let mut to = last + 1;
        // take one separating blank line with it
        if to < self.lines.len() && self.lines[to].trim().is_empty() {
            to += 1;
        } else if span.header > 0
            && self.lines[span.header - 1].trim().is_empty()
            && to >= self.lines.len()
        {
            self.lines.drain(span.header - 1..to);
            return true;
        }
        self.lines.drain(span.header..to);
        true
    }

    /// Writes atomically, keeping the file's mode (new files: 0600 in a 0700 `~/.aws`).
    pub(crate) fn save(&self) -> Result<()> {
        if let Some(dir) = self.path.parent() {
            if !dir.exists() {
                fsio::ensure_private_dir(dir)?;
            }
        }
        fsio::write_atomic_through_links(
            &self.path,
            self.text().as_bytes(),
            self.mode.unwrap_or(0o600),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: &str = "# my aws config\n[default]\nregion = eu-west-1\ns3 =\n  max_concurrent_requests = 20\n  addressing_style = path\n\n; legacy\n[profile old]\nsso_start_url = https://d-1.awsapps.com/start\nsso_region = us-east-1\nsso_account_id = 111111111111\nsso_role_name = Dev\n\n[services local]\ndynamodb =\n  endpoint_url = http://localhost:8000\n\n[profile foreign]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = default\n";

    fn pn(s: &str) -> ProfileName {
        ProfileName::parse(s).unwrap()
    }

    fn cfg(text: &str) -> AwsConfig {
        AwsConfig {
            path: PathBuf::from("/nonexistent/config"),
            lines: text.split_inclusive('\n').map(str::to_string).collect(),
            mode: None,
        }
    }

    #[test]
    fn reads_default_nested_and_legacy_profiles() {
        let c = cfg(REAL);
        assert_eq!(c.get(&Section::Default).unwrap()["region"], "eu-west-1");
        assert!(!c
            .get(&Section::Default)
            .unwrap()
            .contains_key("max_concurrent_requests"));
        let p = c.sso_profile(&pn("old")).unwrap();
        assert_eq!(p.session, None);
        assert_eq!(p.cache_name(), "https://d-1.awsapps.com/start");
        assert_eq!(p.role_name.as_str(), "Dev");
        assert!(c.sso_profile(&pn("foreign")).is_err());
        assert!(c.sso_profile(&pn("missing")).is_err());
        assert_eq!(c.profile_names(), ["default", "old", "foreign"]);
    }

    #[test]
    fn writes_the_exact_shape_and_keeps_every_other_byte() {
        let mut c = cfg(REAL);
        c.set_section(
            &Section::Profile("acme.test".into()),
            &[
                ("sso_session", "acme"),
                ("sso_account_id", "123456789012"),
                ("sso_role_name", "AdministratorAccess"),
                ("region", "us-east-1"),
            ],
        )
        .unwrap();
        c.set_section(
            &Section::SsoSession("acme".into()),
            &[
                ("sso_start_url", "https://d-1234567890.awsapps.com/start"),
                ("sso_region", "us-east-1"),
                ("sso_registration_scopes", "sso:account:access"),
            ],
        )
        .unwrap();
        let text = c.text();
        assert!(text.starts_with(REAL), "prefix kept byte for byte");
        assert_eq!(
            &text[REAL.len()..],
            "\n[profile acme.test]\nsso_session = acme\nsso_account_id = 123456789012\nsso_role_name = AdministratorAccess\nregion = us-east-1\n\n[sso-session acme]\nsso_start_url = https://d-1234567890.awsapps.com/start\nsso_region = us-east-1\nsso_registration_scopes = sso:account:access\n"
        );
        let p = c.sso_profile(&pn("acme.test")).unwrap();
        assert_eq!(p.session.as_deref(), Some("acme"));
        assert_eq!(
            c.session_for_url("https://d-1234567890.awsapps.com/start/")
                .unwrap()
                .as_deref(),
            Some("acme")
        );

        // changing one value touches one line
        assert!(c
            .set_section(
                &Section::Profile("acme.test".into()),
                &[("sso_role_name", "ReadOnly")]
            )
            .unwrap());
        assert!(!c
            .set_section(
                &Section::Profile("acme.test".into()),
                &[("sso_role_name", "ReadOnly")]
            )
            .unwrap());
        assert!(c
            .text()
            .contains("sso_role_name = ReadOnly\nregion = us-east-1\n"));

        // removing what we wrote restores the original
        assert!(c.remove_section(&Section::SsoSession("acme".into())));
        assert!(c.remove_section(&Section::Profile("acme.test".into())));
        assert_eq!(c.text(), REAL);
    }

    #[test]
    fn adds_missing_keys_inside_an_existing_section_and_handles_no_final_newline() {
        let mut c = cfg("[profile p]\nregion = x");
        c.set_section(&Section::Profile("p".into()), &[("sso_session", "s")])
            .unwrap();
        assert_eq!(c.text(), "[profile p]\nregion = x\nsso_session = s\n");
        let mut c =
            cfg("[profile p]\nregion = x\n# trailing comment of the next section\n[profile q]\n");
        c.set_section(&Section::Profile("p".into()), &[("output", "json")])
            .unwrap();
        assert_eq!(c.text(), "[profile p]\nregion = x\noutput = json\n# trailing comment of the next section\n[profile q]\n");
    }

    #[test]
    fn hostile_values_in_an_existing_file_are_refused_with_file_and_line() {
        let base = "[profile p]\nsso_session = s\nsso_account_id = 123456789012\nsso_role_name = Admin\nregion = us-east-1\n\n[sso-session s]\nsso_start_url = https://d-1.awsapps.com/start\nsso_region = us-east-1\n";
        assert!(cfg(base).sso_profile(&pn("p")).is_ok());
        for (from, to, line, key) in [
            (
                "sso_region = us-east-1",
                "sso_region = x@127.0.0.1:4711/#",
                9,
                "sso_region",
            ),
            (
                "region = us-east-1",
                "region = us-east-1.evil.example/#",
                5,
                "region",
            ),
            (
                "sso_account_id = 123456789012",
                "sso_account_id = 12",
                3,
                "sso_account_id",
            ),
            (
                "sso_role_name = Admin",
                "sso_role_name = Ad min",
                4,
                "sso_role_name",
            ),
            ("sso_session = s", "sso_session = s x", 2, "sso_session"),
            (
                "sso_start_url = https://d-1.awsapps.com/start",
                "sso_start_url = https://me@evil.example/start",
                8,
                "sso_start_url",
            ),
        ] {
            let text = base.replacen(from, to, 1);
            let e = cfg(&text).sso_profile(&pn("p")).unwrap_err().to_string();
            assert!(
                e.contains(&format!("/nonexistent/config:{line}: {key} =")),
                "{to}: {e}"
            );
        }
    }

    #[test]
    fn the_writer_refuses_anything_that_would_add_a_line() {
        let mut c = cfg("[default]\nregion = eu-west-1\n");
        for (section, k, v) in [
            (
                Section::Profile("p".into()),
                "region",
                "us-east-1\ncredential_process = evil",
            ),
            (Section::Profile("p".into()), "region", "us-east-1\r"),
            (Section::Profile("p".into()), "region", " us-east-1"),
            (Section::Profile("p".into()), "re=gion", "x"),
            (Section::Profile("p]\n[profile q".into()), "region", "x"),
            (
                Section::SsoSession("s\ncredential_process=x".into()),
                "sso_region",
                "x",
            ),
            (Section::Other("x]\n".into()), "a", "b"),
        ] {
            assert!(
                c.set_section(&section, &[(k, v)]).is_err(),
                "{section:?} {k} {v:?}"
            );
        }
        assert_eq!(
            c.text(),
            "[default]\nregion = eu-west-1\n",
            "nothing changed"
        );
    }
}

#[cfg(test)]
mod generated {
    use super::*;

    fn pn(s: &str) -> ProfileName {
        ProfileName::parse(s).unwrap()
    }

    use crate::testgen::Lcg;

    const PIECES: &[&str] = &[
        "# a comment\n",
        "; another comment\n",
        "\n",
        "[default]\nregion = eu-west-1\noutput = json\n",
        "[default]\ns3 =\n  max_concurrent_requests = 20\n",
        "[services dev]\ndynamodb =\n  endpoint_url = http://localhost:8000\n",
        "[profile foreign]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = default\n",
        "[profile legacy]\nsso_start_url = https://d-9.awsapps.com/start\nsso_region = eu-west-1\nsso_account_id = 1\nsso_role_name = R\n",
        "[sso-session other]\nsso_start_url = https://d-8.awsapps.com/start\nsso_region = us-west-2\n",
    ];

    #[test]
    fn writing_and_removing_our_sections_keeps_every_foreign_byte() {
        let mut r = Lcg(7);
        for case in 0..400 {
            let mut text: String = (0..r.next() % 7)
                .map(|_| PIECES[(r.next() as usize) % PIECES.len()])
                .collect();
            if r.next().is_multiple_of(4) {
                text = text.trim_end_matches('\n').to_string(); // no final newline
            }
            let mut c = AwsConfig {
                path: PathBuf::from("/nonexistent"),
                lines: text.split_inclusive('\n').map(str::to_string).collect(),
                mode: None,
            };
            c.set_section(
                &Section::Profile("acme.test".into()),
                &[
                    ("sso_session", "acme"),
                    ("sso_account_id", "123456789012"),
                    ("sso_role_name", "Admin"),
                    ("region", "us-east-1"),
                ],
            )
            .unwrap();
            c.set_section(
                &Section::SsoSession("acme".into()),
                &[
                    ("sso_start_url", "https://d-1.awsapps.com/start"),
                    ("sso_region", "us-east-1"),
                ],
            )
            .unwrap();
            let written = c.text();
            let base = text.trim_end_matches('\n');
            assert!(
                written.starts_with(base),
                "case {case}: foreign bytes changed\n--- before\n{text}\n--- after\n{written}"
            );
            let p = c
                .sso_profile(&pn("acme.test"))
                .unwrap_or_else(|e| panic!("case {case}: {e}\n{written}"));
            assert_eq!(
                (p.account_id.as_str(), p.start_url.as_str()),
                ("123456789012", "https://d-1.awsapps.com/start")
            );
            // every section that was there is still readable with the same values
            let before = AwsConfig {
                path: PathBuf::from("/nonexistent"),
                lines: text.split_inclusive('\n').map(str::to_string).collect(),
                mode: None,
            };
            for name in before.profile_names() {
                assert_eq!(
                    before.get(&Section::profile(&name)),
                    c.get(&Section::profile(&name)),
                    "case {case}: {name}"
                );
            }
            c.remove_section(&Section::SsoSession("acme".into()));
            c.remove_section(&Section::Profile("acme.test".into()));
            assert!(
                c.text().starts_with(base),
                "case {case}: removal touched foreign bytes\n{}",
                c.text()
            );
            assert!(c.get(&Section::Profile("acme.test".into())).is_none());
        }
    }
}
