//! The AWS world most AWS tests start from: a sandbox wired to the loopback fake of AWS, a
//! `$BROWSER` that approves like a signed-in person, and the Acme Test profile.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use keyrack_fake_aws::FakeAws;
use keyrack_testkit::{stderr, stdout, Sandbox};

/// The fake portal's start URL.
pub const URL: &str = "https://d-1234567890.awsapps.com/start";

/// `set` of AWS_PROFILE for env test without the wizard: the Acme Test account, admin role.
pub const SET_TEST: [&str; 15] = [
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

/// A sandbox whose AWS endpoints are `fake`'s.
pub fn sandbox(fake: &FakeAws) -> Sandbox {
    let mut s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    for (k, v) in fake.env() {
        s.env(&k, &v);
    }
    s
}

/// Writes a browser script that logs each URL it is given and follows the authorize redirect
/// with curl (`curl_flags` added), as a signed-in person approving would. Returns the script
/// and its log.
pub fn browser_script(s: &Sandbox, curl_flags: &str) -> (PathBuf, PathBuf) {
    let log = s.root.join("browser.log");
    let script = s.root.join("browser.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$1\" >> {}\nexec curl -s -L {curl_flags} --max-time 20 -o /dev/null \"$1\"\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, log)
}

/// Makes `$BROWSER` a [`browser_script`]. Returns its log.
pub fn install_browser(s: &mut Sandbox, curl_flags: &str) -> PathBuf {
    let (script, log) = browser_script(s, curl_flags);
    s.env("BROWSER", script.to_str().unwrap());
    log
}

/// How many times the browser was opened.
pub fn browser_opens(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// Runs [`SET_TEST`] (plus `extra`) and asserts it succeeded.
pub fn set_test(s: &Sandbox, extra: &[&str]) {
    let mut args = SET_TEST.to_vec();
    args.extend_from_slice(extra);
    let o = s.run(&args, "");
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
}

/// A sandbox for `org: acme` with env test (and `more_envs`), initialised, with the browser.
pub fn world(fake: &FakeAws, more_envs: &[&str]) -> (Sandbox, PathBuf) {
    let mut s = sandbox(fake);
    let log = install_browser(&mut s, "");
    let mut manifest = String::from("org: acme\nenv.test: []\n");
    for e in more_envs {
        manifest.push_str(&format!("env.{e}: []\n"));
    }
    s.manifest(&manifest);
    s.init();
    (s, log)
}

/// The everyday AWS world: [`world`] with AWS_PROFILE of env test set (one browser sign-in).
pub fn signed_in() -> (Sandbox, FakeAws) {
    let fake = FakeAws::start();
    let (s, _) = world(&fake, &[]);
    set_test(&s, &[]);
    (s, fake)
}
