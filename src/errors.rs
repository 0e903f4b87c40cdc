//! Counts of the seed collector's error ids (`SetupError 100`, `PullError 302`, …) as they are
//! logged, for `okta_collector_errors_total{id}`: an operator alerts on the ids the seed's
//! manual documents, whatever part of the collector logs them.

use std::collections::BTreeMap;
use std::sync::Mutex;

static COUNTS: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

/// The id kinds the seed's manual uses, each followed by a number.
const KINDS: [&str; 3] = ["SetupError ", "PullError ", "InitVariablesError "];

/// Counts each error id (`<Kind> <number>`) that `message` names, once per id.
pub fn count_in(message: &str) {
    let mut found: Vec<String> = Vec::new();
    for kind in KINDS {
        let mut rest = message;
        while let Some(at) = rest.find(kind) {
            let after = &rest[at + kind.len()..];
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            if digits > 0 && digits <= 4 {
                let id = format!("{kind}{}", &after[..digits]);
                if !found.contains(&id) {
                    found.push(id);
                }
            }
            rest = after;
        }
    }
    if found.is_empty() {
        return;
    }
    let mut counts = crate::lock(&COUNTS);
    for id in found {
        *counts.entry(id).or_insert(0) += 1;
    }
}

/// Every id counted so far, with its count.
pub fn counts() -> Vec<(String, u64)> {
    crate::lock(&COUNTS)
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_counted_once_per_message_and_only_with_their_number() {
        count_in("x -> PullError 302: bad page (PullError 302 again), SetupError 100: no");
        count_in("PullError 3021234 is no id; PullError is none either; PullError 301: yes");
        let c = counts();
        let get = |id: &str| c.iter().find(|(k, _)| k == id).map_or(0, |(_, v)| *v);
        assert!(get("PullError 302") >= 1);
        assert!(get("SetupError 100") >= 1);
        assert!(get("PullError 301") >= 1);
        assert_eq!(get("PullError 3021"), 0);
        assert!(c.iter().all(|(k, _)| k.len() < 24), "{c:?}");
    }
}
