//! Where the tests find the real samples kept beside the checkout (`../shared/samples/`:
//! recorded Okta answers, the CA chains Devo publishes), and how they say they are missing.

/// The folder `sub` of `../shared/samples/` (real Okta answers, Devo's CA chains), which sits
/// beside the checkout but not in it. When it is missing, `test` is skipped and says so: in
/// CI (`CI=true`) that fails the test; elsewhere a file named after `test` is left in
/// `$OKC_SKIPPED_DIR` (set by `tests/run`, which counts them in its closing line).
///
/// # Panics
/// In CI, when the folder is missing.
pub fn shared_samples(sub: &str, test: &str) -> Option<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/samples")
        .join(sub);
    if std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{} is missing: CI must have ../shared beside the checkout",
        dir.display()
    );
    println!("SKIPPED: {} is missing; {test} did not run", dir.display());
    if let Some(skipped) = std::env::var_os("OKC_SKIPPED_DIR") {
        let _ = std::fs::write(std::path::Path::new(&skipped).join(test), b"");
    }
    None
}
