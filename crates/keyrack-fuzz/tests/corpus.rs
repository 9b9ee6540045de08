//! The fuzz targets as a stable-toolchain regression check (part of `cargo test --workspace`):
//! every file of every committed corpus (`fuzz/corpus/<target>/`) goes through its target, then
//! a fixed-seed batch of byte-level mutations of that corpus does. A failure names the corpus
//! file, or saves the mutated input under the test's temp dir, so it can be replayed with
//! `cargo +nightly fuzz run <target> <file>` and committed to the corpus once fixed.

use std::io::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use keyrack::aws::config_file::AwsConfig;
use keyrack::aws::token_cache;
use keyrack::daemon::protocol::{decode_request, read_request, Request, RequestError};
use keyrack::daemon::MAX_REQUEST_BYTES;
use keyrack::host_manifest::HostManifest;
use keyrack::repo_manifest::RawManifest;
use keyrack_fuzz::TARGETS;

/// Mutated inputs per target and test run.
const MUTATIONS: usize = 2000;
/// The seed of the mutation run (fixed: the same inputs on every run and machine).
const SEED: u64 = 0x6b65_7972_6163_6b21;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn target(name: &str) -> keyrack_fuzz::Target {
    TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no target {name}"))
        .1
}

/// The committed corpus of a target, sorted by file name.
fn corpus(name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fuzz_dir().join("corpus").join(name);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("read corpus dir").path();
            let bytes = std::fs::read(&path).expect("read corpus file");
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                bytes,
            )
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
}

/// A linear congruential generator (no dependency; deterministic across platforms).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() as usize) % n.max(1)
    }
}

/// Bytes that matter to the formats under test (structure, line endings, UTF-8 edges).
const INTERESTING: &[u8] =
    b"\n\r\t \"'\\:,-#;=[]{}!&*?|>%@.0019azAZ_\x00\x7f\x80\xbf\xc3\xe2\xef\xff";

/// Applies 1 to 4 simple mutations: bit flips, byte overwrites, insertions, deletions,
/// duplicated chunks and chunks spliced in from another corpus file.
fn mutate(r: &mut Lcg, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut b = input.to_vec();
    for _ in 0..1 + r.below(4) {
        let len = b.len();
        match r.below(8) {
            0 if len > 0 => {
                let i = r.below(len);
                b[i] ^= 1 << r.below(8);
            }
            1 if len > 0 => {
                let i = r.below(len);
                b[i] = INTERESTING[r.below(INTERESTING.len())];
            }
            2 => {
                let i = r.below(len + 1);
                let n = 1 + r.below(4);
                for _ in 0..n {
                    b.insert(i, INTERESTING[r.below(INTERESTING.len())]);
                }
            }
            3 if len > 0 => {
                let i = r.below(len);
                let n = (1 + r.below(16)).min(len - i);
                b.drain(i..i + n);
            }
            4 if len > 0 => {
                let i = r.below(len);
                let n = (1 + r.below(32)).min(len - i);
                let chunk = b[i..i + n].to_vec();
                let at = r.below(len + 1);
                b.splice(at..at, chunk);
            }
            5 if !other.is_empty() => {
                let i = r.below(other.len());
                let n = (1 + r.below(64)).min(other.len() - i);
                let at = r.below(len + 1);
                b.splice(at..at, other[i..i + n].iter().copied());
            }
            6 if len > 0 => b.truncate(r.below(len)),
            _ => {
                let i = r.below(len + 1);
                b.insert(i, r.next() as u8);
            }
        }
    }
    b.truncate(64 << 10);
    b
}

/// Runs `input` through the target; a panic becomes a failure naming `what`, with the input
/// saved for replay.
fn run(name: &str, what: &str, input: &[u8]) {
    let f = target(name);
    if catch_unwind(AssertUnwindSafe(|| f(input))).is_err() {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
        std::fs::create_dir_all(&dir).expect("create failure dir");
        let file = dir.join(format!("{name}-{}", what.replace(['/', ' '], "_")));
        std::fs::File::create(&file)
            .and_then(|mut out| out.write_all(input))
            .expect("save failing input");
        panic!(
            "target {name} fails on {what} (saved as {}; replay: cargo +nightly fuzz run {name} {0}):\n{}",
            file.display(),
            input.escape_ascii()
        );
    }
}

/// Replays the corpus, then `MUTATIONS` mutations of it.
fn check(name: &str) {
    let files = corpus(name);
    for (file, bytes) in &files {
        run(name, &format!("corpus file {file}"), bytes);
    }
    let mut r = Lcg(SEED
        ^ name
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31) ^ u64::from(b)));
    for i in 0..MUTATIONS {
        let (base, input) = &files[r.below(files.len())];
        let (_, other) = &files[r.below(files.len())];
        let mutated = mutate(&mut r, input, other);
        run(name, &format!("mutation {i} of {base}"), &mutated);
    }
}

#[test]
fn repo_manifest() {
    check("repo_manifest");
}

#[test]
fn host_manifest() {
    check("host_manifest");
}

#[test]
fn host_manifest_age() {
    check("host_manifest_age");
}

#[test]
fn daemon_request() {
    check("daemon_request");
}

#[test]
fn aws_config() {
    check("aws_config");
}

#[test]
fn token_cache() {
    check("token_cache");
}

#[test]
fn every_target_has_a_corpus_and_a_cargo_fuzz_binary() {
    let mut corpora: Vec<String> = std::fs::read_dir(fuzz_dir().join("corpus"))
        .expect("fuzz/corpus")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    corpora.sort();
    let mut names: Vec<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    names.sort();
    assert_eq!(
        corpora, names,
        "fuzz/corpus/* and keyrack_fuzz::TARGETS differ"
    );
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for name in &names {
        let src = std::fs::read_to_string(fuzz_dir().join(format!("fuzz_targets/{name}.rs")))
            .unwrap_or_else(|e| panic!("fuzz/fuzz_targets/{name}.rs: {e}"));
        assert!(
            src.contains(&format!("keyrack_fuzz::{name}(data)")),
            "fuzz/fuzz_targets/{name}.rs does not call keyrack_fuzz::{name}"
        );
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
    }
}

/// The seeds reach past every refusal (a format change that turns them all into errors would
/// leave the fuzzers and this test exercising error paths only).
#[test]
fn the_seed_corpus_reaches_the_accepting_paths() {
    let seed = |target: &str, file: &str| {
        std::fs::read(fuzz_dir().join("corpus").join(target).join(file))
            .unwrap_or_else(|e| panic!("{target}/{file}: {e}"))
    };
    let m = RawManifest::from_bytes(
        Path::new("keyrack.yml"),
        seed("repo_manifest", "all_entry_forms.yml"),
    )
    .expect("all_entry_forms.yml parses");
    assert_eq!(m.envs["test"].len(), 4);
    let (home, identity) = keyrack_fuzz::test_identity();
    let plain = HostManifest::from_plaintext(home, &seed("host_manifest", "full.json"))
        .expect("full.json decodes");
    assert_eq!(plain.hosts.len(), 5);
    for file in ["full.armored.age", "empty_hosts.binary.age"] {
        HostManifest::decrypt(home, &seed("host_manifest_age", file), identity)
            .unwrap_or_else(|e| panic!("{file} decrypts with the test identity: {e}"));
    }
    assert!(matches!(
        decode_request(&seed("daemon_request", "unlock.jsonl")),
        Ok(Request::Unlock { grants }) if grants.len() == 2
    ));
    let config = AwsConfig::from_bytes(
        Path::new("config"),
        seed("aws_config", "keyrack_written.ini"),
    )
    .expect("UTF-8");
    config
        .sso_profile(&keyrack::aws::names::ProfileName::parse("acme.test").expect("valid"))
        .expect("keyrack_written.ini has keyrack's profile");
    let token = token_cache::parse(
        Path::new("token.json"),
        &seed("token_cache", "keyrack_written.json"),
    )
    .expect("keyrack_written.json decodes");
    assert!(token.refresh_token.is_some() && token.client_secret.is_some());
}

/// The size limit is out of reach of libFuzzer's default input length: check it here.
#[test]
fn daemon_request_framing_at_the_size_limit() {
    let status = b"{\"op\":\"status\"}";
    let padded = |len: usize| {
        let mut line = status.to_vec();
        line.resize(len - 1, b' ');
        line.push(b'\n');
        line
    };
    let fits = padded(MAX_REQUEST_BYTES);
    keyrack_fuzz::daemon_request(&fits);
    assert!(matches!(
        read_request(&fits[..], &mut Vec::new()),
        Ok(Request::Status)
    ));

    let over = padded(MAX_REQUEST_BYTES + 1);
    keyrack_fuzz::daemon_request(&over);
    let mut buf = Vec::new();
    assert!(matches!(
        read_request(&over[..], &mut buf),
        Err(RequestError::TooLarge)
    ));
    assert_eq!(
        buf.len(),
        MAX_REQUEST_BYTES + 1,
        "reads one byte past the limit, no more"
    );

    let endless = vec![b' '; 2 * MAX_REQUEST_BYTES];
    keyrack_fuzz::daemon_request(&endless);
    let mut buf = Vec::new();
    assert!(matches!(
        read_request(&endless[..], &mut buf),
        Err(RequestError::TooLarge)
    ));
    assert_eq!(buf.len(), MAX_REQUEST_BYTES + 1);

    let mut two = b"{\"op\":\"status\"}\n".to_vec();
    two.extend_from_slice(b"{\"op\":\"shutdown\"}\n");
    assert!(matches!(
        read_request(&two[..], &mut Vec::new()),
        Ok(Request::Status)
    ));
    assert!(matches!(
        read_request(&status[..], &mut Vec::new()),
        Err(RequestError::Incomplete)
    ));
}
