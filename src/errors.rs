//! The seed collector's error ids (`SetupError 100`, `PullError 302`, …): the one list of them,
//! with the texts its manual gives, and how often each was logged, for
//! `okta_collector_errors_total{id}`. Operators search for these texts and alert on the ids, so
//! they are a type rather than strings typed again at each call site; a log line counts for
//! each id it names, whatever part of the collector logs it.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// An error id of the seed collector's manual (its Troubleshooting table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorId {
    /// A service's `start` is not an RFC 3339 time.
    InitVariables1,
    /// A service's `start` is in the future.
    InitVariables2,
    /// Okta answered an HTTP error at setup, or refused the credentials or an endpoint.
    Setup100,
    /// Okta cannot be reached.
    Setup101,
    /// Okta answered an HTTP error during a pull.
    Pull300,
    /// The connection to Okta failed during a pull.
    Pull301,
    /// Okta's answer could not be used.
    Pull302,
}

impl ErrorId {
    /// Every id, in the manual's order.
    pub const ALL: [ErrorId; 7] = [
        ErrorId::InitVariables1,
        ErrorId::InitVariables2,
        ErrorId::Setup100,
        ErrorId::Setup101,
        ErrorId::Pull300,
        ErrorId::Pull301,
        ErrorId::Pull302,
    ];

    /// The id, e.g. `PullError 302`.
    pub fn code(self) -> &'static str {
        match self {
            ErrorId::InitVariables1 => "InitVariablesError 1",
            ErrorId::InitVariables2 => "InitVariablesError 2",
            ErrorId::Setup100 => "SetupError 100",
            ErrorId::Setup101 => "SetupError 101",
            ErrorId::Pull300 => "PullError 300",
            ErrorId::Pull301 => "PullError 301",
            ErrorId::Pull302 => "PullError 302",
        }
    }

    /// The manual's text after the id.
    pub fn summary(self) -> &'static str {
        match self {
            ErrorId::InitVariables1 => {
                "initial_start_time_in_utc is not set as per the datetime_format"
            }
            ErrorId::InitVariables2 => "initial_start_time_in_utc is in the future",
            ErrorId::Setup100 => "HTTP Error occurred while retrieving events from okta server",
            ErrorId::Setup101 => {
                "Connecting Error occurred while retrieving events from okta server"
            }
            ErrorId::Pull300 | ErrorId::Pull301 => {
                "HTTP Error occurred while fetching siem event from okta server"
            }
            ErrorId::Pull302 => "Some error occurred while retrieving events from Okta server",
        }
    }

    /// How often a log line named this id since start.
    pub fn count(self) -> u64 {
        COUNTS[self as usize].load(Ordering::Relaxed)
    }
}

/// `<id>: <summary>`, as the seed logs it.
impl fmt::Display for ErrorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.summary())
    }
}

static COUNTS: [AtomicU64; ErrorId::ALL.len()] = [const { AtomicU64::new(0) }; ErrorId::ALL.len()];

/// Counts each id that `message` names, once per message (an id followed by another digit,
/// `PullError 3021`, is not one).
pub fn count_in(message: &str) {
    for id in ids_in(message) {
        COUNTS[id as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// The ids `message` names, each once, in declaration order.
fn ids_in(message: &str) -> impl Iterator<Item = ErrorId> + '_ {
    // Every id holds "Error " (`SetupError 100`): most lines hold none and cost one scan.
    let any = message.contains("Error ");
    ErrorId::ALL.into_iter().filter(move |id| {
        let code = id.code();
        any && message.match_indices(code).any(|(at, _)| {
            !message.as_bytes()[at + code.len()..]
                .first()
                .is_some_and(u8::is_ascii_digit)
        })
    })
}

/// Every id with its count, zeros included (so a dashboard sees each series from the start).
pub fn counts() -> Vec<(ErrorId, u64)> {
    ErrorId::ALL.iter().map(|id| (*id, id.count())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_counted_once_per_message_and_only_with_their_number() {
        // What one message counts (the global counters are shared with tests running beside
        // this one, so the decision is tested, exactly).
        let ids = |m: &str| ids_in(m).collect::<Vec<_>>();
        assert_eq!(
            ids("x -> PullError 302: bad page (PullError 302 again), SetupError 100: no"),
            vec![ErrorId::Setup100, ErrorId::Pull302],
            "each id once, however often it is named"
        );
        assert_eq!(
            ids("PullError 3021234 is no id; PullError is none either; PullError 301: yes"),
            vec![ErrorId::Pull301]
        );
        assert_eq!(ids("no id here"), vec![]);
        assert_eq!(
            ids("PullError 302"),
            vec![ErrorId::Pull302],
            "at the very end"
        );
        // And count_in counts what ids_in finds (at least: other tests count too).
        let before = ErrorId::Pull301.count();
        count_in("PullError 301: yes");
        assert!(ErrorId::Pull301.count() > before);
        assert_eq!(counts().len(), ErrorId::ALL.len());
    }

    #[test]
    fn the_texts_are_the_manuals() {
        assert_eq!(
            ErrorId::Pull302.to_string(),
            "PullError 302: Some error occurred while retrieving events from Okta server"
        );
        assert_eq!(
            ErrorId::Setup100.to_string(),
            "SetupError 100: HTTP Error occurred while retrieving events from okta server"
        );
        for (i, id) in ErrorId::ALL.iter().enumerate() {
            assert_eq!(*id as usize, i, "ALL is in declaration order");
        }
    }
}
