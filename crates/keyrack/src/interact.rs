//! Interaction: everything keyrack needs from the person at the keyboard, behind one trait.
//!
//! The library never prints, prompts, draws a spinner or opens a browser. When an operation
//! needs a person — a secret to store, the passphrase of an SSH key, a browser sign-in to AWS —
//! it asks its [`Interact`], and it reports what the person should see as typed [`Notice`]s.
//! The front end decides how to draw them: `keyrack-cli` implements the trait on the terminal
//! (hidden prompts, a spinner, the `webbrowser` crate, its one output writer); tests script it.
//!
//! [`NonInteractive`], the default of every [`crate::ops::Rack`], asks nobody: each question is
//! [`Unanswered::NoTerminal`], which the asking operation turns into its own typed error naming
//! the flags that avoid the question ([`crate::Error::NeedsTty`]), and it never opens anything.
//!
//! ```
//! use keyrack::interact::{Interact, NonInteractive, Unanswered};
//!
//! let nobody = NonInteractive;
//! assert_eq!(nobody.confirm("change it?", false), Err(Unanswered::NoTerminal));
//! assert!(!nobody.can_open_url());
//! ```

use std::fmt;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use crate::secret::Secret;

/// Why a question got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unanswered {
    /// Nobody can be asked: no terminal, or a front end that never asks.
    NoTerminal,
    /// The person cancelled (Ctrl-C, Esc).
    Cancelled,
    /// The question could not be asked or answered (the terminal went away): why.
    Failed(String),
}

impl fmt::Display for Unanswered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unanswered::NoTerminal => f.write_str("no terminal to ask on"),
            Unanswered::Cancelled => f.write_str("cancelled"),
            Unanswered::Failed(why) => f.write_str(why),
        }
    }
}

/// The answer to a question, or why there is none.
pub type Answer<T> = std::result::Result<T, Unanswered>;

/// Checks a typed answer (trimmed): `Err(why)` shows why and asks again.
pub(crate) type Check = fn(&str) -> std::result::Result<(), String>;

/// A question answered with a line of text.
#[derive(Clone, Copy, Debug)]
pub struct Question<'a> {
    /// The prompt (`start URL:`).
    pub prompt: &'a str,
    /// The answer an empty line gives.
    pub default: Option<&'a str>,
    /// An example shown greyed in the empty field.
    pub placeholder: Option<&'a str>,
    /// Checks the answer before it is accepted.
    pub check: Option<Check>,
}

impl<'a> Question<'a> {
    /// A question with only a prompt.
    pub fn new(prompt: &'a str) -> Self {
        Question {
            prompt,
            default: None,
            placeholder: None,
            check: None,
        }
    }
}

/// What became of a link handed to [`Interact::open_url`].
#[derive(Clone, Debug)]
pub enum OpenOutcome {
    /// A browser was asked to open it (the link is shown either way). The [`Opening`] says later
    /// whether that failed, so a browser sign-in can switch to the device code at once instead
    /// of waiting for its deadline.
    Requested(Opening),
    /// No browser can be opened here (SSH, no display): the person opens the link elsewhere.
    NoBrowser,
}

/// A browser being opened in the background: the front end reports its failure
/// ([`Opening::fail`]: `$BROWSER` exited with an error, no opener could run), the sign-in
/// watches for it ([`Opening::failure`]). A front end that cannot tell never reports one.
#[derive(Clone, Debug, Default)]
pub struct Opening {
    failure: Arc<Mutex<Option<String>>>,
}

impl Opening {
    /// An opening with no failure reported yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reports that the browser could not be opened: why (the first report is kept).
    pub fn fail(&self, why: impl Into<String>) {
        let mut f = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        if f.is_none() {
            *f = Some(why.into());
        }
    }

    /// Why the browser could not be opened, once that is known.
    pub(crate) fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// How a sign-in waits for the person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignInStep {
    /// Open `url` in a browser (PKCE: the browser comes back to a loopback listener).
    Browser {
        /// The authorize link.
        url: String,
    },
    /// Open `url` (on any device) and confirm `code`.
    DeviceCode {
        /// The verification link (the code included).
        url: String,
        /// The user code the page shows.
        code: String,
    },
    /// The AWS CLI runs `aws sso login --profile P`; its own output (with its link) follows.
    AwsCli {
        /// The profile it signs in through.
        profile: String,
    },
}

/// Which kind of entry a service listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortalEntry {
    /// An AWS account.
    Account,
    /// A role (permission set) in an account.
    Role,
}

/// Something the person should see; the front end decides how it looks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A sign-in to an AWS access portal starts and waits for the person.
    SignIn {
        /// The portal's start URL.
        start_url: String,
        /// What the person does.
        step: SignInStep,
    },
    /// The AWS portal listed an entry keyrack cannot use; it was left out.
    SkippedPortalEntry {
        /// Account or role.
        entry: PortalEntry,
        /// The entry's display name (control characters escaped), when it has one apart from
        /// the refused value.
        name: Option<String>,
        /// Why it was refused (names the field and the expected form).
        reason: String,
    },
    /// The browser for a sign-in could not be opened (`$BROWSER` failed, no opener): the
    /// sign-in continues at once with a device code, whose link and code follow.
    BrowserFailed {
        /// Why it could not be opened.
        reason: String,
    },
    /// A different SSO user signed in than the one the key was set up with: that session was
    /// signed out and the sign-in is asked once more.
    WrongSsoUser {
        /// Who signed in.
        seen: String,
        /// Who was expected.
        expected: String,
    },
}

/// Shows that something is under way while it lasts (a spinner); dropping it ends the display.
#[must_use = "the progress display ends when this is dropped"]
pub struct Progress {
    end: Option<Box<dyn FnOnce() + Send>>,
}

impl Progress {
    /// A display that `end` takes down.
    pub fn new(end: impl FnOnce() + Send + 'static) -> Self {
        Progress {
            end: Some(Box::new(end)),
        }
    }

    /// Nothing shown.
    pub fn none() -> Self {
        Progress { end: None }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(end) = self.end.take() {
            end();
        }
    }
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Progress")
    }
}

/// Where a helper program's output goes so the person can follow it (the `aws sso login` driver
/// prints its own link). stdout is never keyrack's stdout, which carries `--json`.
#[derive(Debug)]
pub struct ChildOutput {
    /// The child's stdout.
    pub stdout: Stdio,
    /// The child's stderr.
    pub stderr: Stdio,
}

/// The person at the keyboard, as the library sees them. Questions return [`Answer`]: the caller
/// turns [`Unanswered`] into its own typed error with the flags that avoid the question.
pub trait Interact: Send + Sync {
    /// The value of `key`, typed hidden (never echoed).
    fn secret(&self, key: &str) -> Answer<Secret>;

    /// The passphrase of the private key at `path`; `attempt` counts from 1 (a later attempt
    /// follows a wrong passphrase).
    fn passphrase(&self, path: &Path, attempt: u32) -> Answer<Secret>;

    /// One of `options` (its index).
    fn select(&self, prompt: &str, options: &[String]) -> Answer<usize>;

    /// Yes or no; an empty answer is `default`.
    fn confirm(&self, prompt: &str, default: bool) -> Answer<bool>;

    /// A line of text (the default when empty; asked again while the check refuses it).
    fn text(&self, question: &Question<'_>) -> Answer<String>;

    /// Whether a browser can be opened here (a loopback browser sign-in is possible).
    fn can_open_url(&self) -> bool;

    /// Hands `url` to the person: opens it in a browser when one can be opened here, without
    /// waiting for the browser. [`Unanswered`] when nobody is there to follow it.
    fn open_url(&self, url: &str) -> Answer<OpenOutcome>;

    /// Shows `message` as under way until the returned [`Progress`] is dropped.
    fn progress(&self, message: &str) -> Progress;

    /// Shows a notice.
    fn notice(&self, notice: &Notice);

    /// Where a helper program the person must follow writes. [`Unanswered`] when nobody is
    /// there to follow it.
    fn child_output(&self) -> Answer<ChildOutput>;
}

/// Nobody at the keyboard: every question is [`Unanswered::NoTerminal`], nothing is shown and
/// nothing is opened. The default of every [`crate::ops::Rack`] (embedding, automation).
#[derive(Clone, Copy, Debug, Default)]
pub struct NonInteractive;

impl Interact for NonInteractive {
    fn secret(&self, _key: &str) -> Answer<Secret> {
        Err(Unanswered::NoTerminal)
    }

    fn passphrase(&self, _path: &Path, _attempt: u32) -> Answer<Secret> {
        Err(Unanswered::NoTerminal)
    }

    fn select(&self, _prompt: &str, _options: &[String]) -> Answer<usize> {
        Err(Unanswered::NoTerminal)
    }

    fn confirm(&self, _prompt: &str, _default: bool) -> Answer<bool> {
        Err(Unanswered::NoTerminal)
    }

    fn text(&self, _question: &Question<'_>) -> Answer<String> {
        Err(Unanswered::NoTerminal)
    }

    fn can_open_url(&self) -> bool {
        false
    }

    fn open_url(&self, _url: &str) -> Answer<OpenOutcome> {
        Err(Unanswered::NoTerminal)
    }

    fn progress(&self, _message: &str) -> Progress {
        Progress::none()
    }

    fn notice(&self, _notice: &Notice) {}

    fn child_output(&self) -> Answer<ChildOutput> {
        Err(Unanswered::NoTerminal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_interactive_asks_nobody_and_opens_nothing() {
        let n = NonInteractive;
        assert_eq!(
            n.secret("K").map(|_| ()).unwrap_err(),
            Unanswered::NoTerminal
        );
        assert_eq!(
            n.passphrase(Path::new("/k"), 1).map(|_| ()).unwrap_err(),
            Unanswered::NoTerminal
        );
        assert_eq!(n.select("p", &["a".into()]), Err(Unanswered::NoTerminal));
        assert_eq!(n.text(&Question::new("p")), Err(Unanswered::NoTerminal));
        assert!(matches!(
            n.open_url("https://x"),
            Err(Unanswered::NoTerminal)
        ));
        assert!(n.child_output().is_err());
        assert!(!n.can_open_url());
    }

    #[test]
    fn an_opening_keeps_its_first_failure_for_every_copy() {
        let opening = Opening::new();
        let watcher = opening.clone();
        assert_eq!(watcher.failure(), None);
        opening.fail("BROWSER exited with 1");
        opening.fail("later");
        assert_eq!(watcher.failure().as_deref(), Some("BROWSER exited with 1"));
    }

    #[test]
    fn progress_ends_when_dropped() {
        let (tx, rx) = std::sync::mpsc::channel();
        let p = Progress::new(move || tx.send(()).unwrap());
        assert!(rx.try_recv().is_err());
        drop(p);
        rx.try_recv().expect("ended on drop");
    }
}
