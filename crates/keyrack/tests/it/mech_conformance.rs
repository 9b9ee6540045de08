//! The `github.app` mech's conformance, in every vault that accepts it: set proves store → read →
//! mint → release → read again (the value read back is the stored bundle, byte for byte; the
//! grant is the minted token), unlock's read step mints a fresh token that expires with it, a
//! vault that reads back something else fails set, credentials GitHub refuses fail set and keep
//! nothing.
//!
//! Its own test binary (one test): it points `GITHUB_API_URL` of this process at the fake.

use std::cell::Cell;
use std::path::Path;

use keyrack::github::app::{AppCredentials, Issuer};
use keyrack::home::Home;
use keyrack::host_manifest::HostEntry;
use keyrack::identity;
use keyrack::mech::Mech;
use keyrack::secret::Secret;
use keyrack::slug::{Owner, Slug};
use keyrack::vault::{self, Checked, Read, Stored, Vault, VaultContext, VaultKind};
use keyrack::Error;
use keyrack_fake_github::FakeGitHub;

/// Returns another value from `read`: the proof must catch it.
struct Sabotaged<'a> {
    inner: &'a dyn Vault,
    reads: Cell<u32>,
}

impl Vault for Sabotaged<'_> {
    fn kind(&self) -> VaultKind {
        self.inner.kind()
    }
    fn store(&self, s: &Slug, m: Mech, v: &Secret) -> keyrack::Result<Stored> {
        self.inner.store(s, m, v)
    }
    fn read(&self, e: &HostEntry) -> keyrack::Result<Read> {
        self.reads.set(self.reads.get() + 1);
        Ok(match self.inner.read(e)? {
            Read::Granted(mut g) => {
                g.secret = Secret::new(
                    g.secret
                        .expose()
                        .replace("installationId", "installationID"),
                );
                Read::Granted(g)
            }
            lost => lost,
        })
    }
    fn release(&self, e: &HostEntry) -> keyrack::Result<()> {
        self.inner.release(e)
    }
    fn del(&self, e: &HostEntry) -> keyrack::Result<()> {
        self.inner.del(e)
    }
}

fn keypair(dir: &Path) -> (String, String) {
    let private = dir.join("app.pem");
    let st = std::process::Command::new("ssh-keygen")
        .args([
            "-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "", "-C", "app", "-f",
        ])
        .arg(&private)
        .status()
        .expect("ssh-keygen is installed");
    assert!(st.success());
    let public = std::process::Command::new("ssh-keygen")
        .args(["-e", "-m", "PKCS8", "-f"])
        .arg(dir.join("app.pem.pub"))
        .output()
        .unwrap();
    (
        std::fs::read_to_string(private).unwrap(),
        String::from_utf8(public.stdout).unwrap(),
    )
}

fn conformance(v: &dyn Vault, gh: &FakeGitHub, bundle: &Secret, wrong: &Secret) {
    let kind = v.kind();
    let s = Slug::parse("acme.test.GITHUB_TOKEN").unwrap();
    let before = gh.issued().len();

    // set: the proof mints once (its second read checks the vault alone)
    let entry = vault::set_proven(v, &s, Mech::GithubApp, bundle).unwrap();
    assert_eq!((entry.vault, entry.mech), (kind, Mech::GithubApp));
    assert_eq!(gh.issued().len(), before + 1, "{kind}: the proof minted");

    // what the vault holds is the bundle, byte for byte
    match v.read(&entry).unwrap() {
        Read::Granted(g) => assert_eq!(g.secret, *bundle, "{kind}"),
        Read::Lost(why) => panic!("{kind}: {why}"),
    }
    v.release(&entry).unwrap();

    // unlock's read step mints a fresh token; the grant expires with it
    let now_ms = jiff::Timestamp::now().as_millisecond();
    match vault::read_grant(v, &entry).unwrap() {
        Checked::Granted(g) => {
            assert_eq!(g.secret.expose(), gh.issued().last().unwrap(), "{kind}");
            assert!(g.secret.expose().starts_with("ghs_"));
            assert_eq!((g.mech, g.slug.clone()), (Mech::GithubApp, s.clone()));
            let exp = g
                .expires_at
                .expect("a minted grant expires")
                .as_millisecond();
            assert!(
                (now_ms + 3_590_000..=now_ms + 3_605_000).contains(&exp),
                "{kind}: expires with the token (1 h): {exp} vs {now_ms}"
            );
        }
        other => panic!("{kind}: {other:?}"),
    }
    v.release(&entry).unwrap();
    assert_eq!(gh.issued().len(), before + 2);

    // a vault that reads back something else fails set; the stored bundle survives
    let sab = Sabotaged {
        inner: v,
        reads: Cell::new(0),
    };
    let err = vault::set_proven(&sab, &s, Mech::GithubApp, bundle).unwrap_err();
    assert!(matches!(err, Error::RoundTrip { .. }), "{kind}: {err}");
    assert!(sab.reads.get() > 0);
    assert!(matches!(
        vault::read_grant(v, &entry).unwrap(),
        Checked::Granted(_)
    ));
    v.release(&entry).unwrap();

    // credentials GitHub refuses fail set with GitHub's reason and the fix; nothing is kept
    let fresh = Slug::parse("acme.test.NEVER_KEPT").unwrap();
    let err = vault::set_proven(v, &fresh, Mech::GithubApp, wrong).unwrap_err();
    match &err {
        Error::GitHub { message, .. } => {
            assert!(
                message.contains("401") && message.contains("nothing was kept"),
                "{err}"
            )
        }
        other => panic!("{kind}: {other}"),
    }
    assert!(err.fix().unwrap().contains("app id"), "{err}");
    let fresh_entry =
        vault::provisional_entry(&fresh, kind, Mech::GithubApp, None, Default::default());
    assert!(
        matches!(v.read(&fresh_entry).unwrap(), Read::Lost(_)),
        "{kind}: nothing kept"
    );

    // del destroys the credentials
    v.del(&entry).unwrap();
    assert!(matches!(v.read(&entry).unwrap(), Read::Lost(_)));
}

#[test]
fn github_app_conforms_in_every_vault_that_keeps_it() {
    let _env = crate::env_lock();
    let dir = tempfile::tempdir().unwrap();
    let (pem, public) = keypair(dir.path());
    let gh = FakeGitHub::start();
    gh.add_app("31337", &public, &[5]);
    std::env::set_var("GITHUB_API_URL", &gh.url);
    let creds = AppCredentials::new(Issuer::AppId(31337), 5, Secret::new(pem.clone())).unwrap();
    let bundle = creds.to_bundle();
    let round = AppCredentials::from_bundle(bundle.expose()).unwrap();
    assert_eq!(
        (round.issuer.clone(), round.installation_id),
        (Issuer::AppId(31337), 5)
    );
    let wrong = AppCredentials::new(Issuer::AppId(999), 5, Secret::new(pem))
        .unwrap()
        .to_bundle();

    let home = Home::at(dir.path().join("kr"), Owner::default());
    let id = identity::generate(&home.generated_identity()).unwrap();
    let recipients = vec![id.recipient().clone()];
    let ctx = VaultContext {
        home: &home,
        identity: Some(&id),
        recipients: &recipients,
        login: Default::default(),
        interact: &keyrack::interact::NonInteractive,
    };
    let kinds: Vec<VaultKind> = VaultKind::ALL
        .into_iter()
        .filter(|k| vault::info(*k).mechs.contains(&Mech::GithubApp))
        .collect();
    assert!(kinds.contains(&VaultKind::OsSecure) && kinds.contains(&VaultKind::OsDirect));
    assert!(
        !kinds.contains(&VaultKind::OsDaemon),
        "the daemon would hand out the credentials themselves"
    );
    // os.keychain keeps it too: a real GNOME Keyring on this process's private bus
    #[cfg(target_os = "linux")]
    {
        assert!(kinds.contains(&VaultKind::OsKeychain));
        crate::session_bus();
    }
    for kind in kinds {
        if kind == VaultKind::AwsParams {
            // SSM is moto; the signing AWS_PROFILE grant is in this home's daemon
            aws_params_signer(&home);
            let target = vault::SetTarget {
                region: Some("us-east-1".into()),
                ..Default::default()
            };
            let v = vault::open_for_set(kind, ctx, target);
            conformance(v.as_ref(), &gh, &bundle, &wrong);
            continue;
        }
        let v = vault::open(kind, ctx);
        conformance(v.as_ref(), &gh, &bundle, &wrong);
    }
}

/// What aws.params signs with: moto for SSM (`AWS_ENDPOINT_URL_SSM` of this process), and a
/// daemon for `home` holding an unlocked `acme.test.AWS_PROFILE` whose payload carries fresh
/// role credentials.
fn aws_params_signer(home: &Home) {
    use keyrack::daemon::server::{Bound, Server};
    use keyrack::vault::aws_config::{label, Payload};
    let moto = keyrack_fake_aws::ssm::Moto::shared();
    std::env::set_var("AWS_ENDPOINT_URL_SSM", &moto.url);
    let server = match Server::bind(home).unwrap() {
        Bound::Ready(s) => s,
        Bound::AlreadyRunning => panic!("a fresh home has no daemon"),
    };
    std::thread::spawn(move || server.serve(keyrack::grant::NoRenewer));
    let hour = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
    let secret = |s: &str| Secret::new(s.into());
    let payload = Payload::new(
        "http://127.0.0.1:9/never-asked-while-fresh".into(),
        "us-east-1".into(),
        "123456789012".into(),
        "AdministratorAccess".into(),
        secret("unused while the role credentials are fresh"),
        Some(keyrack::aws::portal::RoleCredentials {
            access_key_id: "ASIAMECHCONFORMANCE".into(),
            secret_access_key: secret("conformance-secret"),
            session_token: secret("conformance-session"),
            expiration: hour,
        }),
    );
    let mut profile = keyrack::grant::Grant::new(
        Slug::parse("acme.test.AWS_PROFILE").unwrap(),
        secret("acme.test"),
        VaultKind::AwsConfig,
        Mech::AwsSso,
    );
    profile.expires_at = Some(hour);
    profile.payload = Some(payload.seal());
    profile
        .labels
        .insert(label::PROFILE.into(), "acme.test".into());
    keyrack::daemon::client::Client::new(home)
        .unlock(vec![profile])
        .unwrap();
}
