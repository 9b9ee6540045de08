//! The aws.params vault (SSM Parameter Store SecureStrings) through the real binary, the whole
//! chain: SSO sign-in at the fake portal → role credentials in the daemon → SSM calls signed with
//! them, against a real moto server (one per test binary) behind a counting front
//! ([`SsmFront`]) that also injects the faults moto cannot (throttling, AccessDenied).

use std::time::Instant;

use keyrack_fake_aws::ssm::{Metadata, Moto, SsmFront};
use keyrack_fake_aws::FakeAws;
use keyrack_testkit::{stderr, stdout, Sandbox};

use crate::support::aws::{self as aws_world, URL};

struct World {
    s: Sandbox,
    fake: FakeAws,
    front: SsmFront,
    moto: &'static Moto,
    org: String,
}

impl World {
    /// A repository of org `org` (each test its own, so the shared moto keeps them apart) with
    /// an AWS_PROFILE (aws.config) set for env test and unlocked.
    fn new(org: &str) -> Self {
        let w = Self::bare(org);
        let profile = format!("{org}.test");
        let o = w.s.run(
            &[
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
                &profile,
            ],
            "",
        );
        assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
        w.unlock_profile();
        w
    }

    /// The world without an AWS_PROFILE.
    fn bare(org: &str) -> Self {
        let moto = Moto::shared();
        let fake = FakeAws::start();
        let front = SsmFront::start(Some(&moto.addr));
        let mut s = aws_world::sandbox(&fake);
        for (k, v) in front.env() {
            s.env(&k, &v);
        }
        // never the link-local instance metadata address from a test
        s.env("AWS_EC2_METADATA_DISABLED", "true");
        aws_world::install_browser(&mut s, "");
        s.manifest(&format!("org: {org}\nenv.test: []\nenv.prod: []\n"));
        s.init();
        World {
            s,
            fake,
            front,
            moto,
            org: org.into(),
        }
    }

    fn unlock_profile(&self) {
        let o = self
            .s
            .run(&["unlock", "--env", "test", "--key", "AWS_PROFILE"], "");
        assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    }

    fn name(&self, key: &str) -> String {
        format!("/keyrack/{}/test/{key}", self.org)
    }

    /// `set --vault aws.params` of `key` in env test with `value` on stdin, plus `extra` flags.
    fn set(&self, key: &str, value: &str, extra: &[&str]) -> std::process::Output {
        let mut args = vec![
            "set",
            "--key",
            key,
            "--env",
            "test",
            "--vault",
            "aws.params",
        ];
        args.extend_from_slice(extra);
        self.s.run(&args, value)
    }

    fn set_ok(&self, key: &str, value: &str, extra: &[&str]) {
        let o = self.set(key, value, extra);
        assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    }

    /// `--json unlock` with `args`: (exit code, rows by key).
    fn unlock(&self, args: &[&str]) -> (i32, Vec<serde_json::Value>) {
        let mut full = vec!["unlock"];
        full.extend_from_slice(args);
        let (code, v) = self.s.json(&full);
        (code, v["keys"].as_array().cloned().unwrap_or_default())
    }
}

fn row<'a>(rows: &'a [serde_json::Value], key: &str) -> &'a serde_json::Value {
    rows.iter()
        .find(|r| r["key"] == key)
        .unwrap_or_else(|| panic!("no row for {key} in {rows:#?}"))
}

#[test]
fn set_unlock_get_relock_del_round_trip() {
    let w = World::new("rt");
    w.front.reset();
    w.set_ok("API_KEY", "s3cret-value\n", &[]);
    // the round trip at set: what was there (GetParameter), PutParameter, read back (as unlock
    // would), read back again
    let ops: Vec<String> = w.front.calls().into_iter().map(|c| c.operation).collect();
    assert_eq!(
        ops,
        [
            "GetParameter",
            "PutParameter",
            "GetParameter",
            "GetParameter"
        ]
    );
    let call = &w.front.calls()[1];
    assert_eq!(call.region, "us-east-1", "the profile's region");
    assert!(
        call.access_key_id.starts_with("ASIAFAKE"),
        "signed with the portal's role credentials: {}",
        call.access_key_id
    );
    assert_eq!(
        w.moto.parameter(&w.name("API_KEY")),
        Some(("SecureString".into(), "s3cret-value".into()))
    );
    let (_, list) = w.s.json(&["list"]);
    let entry = row(list["keys"].as_array().unwrap(), "API_KEY");
    assert_eq!(entry["vault"], "aws.params");
    assert_eq!(entry["exid"], w.name("API_KEY"));
    assert_eq!(entry["meta"]["named"], "keyrack");
    assert_eq!(entry["meta"]["region"], "us-east-1");
    assert_eq!(entry["meta"]["via"], "AWS_PROFILE");
    assert!(
        w.s.read_manifest().contains("API_KEY"),
        "declared in keyrack.yml"
    );

    // set ends relocked; unlock reads it, get hands it out, relock forgets it
    assert_eq!(w.s.get_value("API_KEY", "test").0, 2);
    let (code, rows) = w.unlock(&["--env", "test"]);
    assert_eq!(code, 0, "{rows:#?}");
    assert_eq!(row(&rows, "API_KEY")["status"], "granted");
    assert_eq!(row(&rows, "AWS_PROFILE")["status"], "granted");
    assert_eq!(w.s.get_value("API_KEY", "test").1, "s3cret-value");
    w.s.cmd()
        .args(["relock", "--env", "test", "--key", "API_KEY"])
        .assert()
        .success();
    assert_eq!(w.s.get_value("API_KEY", "test").0, 2);

    // rotation in SSM (another teammate, another tool) is picked up at the next unlock
    w.moto
        .put(&w.name("API_KEY"), "SecureString", "rotated-value");
    let (code, _) = w.unlock(&["--env", "test"]);
    assert_eq!(code, 0);
    assert_eq!(w.s.get_value("API_KEY", "test").1, "rotated-value");

    // --kms-key-id: the KMS key encrypts it (KeyId sent), and the entry records it
    w.set_ok(
        "SIGNED",
        "kms-value",
        &["--kms-key-id", "alias/keyrack-team"],
    );
    let (_, d) = w.moto.ssm(
        "DescribeParameters",
        serde_json::json!({"ParameterFilters": [{"Key": "Name", "Values": [w.name("SIGNED")]}]}),
    );
    assert_eq!(d["Parameters"][0]["KeyId"], "alias/keyrack-team", "{d}");
    let (_, list) = w.s.json(&["list"]);
    assert_eq!(
        row(list["keys"].as_array().unwrap(), "SIGNED")["meta"]["kmsKeyId"],
        "alias/keyrack-team"
    );
    let o = w.set("SIGNED", "x", &["--kms-key-id", "not a key"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("--kms-key-id"), "{}", stderr(&o));

    // del deletes the parameter keyrack named (and wrote)
    let (code, v) = w.s.json(&["del", "--key", "API_KEY", "--env", "test"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["secretDestroyed"], true);
    assert_eq!(v["grantDropped"], true);
    assert_eq!(w.moto.parameter(&w.name("API_KEY")), None);
    assert_eq!(w.s.get_value("API_KEY", "test").0, 2);
}

#[test]
fn del_forgets_a_parameter_it_did_not_name_and_a_reference() {
    let w = World::new("names");
    let own = "/names-team/shared/DB_PASSWORD";
    w.set_ok("DB_PASSWORD", "pw", &["--exid", own]);
    assert_eq!(
        w.moto.parameter(own),
        Some(("SecureString".into(), "pw".into()))
    );
    let (_, list) = w.s.json(&["list"]);
    assert_eq!(
        row(list["keys"].as_array().unwrap(), "DB_PASSWORD")["meta"]["named"],
        "user"
    );
    let (code, v) = w.s.json(&["del", "--key", "DB_PASSWORD", "--env", "test"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["secretDestroyed"], false);
    assert!(w.moto.parameter(own).is_some(), "a --exid parameter stays");

    // a teammate's parameter, pointed at without writing it (no secret is asked for)
    w.moto.put(&w.name("SHARED"), "SecureString", "team-value");
    w.front.reset();
    let o = w.set("SHARED", "", &["--mech", "reference"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        w.front.count("PutParameter"),
        0,
        "a reference writes nothing"
    );
    let (code, _) = w.unlock(&["--env", "test", "--key", "SHARED"]);
    assert_eq!(code, 0);
    assert_eq!(w.s.get_value("SHARED", "test").1, "team-value");
    let (_, v) = w.s.json(&["del", "--key", "SHARED", "--env", "test"]);
    assert_eq!(v["secretDestroyed"], false);
    assert_eq!(
        w.moto.parameter(&w.name("SHARED")),
        Some(("SecureString".into(), "team-value".into())),
        "a reference is only forgotten, even under /keyrack/"
    );

    // names outside SSM's grammar are refused before anything is sent
    w.front.reset();
    for bad in [
        "/aws/reserved",
        "ssm-thing",
        "no spaces/x",
        "rel/ative",
        "/a//b",
    ] {
        let o = w.set("BAD", "v", &["--exid", bad]);
        assert_eq!(o.status.code(), Some(1), "{bad}: {}", stderr(&o));
        assert!(stderr(&o).contains("--exid"), "{bad}: {}", stderr(&o));
    }
    assert!(w.front.calls().is_empty());
}

#[test]
fn fifty_keys_unlock_in_at_most_five_ssm_calls() {
    let w = World::new("fifty");
    // one key set through keyrack (its round trip), 49 pointed at parameters the team wrote
    w.set_ok("KEY_0", "value-0", &[]);
    for i in 1..50 {
        w.moto.put(
            &w.name(&format!("KEY_{i}")),
            "SecureString",
            &format!("value-{i}"),
        );
    }
    for i in 1..50 {
        let key = format!("KEY_{i}");
        let o = w.set(&key, "", &["--mech", "reference"]);
        assert!(o.status.success(), "{key}: {}", stderr(&o));
    }
    w.s.cmd().arg("relock").assert().success();
    w.unlock_profile();
    w.front.reset();
    let start = Instant::now();
    let (code, rows) = w.unlock(&["--env", "test"]);
    let took = start.elapsed();
    assert_eq!(code, 0, "{rows:#?}");
    assert_eq!(rows.len(), 51);
    assert!(rows.iter().all(|r| r["status"] == "granted"), "{rows:#?}");
    let calls = w.front.calls();
    assert!(
        calls.len() <= 5,
        "{} SSM calls for 50 keys: {calls:?}",
        calls.len()
    );
    assert!(calls
        .iter()
        .all(|c| c.operation == "GetParameters" && c.names.len() <= 10));
    eprintln!(
        "unlock of 50 aws.params keys (+ AWS_PROFILE) against moto: {} SSM calls, {} ms",
        calls.len(),
        took.as_millis()
    );
    let (_, v) =
        w.s.json(&["get", "--key", "KEY_0", "--key", "KEY_49", "--env", "test"]);
    let values: Vec<&str> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["value-0", "value-49"]);
}

#[test]
fn a_string_parameter_is_never_handed_out() {
    let w = World::new("types");
    let plain = "/types-team/PLAIN";
    w.moto.put(plain, "String", "not-a-secret");
    // pointing at it: the round trip refuses it, nothing is recorded
    let o = w.set("PLAIN", "", &["--mech", "reference", "--exid", plain]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("String parameter, not a SecureString"),
        "{}",
        stderr(&o)
    );
    // writing over it: refused, and it is left as it was
    let o = w.set("PLAIN", "secret", &["--exid", plain]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("exists as a String parameter"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        w.moto.parameter(plain),
        Some(("String".into(), "not-a-secret".into()))
    );
    let (_, list) = w.s.json(&["list"]);
    assert!(list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["key"] != "PLAIN"));

    // a SecureString that becomes a String in SSM is refused at unlock, on its own row
    w.set_ok("FLIP", "v1", &[]);
    w.moto.ssm(
        "DeleteParameter",
        serde_json::json!({"Name": w.name("FLIP")}),
    );
    w.moto.put(&w.name("FLIP"), "StringList", "a,b");
    let (code, rows) = w.unlock(&["--env", "test"]);
    assert_eq!(code, 2);
    let r = row(&rows, "FLIP");
    assert_eq!(r["status"], "errored");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("is a StringList parameter, not a SecureString"),
        "{r}"
    );
    assert_eq!(row(&rows, "AWS_PROFILE")["status"], "granted");
    assert_eq!(w.s.get_value("FLIP", "test").0, 2, "never granted");

    // deleted in SSM: lost
    w.moto.ssm(
        "DeleteParameter",
        serde_json::json!({"Name": w.name("FLIP")}),
    );
    let (_, rows) = w.unlock(&["--env", "test", "--key", "FLIP"]);
    assert_eq!(row(&rows, "FLIP")["status"], "lost");
}

#[test]
fn a_locked_aws_profile_is_named_never_an_ambient_profile() {
    let w = World::new("locked");
    w.set_ok("API_KEY", "v", &[]);
    w.s.cmd().arg("relock").assert().success();
    w.front.reset();
    // ambient credentials must not be used for a repository key
    let (code, v) = {
        let o =
            w.s.cmd()
                .args(["--json", "unlock", "--env", "test", "--key", "API_KEY"])
                .env("AWS_ACCESS_KEY_ID", "AKIAAMBIENT")
                .env("AWS_SECRET_ACCESS_KEY", "ambient")
                .env("AWS_PROFILE", "default")
                .output()
                .unwrap();
        (
            o.status.code().unwrap(),
            serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap(),
        )
    };
    assert_eq!(code, 2);
    let r = row(v["keys"].as_array().unwrap(), "API_KEY");
    assert_eq!(r["status"], "errored");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("locked.test.AWS_PROFILE is locked"),
        "{r}"
    );
    assert_eq!(
        r["fix"],
        "unlock it first: keyrack unlock --key AWS_PROFILE --env test"
    );
    assert!(w.front.calls().is_empty(), "nothing was sent to SSM");

    // set says so too, before asking for the secret
    let o = w.set("OTHER", "v", &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("keyrack unlock --key AWS_PROFILE --env test"),
        "{}",
        stderr(&o)
    );

    // unlocking the env unlocks the profile first, then the parameters with it
    let (code, rows) = w.unlock(&["--env", "test"]);
    assert_eq!(code, 0, "{rows:#?}");
    assert_eq!(row(&rows, "API_KEY")["status"], "granted");

    // --via names another aws.config key; an os.secure key is refused as a signer
    w.s.set("NOT_SSO", "test", "plain");
    w.s.cmd()
        .args(["unlock", "--env", "test"])
        .assert()
        .success();
    let o = w.set("VIA_KEY", "v", &["--via", "NOT_SSO"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("is an os.secure key, not an aws.config key"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn role_credentials_near_their_expiry_are_renewed_once_and_handed_back() {
    let w = World::new("renew");
    w.set_ok("A_KEY", "a", &[]);
    w.set_ok("B_KEY", "b", &[]);
    w.s.cmd().arg("relock").assert().success();
    // the profile's grant carries role credentials with 2 minutes left: too few to sign with
    w.fake
        .set_role_credential_lifetime(std::time::Duration::from_secs(120));
    w.unlock_profile();
    w.fake
        .set_role_credential_lifetime(std::time::Duration::from_secs(3600));
    let before = w.fake.role_credential_calls();
    w.front.reset();
    let (code, rows) = w.unlock(&["--env", "test", "--key", "A_KEY", "--key", "B_KEY"]);
    assert_eq!(code, 0, "{rows:#?}");
    assert_eq!(
        w.fake.role_credential_calls(),
        before + 1,
        "renewed once through the portal, for both keys"
    );
    let signers: std::collections::BTreeSet<String> = w
        .front
        .calls()
        .into_iter()
        .map(|c| c.access_key_id)
        .collect();
    assert_eq!(signers.len(), 1, "{signers:?}");
    // handed back to the daemon: credential_process gets them without asking the portal again
    let o =
        w.s.run(&["aws", "credentials", "--profile", "renew.test"], "");
    assert!(o.status.success(), "{}", stderr(&o));
    let creds: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        creds["AccessKeyId"].as_str(),
        signers.first().map(String::as_str)
    );
    assert_eq!(w.fake.role_credential_calls(), before + 1);

    // the SSO session ended server-side: the row says to unlock the signing key again
    w.fake
        .set_role_credential_lifetime(std::time::Duration::from_secs(120));
    w.unlock_profile();
    w.fake.revoke_all();
    w.front.reset();
    let (code, rows) = w.unlock(&["--env", "test", "--key", "A_KEY"]);
    assert_eq!(code, 2);
    let r = row(&rows, "A_KEY");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("renew.test.AWS_PROFILE is locked: its SSO session ended"),
        "{r}"
    );
    assert_eq!(
        r["fix"],
        "unlock it first: keyrack unlock --key AWS_PROFILE --env test"
    );
    assert!(w.front.calls().is_empty(), "nothing was sent to SSM");
}

#[test]
fn ssm_down_fails_only_its_keys_rows() {
    let w = World::new("down");
    w.set_ok("API_KEY", "v", &[]);
    w.s.set("LOCAL_KEY", "test", "local-value");
    w.s.cmd().arg("relock").assert().success();
    // nothing listens there any more
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let o =
        w.s.cmd()
            .args(["--json", "unlock", "--env", "test"])
            .env("AWS_ENDPOINT_URL_SSM", &dead)
            .output()
            .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = v["keys"].as_array().unwrap();
    let r = row(rows, "API_KEY");
    assert_eq!(r["status"], "errored");
    assert!(
        r["reason"].as_str().unwrap().contains("cannot reach"),
        "{r}"
    );
    assert_eq!(row(rows, "LOCAL_KEY")["status"], "granted");
    assert_eq!(row(rows, "AWS_PROFILE")["status"], "granted");
    assert_eq!(w.s.get_value("LOCAL_KEY", "test").1, "local-value");
}

#[test]
fn access_denied_rows_carry_a_paste_ready_iam_statement() {
    let w = World::new("denied");
    w.set_ok("API_KEY", "v", &[]);
    w.front.deny(
        "GetParameters",
        "User: arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_AdministratorAccess_0123/alice@example.com is not authorized to perform: ssm:GetParameters on resource: arn:aws:ssm:us-east-1:123456789012:parameter/keyrack/denied/test/API_KEY because no identity-based policy allows the ssm:GetParameters action",
    );
    let (code, rows) = w.unlock(&["--env", "test"]);
    assert_eq!(code, 2);
    let r = row(&rows, "API_KEY");
    assert_eq!(r["status"], "errored");
    assert!(
        r["reason"].as_str().unwrap().contains("ssm:GetParameters"),
        "{r}"
    );
    let fix = r["fix"].as_str().unwrap();
    let statement: serde_json::Value =
        serde_json::from_str(&fix[fix.find('{').expect("a JSON statement")..]).unwrap();
    assert_eq!(
        statement,
        serde_json::json!({
            "Effect": "Allow",
            "Action": ["ssm:GetParameters", "ssm:GetParameter"],
            "Resource": "arn:aws:ssm:us-east-1:123456789012:parameter/keyrack/denied/test/*",
        })
    );
    assert_eq!(row(&rows, "AWS_PROFILE")["status"], "granted");

    // one denied name refuses AWS's whole batch: keyrack asks again one name a call, so only
    // that key's row fails
    w.front.allow_all();
    w.set_ok("OPEN_KEY", "open", &[]);
    w.front.deny_name(
        "GetParameters",
        &w.name("API_KEY"),
        "User: arn:aws:sts::123456789012:assumed-role/Dev/alice is not authorized to perform: ssm:GetParameters on resource: arn:aws:ssm:us-east-1:123456789012:parameter/keyrack/denied/test/API_KEY",
    );
    w.front.reset();
    let (_, rows) = w.unlock(&["--env", "test"]);
    assert_eq!(row(&rows, "API_KEY")["status"], "errored");
    assert_eq!(row(&rows, "OPEN_KEY")["status"], "granted", "{rows:#?}");
    assert_eq!(w.s.get_value("OPEN_KEY", "test").1, "open");
    assert_eq!(
        w.front.count("GetParameters"),
        3,
        "the batch, then each name"
    );

    // KMS: the key AWS named, kms:Decrypt
    w.front.allow_all();
    let key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    w.front.deny(
        "GetParameters",
        &format!("User: arn:aws:sts::123456789012:assumed-role/Dev/alice is not authorized to perform: kms:Decrypt on resource: {key} because no identity-based policy allows the kms:Decrypt action"),
    );
    let (_, rows) = w.unlock(&["--env", "test", "--key", "API_KEY"]);
    let fix = row(&rows, "API_KEY")["fix"].as_str().unwrap().to_string();
    let statement: serde_json::Value =
        serde_json::from_str(&fix[fix.find('{').unwrap()..]).unwrap();
    assert_eq!(
        statement,
        serde_json::json!({"Effect": "Allow", "Action": "kms:Decrypt", "Resource": key})
    );

    // PutParameter denied at set: set fails with the statement, nothing recorded
    w.front.allow_all();
    w.front.deny("PutParameter", "User: arn:aws:sts::123456789012:assumed-role/Dev/alice is not authorized to perform: ssm:PutParameter on resource: arn:aws:ssm:us-east-1:123456789012:parameter/keyrack/denied/test/NEW_KEY because no identity-based policy allows the ssm:PutParameter action");
    let o = w.set("NEW_KEY", "v", &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(r#""Action":["ssm:PutParameter","ssm:GetParameter"]"#),
        "{}",
        stderr(&o)
    );
    assert_eq!(w.moto.parameter(&w.name("NEW_KEY")), None);
}

#[test]
fn throttling_is_retried_with_backoff_then_reported() {
    let w = World::new("throttle");
    w.set_ok("API_KEY", "v", &[]);
    w.front.reset();
    w.front.throttle_next(3);
    let (code, rows) = w.unlock(&["--env", "test", "--key", "API_KEY"]);
    assert_eq!(code, 0, "{rows:#?}");
    assert_eq!(
        w.front.count("GetParameters"),
        4,
        "3 throttled, then served"
    );

    w.front.reset();
    w.front.throttle_next(100);
    let (code, rows) = w.unlock(&["--env", "test", "--key", "API_KEY"]);
    assert_eq!(code, 2);
    assert_eq!(w.front.count("GetParameters"), 5, "bounded: 5 tries");
    let r = row(&rows, "API_KEY");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("ThrottlingException"),
        "{r}"
    );
    w.front.throttle_next(0);
}

#[test]
fn machine_wide_keys_use_the_credential_chain() {
    let w = World::bare("chain");
    let all_name = "/keyrack/_all_/all/CI_TOKEN";
    // environment credentials
    let env = [
        ("AWS_ACCESS_KEY_ID", "AKIDCHAINTEST"),
        ("AWS_SECRET_ACCESS_KEY", "chain-secret"),
        ("AWS_SESSION_TOKEN", "chain-session"),
        ("AWS_REGION", "eu-west-1"),
    ];
    let o =
        w.s.cmd()
            .args([
                "set",
                "--key",
                "CI_TOKEN",
                "--org",
                "@all",
                "--vault",
                "aws.params",
            ])
            .envs(env)
            .write_stdin("ci-value")
            .output()
            .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let calls = w.front.calls();
    assert!(calls
        .iter()
        .all(|c| c.access_key_id == "AKIDCHAINTEST" && c.region == "eu-west-1"));
    let (_, list) = w.s.json(&["list"]);
    let e = row(list["keys"].as_array().unwrap(), "CI_TOKEN");
    assert_eq!(e["exid"], all_name);
    assert_eq!(e["meta"]["identity"], "chain");
    assert_eq!(e["meta"]["region"], "eu-west-1");

    // without credentials: the row names what was tried, nothing is sent
    w.front.reset();
    let (code, rows) = w.unlock(&[]);
    assert_eq!(code, 2);
    let r = row(&rows, "CI_TOKEN");
    assert!(
        r["reason"].as_str().unwrap().contains("no AWS credentials"),
        "{r}"
    );
    assert!(w.front.calls().is_empty());

    // container credentials (ECS / EKS): FULL_URI on loopback with its authorization token
    let meta = Metadata::start("container-token");
    let o =
        w.s.cmd()
            .args(["--json", "unlock"])
            .env(
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                format!("{}/creds", meta.url),
            )
            .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", "container-token")
            .output()
            .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let o = w.s.run(
        &["get", "--key", "CI_TOKEN", "--org", "@all", "--value"],
        "",
    );
    assert_eq!(stdout(&o), "ci-value", "{}", stderr(&o));
    assert!(w
        .front
        .calls()
        .iter()
        .all(|c| c.access_key_id == meta.access_key_id));

    // instance metadata (EC2), IMDSv2: a session token first
    w.s.cmd().arg("relock").assert().success();
    w.front.reset();
    let o =
        w.s.cmd()
            .args(["unlock"])
            .env("AWS_EC2_METADATA_DISABLED", "false")
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &meta.url)
            .output()
            .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let seen = meta.requests();
    assert!(seen
        .iter()
        .any(|r| r.method == "PUT" && r.path == "/latest/api/token"));
    assert!(seen
        .iter()
        .filter(|r| r.path.starts_with("/latest/meta-data/"))
        .all(|r| r.imds_token.as_deref() == Some("imds-session-token")));
    assert_eq!(w.front.count("GetParameters"), 1);

    // an http:// container URL to another host is refused: the token is never sent there
    let o =
        w.s.cmd()
            .args(["--json", "unlock"])
            .env(
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http://example.com/creds",
            )
            .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", "container-token")
            .output()
            .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stdout(&o).contains("must be a loopback address"),
        "{}",
        stdout(&o)
    );

    // a repository key never takes the chain: --via is refused for @all
    let o =
        w.s.cmd()
            .args([
                "set",
                "--key",
                "X",
                "--org",
                "@all",
                "--vault",
                "aws.params",
                "--via",
                "AWS_PROFILE",
            ])
            .envs(env)
            .write_stdin("x")
            .output()
            .unwrap();
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn a_team_github_app_lives_in_ssm_and_is_minted_at_unlock() {
    use keyrack_fake_github::FakeGitHub;
    let mut w = World::new("ghapp");
    let gh = FakeGitHub::start();
    w.s.env("GITHUB_API_URL", &gh.url);
    let pem = w.s.root.join("app.pem");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "", "-f"])
        .arg(&pem)
        .status()
        .expect("ssh-keygen is installed");
    assert!(st.success());
    let public = std::process::Command::new("ssh-keygen")
        .args(["-e", "-m", "PKCS8", "-f"])
        .arg(pem.with_extension("pem.pub"))
        .output()
        .unwrap();
    gh.add_app("4242", &String::from_utf8(public.stdout).unwrap(), &[99]);
    let o = w.set(
        "GITHUB_TOKEN",
        "",
        &[
            "--mech",
            "github.app",
            "--app-id",
            "4242",
            "--installation-id",
            "99",
            "--private-key",
            pem.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    // SSM holds the app's credentials (a SecureString), never a minted token
    let (kind, stored) = w.moto.parameter(&w.name("GITHUB_TOKEN")).unwrap();
    assert_eq!(kind, "SecureString");
    assert!(!stored.contains("ghs_"), "the bundle, not a token");
    let (code, rows) = w.unlock(&["--env", "test"]);
    assert_eq!(code, 0, "{rows:#?}");
    let token = w.s.get_value("GITHUB_TOKEN", "test").1;
    assert!(token.starts_with("ghs_"), "{token}");
    assert_eq!(gh.issued().last(), Some(&token));
    // keyrack named and wrote it: del removes it from SSM
    let (_, v) = w.s.json(&["del", "--key", "GITHUB_TOKEN", "--env", "test"]);
    assert_eq!(v["secretDestroyed"], true);
    assert_eq!(w.moto.parameter(&w.name("GITHUB_TOKEN")), None);
}
