//! AWS IAM Identity Center on real networks (issue 10, part 3), through the real binary:
//!
//! - the fake AWS over **HTTPS** with a test CA passed through `AWS_CA_BUNDLE` (as behind a
//!   TLS-inspecting corporate proxy): set → unlock → get → relock, and botocore reading the
//!   profile keyrack unlocked;
//! - the same through a loopback HTTP `CONNECT` proxy (`HTTPS_PROXY`), and `NO_PROXY`
//!   bypassing it;
//! - an untrusted certificate fails with an error naming the host and `AWS_CA_BUNDLE`, a bundle
//!   that cannot be used is named, and nothing is sent in either case;
//! - a `cn-` region reaches the `amazonaws.com.cn` endpoints (seen by the proxy, which refuses
//!   every non-loopback target, so nothing leaves the machine);
//! - a redirect (a captive portal, a hostile endpoint) is not followed: the SSO bearer token
//!   never goes to the host it names.

use std::path::PathBuf;
use std::process::{Command, Output};

use keyrack_fake_aws::{ConnectProxy, FakeAws, Trap};
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
    /// The fake over HTTPS; `AWS_CA_BUNDLE` is passed when `trusted`.
    fn https(trusted: bool) -> Self {
        let fake = FakeAws::start_https();
        let mut s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
        for (k, v) in fake.env() {
            s.env(&k, &v);
        }
        if trusted {
            s.env("AWS_CA_BUNDLE", fake.ca_file().to_str().unwrap());
        }
        // The browser follows the authorize redirect as a signed-in user approving would. It
        // trusts the test CA itself and goes direct, so every CONNECT the proxy sees is keyrack's.
        let browser_log = s.root.join("browser.log");
        let script = s.root.join("browser.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$1\" >> {}\nexec curl -s -L --noproxy '*' --cacert {} --max-time 20 -o /dev/null \"$1\"\n",
                browser_log.display(),
                fake.ca_file().display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        s.env("BROWSER", script.to_str().unwrap());
        s.manifest("org: acme\nenv.test: []\nenv.prod: []\n");
        s.init();
        World {
            s,
            fake,
            browser_log,
        }
    }

    fn browser_opens(&self) -> usize {
        std::fs::read_to_string(&self.browser_log)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    /// `host:port` of the fake's HTTPS front.
    fn authority(&self) -> String {
        self.fake.url.trim_start_matches("https://").to_string()
    }

    fn cache_dir(&self) -> PathBuf {
        self.s.home.join(".aws/sso/cache")
    }

    fn cached_tokens(&self) -> usize {
        std::fs::read_dir(self.cache_dir())
            .map(|d| d.count())
            .unwrap_or(0)
    }

    fn set(&self) -> Output {
        self.s.run(&SET_TEST, "")
    }

    fn aws(&self, args: &[&str]) -> Output {
        let mut c = Command::new("aws");
        c.env_clear()
            .envs(self.s.vars())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .args(args)
            .current_dir(&self.s.repo);
        c.output()
            .expect("the AWS CLI v1 is installed (pip install awscli)")
    }

    /// set → unlock → get → relock, each step checked.
    fn journey(&self) {
        let o = self.set();
        assert!(o.status.success(), "set: {}{}", stdout(&o), stderr(&o));
        assert_eq!(self.browser_opens(), 1, "one browser sign-in at set");
        assert_eq!(self.fake.consented_clients(), ["keyrack"]);
        assert_eq!(self.cached_tokens(), 0, "set ends relocked");

        let o = self.s.run(&["unlock", "--env", "test"], "");
        assert!(o.status.success(), "unlock: {}{}", stdout(&o), stderr(&o));
        assert_eq!(
            self.browser_opens(),
            1,
            "unlock while the session lives: no browser"
        );
        assert!(
            self.fake.role_credential_calls() >= 2,
            "unlock asked the server"
        );
        assert_eq!(
            self.cached_tokens(),
            1,
            "the token is mirrored for AWS tools"
        );
        assert_eq!(self.s.get_value("AWS_PROFILE", "test").1, "acme.test");

        self.s.cmd().arg("relock").assert().success();
        assert_eq!(self.cached_tokens(), 0, "relock removes the mirror");
    }
}

fn combined(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

#[test]
fn https_with_aws_ca_bundle_set_unlock_get_relock() {
    let w = World::https(true);
    assert!(w.fake.url.starts_with("https://127.0.0.1:"));
    w.journey();
    assert_eq!(
        w.fake.failed_handshakes(),
        0,
        "every TLS connection was trusted"
    );
}

#[test]
fn through_a_connect_proxy_every_call_is_tunnelled() {
    let mut w = World::https(true);
    let proxy = ConnectProxy::start();
    w.s.env("HTTPS_PROXY", &proxy.url);
    // what botocore ignores for https endpoints must be ignored too: a dead port for each
    w.s.env("HTTP_PROXY", "http://127.0.0.1:9");
    w.s.env("ALL_PROXY", "http://127.0.0.1:9");
    w.journey();
    let targets = proxy.connect_targets();
    assert!(
        targets.len() >= 5,
        "register, token, role credentials, STS, … all went through the proxy: {targets:?}"
    );
    assert!(
        targets.iter().all(|t| *t == w.authority()),
        "only the fake was reached, by CONNECT: {targets:?}"
    );
    assert!(
        proxy.requests().iter().all(|r| r.starts_with("CONNECT ")),
        "{:?}",
        proxy.requests()
    );
}

#[test]
fn no_proxy_bypasses_the_proxy() {
    for (var, no_proxy) in [
        ("NO_PROXY", "example.com, 127.0.0.1".to_string()),
        ("no_proxy", String::new()), // host:port form, filled in below
    ] {
        let mut w = World::https(true);
        let proxy = ConnectProxy::start();
        w.s.env("https_proxy", &proxy.url);
        let value = if no_proxy.is_empty() {
            format!(".amazonaws.com,{}", w.authority())
        } else {
            no_proxy
        };
        w.s.env(var, &value);
        w.journey();
        assert_eq!(
            proxy.requests(),
            Vec::<String>::new(),
            "{var}={value}: the proxy was bypassed"
        );
    }
}

#[test]
fn an_untrusted_certificate_names_the_host_and_aws_ca_bundle() {
    let w = World::https(false);
    let o = w.set();
    assert_eq!(o.status.code(), Some(1), "{}", combined(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "the TLS certificate of {} is not trusted",
            w.authority()
        )),
        "{err}"
    );
    assert!(
        err.contains("fix:") && err.contains("AWS_CA_BUNDLE"),
        "{err}"
    );
    assert!(
        !err.contains("rustls"),
        "not a raw TLS library message: {err}"
    );
    assert_eq!(w.fake.registrations(), 0, "nothing reached the server");
    assert!(w.fake.failed_handshakes() >= 1);
    assert_eq!(
        w.browser_opens(),
        0,
        "no browser for a network that cannot be trusted"
    );
    let (_, list) = w.s.json(&["list"]);
    assert_eq!(
        list["keys"].as_array().unwrap().len(),
        0,
        "nothing recorded"
    );
    assert_eq!(w.cached_tokens(), 0);

    // with the bundle, set works; without it, unlock fails the same way (no browser sign-in)
    let o =
        w.s.cmd()
            .args(SET_TEST)
            .env("AWS_CA_BUNDLE", w.fake.ca_file())
            .output()
            .unwrap();
    assert!(o.status.success(), "{}", combined(&o));
    let opens = w.browser_opens();
    let o = w.s.run(&["unlock", "--env", "test"], "");
    assert_ne!(o.status.code(), Some(0), "{}", combined(&o));
    assert!(
        combined(&o).contains("is not trusted") && combined(&o).contains("AWS_CA_BUNDLE"),
        "{}",
        combined(&o)
    );
    assert_eq!(
        w.browser_opens(),
        opens,
        "a TLS failure is not a reason to sign in"
    );
    assert_eq!(w.cached_tokens(), 0);
}

#[test]
fn an_aws_ca_bundle_that_cannot_be_used_is_named_and_nothing_is_sent() {
    let w = World::https(false);
    let garbage = w.s.root.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let truncated = w.s.root.join("truncated.pem");
    let ca = std::fs::read_to_string(w.fake.ca_file()).unwrap();
    std::fs::write(
        &truncated,
        format!("{}\n-----END CERTIFICATE-----\n", &ca[..ca.len() / 2]),
    )
    .unwrap();
    let missing = w.s.root.join("missing.pem");
    for (bundle, says) in [
        (&missing, "does not exist"),
        (&garbage, "holds no PEM certificate"),
        (&truncated, "AWS_CA_BUNDLE"),
    ] {
        let o =
            w.s.cmd()
                .args(SET_TEST)
                .env("AWS_CA_BUNDLE", bundle)
                .output()
                .unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", combined(&o));
        let err = stderr(&o);
        assert!(
            err.contains(&format!("AWS_CA_BUNDLE={}", bundle.display())) && err.contains(says),
            "{}: {err}",
            bundle.display()
        );
        assert!(err.contains("nothing was sent"), "{err}");
    }
    assert_eq!(w.fake.registrations(), 0);
    assert_eq!(w.fake.failed_handshakes(), 0, "not even a TLS handshake");
}

#[test]
fn botocore_reads_the_profile_over_https_with_aws_ca_bundle() {
    let w = World::https(true);
    assert!(w.set().status.success());
    w.s.cmd()
        .args(["unlock", "--env", "test"])
        .assert()
        .success();
    let o = w.aws(&[
        "sts",
        "get-caller-identity",
        "--profile",
        "acme.test",
        "--output",
        "json",
    ]);
    assert!(o.status.success(), "aws cli: {}", combined(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["Arn"],
        "arn:aws:sts::123456789012:assumed-role/AdministratorAccess/alice@example.com"
    );
    w.s.cmd().arg("relock").assert().success();
    let o = w.aws(&["sts", "get-caller-identity", "--profile", "acme.test"]);
    assert!(!o.status.success(), "after relock botocore has no token");
}

#[test]
fn ca_bundle_in_the_profile_is_trusted() {
    let w = World::https(false);
    // set up with the variable, then move the trust into the profile, as botocore reads it
    let o =
        w.s.cmd()
            .args(SET_TEST)
            .env("AWS_CA_BUNDLE", w.fake.ca_file())
            .output()
            .unwrap();
    assert!(o.status.success(), "{}", combined(&o));
    let config = w.s.home.join(".aws/config");
    let text = std::fs::read_to_string(&config).unwrap();
    let with_bundle = text.replacen(
        "[profile acme.test]\n",
        &format!(
            "[profile acme.test]\nca_bundle = {}\n",
            w.fake.ca_file().display()
        ),
        1,
    );
    assert_ne!(text, with_bundle);
    std::fs::write(&config, with_bundle).unwrap();
    let o = w.s.run(&["unlock", "--env", "test"], "");
    assert!(o.status.success(), "{}", combined(&o));
    assert_eq!(w.cached_tokens(), 1);
    // and botocore agrees with the same file
    let o = w.aws(&["sts", "get-caller-identity", "--profile", "acme.test"]);
    assert!(o.status.success(), "aws cli: {}", combined(&o));
}

#[test]
fn a_china_region_reaches_the_amazonaws_com_cn_endpoints() {
    let w = World::https(true);
    let proxy = ConnectProxy::start();
    // no endpoint overrides: the URL is built from the region, and the proxy sees its host
    let mut c = w.s.cmd();
    for k in [
        "AWS_ENDPOINT_URL_SSO_OIDC",
        "AWS_ENDPOINT_URL_SSO",
        "AWS_ENDPOINT_URL_STS",
    ] {
        c.env_remove(k);
    }
    let o = c
        .args([
            "set",
            "--key",
            "AWS_PROFILE",
            "--env",
            "test",
            "--sso-start-url",
            "https://d-1234567890.awsapps.cn/start",
            "--sso-region",
            "cn-north-1",
            "--account-id",
            "123456789012",
            "--role-name",
            "AdministratorAccess",
            "--profile-name",
            "acme.cn",
        ])
        .env("HTTPS_PROXY", &proxy.url)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", combined(&o));
    assert_eq!(
        proxy.connect_targets(),
        ["oidc.cn-north-1.amazonaws.com.cn:443"],
        "the China partition's suffix"
    );
    let err = stderr(&o);
    assert!(
        err.contains("cannot reach https://oidc.cn-north-1.amazonaws.com.cn/")
            && err.contains(&format!("through the proxy {} (HTTPS_PROXY)", proxy.url))
            && err.contains("NO_PROXY"),
        "the error names the endpoint and the proxy setting: {err}"
    );
}

/// A loopback server that answers every request with a 307 to `location`.
fn redirector(location: String) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                line.clear();
            }
            let _ = write!(
                stream,
                "HTTP/1.1 307 Temporary Redirect\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    url
}

#[test]
fn a_redirect_is_not_followed_and_the_token_stays_home() {
    let w = World::https(true);
    assert!(w.set().status.success());
    let trap = Trap::start();
    let portal = redirector(format!(
        "http://127.0.0.1:{}/federation/credentials",
        trap.port
    ));
    let o =
        w.s.cmd()
            .args(["unlock", "--env", "test"])
            .env("AWS_ENDPOINT_URL_SSO", &portal)
            .output()
            .unwrap();
    assert_eq!(
        trap.connections(),
        0,
        "the redirect was not followed: {:?}",
        String::from_utf8_lossy(&trap.received())
    );
    assert_ne!(o.status.code(), Some(0), "{}", combined(&o));
    assert!(combined(&o).contains("307"), "{}", combined(&o));
    assert_eq!(w.cached_tokens(), 0);
}
