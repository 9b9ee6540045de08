//! Typed errors for every keyrack operation.
//!
//! Each error says what happened and why; [`Error::fix`] gives the exact command (or edit) that
//! resolves it, and [`Error::exit_code`] the documented process exit code.

use std::path::PathBuf;

/// The result type used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in keyrack.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A repo manifest could not be parsed or violates the schema.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// 1-based line (0 when unknown).
        line: u64,
        /// 1-based column (0 when unknown).
        column: u64,
        /// What is wrong.
        message: String,
        /// How to fix it.
        hint: Option<String>,
    },
    /// No `keyrack.yml` was found above the working directory.
    #[error("no keyrack.yml or .agent/keyrack.yml found in {} or its parents (up to the repository root)", start.display())]
    NoRepoManifest {
        /// Where the search started.
        start: PathBuf,
    },
    /// The owner has no host manifest yet.
    #[error("keyrack is not initialised for owner {owner} in {}", home.display())]
    NotInitialised {
        /// The keyrack home.
        home: PathBuf,
        /// Display name of the owner.
        owner: String,
        /// The `--owner` flag to repeat in the fix, if any.
        owner_flag: String,
    },
    /// The host manifest is gone, but vault files or inventory markers of keys set here remain.
    #[error("the host manifest {} is missing, but {evidence} remain from keys set on this host", path.display())]
    HostManifestLost {
        /// The missing host manifest.
        path: PathBuf,
        /// What remains ("2 os.secure files, 3 inventory markers").
        evidence: String,
        /// The `--owner` flag to repeat in the fix, if any.
        owner_flag: String,
    },
    /// A file that should be an age file is not one, or is damaged.
    #[error("{} is not a readable age file: {reason}", path.display())]
    CorruptFile {
        /// The damaged file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
        /// How to recover.
        hint: String,
    },
    /// None of the available identities can decrypt a file.
    #[error("{} is not encrypted to your identity ({identity})", path.display())]
    WrongIdentity {
        /// The file that could not be decrypted.
        path: PathBuf,
        /// The identity that was tried.
        identity: String,
    },
    /// An identity file could not be used.
    #[error("cannot use identity {}: {reason}", path.display())]
    Identity {
        /// The identity file.
        path: PathBuf,
        /// Why not.
        reason: String,
        /// How to fix it.
        hint: String,
    },
    /// A filesystem operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What keyrack was doing ("write", "read", "create directory").
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A value given on the command line is not valid.
    #[error("invalid {what} '{value}': {reason}")]
    InvalidInput {
        /// What the value is ("env", "key", "vault").
        what: &'static str,
        /// The value as given.
        value: String,
        /// Why it is invalid.
        reason: String,
        /// How to fix it.
        hint: Option<String>,
    },
    /// The env of a key could not be inferred.
    #[error("cannot tell which env {key} belongs to: {reason}")]
    EnvAmbiguous {
        /// The key.
        key: String,
        /// Why.
        reason: String,
        /// The command to run instead.
        hint: String,
    },
    /// The secret given to `set` is not acceptable.
    #[error("cannot read the secret: {reason}")]
    SecretInput {
        /// Why.
        reason: String,
        /// How to fix it.
        hint: String,
    },
    /// An interactive step was needed but there is no terminal.
    #[error("{what} needs a terminal, and none is attached")]
    NeedsTty {
        /// What needed the terminal.
        what: String,
        /// The flags or command that avoid the prompt.
        hint: String,
    },
    /// `set` stored a secret but could not read it back.
    #[error("round trip failed for {slug} in {vault}: {reason}; nothing was kept")]
    RoundTrip {
        /// The slug being set.
        slug: String,
        /// The vault.
        vault: String,
        /// What went wrong.
        reason: String,
    },
    /// A value keyrack will not store or hand out: too large, a NUL byte, or (without
    /// `--allow-dangerous`) a long-lived token the firewall blocks.
    #[error("the value of {slug} is refused: {reason}")]
    ValueRefused {
        /// The slug the value is for.
        slug: String,
        /// Why (never quotes the value).
        reason: String,
        /// How to fix it.
        hint: String,
    },
    /// A vault file is not bound to the key it was read for: it holds another key's value (files
    /// swapped or copied), or carries no binding at all (written by hand or by an older keyrack).
    #[error("{} does not hold {slug}: {reason}", path.display())]
    Unbound {
        /// The vault file.
        path: PathBuf,
        /// The slug it was read for.
        slug: String,
        /// What it holds instead.
        reason: String,
        /// The command that rewrites it.
        hint: String,
    },
    /// A vault refused an operation it does not support.
    #[error("vault {vault} cannot {operation}: {reason}")]
    VaultRefused {
        /// The vault.
        vault: String,
        /// The refused operation.
        operation: &'static str,
        /// Why.
        reason: String,
        /// What to do instead.
        hint: String,
    },
    /// A vault's backend cannot serve the request: its tool is missing or signed out, its
    /// service is not running or locked, the call timed out.
    #[error("{vault}: {reason}")]
    VaultUnavailable {
        /// The vault.
        vault: String,
        /// What went wrong (never quotes a secret).
        reason: String,
        /// How to fix it.
        hint: String,
    },
    /// A refusal about recipients (last recipient, duplicate label, unknown label).
    #[error("{message}")]
    Recipient {
        /// What happened.
        message: String,
        /// How to fix it.
        hint: String,
    },
    /// A key was asked for that is not configured on this host.
    #[error("{slug} is not set on this host")]
    NotSet {
        /// The slug.
        slug: String,
        /// The command that sets it.
        hint: String,
    },
    /// An AWS call or AWS file failed.
    #[error("{message}{}", source.as_ref().map(|s| format!(": {s}")).unwrap_or_default())]
    Aws {
        /// What happened (what keyrack was doing, when AWS answered).
        message: String,
        /// How to fix it.
        hint: String,
        /// AWS's answer, when a call failed.
        #[source]
        source: Option<Box<crate::aws::http::AwsError>>,
    },
    /// A GitHub API call failed, or GitHub App credentials cannot be used.
    #[error("{message}")]
    GitHub {
        /// What happened.
        message: String,
        /// How to fix it.
        hint: String,
    },
    /// The session daemon could not be reached, started, or answered with an error.
    #[error("session daemon: {source}")]
    Daemon {
        /// What went wrong.
        #[source]
        source: crate::daemon::DaemonError,
        /// How to fix it.
        hint: String,
    },
    /// The daemon's socket, or the directory it lives in, cannot be trusted (another user's,
    /// a symlink, open to others): nothing was sent.
    #[error("session daemon refused: {message}; nothing was sent")]
    DaemonUntrusted {
        /// What is wrong.
        message: String,
        /// How to fix it.
        hint: String,
    },
    /// The user cancelled a prompt (Ctrl-C, Esc, or the end of input at the prompt).
    #[error("cancelled: {what} was not answered")]
    Cancelled {
        /// What was being asked.
        what: String,
    },
    /// Something this host holds is not unlocked in this session.
    #[error("{what} is locked: {reason}")]
    Locked {
        /// What is locked (a slug, "AWS profile P").
        what: String,
        /// Why it counts as locked.
        reason: String,
        /// The command that unlocks it.
        hint: String,
    },
    /// Some requested keys are not granted; the command has already shown which and why (its
    /// rows), so this error only carries the outcome and its exit code.
    #[error("{missing} of {total} requested keys not granted")]
    NotGranted {
        /// How many rows are not granted.
        missing: usize,
        /// How many rows were asked for.
        total: usize,
        /// The one fix shared by all of them, when there is one.
        fix: Option<String>,
    },
}

impl Error {
    /// The command or edit that fixes this error, when there is one.
    pub fn fix(&self) -> Option<String> {
        match self {
            Error::Manifest { hint, .. } | Error::InvalidInput { hint, .. } => hint.clone(),
            Error::NoRepoManifest { .. } => Some(
                "keyrack init --org <org>   (creates keyrack.yml here), or pass --org @all for a machine-wide key"
                    .into(),
            ),
            Error::NotInitialised { owner_flag, .. } => Some(format!("keyrack init{owner_flag}")),
            Error::HostManifestLost { owner_flag, .. } => {
                Some(format!("keyrack init --recover{owner_flag}"))
            }
            Error::CorruptFile { hint, .. } => Some(hint.clone()),
            Error::WrongIdentity { .. } => Some(
                "pass the identity that was used at init: keyrack --identity <path> …, or from a machine that can decrypt it run: keyrack recipient add --pubkey \"$(cat <key>.pub)\" --label <name>"
                    .into(),
            ),
            Error::Identity { hint, .. }
            | Error::EnvAmbiguous { hint, .. }
            | Error::SecretInput { hint, .. }
            | Error::NeedsTty { hint, .. }
            | Error::VaultRefused { hint, .. }
            | Error::VaultUnavailable { hint, .. }
            | Error::ValueRefused { hint, .. }
            | Error::Unbound { hint, .. }
            | Error::Recipient { hint, .. }
            | Error::NotSet { hint, .. }
            | Error::Daemon { hint, .. }
            | Error::DaemonUntrusted { hint, .. }
            | Error::Locked { hint, .. }
            | Error::Aws { hint, .. }
            | Error::GitHub { hint, .. } => Some(hint.clone()),
            Error::NotGranted { fix, .. } => fix.clone(),
            Error::Cancelled { .. } => None,
            Error::Io { path, source, .. } => Some(match source.kind() {
                std::io::ErrorKind::PermissionDenied => format!(
                    "make {} writable by you (ls -ld {0}; chmod u+rwx <dir>), or point KEYRACK_HOME at a writable directory",
                    path.display()
                ),
                std::io::ErrorKind::NotFound => {
                    format!("check that {} exists", path.display())
                }
                _ => format!("check {} and retry", path.display()),
            }),
            Error::RoundTrip { .. } => Some(
                "check the vault and your identity with: keyrack recipient list; then retry the same keyrack set"
                    .into(),
            ),
        }
    }

    /// The process exit code, a property of the kind of error: `2` for a key that is not
    /// granted and for refusals the caller can fix, `130` for a prompt the user cancelled (as a
    /// shell reports Ctrl-C), `1` for everything else (bad usage, failures).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::VaultRefused { .. }
            | Error::ValueRefused { .. }
            | Error::Recipient { .. }
            | Error::NotSet { .. }
            | Error::Locked { .. }
            | Error::NotGranted { .. }
            | Error::HostManifestLost { .. } => 2,
            Error::Cancelled { .. } => 130,
            Error::Manifest { .. }
            | Error::NoRepoManifest { .. }
            | Error::NotInitialised { .. }
            | Error::CorruptFile { .. }
            | Error::WrongIdentity { .. }
            | Error::Identity { .. }
            | Error::Io { .. }
            | Error::InvalidInput { .. }
            | Error::EnvAmbiguous { .. }
            | Error::SecretInput { .. }
            | Error::NeedsTty { .. }
            | Error::RoundTrip { .. }
            | Error::Unbound { .. }
            | Error::VaultUnavailable { .. }
            | Error::Aws { .. }
            | Error::GitHub { .. }
            | Error::Daemon { .. }
            | Error::DaemonUntrusted { .. } => 1,
        }
    }

    /// A stable machine-readable name for `--json` output.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Manifest { .. } => "manifest",
            Error::NoRepoManifest { .. } => "no_repo_manifest",
            Error::NotInitialised { .. } => "not_initialised",
            Error::HostManifestLost { .. } => "host_manifest_lost",
            Error::CorruptFile { .. } => "corrupt_file",
            Error::WrongIdentity { .. } => "wrong_identity",
            Error::Identity { .. } => "identity",
            Error::Io { .. } => "io",
            Error::InvalidInput { .. } => "invalid_input",
            Error::EnvAmbiguous { .. } => "env_ambiguous",
            Error::SecretInput { .. } => "secret_input",
            Error::NeedsTty { .. } => "needs_tty",
            Error::RoundTrip { .. } => "round_trip",
            Error::VaultRefused { .. } => "vault_refused",
            Error::VaultUnavailable { .. } => "vault_unavailable",
            Error::ValueRefused { .. } => "value_refused",
            Error::Unbound { .. } => "unbound",
            Error::Recipient { .. } => "recipient",
            Error::NotSet { .. } => "not_set",
            Error::Daemon { .. } => "daemon",
            Error::DaemonUntrusted { .. } => "daemon_untrusted",
            Error::Aws { .. } => "aws",
            Error::GitHub { .. } => "github",
            Error::Cancelled { .. } => "cancelled",
            Error::Locked { .. } => "locked",
            Error::NotGranted { .. } => "not_granted",
        }
    }

    /// The AWS answer behind an [`Error::Aws`], when a call failed.
    #[cfg(test)]
    pub(crate) fn aws_error(&self) -> Option<&crate::aws::http::AwsError> {
        match self {
            Error::Aws { source, .. } => source.as_deref(),
            _ => None,
        }
    }

    /// Shorthand for an [`Error::Io`].
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

#[cfg(test)]
mod source_tests {
    use std::error::Error as _;

    use super::*;
    use crate::aws::http::AwsError;
    use crate::daemon::DaemonError;

    #[test]
    fn aws_and_daemon_errors_keep_their_typed_source() {
        let aws = AwsError::Service {
            status: 401,
            code: "UnauthorizedException".into(),
            message: "Session token not found or invalid".into(),
        };
        let e = aws.clone().into_error("renewing role credentials");
        assert_eq!(
            e.to_string(),
            "renewing role credentials: AWS answered 401 UnauthorizedException: Session token not found or invalid"
        );
        let source = e.source().and_then(|s| s.downcast_ref::<Box<AwsError>>());
        assert_eq!(source.map(|b| &**b), Some(&aws));
        assert_eq!(e.aws_error(), Some(&aws));
        assert!(e.fix().unwrap().contains("keyrack unlock signs in again"));

        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let e = Error::Daemon {
            source: DaemonError::Talk(io),
            hint: "retry".into(),
        };
        assert_eq!(
            e.to_string(),
            "session daemon: talking to the daemon failed: reset"
        );
        let daemon = e.source().and_then(|s| s.downcast_ref::<DaemonError>());
        assert!(matches!(daemon, Some(DaemonError::Talk(_))));
        let io = daemon
            .and_then(|d| d.source())
            .and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(
            io.map(|e| e.kind()),
            Some(std::io::ErrorKind::ConnectionReset)
        );
    }
}
