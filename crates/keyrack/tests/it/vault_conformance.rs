//! One conformance suite for every vault adapter: set (with its proven round trip), unlock,
//! get, relock, del, and the failure cases. A new vault joins by adding one test below.

use std::cell::Cell;

use keyrack::crypto::RecipientKey;
use keyrack::daemon::client::Client;
use keyrack::daemon::server::{Bound, Server};
use keyrack::home::Home;
use keyrack::host_manifest::HostEntry;
use keyrack::identity::{self, Identity};
use keyrack::mech::Mech;
use keyrack::secret::Secret;
use keyrack::slug::{Owner, Slug};
use keyrack::vault::{
    self, Checked, Custody, Read, SetRules, Stored, Vault, VaultContext, VaultKind,
};
use keyrack::Error;

struct World {
    _dir: tempfile::TempDir,
    home: Home,
    identity: Identity,
    recipients: Vec<RecipientKey>,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path().join("kr"), Owner::default());
    let identity = identity::generate(&home.generated_identity()).unwrap();
    let recipients = vec![identity.recipient().clone()];
    World {
        _dir: dir,
        home,
        identity,
        recipients,
    }
}

impl World {
    fn ctx(&self) -> VaultContext<'_> {
        VaultContext {
            home: &self.home,
            identity: Some(&self.identity),
            recipients: &self.recipients,
            login: Default::default(),
            interact: &keyrack::interact::NonInteractive,
        }
    }
}

const GHP: &str = "ghp_0123456789abcdefghijklmnopqrstuvwxyz";

fn secret(s: &str) -> Secret {
    Secret::new(s.into())
}

fn slug(s: &str) -> Slug {
    Slug::parse(s).unwrap()
}

fn value_read(v: &dyn Vault, e: &HostEntry) -> Option<String> {
    match v.read(e).unwrap() {
        Read::Granted(g) => {
            v.release(e).unwrap();
            Some(g.secret.expose().to_string())
        }
        Read::Lost(_) => None,
    }
}

/// Wraps a vault, counting reads and releases; with `tamper`, every read returns another value
/// (the round trip must catch it).
struct Watched<'a> {
    inner: &'a dyn Vault,
    tamper: bool,
    reads: Cell<u32>,
    releases: Cell<u32>,
}

impl<'a> Watched<'a> {
    fn new(inner: &'a dyn Vault, tamper: bool) -> Self {
        Watched {
            inner,
            tamper,
            reads: Cell::new(0),
            releases: Cell::new(0),
        }
    }
}

impl Vault for Watched<'_> {
    fn kind(&self) -> VaultKind {
        self.inner.kind()
    }
    fn store(&self, s: &Slug, m: Mech, v: &Secret) -> keyrack::Result<Stored> {
        self.inner.store(s, m, v)
    }
    fn read(&self, e: &HostEntry) -> keyrack::Result<Read> {
        self.reads.set(self.reads.get() + 1);
        Ok(match self.inner.read(e)? {
            Read::Granted(mut g) if self.tamper => {
                g.secret = secret("tampered");
                Read::Granted(g)
            }
            other => other,
        })
    }
    fn release(&self, e: &HostEntry) -> keyrack::Result<()> {
        self.releases.set(self.releases.get() + 1);
        self.inner.release(e)
    }
    fn del(&self, e: &HostEntry) -> keyrack::Result<()> {
        self.inner.del(e)
    }
}

/// The cases every vault that stores secrets must pass, with its default mech.
fn conformance(v: &dyn Vault) {
    conformance_with(v, vault::info(v.kind()).default_mech);
}

/// The cases every vault that stores secrets must pass, with `mech`.
fn conformance_with(v: &dyn Vault, mech: Mech) {
    let kind = v.kind();
    let caps = vault::info(kind);
    assert_eq!(caps.kind, kind, "the registry line is this vault's");
    assert!(caps.writable);
    let s = slug("acme.test.CONFORMANCE_KEY");

    // set proves store → read (equal) → release → read again → release
    let watched = Watched::new(v, false);
    let entry = vault::set_proven(&watched, &s, mech, &secret("first")).unwrap();
    assert_eq!(entry.vault, kind);
    assert_eq!(entry.slug, s);
    assert_eq!(watched.reads.get(), 2, "{kind}: set reads back twice");
    assert_eq!(
        watched.releases.get(),
        2,
        "{kind}: and releases after each read"
    );

    // read → granted (the key's own grant) → release
    match v.read(&entry).unwrap() {
        Read::Granted(g) => {
            assert_eq!(g.secret.expose(), "first");
            assert_eq!(g.slug, s);
            assert_eq!(g.vault, kind);
        }
        Read::Lost(why) => panic!("{kind}: lost after set: {why}"),
    }
    v.release(&entry).unwrap();
    // the adapter keeps no state: a fresh one reads the same
    assert_eq!(value_read(v, &entry).as_deref(), Some("first"));

    // set again replaces
    vault::set_proven(v, &s, mech, &secret("second")).unwrap();
    assert_eq!(value_read(v, &entry).as_deref(), Some("second"));

    // values are kept byte for byte (quotes, newlines, unicode)
    let odd = "line1\nline2 'q' \"dq\" ünïcødé \\ $HOME";
    let odd_slug = slug("acme.test.ODD");
    let odd_entry = vault::set_proven(v, &odd_slug, mech, &secret(odd)).unwrap();
    assert_eq!(value_read(v, &odd_entry).as_deref(), Some(odd));

    // many keys in one pass: one answer per entry, in order, as each read alone would give
    let many = vault::read_grants(v, &[&odd_entry, &entry]);
    let values: Vec<String> = many
        .into_iter()
        .map(|c| match c.unwrap() {
            Checked::Granted(g) => g.secret.expose().to_string(),
            other => panic!("{kind}: {other:?}"),
        })
        .collect();
    assert_eq!(values, [odd, "second"], "{kind}");
    v.release(&odd_entry).unwrap();
    v.release(&entry).unwrap();

    // a read-back that differs fails set, and the previous value survives
    let sab = Watched::new(v, true);
    let err = vault::set_proven(&sab, &s, mech, &secret("third")).unwrap_err();
    assert!(matches!(err, Error::RoundTrip { .. }), "{kind}: {err}");
    assert!(err.to_string().contains("differs"), "{err}");
    assert!(sab.reads.get() > 0);
    assert!(
        sab.releases.get() > 0,
        "{kind}: a failed proof releases what it read"
    );
    assert_eq!(
        value_read(v, &entry).as_deref(),
        Some("second"),
        "{kind}: undo restored the old value"
    );

    // a failed first set leaves nothing behind
    let fresh = slug("acme.test.NEVER_KEPT");
    let err = vault::set_proven(&sab, &fresh, mech, &secret("x")).unwrap_err();
    assert!(matches!(err, Error::RoundTrip { .. }));
    let fresh_entry = vault::provisional_entry(&fresh, kind, mech, None, Default::default());
    assert!(
        value_read(v, &fresh_entry).is_none(),
        "{kind}: nothing kept after a failed set"
    );
    // a key the vault does not have is lost in a pass of many too, the others unharmed
    let many = v.read_many(&[&fresh_entry, &entry]);
    assert_eq!(many.len(), 2, "{kind}");
    let mut many = many.into_iter();
    assert!(
        matches!(many.next().unwrap().unwrap(), Read::Lost(_)),
        "{kind}"
    );
    assert!(
        matches!(many.next().unwrap().unwrap(), Read::Granted(g) if g.secret.expose() == "second"),
        "{kind}"
    );
    v.release(&entry).unwrap();

    // an unsupported mech is refused before anything is stored
    let err = vault::set_proven(v, &fresh, Mech::AwsSso, &secret("x")).unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");

    // the admission rules unlock applies are checked before anything is stored
    let big = "x".repeat(keyrack::secret::MAX_SECRET_BYTES + 1);
    for bad in [big.as_str(), "a\0b", GHP] {
        let err = vault::set_proven(v, &fresh, mech, &secret(bad)).unwrap_err();
        assert!(matches!(err, Error::ValueRefused { .. }), "{kind}: {err}");
        assert!(!err.to_string().contains("xxxx"), "never quotes the value");
        assert!(
            value_read(v, &fresh_entry).is_none(),
            "{kind}: nothing kept after a refused value"
        );
    }
    // a token is kept only when allowed, and unlock's read step says it is blocked
    let rules = SetRules {
        allow_dangerous: true,
    };
    let e = vault::set_proven_with(v, v, &fresh, mech, &secret(GHP), rules).unwrap();
    match vault::read_grant(v, &e).unwrap() {
        Checked::Blocked(g, b) => {
            assert_eq!(g.secret.expose(), GHP);
            assert_eq!(b.pattern, "ghp_");
        }
        other => panic!("{kind}: expected blocked, got {other:?}"),
    }
    v.release(&e).unwrap();
    v.del(&e).unwrap();
    assert!(matches!(
        vault::read_grant(v, &entry).unwrap(),
        Checked::Granted(g) if g.secret.expose() == "second"
    ));
    v.release(&entry).unwrap();

    // del destroys (owned vaults): a read now reports lost
    assert_eq!(caps.custody_of(&entry), Custody::Owns);
    v.del(&entry).unwrap();
    assert!(
        value_read(v, &entry).is_none(),
        "{kind}: del destroys the secret"
    );
    assert!(matches!(v.read(&entry).unwrap(), Read::Lost(_)));
    v.del(&entry).unwrap(); // idempotent
}

#[test]
fn the_registry_has_one_line_per_vault() {
    let _env = crate::env_lock();
    let w = world();
    for kind in VaultKind::ALL {
        let caps = vault::info(kind);
        assert_eq!(caps.kind, kind);
        assert_eq!(vault::open(kind, w.ctx()).kind(), kind);
        assert!(
            caps.mechs.is_empty() || caps.mechs.contains(&caps.default_mech),
            "{kind}: its default mech is one it accepts"
        );
        assert_eq!(caps.writable, !caps.mechs.is_empty(), "{kind}");
    }
    assert_eq!(vault::default_for("AWS_PROFILE"), VaultKind::AwsConfig);
    assert_eq!(vault::default_for("XAI_API_KEY"), VaultKind::OsSecure);
}

#[test]
fn os_secure_conforms() {
    let _env = crate::env_lock();
    let w = world();
    let v = vault::open(VaultKind::OsSecure, w.ctx());
    conformance(v.as_ref());
}

#[test]
fn os_direct_conforms() {
    let _env = crate::env_lock();
    let w = world();
    let v = vault::open(VaultKind::OsDirect, w.ctx());
    conformance(v.as_ref());
}

#[test]
fn os_daemon_conforms() {
    let _env = crate::env_lock();
    let w = world();
    let server = match Server::bind(&w.home).unwrap() {
        Bound::Ready(s) => s,
        Bound::AlreadyRunning => panic!("fresh home has no daemon"),
    };
    std::thread::spawn(move || server.serve(keyrack::grant::NoRenewer));
    let v = vault::open(VaultKind::OsDaemon, w.ctx());
    conformance(v.as_ref());

    // after the daemon exits, its keys are lost
    let s = slug("acme.test.EPHEMERAL");
    let e = vault::set_proven(v.as_ref(), &s, Mech::Session, &secret("mem")).unwrap();
    assert!(Client::new(&w.home).shutdown().unwrap());
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(matches!(v.read(&e).unwrap(), Read::Lost(_)));
}

/// The grant of an unlocked aws.config key `slug` (profile `profile`), as `unlock` leaves it in
/// the daemon: its payload carries role credentials fresh for an hour.
fn signing_profile(slug: Slug, profile: &str, access_key_id: &str) -> keyrack::grant::Grant {
    use keyrack::vault::aws_config::Payload;
    let hour = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
    let payload = Payload::new(
        "http://127.0.0.1:9/never-asked-while-fresh".into(),
        "us-east-1".into(),
        "123456789012".into(),
        "AdministratorAccess".into(),
        secret("unused while the role credentials are fresh"),
        Some(keyrack::aws::portal::RoleCredentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret("conformance-secret"),
            session_token: secret("conformance-session"),
            expiration: hour,
        }),
    );
    let mut g =
        keyrack::grant::Grant::new(slug, secret(profile), VaultKind::AwsConfig, Mech::AwsSso);
    g.expires_at = Some(hour);
    g.payload = Some(payload.seal());
    g.labels.insert(
        keyrack::vault::aws_config::label::PROFILE.into(),
        profile.into(),
    );
    g
}

#[test]
fn aws_params_conforms() {
    let _env = crate::env_lock();
    // moto (installed by scripts/test.sh) stands for SSM; this is the only test of this binary
    // that reads AWS_ENDPOINT_URL_SSM.
    let moto = keyrack_fake_aws::ssm::Moto::shared();
    std::env::set_var("AWS_ENDPOINT_URL_SSM", &moto.url);
    let w = world();
    let server = match Server::bind(&w.home).unwrap() {
        Bound::Ready(s) => s,
        Bound::AlreadyRunning => panic!("fresh home has no daemon"),
    };
    std::thread::spawn(move || server.serve(keyrack::grant::NoRenewer));
    // the unlocked aws.config key whose role credentials sign: as unlock leaves it in the daemon
    let profile = signing_profile(
        slug("acme.test.AWS_PROFILE"),
        "acme.test",
        "ASIACONFORMANCE",
    );
    let client = Client::new(&w.home);
    client.unlock(vec![profile]).unwrap();
    let target = vault::SetTarget {
        region: Some("us-east-1".into()),
        ..Default::default()
    };
    let v = vault::open_for_set(VaultKind::AwsParams, w.ctx(), target);
    conformance(v.as_ref());
    // set wrote a SecureString under the computed name; del (above) removed it
    assert_eq!(moto.parameter("/keyrack/acme/test/CONFORMANCE_KEY"), None);
    assert_eq!(
        moto.parameter("/keyrack/acme/test/ODD").map(|(t, _)| t),
        Some("SecureString".into())
    );

    // without the signing key in the session: an error naming it, not an ambient profile
    client
        .relock(keyrack::daemon::protocol::RelockScope::All)
        .unwrap();
    let e = vault::provisional_entry(
        &slug("acme.test.ODD"),
        VaultKind::AwsParams,
        Mech::Replica,
        None,
        Default::default(),
    );
    let err = v.read(&e).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    assert!(err
        .fix()
        .unwrap()
        .contains("keyrack unlock --key AWS_PROFILE --env test"));
    let _ = client.shutdown();
}

#[test]
fn os_envvar_reads_the_environment_and_refuses_to_store() {
    let _env = crate::env_lock();
    let w = world();
    let v = vault::open(VaultKind::OsEnvvar, w.ctx());
    let err = vault::set_proven(
        v.as_ref(),
        &slug("acme.test.PATH"),
        Mech::Replica,
        &secret("x"),
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput { .. } | Error::VaultRefused { .. }),
        "{err}"
    );
    let e = vault::provisional_entry(
        &slug("acme.test.PATH"),
        VaultKind::OsEnvvar,
        Mech::Replica,
        None,
        Default::default(),
    );
    match v.read(&e).unwrap() {
        Read::Granted(g) => assert_eq!(g.secret.expose(), std::env::var("PATH").unwrap()),
        Read::Lost(why) => panic!("{why}"),
    }
    assert!(!vault::info(VaultKind::OsEnvvar).writable);
    assert!(matches!(v.del(&e).unwrap_err(), Error::VaultRefused { .. }));
    let missing = vault::provisional_entry(
        &slug("acme.test.KEYRACK_SURELY_UNSET_VAR"),
        VaultKind::OsEnvvar,
        Mech::Replica,
        None,
        Default::default(),
    );
    assert!(matches!(v.read(&missing).unwrap(), Read::Lost(_)));
}

#[test]
fn os_secure_with_recipients_that_exclude_you_fails_set_and_keeps_nothing() {
    let _env = crate::env_lock();
    let w = world();
    let other = age::x25519::Identity::generate().to_public();
    let recipients = vec![RecipientKey::X25519(other)];
    let ctx = VaultContext {
        home: &w.home,
        identity: Some(&w.identity),
        recipients: &recipients,
        login: Default::default(),
        interact: &keyrack::interact::NonInteractive,
    };
    let v = vault::open(VaultKind::OsSecure, ctx);
    let s = slug("acme.test.UNREADABLE");
    let err = vault::set_proven(v.as_ref(), &s, Mech::Replica, &secret("x")).unwrap_err();
    assert!(matches!(err, Error::RoundTrip { .. }), "{err}");
    assert!(
        err.to_string().contains("unlock"),
        "names the failing step: {err}"
    );
    assert!(
        !keyrack::vault::os_secure::file_for(&w.home, &s).exists(),
        "no file left behind"
    );
}

#[test]
fn os_secure_corrupt_file_is_an_error_not_a_panic() {
    let _env = crate::env_lock();
    let w = world();
    let v = vault::open(VaultKind::OsSecure, w.ctx());
    let s = slug("acme.test.CORRUPT");
    let e = vault::set_proven(v.as_ref(), &s, Mech::Replica, &secret("x")).unwrap();
    let f = keyrack::vault::os_secure::file_for(&w.home, &s);
    let full = std::fs::read(&f).unwrap();
    for cut in [0, 10, full.len() / 2, full.len() - 5] {
        std::fs::write(&f, &full[..cut]).unwrap();
        let err = v.read(&e).unwrap_err();
        assert!(
            matches!(err, Error::CorruptFile { .. }),
            "cut at {cut}: {err}"
        );
        assert!(err.fix().is_some());
    }
}

#[test]
fn os_secure_files_are_bound_to_their_slug() {
    let _env = crate::env_lock();
    let w = world();
    let v = vault::open(VaultKind::OsSecure, w.ctx());
    let (a, b) = (slug("acme.test.ALPHA"), slug("acme.test.BETA"));
    let ea = vault::set_proven(v.as_ref(), &a, Mech::Replica, &secret("alpha")).unwrap();
    vault::set_proven(v.as_ref(), &b, Mech::Replica, &secret("beta")).unwrap();
    let (fa, fb) = (
        keyrack::vault::os_secure::file_for(&w.home, &a),
        keyrack::vault::os_secure::file_for(&w.home, &b),
    );
    std::fs::copy(&fb, &fa).unwrap();
    let err = vault::read_grant(v.as_ref(), &ea).unwrap_err();
    assert!(matches!(err, Error::Unbound { .. }), "{err}");
    assert!(err.to_string().contains("acme.test.BETA"), "{err}");
    assert!(err
        .fix()
        .unwrap()
        .contains("keyrack set --key ALPHA --env test"));

    // a valid age file of the right recipients but without the binding
    let raw = keyrack::crypto::encrypt(&w.recipients, b"planted").unwrap();
    std::fs::write(&fa, raw).unwrap();
    let err = v.read(&ea).unwrap_err();
    assert!(matches!(err, Error::Unbound { .. }), "{err}");
    assert!(err.to_string().contains("not bound to any key"), "{err}");

    // the payload is the header line, then the value byte for byte
    let plain = keyrack::crypto::decrypt(&fb, &std::fs::read(&fb).unwrap(), &w.identity).unwrap();
    assert_eq!(
        std::str::from_utf8(&plain).unwrap(),
        "{\"keyrack\":\"os.secure\",\"v\":1,\"slug\":\"acme.test.BETA\"}\nbeta"
    );
}

/// 1password, `replica` (keyrack creates the item), against the stand-in `op`.
#[test]
fn onepassword_replica_conforms() {
    let _env = crate::env_lock();
    use keyrack::vault::onepassword::{OnePassword, SetTarget};
    use keyrack::vault::op_cli::OpCli;
    let w = world();
    let op = keyrack_testkit::fake_op::FakeOp::install(w._dir.path());
    let cli = OpCli::at(&op.program, std::time::Duration::from_secs(30));
    let v = OnePassword::for_set(w.ctx(), SetTarget::default()).with_cli(cli);
    conformance_with(&v, Mech::Replica);
    let titles: Vec<String> = op
        .items()
        .iter()
        .map(|i| i["title"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        titles,
        ["keyrack: acme.test.ODD"],
        "only the key the suite keeps is left: the deleted ones and a failed set's are gone"
    );
    op.assert_no_secret_in_argv(&["first", "second", "third", "line1", GHP]);
}

/// 1password, `reference`: set reads the item twice (store, then the proof), del forgets.
#[test]
fn onepassword_reference_conforms() {
    let _env = crate::env_lock();
    use keyrack::vault::onepassword::{OnePassword, SetTarget};
    use keyrack::vault::op_cli::OpCli;
    let w = world();
    let op = keyrack_testkit::fake_op::FakeOp::install(w._dir.path());
    let id = op.add_item(
        keyrack_testkit::fake_op::TEAM_VAULT_ID,
        "DB",
        "password",
        "ref-v1",
    );
    let cli = || OpCli::at(&op.program, std::time::Duration::from_secs(30));
    let target = SetTarget {
        reference: Some("op://Team/DB/password".into()),
        op_vault: None,
    };
    let v = OnePassword::for_set(w.ctx(), target).with_cli(cli());
    let s = slug("acme.test.DB_PASS");
    let secret = v.resolve_reference().unwrap();
    assert_eq!(secret.expose(), "ref-v1");
    let e = vault::set_proven(&v, &s, Mech::Reference, &secret).unwrap();
    assert_eq!(e.exid.as_deref(), Some("op://Team/DB/password"));
    assert_eq!(value_read(&v, &e).as_deref(), Some("ref-v1"));
    // a proof that reads something else fails the set
    let sab = Watched::new(&v, true);
    let err = vault::set_proven(&sab, &s, Mech::Reference, &secret).unwrap_err();
    assert!(matches!(err, Error::RoundTrip { .. }), "{err}");
    // del forgets the pointer; the item stays
    v.del(&e).unwrap();
    assert_eq!(op.value(&id, "password").as_deref(), Some("ref-v1"));
    // the item goes away behind keyrack's back: lost, not an error
    let mut st = op.state();
    st["items"] = serde_json::json!([]);
    op.write_state(&st);
    let fresh = OnePassword::new(w.ctx()).with_cli(cli());
    assert!(matches!(fresh.read(&e).unwrap(), Read::Lost(_)));
    // signed out: an error with the fix, and op is not asked again for the next key
    op.set_signed_in(false);
    op.clear_calls();
    let err = fresh.read(&e).unwrap_err();
    assert!(matches!(err, Error::VaultUnavailable { .. }), "{err}");
    assert!(err.fix().unwrap().contains("op signin"));
    let other = vault::provisional_entry(
        &slug("acme.test.OTHER"),
        VaultKind::OnePassword,
        Mech::Reference,
        Some("op://Team/Other/password".into()),
        Default::default(),
    );
    assert!(fresh.read(&other).is_err());
    assert_eq!(op.calls().len(), 1, "{:?}", op.calls());
}

/// os.keychain, against a real GNOME Keyring on a private session bus.
#[cfg(target_os = "linux")]
#[test]
fn os_keychain_conforms() {
    let _env = crate::env_lock();
    let w = world();
    let bus = crate::session_bus();
    let v = vault::open(VaultKind::OsKeychain, w.ctx());
    conformance(v.as_ref());
    let left = bus.secret_tool(&["search", "--all", "service", "keyrack"]);
    let text =
        String::from_utf8_lossy(&left.stdout).into_owned() + &String::from_utf8_lossy(&left.stderr);
    assert_eq!(
        text.matches("attribute.username = ").count(),
        1,
        "only the key the suite keeps is left: {text}"
    );
    assert!(
        text.contains("attribute.username = acme.test.ODD"),
        "{text}"
    );
}
