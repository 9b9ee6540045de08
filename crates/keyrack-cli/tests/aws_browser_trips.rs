//! What the browser shows, and when (issue 10, part 2), through the real binary against the
//! loopback fake of AWS, counting **browser authorizations** (PKCE authorize hits plus device
//! approvals) apart from consent pages, in both of the fake's consent modes:
//!
//! - `set` → exactly 1; unlocks while the portal session lives (the encrypted token, or a
//!   refresh) → 0 more; the session ends → the next unlock → exactly 1 more;
//! - the consent page names keyrack's own client (`keyrack`, or `KEYRACK_AWS_CLIENT_NAME`),
//!   never `botocore-client-…`; in [`ConsentMode::EveryAuthorization`] it shows at each trip;
//! - the ~90-day client registration is renewed at a browser authorization that happens anyway
//!   when it has < 14 days left (never a trip of its own), and `status` / `doctor` warn when it
//!   has < 7 days;
//! - a `$BROWSER` that fails (`/bin/false`) switches to the device code at once, not at the
//!   login deadline.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use keyrack_fake_aws::{ConsentMode, FakeAws};
use keyrack_testkit::{stderr, stdout, Sandbox};

const URL: &str = "https://d-1234567890.awsapps.com/start";

const SET_TEST: [&str; 15] = [
    "set",
    "--key",
    "AWS_PROFILE",
    "--env",
    "test",
    "--sso-start-url",
    URL,
    "--sso-region",
    "us-east-1",
    "--account-id",
    "123456789012",
    "--role-name",
    "AdministratorAccess",
    "--profile-name",
    "acme.test",
];

struct World {
    s: Sandbox,
    fake: FakeAws,
    browser_log: PathBuf,
}

impl World {
    /// A sandbox whose `$BROWSER` follows the authorize redirect as a signed-in person
    /// approving would (curl), against a fake in `mode`.
    fn new(mode: ConsentMode) -> Self {
        let fake = FakeAws::start();
        fake.set_consent_mode(mode);
        let mut s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
        for (k, v) in fake.env() {
            s.env(&k, &v);
        }
        let browser_log = s.root.join("browser.log");
        let script = s.root.join("browser.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$1\" >> {}\nexec curl -s -L --max-time 20 -o /dev/null \"$1\"\n",
                browser_log.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        s.env("BROWSER", script.to_str().unwrap());
        s.manifest("org: acme\nenv.test: []\n");
        s.init();
        World {
            s,
            fake,
            browser_log,
        }
    }

    fn trips(&self) -> u32 {
        self.fake.browser_authorizations()
    }

    fn browser_opens(&self) -> usize {
        std::fs::read_to_string(&self.browser_log)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    fn ok(&self, args: &[&str]) -> Output {
        let o = self.s.run(args, "");
        assert!(o.status.success(), "{args:?}: {}{}", stdout(&o), stderr(&o));
        o
    }

    /// unlock then relock (so each unlock decides again: the encrypted token, a refresh, or a
    /// sign-in).
    fn unlock_relock(&self) {
        self.ok(&["unlock", "--env", "test"]);
        self.ok(&["relock"]);
    }

    fn status_text(&self) -> String {
        stdout(&self.ok(&["status"]))
    }
}

/// The scripted day: set → 1; five unlocks while the session lives (three refreshing 20 s
/// tokens, one refreshed to a long token, one from the encrypted token) → 0 more; the session
/// ends → the next unlock → exactly 1 more.
fn a_day(mode: ConsentMode) -> World {
    let w = World::new(mode);
    // 20 s tokens, under the 5-minute floor: every unlock must refresh
    w.fake.set_token_lifetime(Duration::from_secs(20));
    w.ok(&SET_TEST);
    assert_eq!(w.trips(), 1, "exactly one browser authorization at set");
    assert_eq!(w.browser_opens(), 1);

    w.unlock_relock();
    w.unlock_relock();
    w.unlock_relock();
    w.fake.set_token_lifetime(Duration::from_secs(8 * 3600));
    w.unlock_relock(); // refreshed to a long-lived token
    w.unlock_relock(); // the encrypted token, checked server-side
    assert!(w.fake.refreshes() >= 4, "refreshed: {}", w.fake.refreshes());
    assert_eq!(w.trips(), 1, "no browser while the portal session lives");

    w.fake.revoke_all(); // the portal session ends
    w.ok(&["unlock", "--env", "test"]);
    assert_eq!(w.trips(), 2, "exactly one more browser authorization");
    assert_eq!(w.browser_opens(), 2);
    assert_eq!(w.fake.registrations(), 1, "the registration is kept");
    w
}

#[test]
fn browser_trips_when_consent_shows_for_a_new_client_only() {
    let w = a_day(ConsentMode::NewClient);
    assert_eq!(w.fake.consented_clients(), ["keyrack"]);
}

#[test]
fn browser_trips_when_consent_shows_at_every_authorization() {
    let w = a_day(ConsentMode::EveryAuthorization);
    assert_eq!(
        w.fake.consented_clients(),
        ["keyrack", "keyrack"],
        "one consent page per browser authorization, each naming keyrack, never botocore-client-…"
    );
}

#[test]
fn the_client_name_is_configurable_and_a_new_name_shows_from_the_next_browser_trip() {
    let mut w = World::new(ConsentMode::EveryAuthorization);
    w.s.env("KEYRACK_AWS_CLIENT_NAME", "Acme keyrack");
    w.ok(&SET_TEST);
    assert_eq!(w.fake.consented_clients(), ["Acme keyrack"]);

    // renamed: no browser trip for that alone …
    w.s.env("KEYRACK_AWS_CLIENT_NAME", "Acme CLI");
    w.unlock_relock();
    assert_eq!((w.trips(), w.fake.registrations()), (1, 1));
    // … the next one that happens anyway registers the new name
    w.fake.revoke_all();
    w.unlock_relock();
    assert_eq!((w.trips(), w.fake.registrations()), (2, 2));
    assert_eq!(w.fake.consented_clients(), ["Acme keyrack", "Acme CLI"]);
}

#[test]
fn a_registration_near_expiry_is_renewed_at_a_trip_that_happens_anyway() {
    let w = World::new(ConsentMode::EveryAuthorization);
    // 10 days left: under the 14-day renewal mark, over the 7-day warning
    w.fake
        .set_registration_lifetime(Duration::from_secs(10 * 86400));
    w.ok(&SET_TEST);
    assert!(!w.status_text().contains("warn:"), "{}", w.status_text());
    for _ in 0..3 {
        w.unlock_relock();
    }
    assert_eq!(w.trips(), 1, "renewal never forces a browser trip");
    assert_eq!(w.fake.registrations(), 1);

    w.fake
        .set_registration_lifetime(Duration::from_secs(90 * 86400));
    w.fake.revoke_all();
    w.unlock_relock();
    assert_eq!(w.trips(), 2, "exactly one more trip …");
    assert_eq!(
        w.fake.registrations(),
        2,
        "… and it brought a new registration"
    );
    // the new client refreshes too
    w.fake.set_token_lifetime(Duration::from_secs(120));
    w.fake.revoke_all();
    w.unlock_relock(); // signs in (the session ended), with the kept new registration
    let before = w.fake.refreshes();
    w.unlock_relock();
    assert!(w.fake.refreshes() > before, "refreshed with the new client");
    assert_eq!((w.trips(), w.fake.registrations()), (3, 2));
}

#[test]
fn status_and_doctor_warn_a_week_before_the_registration_expires() {
    let w = World::new(ConsentMode::NewClient);
    w.fake
        .set_registration_lifetime(Duration::from_secs(5 * 86400));
    w.ok(&SET_TEST);
    let warning = format!(
        "warn: keyrack's sign-in client for {URL} expires in 5 days; the next browser sign-in renews it"
    );
    let text = w.status_text();
    assert!(text.contains(&warning), "{text}");
    let (_, v) = w.s.json(&["status"]);
    let warnings = v["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{v}");
    assert_eq!(warnings[0]["startUrl"], URL);
    assert!(warnings[0]["expiresAt"].as_str().unwrap().ends_with('Z'));
    let (_, doctor) = w.s.json(&["doctor"]);
    let check = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "sso_client")
        .unwrap_or_else(|| panic!("an sso_client check: {doctor}"));
    assert_eq!(check["status"], "warn");
    assert_eq!(check["data"]["startUrl"], URL);

    // unlocks while the session lives do not renew it (that would need a browser trip)
    w.unlock_relock();
    assert!(w.status_text().contains(&warning));

    // the session ends: the one trip renews it, and the warning is gone
    w.fake
        .set_registration_lifetime(Duration::from_secs(90 * 86400));
    w.fake.revoke_all();
    w.unlock_relock();
    assert_eq!((w.trips(), w.fake.registrations()), (2, 2));
    let text = w.status_text();
    assert!(!text.contains("warn:"), "{text}");
    let (_, v) = w.s.json(&["status"]);
    assert_eq!(v["warnings"], serde_json::json!([]));
}

#[test]
fn a_failing_browser_falls_back_to_the_device_code_at_once() {
    let mut w = World::new(ConsentMode::EveryAuthorization);
    w.s.env("BROWSER", "/bin/false");
    let start = Instant::now();
    let mut child =
        w.s.std_cmd()
            .args(SET_TEST)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let (mut seen, mut line) = (String::new(), String::new());
    while err.read_line(&mut line).unwrap() > 0 {
        seen.push_str(&line);
        // the person opens the device link on another device (curl visits it: approved)
        if let Some(url) = line.trim().split("open: ").nth(1) {
            if url.contains("/device?user_code=") {
                let ok = std::process::Command::new("curl")
                    .args(["-s", "-f", "--max-time", "10", "-o", "/dev/null", url])
                    .status()
                    .unwrap();
                assert!(ok.success(), "visiting {url}");
            }
        }
        line.clear();
    }
    let o = child.wait_with_output().unwrap();
    let elapsed = start.elapsed();
    assert!(o.status.success(), "{}{seen}", stdout(&o));
    assert!(
        elapsed < Duration::from_secs(20),
        "device code at once, not after the 5-minute login timeout: {elapsed:?}"
    );
    assert!(
        seen.contains("the browser did not open ($BROWSER failed: /bin/false exit status: 1)"),
        "{seen}"
    );
    assert!(
        seen.contains("/device?user_code="),
        "the link is shown: {seen}"
    );
    assert!(
        seen.contains("code: ABCD-"),
        "the user code is shown: {seen}"
    );
    assert_eq!(w.fake.authorizations(), 0, "no PKCE authorize hit");
    assert_eq!(w.fake.device_approvals(), 1);
    assert_eq!(w.trips(), 1, "the device approval is the one browser trip");
    assert_eq!(w.fake.consented_clients(), ["keyrack"]);
}
