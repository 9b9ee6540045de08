//! The controlling terminal (`/dev/tty`), for answers that must come from the person at the
//! keyboard even when stdin is a pipe — as ssh, age and gpg ask for a passphrase.
//!
//! [`Tty::open`] fails only when the process has no controlling terminal at all (a daemon, a
//! CI job, `setsid`); then the caller fails with the flags that avoid the prompt.
//!
//! [`Tty::read_hidden`] turns echo off and reads one line byte by byte (canonical mode and
//! signal keys off, so Ctrl-C is seen as a key, not a signal that would leave echo off):
//! Enter ends the answer, Backspace and Ctrl-U edit it, Ctrl-C — or Ctrl-D / end of input on an
//! empty line — cancels. The terminal's settings are restored however the read ends.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;

use nix::sys::termios::{self, LocalFlags, SetArg, SpecialCharacterIndices, Termios};
use zeroize::Zeroizing;

/// The longest answer read (a passphrase, a pasted secret).
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The controlling terminal, open for reading and writing.
pub struct Tty {
    file: File,
}

/// How a hidden read ended without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupted {
    /// Ctrl-C, or Ctrl-D / end of input on an empty line.
    Cancelled,
}

impl Tty {
    /// Opens `/dev/tty`; `None` when the process has no controlling terminal.
    pub fn open() -> Option<Tty> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .ok()
            .map(|file| Tty { file })
    }

    /// Writes `text` to the terminal (prompts, "try again"); failures are ignored (the read
    /// that follows reports a terminal that went away).
    pub fn say(&mut self, text: &str) {
        let _ = self.file.write_all(text.as_bytes());
        let _ = self.file.flush();
    }

    /// Shows `prompt` and reads one line without echo.
    pub fn read_hidden(
        &mut self,
        prompt: &str,
    ) -> std::result::Result<Zeroizing<String>, Interrupted> {
        // Echo goes off before the prompt shows, so nothing typed after it is ever echoed (and
        // nothing typed ahead of it is taken as the answer).
        let saved = termios::tcgetattr(self.file.as_fd()).ok();
        if let Some(t) = &saved {
            let mut raw: Termios = t.clone();
            raw.local_flags
                .remove(LocalFlags::ECHO | LocalFlags::ICANON | LocalFlags::ISIG);
            raw.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
            raw.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
            let _ = termios::tcsetattr(self.file.as_fd(), SetArg::TCSAFLUSH, &raw);
        }
        self.say(prompt);
        let answer = self.read_line();
        if let Some(t) = &saved {
            let _ = termios::tcsetattr(self.file.as_fd(), SetArg::TCSADRAIN, t);
        }
        self.say("\n");
        answer
    }

    fn read_line(&mut self) -> std::result::Result<Zeroizing<String>, Interrupted> {
        let mut bytes: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::new());
        let mut b = [0u8; 1];
        loop {
            match self.file.read(&mut b) {
                Ok(0) | Err(_) if bytes.is_empty() => return Err(Interrupted::Cancelled),
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            match b[0] {
                b'\r' | b'\n' => break,
                0x03 => return Err(Interrupted::Cancelled), // Ctrl-C
                0x04 if bytes.is_empty() => return Err(Interrupted::Cancelled), // Ctrl-D
                0x04 => break,
                0x7f | 0x08 => {
                    // Backspace: drop one character (its UTF-8 continuation bytes too)
                    while let Some(last) = bytes.pop() {
                        if last & 0xC0 != 0x80 {
                            break;
                        }
                    }
                }
                0x15 => bytes.clear(), // Ctrl-U
                c if bytes.len() < MAX_ANSWER_BYTES => bytes.push(c),
                _ => {}
            }
        }
        Ok(Zeroizing::new(String::from_utf8_lossy(&bytes).into_owned()))
    }
}
