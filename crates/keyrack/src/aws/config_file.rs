//! `~/.aws/config` (or `$AWS_CONFIG_FILE`): a line-based reader and editor.
//!
//! INI crates were measured to destroy real config files (comments, nested `s3 =` sub-sections,
//! `[services]`), so this editor works on lines: it changes only the `key = value` lines of the
//! sections it is asked to write, appends new sections at the end, and keeps every other byte.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

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

/// An SSO profile, resolved through its `sso_session` (or legacy inline fields).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SsoProfile {
    /// The profile name.
    pub name: String,
    /// The sso-session name (`None` for legacy inline profiles).
    pub session: Option<String>,
    /// The portal start URL.
    pub start_url: String,
    /// The SSO region.
    pub sso_region: String,
    /// The account id.
    pub account_id: String,
    /// The role name.
    pub role_name: String,
    /// The profile's default region.
    pub region: Option<String>,
}

impl SsoProfile {
    /// The name the token cache is keyed by (session name; legacy: start URL).
    pub fn cache_name(&self) -> &str {
        self.session.as_deref().unwrap_or(&self.start_url)
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
pub fn default_path() -> Result<PathBuf> {
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
    pub fn load(path: &Path) -> Result<Self> {
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
    pub fn path(&self) -> &Path {
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
        let span = self.span(section)?;
        Some(
            self.lines[span.header + 1..span.end]
                .iter()
                .filter_map(|l| key_of(l))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
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

    /// The sso-session that already serves `start_url`, if any.
    pub fn session_for_url(&self, start_url: &str) -> Option<String> {
        let norm = |u: &str| {
            u.trim()
                .trim_end_matches('#')
                .trim_end_matches('/')
                .to_string()
        };
        self.sso_sessions()
            .into_iter()
            .find(|(_, url, _)| norm(url) == norm(start_url))
            .map(|(n, _, _)| n)
    }

    /// Resolves an SSO profile (through `sso_session`, or legacy inline fields).
    pub fn sso_profile(&self, name: &str) -> Result<SsoProfile> {
        let kv = self
            .get(&Section::profile(name))
            .ok_or_else(|| Error::Aws {
                message: format!("profile '{name}' is not in {}", self.path.display()),
                hint: format!(
                    "pick one of: {} — or create it with: keyrack set --key AWS_PROFILE (guided)",
                    self.profile_names().join(", ")
                ),
            })?;
        let incomplete = |what: &str| {
            Error::Aws {
            message: format!("profile '{name}' in {} has no {what}: it is not an SSO profile", self.path.display()),
            hint: "add the sso_* settings, or let keyrack write the profile: keyrack set --key AWS_PROFILE --sso-start-url … --sso-region … --account-id … --role-name … --profile-name …".into(),
        }
        };
        let (session, start_url, sso_region) = match kv.get("sso_session") {
            Some(s) => {
                let skv = self
                    .get(&Section::SsoSession(s.clone()))
                    .ok_or_else(|| Error::Aws {
                        message: format!(
                            "profile '{name}' names sso_session '{s}', which is not in {}",
                            self.path.display()
                        ),
                        hint: format!(
                            "add a [sso-session {s}] section with sso_start_url and sso_region"
                        ),
                    })?;
                (
                    Some(s.clone()),
                    skv.get("sso_start_url")
                        .cloned()
                        .ok_or_else(|| incomplete("sso_start_url"))?,
                    skv.get("sso_region")
                        .cloned()
                        .ok_or_else(|| incomplete("sso_region"))?,
                )
            }
            None => (
                None,
                kv.get("sso_start_url")
                    .cloned()
                    .ok_or_else(|| incomplete("sso_start_url"))?,
                kv.get("sso_region")
                    .cloned()
                    .ok_or_else(|| incomplete("sso_region"))?,
            ),
        };
        Ok(SsoProfile {
            name: name.into(),
            session,
            start_url,
            sso_region,
            account_id: kv
                .get("sso_account_id")
                .cloned()
                .ok_or_else(|| incomplete("sso_account_id"))?,
            role_name: kv
                .get("sso_role_name")
                .cloned()
                .ok_or_else(|| incomplete("sso_role_name"))?,
            region: kv.get("region").cloned(),
        })
    }

    /// Sets `values` in `section`, creating it at the end if absent. Only the named keys' lines
    /// change; everything else in and around the section is kept. Returns whether anything changed.
    pub fn set_section(&mut self, section: &Section, values: &[(&str, &str)]) -> bool {
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
            return true;
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
        changed
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
    pub fn save(&self) -> Result<()> {
        if let Some(dir) = self.path.parent() {
            if !dir.exists() {
                fsio::ensure_private_dir(dir)?;
            }
        }
        fsio::write_atomic(
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
        let p = c.sso_profile("old").unwrap();
        assert_eq!(p.session, None);
        assert_eq!(p.cache_name(), "https://d-1.awsapps.com/start");
        assert_eq!(p.role_name, "Dev");
        assert!(c.sso_profile("foreign").is_err());
        assert!(c.sso_profile("missing").is_err());
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
        );
        c.set_section(
            &Section::SsoSession("acme".into()),
            &[
                ("sso_start_url", "https://d-1234567890.awsapps.com/start"),
                ("sso_region", "us-east-1"),
                ("sso_registration_scopes", "sso:account:access"),
            ],
        );
        let text = c.text();
        assert!(text.starts_with(REAL), "prefix kept byte for byte");
        assert_eq!(
            &text[REAL.len()..],
            "\n[profile acme.test]\nsso_session = acme\nsso_account_id = 123456789012\nsso_role_name = AdministratorAccess\nregion = us-east-1\n\n[sso-session acme]\nsso_start_url = https://d-1234567890.awsapps.com/start\nsso_region = us-east-1\nsso_registration_scopes = sso:account:access\n"
        );
        let p = c.sso_profile("acme.test").unwrap();
        assert_eq!(p.session.as_deref(), Some("acme"));
        assert_eq!(
            c.session_for_url("https://d-1234567890.awsapps.com/start/"),
            Some("acme".into())
        );

        // changing one value touches one line
        assert!(c.set_section(
            &Section::Profile("acme.test".into()),
            &[("sso_role_name", "ReadOnly")]
        ));
        assert!(!c.set_section(
            &Section::Profile("acme.test".into()),
            &[("sso_role_name", "ReadOnly")]
        ));
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
        c.set_section(&Section::Profile("p".into()), &[("sso_session", "s")]);
        assert_eq!(c.text(), "[profile p]\nregion = x\nsso_session = s\n");
        let mut c =
            cfg("[profile p]\nregion = x\n# trailing comment of the next section\n[profile q]\n");
        c.set_section(&Section::Profile("p".into()), &[("output", "json")]);
        assert_eq!(c.text(), "[profile p]\nregion = x\noutput = json\n# trailing comment of the next section\n[profile q]\n");
    }
}

#[cfg(test)]
mod generated {
    use super::*;

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
            );
            c.set_section(
                &Section::SsoSession("acme".into()),
                &[
                    ("sso_start_url", "https://d-1.awsapps.com/start"),
                    ("sso_region", "us-east-1"),
                ],
            );
            let written = c.text();
            let base = text.trim_end_matches('\n');
            assert!(
                written.starts_with(base),
                "case {case}: foreign bytes changed\n--- before\n{text}\n--- after\n{written}"
            );
            let p = c
                .sso_profile("acme.test")
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
