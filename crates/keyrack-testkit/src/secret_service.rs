//! A private D-Bus session bus per test, optionally with a real GNOME Keyring on it (the Secret
//! Service behind the `os.keychain` vault), that works headless:
//!
//! - `dbus-daemon` runs with a config of our own: it listens in the test's directory and has no
//!   service directories, so nothing is ever auto-started on it (no surprise keyring, no GUI
//!   prompter) and "no Secret Service on the bus" is a state a test can ask for;
//! - `gnome-keyring-daemon --unlock --components=secrets --daemonize` is started on that bus with
//!   the test's `HOME` and `XDG_RUNTIME_DIR` and a password on stdin: it creates (or unlocks) the
//!   `login` keyring there, the default collection, and serves `org.freedesktop.secrets`;
//! - dropping the bus stops `dbus-daemon` (the child this process started); the keyring daemon
//!   exits when its bus goes.
//!
//! Needs the Debian packages `dbus-daemon` (`dbus`), `gnome-keyring` and `libsecret-tools`
//! (`secret-tool`, for checks); `scripts/test.sh` installs them.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The password of the test keyring.
pub const KEYRING_PASSWORD: &str = "keyrack-test-keyring";

/// A private session bus.
pub struct SessionBus {
    child: Child,
    address: String,
    dir: PathBuf,
}

impl SessionBus {
    /// Starts a bus whose socket lives in `dir` (created; keep the path short: sockets are
    /// limited to about 100 bytes).
    pub fn start(dir: &Path) -> SessionBus {
        std::fs::create_dir_all(dir).expect("mkdir bus dir");
        let conf = dir.join("bus.conf");
        std::fs::write(
            &conf,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                dir.display()
            ),
        )
        .expect("write bus.conf");
        let mut child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf.display()))
            .args(["--nofork", "--nopidfile", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon is installed (Debian package dbus-daemon; scripts/test.sh installs it)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("dbus-daemon prints its address");
        let address = line.trim().to_string();
        assert!(
            address.starts_with("unix:"),
            "dbus-daemon address: {address:?}"
        );
        SessionBus {
            child,
            address,
            dir: dir.to_path_buf(),
        }
    }

    /// The bus address, for `DBUS_SESSION_BUS_ADDRESS`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Starts GNOME Keyring's Secret Service on this bus with `home` and `runtime_dir`, its
    /// `login` keyring unlocked with [`KEYRING_PASSWORD`] (created on first use).
    pub fn start_keyring(&self, home: &Path, runtime_dir: &Path) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(runtime_dir).unwrap();
        std::fs::set_permissions(runtime_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let mut child = Command::new("gnome-keyring-daemon")
            .args(["--unlock", "--components=secrets", "--daemonize"])
            .env("HOME", home)
            .env("XDG_RUNTIME_DIR", runtime_dir)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gnome-keyring-daemon is installed (Debian package gnome-keyring; scripts/test.sh installs it)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(KEYRING_PASSWORD.as_bytes())
            .unwrap();
        let st = child.wait().unwrap();
        assert!(st.success(), "gnome-keyring-daemon --daemonize: {st}");
        // Ready when it owns its name on the bus.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.has_secret_service() {
            assert!(
                Instant::now() < deadline,
                "the keyring did not come up on {}",
                self.address
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether `org.freedesktop.secrets` has an owner on this bus.
    pub fn has_secret_service(&self) -> bool {
        let out = Command::new("dbus-send")
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .args([
                "--session",
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                "string:org.freedesktop.secrets",
            ])
            .output()
            .expect("dbus-send is installed (Debian package dbus-bin)");
        String::from_utf8_lossy(&out.stdout).contains("boolean true")
    }

    /// Runs `secret-tool ARGS` against this bus.
    pub fn secret_tool(&self, args: &[&str]) -> std::process::Output {
        Command::new("secret-tool")
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("secret-tool is installed (Debian package libsecret-tools; scripts/test.sh installs it)")
    }

    /// `secret-tool lookup service keyrack username ACCOUNT`: the value, if the item exists.
    pub fn lookup(&self, account: &str) -> Option<String> {
        let out = self.secret_tool(&["lookup", "service", "keyrack", "username", account]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Locks the `login` collection (through the Secret Service's own `Lock`: `secret-tool lock`
    /// hangs on some versions).
    pub fn lock_keyring(&self) {
        let out = Command::new("dbus-send")
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .args([
                "--session",
                "--print-reply",
                "--reply-timeout=5000",
                "--dest=org.freedesktop.secrets",
                "/org/freedesktop/secrets",
                "org.freedesktop.Secret.Service.Lock",
                "array:objpath:/org/freedesktop/secrets/collection/login",
            ])
            .stdin(Stdio::null())
            .output()
            .expect("dbus-send is installed (Debian package dbus-bin)");
        assert!(
            out.status.success()
                && String::from_utf8_lossy(&out.stdout).contains("collection/login"),
            "lock: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The directory the bus lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for SessionBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
