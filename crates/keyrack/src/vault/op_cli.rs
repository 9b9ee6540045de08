//! A driver for the 1Password CLI (`op`), independent of the vault interface: it finds `op` on
//! `PATH`, runs one subcommand at a time with a bound on how long it may take, and turns what
//! `op` says into [`OpError`]s that name the fix.
//!
//! Secrets never go on `op`'s command line: `op read` prints the value on a pipe, `op item create`
//! reads its JSON item template on stdin (`-`), and `op item edit` reads it from a pipe passed as
//! a file descriptor (`--template /dev/fd/N`; `op` refuses a template on stdin for `edit`).
//! `op` inherits keyrack's environment, so `OP_SERVICE_ACCOUNT_TOKEN`, `OP_ACCOUNT` and the
//! desktop app's integration work as they do in the shell; keyrack never signs in by itself.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::secret::Secret;

/// How long one `op` call may take before it is killed (override: `KEYRACK_OP_TIMEOUT_SECS`).
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The environment variable that bounds each `op` call, in seconds.
pub(crate) const TIMEOUT_ENV: &str = "KEYRACK_OP_TIMEOUT_SECS";

/// The environment variable of a 1Password service account token (passed to `op` through the
/// environment only).
pub(crate) const SERVICE_ACCOUNT_ENV: &str = "OP_SERVICE_ACCOUNT_TOKEN";

/// The installation hint.
pub(crate) const INSTALL_HINT: &str = "install the 1Password CLI: brew install 1password-cli (macOS), or see https://developer.1password.com/docs/cli/get-started";

/// What went wrong talking to `op`. Never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OpError {
    /// No `op` executable on `PATH`.
    #[error("the 1Password CLI (op) is not installed or not on PATH")]
    Missing,
    /// `op` is not signed in (or the service account token was refused).
    #[error("op is not signed in ({detail})")]
    NotSignedIn {
        /// What `op` said.
        detail: String,
        /// Whether `OP_SERVICE_ACCOUNT_TOKEN` was set (then the token is what failed).
        service_account: bool,
    },
    /// The vault, item or field does not exist.
    #[error("op found nothing there ({detail})")]
    NotFound {
        /// What `op` said.
        detail: String,
    },
    /// `op` did not finish in time and was stopped.
    #[error("op did not answer within {secs} s and was stopped")]
    Timeout {
        /// The bound, in seconds.
        secs: u64,
    },
    /// `op` failed for another reason.
    #[error("op {command} failed: {detail}")]
    Failed {
        /// The subcommand (`read`, `item create`).
        command: String,
        /// What `op` said.
        detail: String,
    },
    /// `op` could not be started, or its output could not be read.
    #[error("cannot run op: {0}")]
    Run(String),
}

impl OpError {
    /// The command or step that fixes it.
    pub(crate) fn hint(&self) -> String {
        match self {
            OpError::Missing => INSTALL_HINT.into(),
            OpError::NotSignedIn {
                service_account: true,
                ..
            } => format!(
                "the service account token was refused: export {SERVICE_ACCOUNT_ENV}=… with a valid token (check it with: op whoami)"
            ),
            OpError::NotSignedIn { .. } => format!(
                "sign in: op signin (or unlock the 1Password app with CLI integration on); for automation: export {SERVICE_ACCOUNT_ENV}=…"
            ),
            OpError::NotFound { .. } => {
                "check the reference with: op read 'op://<vault>/<item>/<field>'".into()
            }
            OpError::Timeout { .. } => format!(
                "check that op answers (op whoami), approve any 1Password prompt, then retry; {TIMEOUT_ENV} raises the bound"
            ),
            OpError::Failed { .. } | OpError::Run(_) => {
                "run the same op command by hand to see why, then retry".into()
            }
        }
    }

    /// Whether every later call in the same run would fail the same way (op missing, not signed
    /// in, timing out): callers stop calling `op` after the first such error.
    pub(crate) fn is_session_wide(&self) -> bool {
        matches!(
            self,
            OpError::Missing | OpError::NotSignedIn { .. } | OpError::Timeout { .. }
        )
    }
}

/// An item, as keyrack needs it: its id and its vault's id and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ItemRef {
    /// The item's id.
    pub id: String,
    /// The vault's id.
    pub vault_id: String,
    /// The vault's name.
    pub vault_name: String,
}

impl ItemRef {
    /// The secret reference of `field` in this item (by ids, so renames do not break it).
    pub(crate) fn reference(&self, field: &str) -> String {
        format!("op://{}/{}/{field}", self.vault_id, self.id)
    }
}

/// A `PASSWORD` item template with one concealed `password` field (the secret), a note and tags.
#[derive(Serialize)]
pub(crate) struct ItemTemplate<'a> {
    title: &'a str,
    category: &'static str,
    tags: &'a [&'a str],
    fields: [TemplateField<'a>; 2],
}

#[derive(Serialize)]
struct TemplateField<'a> {
    id: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    purpose: &'static str,
    label: &'static str,
    value: &'a str,
}

/// The field of a [`ItemTemplate`] that holds the secret.
pub(crate) const PASSWORD_FIELD: &str = "password";

impl<'a> ItemTemplate<'a> {
    /// A template titled `title` holding `secret`, with `note` and `tags`.
    pub(crate) fn new(
        title: &'a str,
        secret: &'a Secret,
        note: &'a str,
        tags: &'a [&'a str],
    ) -> Self {
        ItemTemplate {
            title,
            category: "PASSWORD",
            tags,
            fields: [
                TemplateField {
                    id: PASSWORD_FIELD,
                    kind: "CONCEALED",
                    purpose: "PASSWORD",
                    label: PASSWORD_FIELD,
                    value: secret.expose(),
                },
                TemplateField {
                    id: "notesPlain",
                    kind: "STRING",
                    purpose: "NOTES",
                    label: "notesPlain",
                    value: note,
                },
            ],
        }
    }

    fn to_json(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(serde_json::to_vec(self).expect("an item template serialises"))
    }
}

#[derive(Deserialize)]
struct ItemJson {
    id: String,
    vault: VaultJson,
}

#[derive(Deserialize)]
struct VaultJson {
    id: String,
    #[serde(default)]
    name: String,
}

/// Where a template goes to `op`.
enum Input<'a> {
    /// Nothing (stdin is `/dev/null`).
    None,
    /// On stdin.
    Stdin(&'a [u8]),
    /// On a pipe passed as a file descriptor; the argument `{fd}` in the arguments is replaced
    /// by `/dev/fd/N`.
    Fd(&'a [u8]),
}

/// The placeholder argument replaced by `/dev/fd/N` with [`Input::Fd`].
const FD_ARG: &str = "{fd}";

/// A located `op` binary.
#[derive(Debug, Clone)]
pub struct OpCli {
    program: PathBuf,
    timeout: Duration,
}

impl OpCli {
    /// Finds `op` on `PATH`; the per-call bound comes from `KEYRACK_OP_TIMEOUT_SECS` (default 30 s).
    pub(crate) fn locate() -> Result<OpCli, OpError> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let program = std::env::split_paths(&path)
            .filter(|d| d.is_absolute())
            .map(|d| d.join("op"))
            .find(|p| is_executable(p))
            .ok_or(OpError::Missing)?;
        Ok(OpCli::at(program, timeout_from_env()))
    }

    /// A driver for the `op` at `program`, each call bounded by `timeout`.
    pub fn at(program: impl Into<PathBuf>, timeout: Duration) -> OpCli {
        OpCli {
            program: program.into(),
            timeout,
        }
    }

    /// `op read --no-newline REFERENCE`: the value the reference points at.
    pub(crate) fn read(&self, reference: &str) -> Result<Secret, OpError> {
        let out = self.run(
            "read",
            &["read", "--no-newline", reference],
            Input::None,
            None,
        )?;
        let text = String::from_utf8(out.to_vec())
            .map_err(|_| OpError::Run("op read printed a value that is not UTF-8 text".into()))?;
        Ok(Secret::new(text))
    }

    /// `op item get TITLE [--vault V] --format json`: the item with that title, if any.
    pub(crate) fn find_item(
        &self,
        title: &str,
        vault: Option<&str>,
    ) -> Result<Option<ItemRef>, OpError> {
        let mut args = vec!["item", "get", title];
        if let Some(v) = vault {
            args.extend(["--vault", v]);
        }
        args.extend(["--format", "json"]);
        match self.run("item get", &args, Input::None, None) {
            Ok(out) => parse_item(&out).map(Some),
            Err(OpError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `op item create --format json [--vault V] -`, the template (with the secret) on stdin.
    pub(crate) fn create_item(
        &self,
        template: &ItemTemplate<'_>,
        vault: Option<&str>,
        secret: &Secret,
    ) -> Result<ItemRef, OpError> {
        let mut args = vec!["item", "create", "--format", "json"];
        if let Some(v) = vault {
            args.extend(["--vault", v]);
        }
        args.push("-");
        let json = template.to_json();
        let out = self.run("item create", &args, Input::Stdin(&json), Some(secret))?;
        parse_item(&out)
    }

    /// `op item edit ID --vault VAULT --format json --template /dev/fd/N`: replaces the item's
    /// details with the template, read from a pipe.
    pub(crate) fn edit_item(
        &self,
        item: &ItemRef,
        template: &ItemTemplate<'_>,
        secret: &Secret,
    ) -> Result<ItemRef, OpError> {
        let args = [
            "item",
            "edit",
            item.id.as_str(),
            "--vault",
            item.vault_id.as_str(),
            "--format",
            "json",
            "--template",
            FD_ARG,
        ];
        let json = template.to_json();
        let out = self.run("item edit", &args, Input::Fd(&json), Some(secret))?;
        parse_item(&out)
    }

    /// `op item delete ID --vault VAULT`.
    pub(crate) fn delete_item(&self, item_id: &str, vault_id: &str) -> Result<(), OpError> {
        self.run(
            "item delete",
            &["item", "delete", item_id, "--vault", vault_id],
            Input::None,
            None,
        )
        .map(drop)
    }

    /// Runs `op ARGS`, feeding `input`, within the bound. `secret` (what the input carries) is
    /// cut out of anything `op` says before it reaches an error.
    fn run(
        &self,
        command: &str,
        args: &[&str],
        input: Input<'_>,
        secret: Option<&Secret>,
    ) -> Result<Zeroizing<Vec<u8>>, OpError> {
        let mut cmd = Command::new(&self.program);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut fd_pipe: Option<(OwnedFd, OwnedFd)> = None;
        let payload: Option<&[u8]> = match input {
            Input::None => {
                cmd.stdin(Stdio::null());
                None
            }
            Input::Stdin(bytes) => {
                cmd.stdin(Stdio::piped());
                Some(bytes)
            }
            Input::Fd(bytes) => {
                cmd.stdin(Stdio::null());
                let (read, write) = inheritable_pipe()?;
                fd_pipe = Some((read, write));
                Some(bytes)
            }
        };
        let fd_arg = fd_pipe
            .as_ref()
            .map(|(r, _)| format!("/dev/fd/{}", r.as_raw_fd()));
        for a in args {
            match (*a, &fd_arg) {
                (FD_ARG, Some(path)) => cmd.arg(path),
                _ => cmd.arg(a),
            };
        }
        let mut child = cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => OpError::Missing,
            _ => OpError::Run(format!("{}: {e}", self.program.display())),
        })?;
        // The child has its copy of the read end now; ours goes, so the child sees the end of
        // the template when the writer below closes the write end.
        let writer_end: Option<Box<dyn Write + Send>> = match fd_pipe {
            Some((read, write)) => {
                drop(read);
                Some(Box::new(std::fs::File::from(write)))
            }
            None => child
                .stdin
                .take()
                .map(|s| Box::new(s) as Box<dyn Write + Send>),
        };
        let writer = match (writer_end, payload) {
            (Some(mut w), Some(bytes)) => {
                let bytes = Zeroizing::new(bytes.to_vec());
                Some(std::thread::spawn(move || {
                    // A child that exits early closes the pipe: its exit status tells why.
                    let _ = w.write_all(&bytes);
                }))
            }
            _ => None,
        };
        let stdout = child.stdout.take().map(reader);
        let stderr = child.stderr.take().map(reader);
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break st,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(OpError::Timeout {
                        secs: self.timeout.as_secs().max(1),
                    });
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(OpError::Run(format!("waiting for op: {e}"))),
            }
        };
        // The writer is not waited for: a child that stopped reading (and a process it left
        // holding the pipe) must not hold keyrack; the thread ends when the pipe closes.
        drop(writer);
        // A process op left running (and holding its pipes) must not hold keyrack past the bound.
        let collect = |rx: Option<Receiver<Zeroizing<Vec<u8>>>>| -> Result<_, OpError> {
            let Some(rx) = rx else {
                return Ok(Zeroizing::new(Vec::new()));
            };
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(200));
            rx.recv_timeout(left).map_err(|_| OpError::Timeout {
                secs: self.timeout.as_secs().max(1),
            })
        };
        let out = collect(stdout)?;
        let err = collect(stderr)?;
        if status.success() {
            return Ok(out);
        }
        Err(classify(command, &said(&err, secret)))
    }
}

/// Reads a pipe to its end on a thread (so a full stderr never blocks the child).
fn reader(mut r: impl Read + Send + 'static) -> Receiver<Zeroizing<Vec<u8>>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Zeroizing::new(Vec::new());
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

/// A pipe whose read end a child inherits (its write end does not).
fn inheritable_pipe() -> Result<(OwnedFd, OwnedFd), OpError> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
        .map_err(|e| OpError::Run(format!("cannot create a pipe for the item template: {e}")))?;
    fcntl(&read, FcntlArg::F_SETFD(FdFlag::empty()))
        .map_err(|e| OpError::Run(format!("cannot pass the item template to op: {e}")))?;
    Ok((read, write))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn timeout_from_env() -> Duration {
    std::env::var(TIMEOUT_ENV)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TIMEOUT)
}

fn parse_item(out: &[u8]) -> Result<ItemRef, OpError> {
    let item: ItemJson = serde_json::from_slice(out)
        .map_err(|e| OpError::Run(format!("op printed an item keyrack cannot read ({e})")))?;
    Ok(ItemRef {
        id: item.id,
        vault_id: item.vault.id,
        vault_name: item.vault.name,
    })
}

/// What `op` said on stderr, made fit for an error message: its `[ERROR] <date> <time>` prefixes
/// dropped, one line, bounded, and `secret` cut out should `op` have echoed it.
fn said(stderr: &[u8], secret: Option<&Secret>) -> String {
    let mut text = String::from_utf8_lossy(stderr).into_owned();
    if let Some(s) = secret.filter(|s| !s.expose().is_empty()) {
        text = text.replace(s.expose(), "***");
    }
    let lines: Vec<String> = text
        .lines()
        .map(|l| strip_prefix(l.trim()).to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let mut one: String = lines
        .join("; ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    if one.chars().count() > 300 {
        one = one.chars().take(300).collect::<String>() + "…";
    }
    if one.is_empty() {
        "it exited with an error and said nothing".into()
    } else {
        one
    }
}

/// `[ERROR] 2024/01/01 12:00:00 message` → `message`.
fn strip_prefix(line: &str) -> &str {
    let Some(rest) = line.strip_prefix("[ERROR]") else {
        return line;
    };
    let mut parts = rest.trim_start().splitn(3, ' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(d), Some(t), Some(msg))
            if d.len() == 10 && d.as_bytes()[4] == b'/' && t.len() == 8 && t.contains(':') =>
        {
            msg
        }
        _ => rest.trim_start(),
    }
}

/// Sorts what `op` said into the errors keyrack names a fix for.
fn classify(command: &str, detail: &str) -> OpError {
    let l = detail.to_ascii_lowercase();
    let signed_out = [
        "not currently signed in",
        "not signed in",
        "no accounts configured",
        "no account found",
        "session expired",
        "authorization prompt dismissed",
        "authorization timeout",
        "invalid service account token",
        "service account token is invalid",
        "(401)",
        "unauthorized",
    ];
    let not_found = [
        "isn't an item",
        "isn't a vault",
        "isn't a field",
        "does not have a field",
        "could not find item",
        "no item found",
        "item not found",
        "vault not found",
        "not found in vault",
    ];
    if signed_out.iter().any(|p| l.contains(p)) {
        OpError::NotSignedIn {
            detail: detail.into(),
            service_account: std::env::var_os(SERVICE_ACCOUNT_ENV).is_some_and(|v| !v.is_empty()),
        }
    } else if not_found.iter().any(|p| l.contains(p)) {
        OpError::NotFound {
            detail: detail.into(),
        }
    } else {
        OpError::Failed {
            command: command.into(),
            detail: detail.into(),
        }
    }
}

/// Checks an `op://vault/item/field` (or `op://vault/item/section/field`) secret reference.
pub(crate) fn validate_reference(uri: &str) -> Result<(), String> {
    let Some(rest) = uri.strip_prefix("op://") else {
        return Err("a 1Password secret reference starts with op://".into());
    };
    if let Some(c) = uri.chars().find(|c| c.is_control() || *c == '\u{7f}') {
        return Err(format!("it contains the control character {:?}", c));
    }
    if rest.contains('?') {
        return Err(
            "query parameters (?attribute=…) are not supported: the value must stay the same between two reads"
                .into(),
        );
    }
    let parts: Vec<&str> = rest.split('/').collect();
    if !(3..=4).contains(&parts.len()) {
        return Err(
            "it must have the form op://<vault>/<item>/<field> or op://<vault>/<item>/<section>/<field>"
                .into(),
        );
    }
    if parts.iter().any(|p| p.trim().is_empty()) {
        return Err("a part of the reference is empty".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_validated() {
        for ok in [
            "op://Private/GitHub/token",
            "op://Team Vault/My Item/Section/field",
            "op://abc123/def456/password",
        ] {
            assert_eq!(validate_reference(ok), Ok(()), "{ok}");
        }
        for bad in [
            "Private/GitHub/token",
            "op://Private/GitHub",
            "op://Private//token",
            "op://a/b/c/d/e",
            "op://Private/GitHub/token?attribute=otp",
            "op://Private/Git\nHub/token",
            "",
        ] {
            assert!(validate_reference(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn what_op_says_is_sorted_into_fixable_errors() {
        let e = classify(
            "read",
            &said(
                b"[ERROR] 2024/05/01 10:00:00 You are not currently signed in. Please run `op signin --help` for instructions\n",
                None,
            ),
        );
        assert!(matches!(e, OpError::NotSignedIn { .. }), "{e:?}");
        assert!(
            e.to_string()
                .starts_with("op is not signed in (You are not"),
            "{e}"
        );
        assert!(e.hint().contains("op signin"));
        let e = classify(
            "read",
            "could not read secret 'op://v/i/f': error looking up item: \"i\" isn't an item in the \"v\" vault",
        );
        assert!(matches!(e, OpError::NotFound { .. }), "{e:?}");
        let e = classify("item create", "something odd");
        assert_eq!(e.to_string(), "op item create failed: something odd");
        assert!(OpError::Missing
            .hint()
            .contains("brew install 1password-cli"));
    }

    #[test]
    fn an_echoed_secret_is_cut_out_of_errors() {
        let s = Secret::new("hunter2-secret".into());
        let text = said(
            b"[ERROR] 2024/05/01 10:00:00 bad template near \"hunter2-secret\"\n",
            Some(&s),
        );
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("***"));
    }

    #[test]
    fn the_template_holds_the_secret_in_a_concealed_password_field() {
        let s = Secret::new("v".into());
        let t = ItemTemplate::new("title", &s, "note", &["keyrack"]);
        let v: serde_json::Value = serde_json::from_slice(&t.to_json()).unwrap();
        assert_eq!(v["category"], "PASSWORD");
        assert_eq!(v["fields"][0]["id"], "password");
        assert_eq!(v["fields"][0]["type"], "CONCEALED");
        assert_eq!(v["fields"][0]["value"], "v");
        assert_eq!(v["tags"][0], "keyrack");
    }
}
