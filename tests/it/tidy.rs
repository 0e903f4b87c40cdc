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

/// Every Rust file under `src/` (the simulator's aside when `with_sim` is false), with its
/// text, lines of comment removed.
fn sources(with_sim: bool) -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    let mut stack = vec![root.join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if p.is_dir() {
                if with_sim || rel != "src/sim" {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|e| e == "rs") {
                let text: String = std::fs::read_to_string(&p)
                    .unwrap()
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .map(|l| format!("{l}\n"))
                    .collect();
                out.push((rel, text));
            }
        }
    }
    out
}

/// The top-level module (`src/okta/logs/mod.rs` -> `okta`, `src/status.rs` -> `status`).
fn top_module(rel: &str) -> String {
    let rest = rel.trim_start_matches("src/");
    rest.split('/')
        .next()
        .unwrap_or(rest)
        .trim_end_matches(".rs")
        .to_string()
}

#[test]
fn forward_knows_nothing_of_okta() {
    let offending: Vec<String> = sources(false)
        .into_iter()
        .filter(|(rel, text)| {
            rel.starts_with("src/forward/")
                && (text.contains("crate::okta") || text.contains("okta::page"))
        })
        .map(|(rel, _)| rel)
        .collect();
    assert!(
        offending.is_empty(),
        "forward must not read Okta's JSON (the spool gives each frame's time): {offending:?}"
    );
}

#[test]
fn no_top_level_module_imports_one_that_imports_it_back() {
    // Tests may reach anywhere: a file's `#[cfg(test)]` part and `tests.rs` files are left out.
    let files: Vec<(String, String)> = sources(false)
        .into_iter()
        .filter(|(rel, _)| !rel.ends_with("/tests.rs"))
        .map(|(rel, text)| {
            let product = text.split("#[cfg(test)]").next().unwrap_or("").to_string();
            (rel, product)
        })
        .collect();
    let modules: std::collections::BTreeSet<String> =
        files.iter().map(|(rel, _)| top_module(rel)).collect();
    let mut edges = std::collections::BTreeSet::new();
    for (rel, text) in &files {
        let from = top_module(rel);
        for m in &modules {
            if *m != from
                && (text.contains(&format!("crate::{m}::"))
                    || text.contains(&format!("crate::{m}}}"))
                    || text.contains(&format!("crate::{{{m}")))
            {
                edges.insert((from.clone(), m.clone()));
            }
        }
    }
    assert!(edges.len() > 10, "{edges:?}");
    let both: Vec<_> = edges
        .iter()
        .filter(|(a, b)| a < b && edges.contains(&(b.clone(), a.clone())))
        .collect();
    assert!(both.is_empty(), "modules that import each other: {both:?}");
}

#[test]
fn only_the_spool_crate_names_the_files_of_a_spool_folder() {
    let names = [
        "delivered-time",
        "losses.state",
        ".seg\"",
        "\"ack.",
        "\"LOCK\"",
    ];
    let offending: Vec<String> = sources(false)
        .into_iter()
        .filter(|(_, text)| names.iter().any(|n| text.contains(n)))
        .map(|(rel, _)| rel)
        .collect();
    assert!(
        offending.is_empty(),
        "only spool/ reads or writes the files of a spool folder: {offending:?}"
    );
}
