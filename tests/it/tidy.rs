//! Repository rules checked as tests: every Rust file opens with a `//!` line saying what it is for.

#[test]
fn every_rust_file_opens_with_a_module_doc_line() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut missing = Vec::new();
    let mut stack = vec![root.join("src"), root.join("spool/src"), root.join("tests")];
    let mut seen = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                seen += 1;
                let text = std::fs::read_to_string(&p).unwrap();
                if !text.starts_with("//!") {
                    missing.push(p.strip_prefix(root).unwrap().display().to_string());
                }
            }
        }
    }
    assert!(seen > 20);
    assert!(
        missing.is_empty(),
        "files without a leading //! line: {missing:?}"
    );
}
