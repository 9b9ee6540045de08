//! The SSO session lasts as long as AWS lets it (issue 10, part 1), through the real binary
//! against the loopback fake of AWS, with short access tokens and single-use (rotated) refresh
//! tokens, so a refresh with a spent token — ours or botocore's — would show:
//!
//! - a working day: 2 minutes of 20 s tokens, `aws sts get-caller-identity --profile` (botocore)
//!   working throughout, 5 unlocks, no browser after `set`; the mirror is always valid, is
//!   rewritten atomically (never seen missing or partial, a new inode each time, 0600); the
//!   portal session ends → the grant ends with why → one browser trip at the next unlock. Run in
//!   both consent modes at once (the closing note's figures);
//! - a token botocore refreshed in the mirror is adopted, not overwritten, and kept in the
//!   encrypted copy;
//! - a refused refresh ends the grant, and `status`, `get` and `exec` say why with the fix (human
//!   and `--json`); `status` shows both horizons (the grant's expiry, the session's limit);
//! - transient refresh faults keep the grant until the access token expires;
//! - the client registration's expiry ends the grant;
//! - the daemon (a clean environment) refreshes over HTTPS with the unlock's `AWS_CA_BUNDLE`
//!   and through its `HTTPS_PROXY`.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use keyrack_fake_aws::{ConnectProxy, ConsentMode, FakeAws};
use keyrack_testkit::{stderr, stdout, Sandbox};

use crate::support::aws::{self as aws_world, SET_TEST};

/// sha1("acme"): the token-cache file of the sso-session `acme`.
const MIRROR: &str = "293abb6b76d7791c0732cc517d38c4b5c734b87f.json";
const SLUG: &str = "acme.test.AWS_PROFILE";

struct World {
    s: Sandbox,
    fake: FakeAws,
}

impl World {
    /// A sandbox whose `$BROWSER` approves as a signed-in person would (curl), against a fake
    /// in `mode` issuing access tokens that live `token_secs` and single-use refresh tokens.
    fn new(mode: ConsentMode, token_secs: u64) -> Self {
        Self::with(FakeAws::start(), mode, token_secs)
    }

    fn with(fake: FakeAws, mode: ConsentMode, token_secs: u64) -> Self {
        fake.set_consent_mode(mode);
        fake.set_token_lifetime(Duration::from_secs(token_secs));
        fake.set_single_use_refresh_tokens(true);
        // role credentials under botocore's 15-minute window: every AWS CLI call fetches them
        // again with the SSO token, so each call proves the mirrored token is alive
        fake.set_role_credential_lifetime(Duration::from_secs(600));
        let mut s = aws_world::sandbox(&fake);
        aws_world::install_browser(&mut s, "");
        s.manifest("org: acme\nenv.test: []\n");
        s.init();
        World { s, fake }
    }

    fn trips(&self) -> u32 {
        self.fake.browser_authorizations()
    }

    fn ok(&self, args: &[&str]) -> Output {
        let o = self.s.run(args, "");
        assert!(o.status.success(), "{args:?}: {}{}", stdout(&o), stderr(&o));
        o
    }

    fn mirror(&self) -> PathBuf {
        self.s.home.join(".aws/sso/cache").join(MIRROR)
    }

    fn mirror_json(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.mirror()).expect("the mirror")).unwrap()
    }

    fn aws(&self, args: &[&str]) -> Output {
        Command::new("aws")
            .env_clear()
            .envs(self.s.vars())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .args(args)
            .current_dir(&self.s.repo)
            .output()
            .expect("the AWS CLI v1 is installed (pip install awscli)")
    }

    /// `aws sts get-caller-identity --profile acme.test` through botocore, which must work.
    fn caller_identity(&self) {
        let o = self.aws(&[
            "sts",
            "get-caller-identity",
            "--profile",
            "acme.test",
            "--output",
            "json",
        ]);
        assert!(o.status.success(), "aws cli: {}{}", stdout(&o), stderr(&o));
        assert!(stdout(&o).contains("assumed-role/AdministratorAccess/alice@example.com"));
    }

    fn status_json(&self) -> serde_json::Value {
        let (code, v) = self.s.json(&["status"]);
        assert_eq!(code, 0, "{v}");
        v
    }

    /// The daemon's record of how the grant of `SLUG` ended (`ended` kind only).
    fn ended(&self) -> Option<serde_json::Value> {
        self.status_json()["ended"]
            .as_array()?
            .iter()
            .find(|e| e["slug"] == SLUG && e["why"]["kind"] == "ended")
            .cloned()
    }

    fn granted(&self) -> bool {
        self.status_json()["keys"].as_array().is_some_and(|k| {
            k.iter()
                .any(|r| r["slug"] == SLUG && r["status"] == "granted")
        })
    }

    fn wait_until_ended(&self, within: Duration) -> serde_json::Value {
        let deadline = Instant::now() + within;
        loop {
            if let Some(e) = self.ended() {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "the grant did not end within {within:?}: {}",
                self.status_json()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether process `pid` runs (a zombie nobody reaped yet does not).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().to_string())
        })
        .is_some_and(|rest| !rest.starts_with('Z') && !rest.starts_with('X'))
}

fn sleep_until(t: Instant) {
    if let Some(d) = t.checked_duration_since(Instant::now()) {
        std::thread::sleep(d);
    }
}

/// What a reader of the mirror saw while the day ran (it reads every 20 ms, as any AWS tool
/// might at any moment).
#[derive(Default, Debug)]
struct MirrorWatch {
    reads: u64,
    missing: u64,
    unparsable: u64,
    expired: u64,
    wrong_mode: u64,
    inodes: std::collections::BTreeSet<u64>,
    tokens: std::collections::BTreeSet<String>,
}

fn watch_mirror(
    path: PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<MirrorWatch> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    std::thread::spawn(move || {
        let mut w = MirrorWatch::default();
        while !stop.load(std::sync::atomic::Ordering::Acquire) {
            w.reads += 1;
            match (std::fs::metadata(&path), std::fs::read(&path)) {
                (Ok(meta), Ok(bytes)) => {
                    w.inodes.insert(meta.ino());
                    if meta.permissions().mode() & 0o777 != 0o600 {
                        w.wrong_mode += 1;
                    }
                    match serde_json::from_slice::<serde_json::Value>(&bytes) {
                        Ok(v) => {
                            w.tokens
                                .insert(v["accessToken"].as_str().unwrap_or("").to_string());
                            let exp: jiff::Timestamp =
                                v["expiresAt"].as_str().unwrap_or("").parse().unwrap();
                            // whole seconds in the file: a second of slack
                            if exp + jiff::SignedDuration::from_secs(1) < jiff::Timestamp::now() {
                                w.expired += 1;
                            }
                        }
                        Err(_) => w.unparsable += 1,
                    }
                }
                _ => w.missing += 1,
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        w
    })
}

/// The browser-authorization figures of one scripted day.
#[derive(Debug)]
struct DayFigures {
    mode: ConsentMode,
    at_set: u32,
    during_the_day: u32,
    after_session_end: u32,
    keyrack_refreshes: usize,
    botocore_refreshes: usize,
    refused_refreshes: u32,
    mirror_versions: usize,
    aws_cli_calls: u32,
    consents: usize,
}

/// set → 5 unlocks over 2 minutes of 20 s tokens, botocore calls in between (each after a
/// stretch the daemon alone kept the token alive) → the portal session ends → re-unlock.
fn a_day(mode: ConsentMode) -> DayFigures {
    let w = World::new(mode, 20);
    w.ok(&SET_TEST);
    let at_set = w.trips();
    assert_eq!(at_set, 1, "one browser authorization at set");

    let start = Instant::now();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut watcher = None;
    let mut calls = 0;
    for i in 0..5u32 {
        sleep_until(start + Duration::from_secs(30) * i);
        let o = w.ok(&["unlock", "--env", "test"]);
        assert!(stdout(&o).contains("granted"), "{}", stdout(&o));
        if watcher.is_none() {
            watcher = Some(watch_mirror(w.mirror(), std::sync::Arc::clone(&stop)));
        }
        // 25 s after an unlock (more than a token's life): only the daemon kept it alive
        if i < 4 {
            sleep_until(start + Duration::from_secs(30) * i + Duration::from_secs(25));
        }
        w.caller_identity();
        calls += 1;
        assert!(w.granted(), "the grant lives on: {}", w.status_json());
    }
    stop.store(true, std::sync::atomic::Ordering::Release);
    let seen = watcher.unwrap().join().unwrap();
    assert!(start.elapsed() >= Duration::from_secs(120));
    let during = w.trips() - at_set;
    assert_eq!(during, 0, "no browser while the portal session lives");
    assert_eq!(
        (seen.missing, seen.unparsable, seen.expired, seen.wrong_mode),
        (0, 0, 0, 0),
        "the mirror was always there, whole, valid and 0600: {seen:?}"
    );
    // each rewrite (ours: temp + rename; botocore's too) is a new file
    assert!(
        seen.inodes.len() >= 10 && seen.tokens.len() >= 10,
        "{seen:?}"
    );
    let refused_refreshes = w.fake.refused_refreshes();
    let keyrack_refreshes = w.fake.keyrack_refreshes();
    assert!(
        keyrack_refreshes >= 10,
        "refreshed by keyrack: {keyrack_refreshes}"
    );
    let botocore_refreshes = w.fake.botocore_refreshes();
    assert!(
        botocore_refreshes >= 1,
        "botocore refreshed too (and was adopted)"
    );
    let leftovers: Vec<_> = std::fs::read_dir(w.mirror().parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, [MIRROR], "no temp files left");

    // the portal session ends: the next refresh is refused, the grant ends and says why
    w.fake.end_sessions();
    let ended = w.wait_until_ended(Duration::from_secs(20));
    let reason = ended["reason"].as_str().unwrap();
    assert!(
        reason.contains("the SSO session ended at ")
            && reason.contains("AWS refused to refresh its token (InvalidGrantException)"),
        "{ended}"
    );
    assert!(!w.mirror().exists(), "the mirror went with the grant");
    let o = w.aws(&["sts", "get-caller-identity", "--profile", "acme.test"]);
    assert!(!o.status.success(), "botocore has no token any more");

    w.ok(&["unlock", "--env", "test"]);
    let after = w.trips() - at_set - during;
    assert_eq!(after, 1, "one browser authorization once the session ended");
    w.caller_identity();
    DayFigures {
        mode,
        at_set,
        during_the_day: during,
        after_session_end: after,
        keyrack_refreshes,
        botocore_refreshes,
        refused_refreshes,
        mirror_versions: seen.inodes.len(),
        aws_cli_calls: calls,
        consents: w.fake.consents(),
    }
}

/// The one long test: a scripted day in each consent mode, both at once (about 2.5 minutes).
#[test]
fn a_working_day_of_20s_tokens_needs_the_browser_at_set_and_after_the_session_ends_only() {
    let every = std::thread::spawn(|| a_day(ConsentMode::EveryAuthorization));
    let first = a_day(ConsentMode::NewClient);
    let every = every.join().unwrap();
    for f in [&first, &every] {
        eprintln!(
            "scripted day ({:?} consent): browser authorizations {} at set, {} over 5 unlocks and {} AWS CLI calls in 2 minutes of 20 s tokens, {} after the session ended; refreshes: {} by keyrack, {} by botocore (adopted), {} refused before the session ended; {} versions of the mirror seen; consent pages {}",
            f.mode,
            f.at_set,
            f.during_the_day,
            f.aws_cli_calls,
            f.after_session_end,
            f.keyrack_refreshes,
            f.botocore_refreshes,
            f.refused_refreshes,
            f.mirror_versions,
            f.consents
        );
        assert_eq!(
            (f.at_set, f.during_the_day, f.after_session_end),
            (1, 0, 1),
            "{f:?}"
        );
    }
    assert_eq!(first.consents, 1, "new-client mode: consent once");
    assert_eq!(
        every.consents, 2,
        "every-authorization mode: at each browser trip"
    );
}

#[test]
fn a_token_botocore_refreshed_in_the_mirror_is_adopted_not_overwritten() {
    let w = World::new(ConsentMode::NewClient, 14);
    w.ok(&SET_TEST);
    w.ok(&["unlock", "--env", "test"]);
    let unlocked = Instant::now();
    let ours = w.mirror_json()["accessToken"].clone();
    // botocore refreshes a token with < 15 min left: it gets a long one now
    w.fake.set_token_lifetime(Duration::from_secs(3600));
    w.caller_identity();
    assert_eq!(
        w.fake.botocore_refreshes(),
        1,
        "botocore refreshed in the mirror"
    );
    let botocore = w.mirror_json()["accessToken"].clone();
    assert_ne!(botocore, ours);
    // past our token's refresh time and its expiry: the daemon adopted botocore's token (with
    // its rotated refresh token) instead of refreshing a spent one or overwriting the mirror
    sleep_until(unlocked + Duration::from_secs(16));
    assert_eq!(w.mirror_json()["accessToken"], botocore, "not overwritten");
    assert_eq!(
        w.fake.refused_refreshes(),
        0,
        "no spent refresh token was used"
    );
    assert!(w.granted(), "{}", w.status_json());
    w.caller_identity();
    // the encrypted copy holds it too: the next unlock neither refreshes nor signs in
    let refreshes = w.fake.refreshes();
    w.ok(&["relock"]);
    w.ok(&["unlock", "--env", "test"]);
    assert_eq!(
        w.fake.refreshes(),
        refreshes,
        "the adopted token was kept encrypted"
    );
    assert_eq!(w.trips(), 1);
    assert_eq!(w.fake.refused_refreshes(), 0);
}

#[test]
fn a_refused_refresh_ends_the_grant_and_status_get_and_exec_say_why() {
    let w = World::new(ConsentMode::NewClient, 6);
    w.ok(&SET_TEST);
    w.ok(&["unlock", "--env", "test"]);

    // both horizons: the grant's expiry, and the SSO session's known limit
    let st = w.status_json();
    let row = &st["keys"][0];
    assert_eq!(row["slug"], SLUG);
    assert_eq!(row["limit"]["what"], "sso session", "{st}");
    assert!(row["limit"]["why"]
        .as_str()
        .unwrap()
        .contains("registration expires"));
    let limit: jiff::Timestamp = row["limit"]["at"].as_str().unwrap().parse().unwrap();
    let expires: jiff::Timestamp = row["expiresAt"].as_str().unwrap().parse().unwrap();
    let now = jiff::Timestamp::now();
    assert!(
        expires > now + jiff::SignedDuration::from_hours(8),
        "the grant's horizon is its TTL, not the 6 s token: {row}"
    );
    assert!(
        limit > now + jiff::SignedDuration::from_hours(24 * 80),
        "{row}"
    );
    let human = stdout(&w.ok(&["status"]));
    eprintln!("{human}");
    assert!(
        human.contains("expires: 8h59m left") || human.contains("expires: 9h00m left"),
        "{human}"
    );
    assert!(
        human.contains("sso session: until ")
            && human.contains("at the latest (")
            && human.contains("h left)"),
        "{human}"
    );

    // the daemon refreshed it (the 6 s token is long gone by now)
    let before = w.fake.keyrack_refreshes();
    wait_for("a refresh by the daemon", Duration::from_secs(8), || {
        w.fake.keyrack_refreshes() > before
    });

    w.fake.end_sessions();
    let ended = w.wait_until_ended(Duration::from_secs(10));
    assert!(!w.mirror().exists(), "the mirror goes with the grant");
    let why = "AWS refused to refresh its token (InvalidGrantException)";
    let reason = ended["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("the SSO session ended at ") && reason.ends_with(why),
        "{ended}"
    );
    assert_eq!(ended["fix"], "keyrack unlock --key AWS_PROFILE --env test");
    assert!(ended["why"]["reason"]
        .as_str()
        .unwrap()
        .starts_with("the SSO session ended: "));

    // status: why, and the fix, instead of "nothing unlocked"
    let human = stdout(&w.ok(&["status"]));
    eprintln!("{human}");
    assert!(!human.contains("nothing unlocked"), "{human}");
    assert!(
        human.contains("reason: the SSO session ended at ") && human.contains(why),
        "{human}"
    );
    assert!(
        human.contains("fix: keyrack unlock --key AWS_PROFILE --env test"),
        "{human}"
    );

    // get: human (the problem on stderr, exit 2) and --json
    let o =
        w.s.run(&["get", "--key", "AWS_PROFILE", "--env", "test"], "");
    assert_eq!(o.status.code(), Some(2));
    let text = format!("{}{}", stdout(&o), stderr(&o));
    eprintln!("{text}");
    assert!(
        text.contains("set on this host, not unlocked: the SSO session ended at ")
            && text.contains(why)
            && text.contains("fix: keyrack unlock --key AWS_PROFILE --env test"),
        "{text}"
    );
    let (code, v) = w.s.json(&["get", "--key", "AWS_PROFILE", "--env", "test"]);
    assert_eq!(code, 2);
    let row = &v["keys"][0];
    assert_eq!(row["status"], "locked");
    assert!(row["reason"].as_str().unwrap().contains(why), "{v}");
    assert_eq!(row["ended"]["why"]["kind"], "ended");
    assert_eq!(row["fix"], "keyrack unlock --key AWS_PROFILE --env test");

    // exec: the command does not run, and the reason is shown (human and --json)
    let marker = w.s.root.join("ran");
    let script = format!("touch {}", marker.display());
    let exec = [
        "exec",
        "--key",
        "AWS_PROFILE",
        "--env",
        "test",
        "--",
        "sh",
        "-c",
        &script,
    ];
    let o = w.s.run(&exec, "");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("the SSO session ended at ") && stderr(&o).contains(why),
        "{}",
        stderr(&o)
    );
    let (code, v) = w.s.json(&exec);
    assert_eq!(code, 2);
    assert!(
        v["keys"][0]["reason"].as_str().unwrap().contains(why),
        "{v}"
    );
    assert!(!marker.exists(), "the command never ran");

    // one browser trip brings it back
    w.ok(&["unlock", "--env", "test"]);
    assert_eq!(w.trips(), 2);
    assert!(w.granted());
}

#[test]
fn why_the_session_ended_outlives_the_idle_window_until_someone_is_told() {
    let mut w = World::new(ConsentMode::NewClient, 6);
    w.s.env("KEYRACK_DAEMON_IDLE_SECS", "2");
    w.ok(&SET_TEST);
    w.ok(&["unlock", "--env", "test"]);
    let pid = w.s.daemon_pid().expect("a daemon holds the grant");
    w.fake.end_sessions();
    // nobody asks the daemon anything: the mirror going is the sign the grant ended
    wait_for("the grant to end", Duration::from_secs(10), || {
        !w.mirror().exists()
    });
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        alive(pid),
        "an empty daemon past its idle window stays while nobody has been told why"
    );
    let ended = w.ended().expect("the reason is still there");
    assert!(ended["reason"]
        .as_str()
        .unwrap()
        .contains("the SSO session ended at "));
    // told: now it may go
    wait_for("the idle daemon to exit", Duration::from_secs(10), || {
        !alive(pid)
    });
}

#[test]
fn transient_refresh_faults_keep_the_grant_until_the_token_expires() {
    let w = World::new(ConsentMode::NewClient, 6);
    w.ok(&SET_TEST);
    // the daemon's first refresh meets a 500: it is retried a moment later, and succeeds
    w.fake.fail_refreshes(1);
    w.ok(&["unlock", "--env", "test"]);
    let unlocked = Instant::now();
    let before = w.fake.keyrack_refreshes();
    wait_for("the retried refresh", Duration::from_secs(8), || {
        w.fake.keyrack_refreshes() > before
    });
    sleep_until(unlocked + Duration::from_secs(7));
    assert!(w.granted(), "{}", w.status_json());
    w.caller_identity();

    // AWS keeps failing: the grant lives on until the access token actually expires
    w.fake.fail_refreshes(10_000);
    let token_exp: jiff::Timestamp = w.mirror_json()["expiresAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let ended = w.wait_until_ended(Duration::from_secs(12));
    let at: jiff::Timestamp = ended["at"].as_str().unwrap().parse().unwrap();
    assert!(
        at + jiff::SignedDuration::from_secs(1) >= token_exp,
        "not before the token expired ({token_exp}): {ended}"
    );
    let reason = ended["reason"].as_str().unwrap();
    assert!(
        reason.contains("its token expired at ")
            && reason.contains("could not be refreshed")
            && reason.contains("500"),
        "{ended}"
    );
    assert!(!w.mirror().exists());
}

#[test]
fn the_client_registration_expiry_ends_the_grant() {
    let fake = FakeAws::start();
    // a registration that lives 15 s (AWS: about 90 days); the 8 h token outlives it
    fake.set_registration_lifetime(Duration::from_secs(15));
    let w = World::with(fake, ConsentMode::NewClient, 8 * 3600);
    let registered = Instant::now();
    w.ok(&SET_TEST);
    w.ok(&["unlock", "--env", "test"]);
    let st = w.status_json();
    let row = &st["keys"][0];
    let limit: jiff::Timestamp = row["limit"]["at"].as_str().unwrap().parse().unwrap();
    let expires: jiff::Timestamp = row["expiresAt"].as_str().unwrap().parse().unwrap();
    assert!(
        limit <= jiff::Timestamp::now() + jiff::SignedDuration::from_secs(16),
        "the session's limit is the registration's expiry: {row}"
    );
    assert!(
        expires <= limit,
        "the grant never outlives the registration: {row}"
    );
    let ended = w.wait_until_ended(Duration::from_secs(20));
    assert!(registered.elapsed() >= Duration::from_secs(10));
    let reason = ended["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("the SSO session ended at ")
            && reason.contains("keyrack's sign-in client registration for")
            && reason.contains("no token can be refreshed after it"),
        "{ended}"
    );
    assert!(!w.mirror().exists());
}

#[test]
fn the_daemon_refreshes_over_https_through_the_proxy_and_trust_of_the_unlock() {
    let fake = FakeAws::start_https();
    let proxy = ConnectProxy::start();
    let ca = fake.ca_file().to_str().unwrap().to_string();
    let mut w = World::with(fake, ConsentMode::NewClient, 6);
    // the browser trusts the test CA itself and goes direct
    aws_world::install_browser(&mut w.s, &format!("--noproxy '*' --cacert {ca}"));
    w.s.env("AWS_CA_BUNDLE", &ca);
    w.s.env("HTTPS_PROXY", &proxy.url);
    w.ok(&SET_TEST);
    w.ok(&["unlock", "--env", "test"]);
    let tunnels = proxy.connect_targets().len();
    let before = w.fake.keyrack_refreshes();
    // the daemon runs with a clean environment: what it refreshes with came in the grant
    wait_for("a refresh by the daemon", Duration::from_secs(8), || {
        w.fake.keyrack_refreshes() > before
    });
    assert!(
        proxy.connect_targets().len() > tunnels,
        "the daemon's refresh went through the unlock's proxy"
    );
    assert_eq!(w.fake.failed_handshakes(), 0, "and trusted the unlock's CA");
    assert!(w.granted());
}

/// The daemon rewrites the session's token copy at each refresh, encrypted to the recipients of
/// its unlock: a recipient change relocks those grants (and waits for a refresh at work), so a
/// removed identity never reads a token copy written after its removal.
#[test]
fn a_removed_recipient_reads_no_token_copy_the_daemon_writes_later() {
    let w = World::new(ConsentMode::NewClient, 20);
    w.ok(&SET_TEST);
    let laptop = w.s.root.join("laptop.key");
    let pubkey = crate::support::age::keygen(&laptop);
    let (code, v) = w.s.json(&[
        "recipient",
        "add",
        "--pubkey",
        pubkey.trim(),
        "--label",
        "laptop",
    ]);
    assert_eq!(code, 0, "{v}");
    // unlocked with the laptop among the recipients: the daemon's copies go to it too
    w.ok(&["unlock", "--env", "test"]);
    let trips = w.trips();
    let (code, v) = w.s.json(&["recipient", "remove", "--label", "laptop"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["relocked"], serde_json::json!([SLUG]), "{v}");
    // past the first refresh of a 20 s token: nothing the daemon could write meanwhile
    std::thread::sleep(Duration::from_secs(12));
    for f in crate::support::age::files(&w.s.keyrack_home) {
        assert!(
            !crate::support::age::decrypts(&laptop, &f),
            "the removed key reads {}",
            f.display()
        );
    }
    // unlocked again from the re-encrypted copy: no browser
    w.ok(&["unlock", "--env", "test"]);
    assert_eq!(w.trips(), trips);
    let o = w.s.run(&["recipient", "list"], "");
    assert!(!stdout(&o).contains("laptop"), "{}", stdout(&o));
}

/// Where the system trust store is (`SSL_CERT_FILE`) travels in each grant like the rest of the
/// unlock's network settings: a daemon started from a shell without it refreshes a grant
/// unlocked with it; one started from a shell that trusts more does not trust more for a grant
/// unlocked without it.
#[test]
fn the_daemon_trusts_the_system_store_of_each_grants_unlock_not_of_its_starter() {
    let fake = FakeAws::start_https();
    let ca = fake.ca_file().to_str().unwrap().to_string();
    let mut w = World::with(fake, ConsentMode::NewClient, 6);
    aws_world::install_browser(&mut w.s, &format!("--cacert {ca}"));
    // the daemon is started by an unlock in a shell that places no trust store
    w.s.manifest("org: acme\nenv.test: []\nenv.prod: []\n");
    w.s.set("PLAIN", "prod", "plain-value");
    w.ok(&["unlock", "--env", "prod"]);
    let pid = w.s.daemon_pid().expect("a daemon");
    // the AWS key is unlocked from a shell whose trust store holds the test CA
    w.s.env("SSL_CERT_FILE", &ca);
    w.ok(&SET_TEST);
    w.ok(&["unlock", "--env", "test"]);
    assert_eq!(w.s.daemon_pid(), Some(pid), "the same daemon");
    let before = w.fake.keyrack_refreshes();
    wait_for("a refresh by the daemon", Duration::from_secs(8), || {
        w.fake.keyrack_refreshes() > before
    });
    assert_eq!(
        w.fake.failed_handshakes(),
        0,
        "it trusted the unlock's store"
    );
    assert!(w.granted());
}
