//! [`Scripted`]: a fake of the library's [`Interact`] — the person at the keyboard, played from
//! a script. It answers questions in order, "opens" links the way a browser signed in to AWS
//! does (`curl -L`, in the background: the sign-in's loopback listener must keep running), and
//! records everything it was shown or asked, in order ([`Event`]).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};

use keyrack::interact::{
    Answer, ChildOutput, Interact, Notice, OpenOutcome, Progress, Question, Unanswered,
};
use keyrack::secret::Secret;

/// What the scripted person was shown or asked, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A question with this prompt.
    Asked(String),
    /// A link handed over.
    Opened(String),
    /// A progress display started with this message.
    Waiting(String),
    /// The progress display ended.
    DoneWaiting,
    /// A notice.
    Saw(Notice),
}

/// One scripted answer, used in order by `select`, `text` and `confirm`.
#[derive(Debug, Clone)]
pub enum Reply {
    /// The first option containing this text.
    Pick(String),
    /// An empty line: the default.
    Enter,
    /// This text.
    Type(String),
    /// Yes or no.
    Confirm(bool),
}

/// A scripted person (see the module docs). Without a scripted answer a question is
/// [`Unanswered::Failed`]; without a secret, `secret` is [`Unanswered::Cancelled`].
#[derive(Debug, Default)]
pub struct Scripted {
    browser: bool,
    secret: Option<String>,
    passphrase: Option<String>,
    replies: Mutex<VecDeque<Reply>>,
    log: Arc<Mutex<Vec<Event>>>,
}

impl Scripted {
    /// Nobody has a browser here (sign-ins use the device code; the person still follows the
    /// link, as on a phone).
    pub fn new() -> Self {
        Self::default()
    }

    /// A browser can be opened here.
    pub fn with_browser(mut self) -> Self {
        self.browser = true;
        self
    }

    /// Types this secret when asked for one.
    pub fn with_secret(mut self, value: &str) -> Self {
        self.secret = Some(value.into());
        self
    }

    /// Types this passphrase when asked for one.
    pub fn with_passphrase(mut self, value: &str) -> Self {
        self.passphrase = Some(value.into());
        self
    }

    /// Answers questions with these replies, in order.
    pub fn replying(self, replies: impl IntoIterator<Item = Reply>) -> Self {
        *self.replies.lock().unwrap() = replies.into_iter().collect();
        self
    }

    /// Everything so far.
    pub fn log(&self) -> Vec<Event> {
        self.log.lock().unwrap().clone()
    }

    /// The notices so far.
    pub fn notices(&self) -> Vec<Notice> {
        self.log()
            .into_iter()
            .filter_map(|e| match e {
                Event::Saw(n) => Some(n),
                _ => None,
            })
            .collect()
    }

    /// The prompts asked so far.
    pub fn asked(&self) -> Vec<String> {
        self.log()
            .into_iter()
            .filter_map(|e| match e {
                Event::Asked(p) => Some(p),
                _ => None,
            })
            .collect()
    }

    /// Scripted answers not used.
    pub fn unused_replies(&self) -> usize {
        self.replies.lock().unwrap().len()
    }

    fn record(&self, e: Event) {
        self.log.lock().unwrap().push(e);
    }

    fn next(&self, prompt: &str) -> Answer<Reply> {
        self.record(Event::Asked(prompt.into()));
        self.replies
            .lock()
            .unwrap()
            .pop_front()
            .ok_or_else(|| Unanswered::Failed(format!("no scripted answer for '{prompt}'")))
    }
}

impl Interact for Scripted {
    fn secret(&self, key: &str) -> Answer<Secret> {
        self.record(Event::Asked(format!("{key}:")));
        self.secret
            .clone()
            .map(Secret::new)
            .ok_or(Unanswered::Cancelled)
    }

    fn passphrase(&self, path: &Path, _attempt: u32) -> Answer<Secret> {
        self.record(Event::Asked(format!("passphrase for {}:", path.display())));
        self.passphrase
            .clone()
            .map(Secret::new)
            .ok_or(Unanswered::Cancelled)
    }

    fn select(&self, prompt: &str, options: &[String]) -> Answer<usize> {
        match self.next(prompt)? {
            Reply::Pick(text) => options
                .iter()
                .position(|o| o.contains(&text))
                .ok_or_else(|| Unanswered::Failed(format!("'{text}' is not in {options:?}"))),
            other => Err(Unanswered::Failed(format!(
                "'{prompt}' is a pick, the script says {other:?}"
            ))),
        }
    }

    fn confirm(&self, prompt: &str, default: bool) -> Answer<bool> {
        match self.next(prompt)? {
            Reply::Confirm(yes) => Ok(yes),
            Reply::Enter => Ok(default),
            other => Err(Unanswered::Failed(format!(
                "'{prompt}' is a yes/no, the script says {other:?}"
            ))),
        }
    }

    fn text(&self, q: &Question<'_>) -> Answer<String> {
        let answer = match self.next(q.prompt)? {
            Reply::Enter => q.default.unwrap_or_default().to_string(),
            Reply::Type(t) => t,
            other => {
                return Err(Unanswered::Failed(format!(
                    "'{}' is text, the script says {other:?}",
                    q.prompt
                )))
            }
        };
        if let Some(check) = q.check {
            // a real prompt would ask again; a script that types a refused answer is a bug
            check(answer.trim()).map_err(Unanswered::Failed)?;
        }
        Ok(answer)
    }

    fn can_open_url(&self) -> bool {
        self.browser
    }

    fn open_url(&self, url: &str) -> Answer<OpenOutcome> {
        self.record(Event::Opened(url.into()));
        let url = url.to_string();
        std::thread::spawn(move || {
            let _ = std::process::Command::new("curl")
                .args(["-s", "-L", "--max-time", "20", "-o", "/dev/null", &url])
                .status();
        });
        Ok(if self.browser {
            OpenOutcome::Requested(keyrack::interact::Opening::new())
        } else {
            OpenOutcome::NoBrowser
        })
    }

    fn progress(&self, message: &str) -> Progress {
        self.record(Event::Waiting(message.into()));
        let log = Arc::clone(&self.log);
        Progress::new(move || log.lock().unwrap().push(Event::DoneWaiting))
    }

    fn notice(&self, notice: &Notice) {
        self.record(Event::Saw(notice.clone()));
    }

    fn child_output(&self) -> Answer<ChildOutput> {
        Err(Unanswered::NoTerminal)
    }
}
