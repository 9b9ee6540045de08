//! The `os.keychain` vault through the real binary, against a real GNOME Keyring (the Secret
//! Service) on a private D-Bus session bus per test (`keyrack_testkit::secret_service`).
#![cfg(target_os = "linux")]

use keyrack_testkit::secret_service::SessionBus;
use keyrack_testkit::{stderr, stdout, Sandbox};
use serde_json::Value;

struct World {
    sb: Sandbox,
}

fn world() -> World {
    let sb = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    sb.init();
    sb.manifest("org: acme\nenv.test:\n  - KC_KEY\n  - PLAIN\n");
    World { sb }
}

impl World {
    /// A bus in the sandbox (`n` tells successive buses apart).
    fn bus(&self, n: u32) -> SessionBus {
        SessionBus::start(&self.sb.root.join(format!("bus{n}")))
    }

    /// A bus with the keyring on it (the keyring's files live in the sandbox's HOME).
    fn keyring(&self, n: u32) -> SessionBus {
        let bus = self.bus(n);
        bus.start_keyring(&self.sb.home, &self.sb.root.join(format!("gk-run{n}")));
        bus
    }

    fn set(&self, key: &str, value: &str) -> (i32, Value) {
        let o = self.sb.run(
            &[
                "--json",
                "set",
                "--key",
                key,
                "--env",
                "test",
                "--vault",
                "os.keychain",
            ],
            value,
        );
        let v: Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{e}: {} / {}", stdout(&o), stderr(&o)));
        (o.status.code().unwrap(), v)
    }

    fn unlock(&self) -> (i32, Vec<Value>) {
        let (code, v) = self.sb.json(&["unlock", "--env", "test"]);
        (code, v["keys"].as_array().cloned().unwrap_or_default())
    }
}

fn row<'a>(rows: &'a [Value], key: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["key"] == key)
        .unwrap_or_else(|| panic!("no row for {key}: {rows:?}"))
}

#[test]
fn set_unlock_get_del_round_trip_through_the_os_keychain() {
    let mut w = world();
    let bus = w.keyring(1);
    w.sb.env("DBUS_SESSION_BUS_ADDRESS", bus.address());
    let (code, v) = w.set("KC_KEY", "keychain-value-1");
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["vault"], "os.keychain");
    assert_eq!(v["mech"], "replica");
    assert_eq!(v["roundTrip"], true);
    // interop: the desktop's own tools see the item
    assert_eq!(
        bus.lookup("acme.test.KC_KEY").as_deref(),
        Some("keychain-value-1")
    );

    w.sb.set("PLAIN", "test", "plain-value");
    let (code, rows) = w.unlock();
    assert_eq!(code, 0, "{rows:?}");
    assert_eq!(row(&rows, "KC_KEY")["vault"], "os.keychain");
    assert_eq!(w.sb.get_value("KC_KEY", "test").1, "keychain-value-1");

    // a re-set replaces the item (one item, the new value), values byte for byte
    let odd = "line1\nline2 'q' \"dq\" ünïcødé \\ $HOME";
    let (code, v) = w.set("KC_KEY", &format!("{odd}\n"));
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["replaced"], true);
    assert_eq!(bus.lookup("acme.test.KC_KEY").as_deref(), Some(odd));
    let all = bus.secret_tool(&["search", "--all", "service", "keyrack"]);
    assert_eq!(
        stdout(&all)
            .matches("attribute.username = acme.test.KC_KEY")
            .count()
            + stderr(&all)
                .matches("attribute.username = acme.test.KC_KEY")
                .count(),
        1,
        "one item: {} {}",
        stdout(&all),
        stderr(&all)
    );
    assert_eq!(w.unlock().0, 0);
    assert_eq!(w.sb.get_value("KC_KEY", "test").1, odd);

    // del destroys the item
    let (code, v) = w.sb.json(&["del", "--key", "KC_KEY", "--env", "test"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["secretDestroyed"], true);
    assert_eq!(bus.lookup("acme.test.KC_KEY"), None);
    let (_, rows) = w.unlock();
    assert_eq!(row(&rows, "KC_KEY")["status"], "absent");
}

#[test]
fn an_item_removed_behind_keyracks_back_is_lost_not_an_error() {
    let mut w = world();
    let bus = w.keyring(1);
    w.sb.env("DBUS_SESSION_BUS_ADDRESS", bus.address());
    assert_eq!(w.set("KC_KEY", "v").0, 0);
    let out = bus.secret_tool(&[
        "clear",
        "service",
        "keyrack",
        "username",
        "acme.test.KC_KEY",
    ]);
    assert!(out.status.success());
    let (code, rows) = w.unlock();
    assert_eq!(code, 2);
    let r = row(&rows, "KC_KEY");
    assert_eq!(r["status"], "lost", "{r}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("account acme.test.KC_KEY"),
        "{r}"
    );
    assert!(
        r["fix"]
            .as_str()
            .unwrap()
            .starts_with("keyrack set --key KC_KEY"),
        "{r}"
    );
}

#[test]
fn no_secret_service_fails_only_that_keys_row_and_the_keyring_comes_back() {
    let mut w = world();
    {
        let bus = w.keyring(1);
        w.sb.env("DBUS_SESSION_BUS_ADDRESS", bus.address());
        assert_eq!(w.set("KC_KEY", "survives-restarts").0, 0);
        w.sb.set("PLAIN", "test", "plain-value");
    }

    // a session bus with no Secret Service on it
    let empty = w.bus(2);
    w.sb.env("DBUS_SESSION_BUS_ADDRESS", empty.address());
    let (code, rows) = w.unlock();
    assert_eq!(code, 2, "{rows:?}");
    let r = row(&rows, "KC_KEY");
    assert_eq!(r["status"], "errored", "{r}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("os.keychain: the OS keychain cannot be reached"),
        "{r}"
    );
    assert!(
        r["fix"]
            .as_str()
            .unwrap()
            .contains("start a Secret Service, e.g. gnome-keyring"),
        "{r}"
    );
    assert_eq!(row(&rows, "PLAIN")["status"], "granted");
    assert_eq!(w.sb.get_value("PLAIN", "test").1, "plain-value");

    // set refuses as well, and keeps nothing
    let (code, v) = w.set("KC_KEY", "never-kept");
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["error"]["code"], "vault_unavailable");
    assert!(
        v["error"]["fix"]
            .as_str()
            .unwrap()
            .contains("gnome-keyring"),
        "{v}"
    );

    // no session bus at all
    w.sb.env(
        "DBUS_SESSION_BUS_ADDRESS",
        "unix:path=/nonexistent/keyrack-test-bus",
    );
    let (_, rows) = w.unlock();
    let r = row(&rows, "KC_KEY");
    assert_eq!(r["status"], "errored", "{r}");
    assert!(
        r["fix"]
            .as_str()
            .unwrap()
            .contains("start a Secret Service"),
        "{r}"
    );

    // the keyring back (same files): the value is still there
    drop(empty);
    let bus = w.keyring(3);
    w.sb.env("DBUS_SESSION_BUS_ADDRESS", bus.address());
    let (code, rows) = w.unlock();
    assert_eq!(code, 0, "{rows:?}");
    assert_eq!(w.sb.get_value("KC_KEY", "test").1, "survives-restarts");
}

#[test]
fn a_locked_keyring_fails_that_keys_row_with_the_unlock_fix() {
    let mut w = world();
    let bus = w.keyring(1);
    w.sb.env("DBUS_SESSION_BUS_ADDRESS", bus.address());
    assert_eq!(w.set("KC_KEY", "behind-the-lock").0, 0);
    w.sb.set("PLAIN", "test", "plain-value");
    bus.lock_keyring();
    let started = std::time::Instant::now();
    let (code, rows) = w.unlock();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "no prompt hangs headless"
    );
    assert_eq!(code, 2, "{rows:?}");
    let r = row(&rows, "KC_KEY");
    assert_eq!(r["status"], "errored", "{r}");
    assert!(r["reason"].as_str().unwrap().contains("locked"), "{r}");
    assert!(
        r["fix"]
            .as_str()
            .unwrap()
            .contains("unlock your login keyring"),
        "{r}"
    );
    assert_eq!(row(&rows, "PLAIN")["status"], "granted");
    assert!(!serde_json::to_string(&rows)
        .unwrap()
        .contains("behind-the-lock"));
}
