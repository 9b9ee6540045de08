//! The library's integration tests: one test binary, one module per area.
//!
//! Several tests set process-wide environment variables (a session bus address, `HOME`, the
//! fake endpoints) for the library code they drive, and the daemon's runtime dir comes from the
//! environment: every test of this binary holds [`env_lock`] for its whole run.

use std::sync::{Mutex, MutexGuard};

mod interact;
mod mech_conformance;
mod vault_conformance;

static ENV: Mutex<()> = Mutex::new(());

/// The process environment, for one test at a time.
pub fn env_lock() -> MutexGuard<'static, ()> {
    ENV.lock().unwrap_or_else(|e| e.into_inner())
}

/// The private session bus of this test process, with a real GNOME Keyring on it, and
/// `DBUS_SESSION_BUS_ADDRESS` pointing at it. One per process: the Secret Service client keeps
/// its first session bus connection for the life of the process. It is started from a thread
/// that never ends, so it goes when the process does.
#[cfg(target_os = "linux")]
pub fn session_bus() -> &'static keyrack_testkit::secret_service::SessionBus {
    use keyrack_testkit::secret_service::SessionBus;
    static BUS: std::sync::OnceLock<SessionBus> = std::sync::OnceLock::new();
    let bus = BUS.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("keychain");
            let _ = std::fs::remove_dir_all(&dir);
            let bus = SessionBus::start_tied(&dir.join("bus"));
            bus.start_keyring(&dir.join("gk-home"), &dir.join("gk-run"));
            tx.send(bus).unwrap();
            loop {
                std::thread::park();
            }
        });
        rx.recv().expect("the session bus started")
    });
    // (edition 2021: set_var is safe; callers hold the env lock)
    std::env::set_var("DBUS_SESSION_BUS_ADDRESS", bus.address());
    bus
}
