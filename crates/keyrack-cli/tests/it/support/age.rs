//! The `age` CLI (no one here wrote it): identities made by `age-keygen`, files read by `age -d`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Makes a new identity at `path` with `age-keygen`; returns its recipient (public key).
pub fn keygen(path: &Path) -> String {
    let made = Command::new("age-keygen")
        .arg("-o")
        .arg(path)
        .output()
        .expect("age-keygen is installed");
    assert!(made.status.success(), "age-keygen -o {}", path.display());
    let public = Command::new("age-keygen")
        .arg("-y")
        .arg(path)
        .output()
        .unwrap();
    assert!(public.status.success());
    String::from_utf8(public.stdout).unwrap().trim().to_string()
}

/// Every `*.age` file under `dir`, sorted.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "age") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Whether `age -d -i identity` decrypts `file`.
pub fn decrypts(identity: &Path, file: &Path) -> bool {
    Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(identity)
        .arg(file)
        .output()
        .expect("age is installed")
        .status
        .success()
}
