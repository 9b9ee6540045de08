// Link the `keyrack` binary as a non-PIE executable: the dynamic loader then has no relative
// relocations to apply at start-up (a third of `keyrack get`'s instructions when PIE). The
// objects stay position-independent; only the final executable is placed at a fixed address.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
