//! # keyrack-fuzz
//!
//! The bodies of keyrack's coverage-guided fuzz targets, one `fn(&[u8])` per parser of
//! untrusted input. Each feeds the bytes to the same library entry point keyrack itself uses
//! and asserts the properties that must hold for any input, so a fuzzer reports a violation as
//! a panic:
//!
//! | target | input | entry point |
//! |---|---|---|
//! | [`repo_manifest`] | a `keyrack.yml` | [`RawManifest::from_bytes`] |
//! | [`host_manifest`] | decrypted host manifest JSON | [`HostManifest::from_plaintext`] |
//! | [`host_manifest_age`] | a `host.age` file | [`HostManifest::decrypt`] (fixed test identity) |
//! | [`daemon_request`] | what a client writes on the socket | [`protocol::read_request`] |
//! | [`aws_config`] | a `~/.aws/config` | [`AwsConfig::from_bytes`] + [`AwsConfig::set_section`] |
//! | [`token_cache()`] | a `~/.aws/sso/cache/*.json` | [`token_cache::parse`] |
//!
//! `fuzz/` (cargo-fuzz, nightly) runs them under libFuzzer; `tests/corpus.rs` replays the
//! committed corpus and a fixed-seed batch of mutations on stable in `cargo test`.

#![deny(missing_docs)]

use std::path::Path;
use std::sync::OnceLock;

use keyrack::aws::config_file::{AwsConfig, Section};
use keyrack::aws::names::ProfileName;
use keyrack::aws::token_cache::{self, SsoToken};
use keyrack::daemon::protocol::{self, Request, RequestError};
use keyrack::daemon::MAX_REQUEST_BYTES;
use keyrack::home::Home;
use keyrack::host_manifest::{HostManifest, VERSION};
use keyrack::identity::Identity;
use keyrack::repo_manifest::{KeySpec, RawManifest};
use keyrack::slug::{self, Owner, Slug, ENV_ALL, ENV_SUDO};
use keyrack::Error;

/// A target body: panics when the input breaks a property.
pub type Target = fn(&[u8]);

/// Every target by name (the names of `fuzz/fuzz_targets/*.rs` and `fuzz/corpus/*/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("repo_manifest", repo_manifest),
    ("host_manifest", host_manifest),
    ("host_manifest_age", host_manifest_age),
    ("daemon_request", daemon_request),
    ("aws_config", aws_config),
    ("token_cache", token_cache),
];

/// The age identity the `host_manifest_age` corpus is encrypted to. A throwaway test key: it
/// protects nothing.
pub const TEST_IDENTITY: &str =
    "AGE-SECRET-KEY-1LMMULHRMV0TJ0YM6CDVXPR5L6DMDATA3XVWCR5X99MXR7H3GM8PSMS5KAQ";

/// The public key of [`TEST_IDENTITY`].
pub const TEST_RECIPIENT: &str = "age126jmg7rq5rvgn47ch75f7rr0eyzj8jq4jy6dunqc97t6lslu0s5qw0m834";

/// Fuzzes the repo manifest parser: any bytes as the content of `keyrack.yml`.
///
/// Properties: parsing never panics; a refusal is an [`Error::Manifest`] naming the file and a
/// line inside it; an accepted manifest has a valid org, only declarable env names
/// (`[a-z][a-z0-9_-]*`, never `all`/`sudo` as a section of its own), only valid, unique key
/// names per section, every (org, env, key) forms a [`Slug`], and `env.all` never stands alone.
pub fn repo_manifest(data: &[u8]) {
    let path = Path::new("/fuzz/repo/keyrack.yml");
    let text = std::str::from_utf8(data).ok();
    match RawManifest::from_bytes(path, data.to_vec()) {
        Ok(m) => {
            let text = text.expect("an accepted manifest is UTF-8");
            assert!(
                slug::validate_org(&m.org).is_ok(),
                "accepted org {:?}",
                m.org
            );
            for (env, keys) in &m.envs {
                assert!(slug::validate_env(env).is_ok(), "accepted env {env:?}");
                assert!(
                    env != ENV_ALL && env != ENV_SUDO,
                    "env.{env} kept as a section"
                );
                check_keys(&m.org, env, keys);
            }
            check_keys(&m.org, ENV_ALL, &m.all);
            assert!(
                m.all.is_empty() || !m.envs.is_empty() || !m.extends.is_empty(),
                "env.all accepted without another env section"
            );
            let lines = line_count(text);
            for e in &m.extends {
                assert!(
                    e.line >= 1 && e.line <= lines,
                    "extends entry {:?} located at line {} of {lines}",
                    e.value,
                    e.line
                );
            }
        }
        Err(e) => {
            let Error::Manifest {
                path: p,
                line,
                message,
                ..
            } = &e
            else {
                panic!("a manifest refusal must be Error::Manifest, got {e:?}");
            };
            assert_eq!(p, path, "the error names the file");
            assert!(!message.is_empty());
            if let Some(text) = text {
                // (the YAML parser puts an empty node at the end of input one line further)
                let lines = line_count(text) + 1;
                assert!(
                    *line <= lines,
                    "error at line {line} of a {lines}-line file: {e}"
                );
            }
            let _ = (e.to_string(), e.fix(), e.exit_code(), e.code());
        }
    }
}

/// Lines of `text` as YAML counts them (breaks are `\r\n`, `\r` or `\n`; a last line without a
/// break counts, and so does the empty line after a final break, where end-of-input errors are).
fn line_count(text: &str) -> u64 {
    1 + text.replace("\r\n", "\n").matches(['\r', '\n']).count() as u64
}

fn check_keys(org: &str, env: &str, keys: &[KeySpec]) {
    for (i, k) in keys.iter().enumerate() {
        assert!(
            slug::validate_key(&k.key).is_ok(),
            "accepted key {:?}",
            k.key
        );
        if let Some(other) = &k.optional_if_has {
            assert!(
                slug::validate_key(other).is_ok(),
                "accepted is-optional-if-has {other:?}"
            );
        }
        assert!(
            !keys[..i].iter().any(|p| p.key == k.key),
            "{} listed twice in env.{env}",
            k.key
        );
        let s = Slug::new(org, env, &k.key).expect("an accepted key forms a slug");
        assert_eq!(
            Slug::parse(&s.to_string()).expect("a slug's text parses"),
            s
        );
    }
}

fn fuzz_home() -> Home {
    Home::at("/fuzz/keyrack-home", Owner::default())
}

/// Fuzzes the host manifest decoder: any bytes as the decrypted JSON of `host.age`.
///
/// Properties: decoding never panics; a refusal is an [`Error::CorruptFile`] naming the host
/// manifest; an accepted manifest has a version this build understands, valid slugs, and what
/// `save` would write from it decodes to the same manifest (a fixed point).
pub fn host_manifest(data: &[u8]) {
    let home = fuzz_home();
    match HostManifest::from_plaintext(&home, data) {
        Ok(m) => check_host_manifest(&home, &m),
        Err(e) => check_host_manifest_error(&home, &e),
    }
}

/// Fuzzes the armored age decode path of the host manifest: any bytes as the content of
/// `host.age`, decrypted with [`TEST_IDENTITY`].
///
/// Properties: as [`host_manifest`], with [`Error::WrongIdentity`] as a further refusal; an
/// accepted manifest also survives `save`'s encryption to the same identity.
pub fn host_manifest_age(data: &[u8]) {
    let (home, identity) = test_identity();
    match HostManifest::decrypt(home, data, identity) {
        Ok(m) => {
            check_host_manifest(home, &m);
            let json = serde_json::to_vec_pretty(&m).expect("host manifest serialises");
            let sealed =
                keyrack::crypto::encrypt(std::slice::from_ref(identity.recipient()), &json)
                    .expect("encrypts to the test recipient");
            let again = HostManifest::decrypt(home, &sealed, identity)
                .expect("what save encrypts, load decrypts");
            assert_eq!(
                serde_json::to_vec_pretty(&again).expect("host manifest serialises"),
                json
            );
        }
        Err(e) => check_host_manifest_error(home, &e),
    }
}

/// The home and the loaded [`TEST_IDENTITY`] that [`host_manifest_age`] decrypts with.
pub fn test_identity() -> &'static (Home, Identity) {
    static FIXTURE: OnceLock<(Home, Identity)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        // Identity::load is the real path; the file is removed again once the key is in memory.
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("identity.txt");
        std::fs::write(&file, format!("{TEST_IDENTITY}\n")).expect("write test identity");
        let mut perms = std::fs::metadata(&file).expect("stat").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
        std::fs::set_permissions(&file, perms).expect("chmod test identity");
        let identity =
            Identity::load(&file, &keyrack::interact::NonInteractive).expect("load test identity");
        assert_eq!(identity.recipient().to_string(), TEST_RECIPIENT);
        (fuzz_home(), identity)
    })
}

fn check_host_manifest(home: &Home, m: &HostManifest) {
    assert!(m.version <= VERSION, "accepted version {}", m.version);
    for entry in m.hosts.values() {
        let text = entry.slug.to_string();
        assert_eq!(
            Slug::parse(&text).expect("a decoded slug re-parses"),
            entry.slug
        );
        let _ = entry.slug.file_stem();
    }
    let _ = m.recipient_keys();
    // `save` serialises with `expect`: every decoded manifest must serialise, and be read back
    // as itself.
    let json = serde_json::to_vec_pretty(m).expect("host manifest serialises");
    let again = HostManifest::from_plaintext(home, &json).unwrap_or_else(|e| {
        panic!(
            "load refuses what save writes: {e}\n{}",
            String::from_utf8_lossy(&json)
        )
    });
    assert_eq!(
        serde_json::to_vec_pretty(&again).expect("host manifest serialises"),
        json,
        "save → load is not a fixed point"
    );
}

fn check_host_manifest_error(home: &Home, e: &Error) {
    match e {
        Error::CorruptFile { path, .. } | Error::WrongIdentity { path, .. } => {
            assert_eq!(path, &home.host_manifest(), "the error names the file")
        }
        other => panic!("a host manifest refusal must name the file, got {other:?}"),
    }
    let _ = (e.to_string(), e.fix(), e.exit_code(), e.code());
}

/// Fuzzes the daemon's request decoder: any bytes as what a client writes on the socket, read
/// with the daemon's own size and line framing.
///
/// Properties: decoding never panics; the daemon consumes exactly the first line (at most
/// [`MAX_REQUEST_BYTES`] + 1 bytes); each refusal names the framing rule it applies; an accepted
/// request is what the client would have written for it (re-encoding and decoding it again gives
/// the same bytes).
pub fn daemon_request(data: &[u8]) {
    let mut buf = Vec::new();
    let result = protocol::read_request(data, &mut buf);
    let first_line = data
        .iter()
        .position(|&b| b == b'\n')
        .map_or(data.len(), |i| i + 1)
        .min(MAX_REQUEST_BYTES + 1);
    assert_eq!(
        &buf[..],
        &data[..first_line],
        "the daemon reads the first line only"
    );
    let framed = buf.len() <= MAX_REQUEST_BYTES && buf.last() == Some(&b'\n');
    match result {
        Ok(req) => {
            assert!(framed, "accepted a request outside the framing");
            check_request_round_trip(&req);
        }
        Err(RequestError::Read(e)) => panic!("reading from memory cannot fail: {e}"),
        Err(RequestError::TooLarge) => assert!(buf.len() > MAX_REQUEST_BYTES),
        Err(RequestError::Incomplete) => {
            assert!(buf.len() <= MAX_REQUEST_BYTES && buf.last() != Some(&b'\n'))
        }
        Err(RequestError::Malformed(e)) => {
            assert!(framed, "framing error reported as malformed JSON: {e}")
        }
    }
}

fn check_request_round_trip(req: &Request) {
    // exactly what the client writes (it too serialises with `expect`)
    let mut line = serde_json::to_vec(req).expect("request serialises");
    line.push(b'\n');
    if line.len() > MAX_REQUEST_BYTES {
        return;
    }
    let again = protocol::decode_request(&line).unwrap_or_else(|e| {
        panic!(
            "the daemon refuses what a client writes: {e}\n{}",
            String::from_utf8_lossy(&line)
        )
    });
    let mut line2 = serde_json::to_vec(&again).expect("request serialises");
    line2.push(b'\n');
    assert_eq!(
        String::from_utf8_lossy(&line2),
        String::from_utf8_lossy(&line),
        "encode → decode is not a fixed point"
    );
}

/// The profile keyrack writes, as `keyrack set --key AWS_PROFILE` does (`ops::aws`).
const PROFILE_VALUES: [(&str, &str); 4] = [
    ("sso_session", "acme"),
    ("sso_account_id", "123456789012"),
    ("sso_role_name", "AdministratorAccess"),
    ("region", "us-east-1"),
];
/// The sso-session keyrack writes with it.
const SESSION_VALUES: [(&str, &str); 3] = [
    ("sso_start_url", "https://d-1234567890.awsapps.com/start"),
    ("sso_region", "us-east-1"),
    ("sso_registration_scopes", "sso:account:access"),
];

/// Fuzzes the `~/.aws/config` reader and editor: any bytes as an existing config file.
///
/// Properties: reading never panics and keeps the text byte for byte; every reader works on any
/// file; writing keyrack's profile (`acme.test`, and `default`) and its sso-session changes only
/// the lines of the keys it sets in those two sections and adds only its own lines (every
/// foreign byte is kept, in order); the result re-reads with exactly the written values; every
/// other profile reads the same as before; and when both sections were new, removing them gives
/// the original text back (up to trailing blank lines).
pub fn aws_config(data: &[u8]) {
    let path = Path::new("/fuzz/.aws/config");
    let Ok(config) = AwsConfig::from_bytes(path, data.to_vec()) else {
        assert!(
            std::str::from_utf8(data).is_err(),
            "refused a UTF-8 config file"
        );
        return;
    };
    let original = std::str::from_utf8(data).expect("accepted config is UTF-8");
    assert_eq!(config.text(), original, "reading changed the text");
    for name in config.profile_names() {
        if let Ok(profile) = ProfileName::parse(&name) {
            let _ = config.sso_profile(&profile);
        }
        let _ = config.section_text(&Section::profile(&name));
    }
    for (name, url, _) in config.sso_sessions() {
        let _ = config.section_text(&Section::SsoSession(name));
        // a URL that fails validation is refused (Err), never silently unmatched
        if let Ok(found) = config.session_for_url(&url) {
            assert!(
                found.is_some(),
                "the session of {url} is not found by its URL"
            );
        }
    }
    for profile in ["acme.test", "default"] {
        check_profile_write(path, original, profile);
    }
}

fn check_profile_write(path: &Path, original: &str, profile: &str) {
    let load = |text: &str| {
        AwsConfig::from_bytes(path, text.as_bytes().to_vec()).expect("UTF-8 text is accepted")
    };
    let before = load(original);
    let profile_section = Section::profile(profile);
    let session_section = Section::SsoSession("acme".into());
    let new_sections =
        before.get(&profile_section).is_none() && before.get(&session_section).is_none();

    let mut c = load(original);
    c.set_section(&profile_section, &PROFILE_VALUES)
        .expect("keyrack's own values are valid");
    let after_profile = c.text();
    check_foreign_lines_kept(original, &after_profile, &profile_section, &PROFILE_VALUES);
    c.set_section(&session_section, &SESSION_VALUES)
        .expect("keyrack's own values are valid");
    let written = c.text();
    check_foreign_lines_kept(&after_profile, &written, &session_section, &SESSION_VALUES);

    let reread = load(&written);
    assert_eq!(reread.text(), written);
    let profile_name = ProfileName::parse(profile).expect("keyrack's own profile names are valid");
    let p = reread.sso_profile(&profile_name).unwrap_or_else(|e| {
        panic!("the profile keyrack wrote does not resolve: {e}\n--- before\n{original}\n--- after\n{written}")
    });
    let expected = (
        Some("acme"),
        "https://d-1234567890.awsapps.com/start",
        "us-east-1",
        "123456789012",
        "AdministratorAccess",
        Some("us-east-1"),
    );
    assert_eq!(
        (
            p.session.as_ref().map(|s| s.as_str()),
            p.start_url.as_str(),
            p.sso_region.as_str(),
            p.account_id.as_str(),
            p.role_name.as_str(),
            p.region.as_ref().map(|r| r.as_str())
        ),
        expected,
        "the profile re-reads with other values\n--- before\n{original}\n--- after\n{written}"
    );
    for name in before.profile_names() {
        let section = Section::profile(&name);
        if section != profile_section {
            assert_eq!(
                before.get(&section),
                reread.get(&section),
                "profile {name:?} reads differently after the write\n--- before\n{original}\n--- after\n{written}"
            );
        }
    }
    for (name, _, _) in before.sso_sessions() {
        let section = Section::SsoSession(name.clone());
        if section != session_section {
            assert_eq!(
                before.get(&section),
                reread.get(&section),
                "sso-session {name:?} reads differently after the write\n--- before\n{original}\n--- after\n{written}"
            );
        }
    }
    if new_sections {
        assert!(c.remove_section(&session_section));
        assert!(c.remove_section(&profile_section));
        let restored = c.text();
        assert_eq!(
            restored.trim_end(),
            original.trim_end(),
            "removing what keyrack added does not restore the file\n--- before\n{original}\n--- written\n{written}"
        );
        assert!(c.get(&profile_section).is_none() && c.get(&session_section).is_none());
    }
}

/// The header keyrack writes for `section`.
fn header_of(section: &Section) -> String {
    match section {
        Section::Default => "[default]".into(),
        Section::Profile(n) => format!("[profile {n}]"),
        Section::SsoSession(n) => format!("[sso-session {n}]"),
        Section::Other(raw) => format!("[{raw}]"),
    }
}

/// A `key = value` line whose key is one keyrack sets (the config reader's own rule: not
/// indented, not a comment or header, split at the first `=`).
fn sets_key(line: &str, values: &[(&str, &str)]) -> bool {
    !line.starts_with([' ', '\t', '#', ';', '['])
        && line
            .split_once('=')
            .is_some_and(|(k, _)| values.iter().any(|(key, _)| *key == k.trim()))
}

/// Checks that `after` is `before` with only these edits: lines setting one of `values`'
/// keys replaced, lines keyrack writes (`section`'s header, `key = value` of `values`, a blank
/// separator) inserted, and a line ending added to an unterminated last line.
fn check_foreign_lines_kept(before: &str, after: &str, section: &Section, values: &[(&str, &str)]) {
    let old: Vec<&str> = before.split_inclusive('\n').collect();
    let new: Vec<&str> = after.split_inclusive('\n').collect();
    let header = header_of(section);
    let ours = |line: &str| {
        let body = line
            .strip_suffix('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .unwrap_or(line);
        body.is_empty()
            || body == header
            || values.iter().any(|(k, v)| body == format!("{k} = {v}"))
    };
    let same = |o: &str, n: &str| {
        o == n || (!o.ends_with('\n') && (n == format!("{o}\n") || n == format!("{o}\r\n")))
    };
    let (mut i, mut j) = (0, 0);
    while i < new.len() {
        if j < old.len() && same(old[j], new[i]) {
            j += 1;
        } else if j < old.len() && sets_key(old[j], values) && ours(new[i]) {
            j += 1; // a value keyrack sets, replaced
        } else if !ours(new[i]) {
            panic!(
                "line {} {:?} is neither kept nor written by keyrack\n--- before\n{before}\n--- after\n{after}",
                i + 1,
                new[i]
            );
        }
        i += 1;
    }
    assert!(
        old[j..].is_empty(),
        "foreign lines dropped: {:?}\n--- before\n{before}\n--- after\n{after}",
        &old[j..]
    );
}

/// Fuzzes the SSO token cache reader: any bytes as a `~/.aws/sso/cache/<sha1>.json`.
///
/// Properties: reading never panics; a refusal is an [`Error::CorruptFile`] naming the file;
/// the helpers work on any accepted token; what keyrack writes for an accepted token has the
/// `YYYY-MM-DDTHH:MM:SSZ` times every AWS tool reads, and reads back as the same token (times
/// to the second), and writing that again gives the same bytes.
pub fn token_cache(data: &[u8]) {
    let path = Path::new("/fuzz/.aws/sso/cache/0123456789abcdef0123456789abcdef01234567.json");
    let token = match token_cache::parse(path, data) {
        Ok(t) => t,
        Err(e) => {
            match &e {
                Error::CorruptFile { path: p, .. } => assert_eq!(p, path),
                other => panic!("a token cache refusal must be CorruptFile, got {other:?}"),
            }
            let _ = (e.to_string(), e.fix(), e.exit_code(), e.code());
            return;
        }
    };
    let _ = (
        token.seconds_left(),
        token.refreshable(),
        token.expires_at.as_millisecond(),
    );
    // `token_cache::write` serialises with `expect`
    let json = serde_json::to_vec_pretty(&token).expect("token serialises");
    let value: serde_json::Value = serde_json::from_slice(&json).expect("written JSON parses");
    for field in ["expiresAt", "registrationExpiresAt"] {
        if let Some(t) = value.get(field) {
            let t = t.as_str().expect("times are strings");
            assert!(
                is_z_time(t),
                "{field} written as {t:?}, not YYYY-MM-DDTHH:MM:SSZ"
            );
        }
    }
    let again = token_cache::parse(path, &json).unwrap_or_else(|e| {
        panic!(
            "keyrack cannot read the token file it writes: {e}\n{}",
            String::from_utf8_lossy(&json)
        )
    });
    assert_same_token(&token, &again);
    let json2 = serde_json::to_vec_pretty(&again).expect("token serialises");
    assert_eq!(json2, json, "write → read → write changed the file");
}

fn is_z_time(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

fn assert_same_token(a: &SsoToken, b: &SsoToken) {
    let z = token_cache::format_z;
    assert_eq!(a.start_url, b.start_url);
    assert_eq!(a.region, b.region);
    assert!(a.access_token == b.access_token, "access token changed");
    assert_eq!(z(a.expires_at), z(b.expires_at));
    assert_eq!(a.client_id, b.client_id);
    assert!(a.client_secret == b.client_secret, "client secret changed");
    assert_eq!(
        a.registration_expires_at.map(z),
        b.registration_expires_at.map(z)
    );
    assert!(a.refresh_token == b.refresh_token, "refresh token changed");
}
