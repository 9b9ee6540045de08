//! The terminal behind the library's [`Interact`]: questions and the hidden secret prompt
//! (inquire), the passphrase from `/dev/tty` ([`crate::tty`]), the sign-in notices and a spinner
//! drawn through [`crate::ui`], links opened with `webbrowser` (which honours `$BROWSER`).
//!
//! A question needs a terminal on stdin (the passphrase: a controlling terminal); without one the
//! answer is [`Unanswered::NoTerminal`] and the library fails with the flags that avoid the
//! question. Sign-ins need no terminal: the link
//! is always shown on stderr, and opened when a browser can be opened here.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use keyrack::interact::{
    Answer, ChildOutput, Interact, Notice, OpenOutcome, Opening, PortalEntry, Progress, Question,
    SignInStep, Unanswered,
};
use keyrack::ops::fill;
use keyrack::secret::Secret;

use crate::render::{tree, Node, Style};
use crate::tty::{self, Tty};
use crate::ui;

/// The person at this terminal.
#[derive(Debug, Clone, Copy, Default)]
pub struct Terminal;

/// A prompt that ended without an answer.
fn unanswered(e: inquire::InquireError) -> Unanswered {
    match e {
        inquire::InquireError::NotTTY => Unanswered::NoTerminal,
        inquire::InquireError::OperationCanceled | inquire::InquireError::OperationInterrupted => {
            Unanswered::Cancelled
        }
        e => Unanswered::Failed(e.to_string()),
    }
}

/// Someone can answer: stdin is a terminal.
fn can_ask() -> Answer<()> {
    if ui::stdin_is_terminal() {
        Ok(())
    } else {
        Err(Unanswered::NoTerminal)
    }
}

impl Interact for Terminal {
    fn secret(&self, key: &str) -> Answer<Secret> {
        can_ask()?;
        inquire::Password::new(&format!("{key}:"))
            .without_confirmation()
            .with_display_mode(inquire::PasswordDisplayMode::Hidden)
            .with_help_message("input is hidden; paste the value and press enter (Ctrl-C cancels)")
            // an empty answer is refused in the prompt, before it is accepted and shown as ********
            .with_validator(inquire::validator::ValueRequiredValidator::new(
                "the value is empty: paste it and press enter, or Ctrl-C to cancel",
            ))
            .prompt()
            .map(Secret::new)
            .map_err(unanswered)
    }

    /// Read from the controlling terminal (`/dev/tty`), so it works when stdin is a pipe, as
    /// ssh does; a later attempt first says the last one was wrong.
    fn passphrase(&self, path: &Path, attempt: u32) -> Answer<Secret> {
        let mut tty = Tty::open().ok_or(Unanswered::NoTerminal)?;
        if attempt > 1 {
            tty.say("wrong passphrase, try again\n");
        }
        tty.read_hidden(&format!("passphrase for {}: ", path.display()))
            .map(|answer| Secret::new(answer.as_str().to_owned()))
            .map_err(|tty::Interrupted::Cancelled| Unanswered::Cancelled)
    }

    fn select(&self, prompt: &str, options: &[String]) -> Answer<usize> {
        can_ask()?;
        inquire::Select::new(prompt, options.to_vec())
            .with_page_size(12)
            .raw_prompt()
            .map(|chosen| chosen.index)
            .map_err(unanswered)
    }

    fn confirm(&self, prompt: &str, default: bool) -> Answer<bool> {
        can_ask()?;
        inquire::Confirm::new(prompt)
            .with_default(default)
            .prompt()
            .map_err(unanswered)
    }

    fn text(&self, q: &Question<'_>) -> Answer<String> {
        can_ask()?;
        let mut t = inquire::Text::new(q.prompt);
        if let Some(d) = q.default {
            t = t.with_default(d);
        }
        if let Some(p) = q.placeholder {
            t = t.with_placeholder(p);
        }
        if let Some(check) = q.check {
            t = t.with_validator(move |s: &str| {
                Ok(match check(s.trim()) {
                    Ok(()) => inquire::validator::Validation::Valid,
                    Err(why) => inquire::validator::Validation::Invalid(why.into()),
                })
            });
        }
        t.prompt().map_err(unanswered)
    }

    fn can_open_url(&self) -> bool {
        let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
        set("BROWSER") || set("DISPLAY") || set("WAYLAND_DISPLAY") || cfg!(target_os = "macos")
    }

    fn open_url(&self, url: &str) -> Answer<OpenOutcome> {
        if !self.can_open_url() {
            return Ok(OpenOutcome::NoBrowser);
        }
        let opening = Opening::new();
        let (url, report) = (url.to_string(), opening.clone());
        // In a thread: a browser command that waits would otherwise block the sign-in's
        // loopback listener. Its failure is reported: the sign-in switches to the device code.
        std::thread::spawn(move || {
            let browser = std::env::var("BROWSER").unwrap_or_default();
            if let Err(why) = open_in_browser(&browser, &url) {
                report.fail(why);
            }
        });
        Ok(OpenOutcome::Requested(opening))
    }

    fn progress(&self, message: &str) -> Progress {
        if !ui::stderr_is_terminal() {
            return Progress::none();
        }
        let bar = indicatif::ProgressBar::with_draw_target(
            None,
            indicatif::ProgressDrawTarget::term_like(Box::new(Stderr)),
        );
        bar.set_style(
            indicatif::ProgressStyle::with_template("   {spinner} {msg} ({elapsed})")
                .expect("a valid template"),
        );
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress::new(move || bar.finish_and_clear())
    }

    fn notice(&self, notice: &Notice) {
        ui::err(shown(notice));
    }

    fn child_output(&self) -> Answer<ChildOutput> {
        let copy = ui::stderr_for_child()
            .map_err(|e| Unanswered::Failed(format!("cannot duplicate stderr: {e}")))?;
        Ok(ChildOutput {
            stdout: Stdio::from(copy),
            stderr: Stdio::inherit(),
        })
    }
}

/// Opens `url` in a browser and waits for the opener: `Err(why)` when it failed.
///
/// With `$BROWSER` (`browser`), its `:`-separated commands are tried in turn as the `webbrowser` crate reads
/// them (`%s` is the URL, else the URL is the last argument; `%c` is `:`, `%%` is `%`), output
/// discarded, until one exits successfully; `webbrowser` itself cannot tell, as it does not wait
/// for them. Without `$BROWSER`, `webbrowser` (xdg-open and the desktop's openers) and its error.
fn open_in_browser(browser: &str, url: &str) -> std::result::Result<(), String> {
    let entries: Vec<&str> = browser
        .split(':')
        .filter(|e| !e.trim().is_empty())
        .collect();
    if entries.is_empty() {
        return webbrowser::open(url).map_err(|e| format!("no browser could be opened: {e}"));
    }
    let mut failures = Vec::new();
    for entry in entries {
        let argv = browser_argv(entry, url);
        let program = &argv[0];
        match std::process::Command::new(program)
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Ok(st) if st.success() => return Ok(()),
            Ok(st) => failures.push(format!("{program} {st}")),
            Err(e) => failures.push(format!("{program} could not run: {e}")),
        }
    }
    Err(format!("$BROWSER failed: {}", failures.join("; ")))
}

/// One `$BROWSER` entry as a command line, as the `webbrowser` crate builds it.
fn browser_argv(entry: &str, url: &str) -> Vec<String> {
    let mut has_url = false;
    let mut argv: Vec<String> = entry
        .split_ascii_whitespace()
        .map(|word| {
            let mut out = String::new();
            let mut chars = word.chars();
            while let Some(c) = chars.next() {
                if c != '%' {
                    out.push(c);
                    continue;
                }
                match chars.next() {
                    Some('s') => {
                        out.push_str(url);
                        has_url = true;
                    }
                    Some('c') => out.push(':'),
                    Some('%') => out.push('%'),
                    Some(other) => {
                        out.push('%');
                        out.push(other);
                    }
                    None => out.push('%'),
                }
            }
            out
        })
        .collect();
    if !has_url {
        argv.push(url.to_string());
    }
    argv
}

/// `keyrack fill`'s question for one missing key, on the terminal: a hidden prompt for a value
/// (an empty line skips it), or a yes/no for the guided AWS SSO set-up, which then runs here.
/// `refused` is why the previous answer for this key was refused.
pub fn fill_answer(
    rack: &keyrack::ops::Rack,
    opts: &fill::FillOptions,
    m: &fill::Missing,
    n: usize,
    of: usize,
    refused: Option<&str>,
) -> fill::Answer {
    use inquire::InquireError;
    let stop_or_skip = |e: InquireError| match e {
        InquireError::OperationInterrupted => fill::Answer::Stop,
        _ => fill::Answer::Skip,
    };
    let at = format!("[{n}/{of}] {}", m.key);
    if m.vault == keyrack::vault::VaultKind::AwsConfig {
        return match inquire::Confirm::new(&format!("{at}: set up an AWS SSO profile now?"))
            .with_default(true)
            .with_help_message(
                "the AWS SSO set-up: portal → browser sign-in → account → role; n skips this key",
            )
            .prompt()
        {
            Ok(true) => guided_profile(rack, opts, m),
            Ok(false) => fill::Answer::Skip,
            Err(e) => stop_or_skip(e),
        };
    }
    let help = match refused {
        Some(why) => format!("refused: {why} — try again, or press enter to skip"),
        None => format!(
            "env {}, vault {}; input is hidden; enter on an empty line skips it, Ctrl-C stops",
            m.env, m.vault
        ),
    };
    match inquire::Password::new(&format!("{at}:"))
        .without_confirmation()
        .with_display_mode(inquire::PasswordDisplayMode::Hidden)
        .with_help_message(&help)
        .prompt()
    {
        Ok(v) if v.is_empty() => fill::Answer::Skip,
        Ok(v) => fill::Answer::Value(Secret::new(v)),
        Err(e) => stop_or_skip(e),
    }
}

/// The guided AWS SSO set-up for a key `fill` is missing.
fn guided_profile(
    rack: &keyrack::ops::Rack,
    opts: &fill::FillOptions,
    m: &fill::Missing,
) -> fill::Answer {
    let set_opts = fill::set_options(opts, m);
    let chosen = keyrack::ops::set::plan(rack, &set_opts).and_then(|plan| {
        if plan.needs_profile {
            crate::aws_wizard::run(rack, &plan, &set_opts.aws, set_opts.login)
        } else {
            Ok(set_opts.aws.clone())
        }
    });
    match chosen {
        Ok(flags) => fill::Answer::Profile(flags),
        Err(keyrack::Error::Cancelled { .. }) => fill::Answer::Stop,
        Err(e) => fill::Answer::Failed(e),
    }
}

/// How a notice looks on stderr.
/// A notice as stderr shows it (ASCII and no emoji unless stderr is a terminal and colour is
/// on, like every other tree).
fn shown(notice: &Notice) -> String {
    shown_with(notice, Style::for_stderr())
}

fn shown_with(notice: &Notice, style: Style) -> String {
    match notice {
        Notice::SignIn { start_url, step } => {
            let lines = match step {
                SignInStep::Browser { url } => vec![
                    Node::new(format!("open: {url}")),
                    Node::new("(the browser opens it; if it does not, open the link yourself)"),
                ],
                SignInStep::DeviceCode { url, code } => vec![
                    Node::new(format!("open: {url}")),
                    Node::new(format!("code: {code}")),
                ],
                SignInStep::AwsCli { profile } => vec![Node::new(format!(
                    "running: aws sso login --profile {profile}"
                ))],
            };
            tree(
                style,
                &format!("sign-in: {start_url}"),
                &lines,
            )
        }
        Notice::SkippedPortalEntry {
            entry,
            name,
            reason,
        } => {
            let what = match entry {
                PortalEntry::Account => "an account",
                PortalEntry::Role => "a role",
            };
            let name = name.as_ref().map(|n| format!(" ({n})")).unwrap_or_default();
            format!("keyrack: skipped {what} the portal listed{name}: {reason}\n")
        }
        Notice::BrowserFailed { reason } => format!(
            "keyrack: the browser did not open ({reason}); sign in with the device code below instead\n"
        ),
        Notice::WrongSsoUser { seen, expected } => format!(
            "keyrack: signed in as {seen}, expected {expected}; that session was signed out — sign in as {expected}\n"
        ),
    }
}

/// stderr as indicatif's terminal, written through [`ui::err`] (a failed write is ignored, never
/// a panic). Only used when stderr is a terminal.
#[derive(Debug)]
struct Stderr;

impl indicatif::TermLike for Stderr {
    fn width(&self) -> u16 {
        80
    }

    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        cursor(n, 'A');
        Ok(())
    }

    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        cursor(n, 'B');
        Ok(())
    }

    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        cursor(n, 'C');
        Ok(())
    }

    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        cursor(n, 'D');
        Ok(())
    }

    fn write_line(&self, s: &str) -> std::io::Result<()> {
        ui::err(format!("{s}\n"));
        Ok(())
    }

    fn write_str(&self, s: &str) -> std::io::Result<()> {
        ui::err(s);
        Ok(())
    }

    fn clear_line(&self) -> std::io::Result<()> {
        ui::err("\r\x1b[2K");
        Ok(())
    }

    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
}

fn cursor(n: usize, direction: char) {
    if n > 0 {
        ui::err(format!("\x1b[{n}{direction}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_notices_keep_their_tree() {
        // the same on every stream and with --color never
        crate::render::init(crate::cli::ColorChoice::Never);
        let rich = Style::unicode_plain();
        let browser = shown_with(
            &Notice::SignIn {
                start_url: "https://d-1.awsapps.com/start".into(),
                step: SignInStep::Browser {
                    url: "http://x/authorize".into(),
                },
            },
            rich,
        );
        assert_eq!(
            browser,
            "🔐 keyrack sign-in: https://d-1.awsapps.com/start\n   ├─ open: http://x/authorize\n   └─ (the browser opens it; if it does not, open the link yourself)\n"
        );
        let device = shown_with(
            &Notice::SignIn {
                start_url: "u".into(),
                step: SignInStep::DeviceCode {
                    url: "v".into(),
                    code: "ABCD-EFGH".into(),
                },
            },
            rich,
        );
        let plain = shown_with(
            &Notice::SignIn {
                start_url: "u".into(),
                step: SignInStep::DeviceCode {
                    url: "v".into(),
                    code: "ABCD-EFGH".into(),
                },
            },
            Style::plain(),
        );
        assert_eq!(
            plain,
            "keyrack sign-in: u\n   |- open: v\n   `- code: ABCD-EFGH\n"
        );
        assert_eq!(
            device,
            "🔐 keyrack sign-in: u\n   ├─ open: v\n   └─ code: ABCD-EFGH\n"
        );
        let skipped = shown(&Notice::SkippedPortalEntry {
            entry: PortalEntry::Account,
            name: Some("Evil".into()),
            reason: "bad id".into(),
        });
        assert_eq!(
            skipped,
            "keyrack: skipped an account the portal listed (Evil): bad id\n"
        );
    }

    #[test]
    fn browser_entries_read_as_the_webbrowser_crate_reads_them() {
        assert_eq!(
            browser_argv("/bin/false", "http://u"),
            ["/bin/false", "http://u"]
        );
        assert_eq!(
            browser_argv("firefox --new-tab %s", "http://u"),
            ["firefox", "--new-tab", "http://u"]
        );
        assert_eq!(
            browser_argv("open --url=%s%% -x%c", "http://u"),
            ["open", "--url=http://u%", "-x:"]
        );
    }

    #[test]
    fn a_failing_browser_command_is_reported_not_ignored() {
        let why =
            open_in_browser("/bin/false:/nonexistent/browser", "http://127.0.0.1:9/").unwrap_err();
        assert!(why.contains("/bin/false exit status: 1"), "{why}");
        assert!(why.contains("/nonexistent/browser could not run"), "{why}");
        assert_eq!(
            open_in_browser("/bin/false:/bin/true", "http://127.0.0.1:9/"),
            Ok(())
        );
    }
}
