//! The Okta services as the config names them (the seed's seven and the four entitlement
//! services): which run, when they start, how often, on which Devo table, with which local
//! budgets. The Okta facts about each (its path, scope,
//! admin role, page size) are `okta::api`'s; the two meet on [`ServiceKind`].

use super::error::{ConfigError, err};
use super::raw::{Emit, RawService, Scalar};
use crate::errors::ErrorId;
use crate::time;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// The Okta services: the seed collector's seven, then the four entitlement services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceKind {
    /// System Log, polled.
    Logs,
    /// Users, incremental on `lastUpdated`.
    Users,
    /// Groups, incremental on `lastUpdated` and `lastMembershipUpdated`.
    Groups,
    /// Applications, snapshot.
    Apps,
    /// Identity providers, snapshot.
    Idps,
    /// Network zones, snapshot.
    Zones,
    /// OAuth clients, snapshot.
    Clients,
    /// Who is a member of which group (entitlement).
    GroupMembers,
    /// Which users and groups are assigned to which app (entitlement).
    AppAssignments,
    /// Which users, groups and OAuth clients hold which admin role (entitlement).
    AdminRoles,
    /// Which factors each user has enrolled (entitlement).
    Factors,
}

/// How a service pulls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullMode {
    /// The System Log's polling (`since`, then `rel="next"` forever).
    Poll,
    /// A full listing first, then only what changed since a `lastUpdated` watermark.
    Incremental,
    /// A full listing every period.
    Snapshot,
    /// A full listing every `full_listing_every`, and in between re-reads of what the System
    /// Log says changed.
    Entitlements,
}

impl ServiceKind {
    /// The seed collector's seven services (the System Log and the six inventories), in the
    /// order the config lists them.
    pub const SEED: [ServiceKind; 7] = [
        ServiceKind::Logs,
        ServiceKind::Users,
        ServiceKind::Groups,
        ServiceKind::Apps,
        ServiceKind::Idps,
        ServiceKind::Zones,
        ServiceKind::Clients,
    ];
    /// The four entitlement services (off unless `enabled: true`).
    pub const ENTITLEMENTS: [ServiceKind; 4] = [
        ServiceKind::GroupMembers,
        ServiceKind::AppAssignments,
        ServiceKind::AdminRoles,
        ServiceKind::Factors,
    ];
    /// Every service, in the order the config lists them.
    pub const ALL: [ServiceKind; 11] = [
        ServiceKind::Logs,
        ServiceKind::Users,
        ServiceKind::Groups,
        ServiceKind::Apps,
        ServiceKind::Idps,
        ServiceKind::Zones,
        ServiceKind::Clients,
        ServiceKind::GroupMembers,
        ServiceKind::AppAssignments,
        ServiceKind::AdminRoles,
        ServiceKind::Factors,
    ];
    /// The service's name in the config.
    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::Logs => "logs",
            ServiceKind::Users => "users",
            ServiceKind::Groups => "groups",
            ServiceKind::Apps => "apps",
            ServiceKind::Idps => "idps",
            ServiceKind::Zones => "zones",
            ServiceKind::Clients => "clients",
            ServiceKind::GroupMembers => "group_members",
            ServiceKind::AppAssignments => "app_assignments",
            ServiceKind::AdminRoles => "admin_roles",
            ServiceKind::Factors => "factors",
        }
    }
    /// The Devo table the service feeds by default.
    pub fn default_tag(self) -> &'static str {
        match self {
            ServiceKind::Logs => "auth.okta.system",
            ServiceKind::Users => "auth.okta.users",
            ServiceKind::Groups => "auth.okta.groups",
            ServiceKind::Apps => "auth.okta.apps",
            ServiceKind::Idps => "auth.okta.idps",
            ServiceKind::Zones => "auth.okta.zones",
            ServiceKind::Clients => "auth.okta.clients",
            // Devo's namespace for data it has no parser for (devo.md §4).
            ServiceKind::GroupMembers => "my.app.okta.group_members",
            ServiceKind::AppAssignments => "my.app.okta.app_assignments",
            ServiceKind::AdminRoles => "my.app.okta.admin_roles",
            ServiceKind::Factors => "my.app.okta.factors",
        }
    }
    /// Default `request_period_in_seconds`.
    pub fn default_period(self) -> u64 {
        match self.mode() {
            PullMode::Poll | PullMode::Entitlements => 60,
            PullMode::Incremental => 300,
            PullMode::Snapshot => 3600,
        }
    }
    /// The seed collector's default local budget, requests per minute.
    pub fn default_requests_per_minute(self) -> u32 {
        match self {
            ServiceKind::Logs | ServiceKind::Apps | ServiceKind::Clients => 20,
            // `/api/v1/apps/*` is one bucket of 100 a minute on a Workforce org, and a token
            // gets half of it (okta-api.md §3.3): 30 leaves room for `apps` and everyone else.
            ServiceKind::AppAssignments => 30,
            _ => 100,
        }
    }
    /// Whether the service is one of the four entitlement services.
    pub fn is_entitlement(self) -> bool {
        self.mode() == PullMode::Entitlements
    }
    /// How the service pulls.
    pub fn mode(self) -> PullMode {
        match self {
            ServiceKind::Logs => PullMode::Poll,
            ServiceKind::Users | ServiceKind::Groups => PullMode::Incremental,
            ServiceKind::GroupMembers
            | ServiceKind::AppAssignments
            | ServiceKind::AdminRoles
            | ServiceKind::Factors => PullMode::Entitlements,
            ServiceKind::Apps | ServiceKind::Idps | ServiceKind::Zones | ServiceKind::Clients => {
                PullMode::Snapshot
            }
        }
    }
}

/// One running service.
#[derive(Debug, Clone)]
pub struct Service {
    /// Which service.
    pub kind: ServiceKind,
    /// `start`, if given: the first pull's lower bound.
    pub start: Option<SystemTime>,
    /// Pause between cycles once caught up.
    pub period: Duration,
    /// The Devo tag (table).
    pub tag: String,
    /// What a snapshot or entitlement service emits (always `All` for the others).
    pub emit: Emit,
    /// An entitlement service's `full_listing_every` (`None` for the others).
    pub full_listing_every: Option<Duration>,
    /// `logs`: Okta's SCIM `filter` (never on `published`), asked of Okta.
    pub filter: Option<String>,
    /// `logs`: `drop` and `sample` rules, in the config's order (the first that matches an
    /// event decides).
    pub rules: Vec<Rule>,
    /// Local request budgets (empty: none).
    pub limits: Vec<Limit>,
    /// Devo's collector's state file for this service, when `globals.persistence` names one
    /// (only the System Log's is taken over): `<dir>/okta_<input id>_<service>_predefined_OktaResourcesPuller.json`.
    pub devo_state: Option<PathBuf>,
}

/// The name Devo's collector gives a service's state file (its filesystem persistence):
/// `<input name>_<input id>_<service name>_<service type>_<module name>.json`.
pub fn devo_state_name(input_id: &str, kind: ServiceKind) -> String {
    format!(
        "okta_{input_id}_{}_predefined_OktaResourcesPuller.json",
        kind.name()
    )
}

/// A `drop` or `sample` rule on the System Log's `eventType`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The rule as the metrics and the log name it: `drop:<pattern>` or
    /// `sample:<pattern>/<n>`.
    pub label: String,
    /// An event type, `*` standing for any run of characters.
    pub pattern: String,
    /// 0: drop every matching event; N: keep one in N (by the event's uuid, so a page pulled
    /// again is decided the same way).
    pub keep_one_in: u64,
}

impl Rule {
    /// Whether this rule matches `event_type`.
    pub fn matches(&self, event_type: &str) -> bool {
        glob(self.pattern.as_bytes(), event_type.as_bytes())
    }
}

/// `*`-glob matching (`*` any run of bytes, possibly empty), linear with one backtrack point.
fn glob(p: &[u8], t: &[u8]) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|b| *b == b'*')
}

/// The most `drop` and `sample` rules a service takes (each event is matched against them).
pub const MAX_RULES: usize = 64;

/// A local request budget: at most `requests` in any `period` (a sliding window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The window.
    pub period: Duration,
    /// Requests allowed in it.
    pub requests: u32,
}

pub(super) fn resolve_service(
    kind: ServiceKind,
    s: RawService,
    at: &dyn Fn(&str) -> String,
) -> Result<Service, ConfigError> {
    let key = at(&format!("inputs.okta.services.{}", kind.name()));
    let emit = match (s.emit, kind.mode()) {
        (None, _) => Emit::All,
        (Some(e), PullMode::Snapshot | PullMode::Entitlements) => e,
        (Some(_), _) => {
            return err(format!(
                "{key}.emit: only the snapshot services (apps, idps, zones, clients) and the entitlement \
                 services take `emit`; `{}` already sends only what changed; remove the key",
                kind.name()
            ));
        }
    };
    let full_listing_every = match (s.full_listing_every, kind.is_entitlement()) {
        (None, false) => None,
        (Some(_), false) => {
            return err(format!(
                "{key}.full_listing_every: only the entitlement services (group_members, app_assignments, \
                 admin_roles, factors) take it; remove the key"
            ));
        }
        (None, true) => Some(DEFAULT_FULL_LISTING_EVERY),
        (Some(text), true) => match humantime::parse_duration(text.text().trim()) {
            Ok(d) if d >= MIN_FULL_LISTING_EVERY => Some(d),
            Ok(d) => {
                return err(format!(
                    "{key}.full_listing_every: {} is too often (each full listing reads every parent and child); \
                     use at least 10s, e.g. 24h",
                    humantime::format_duration(d)
                ));
            }
            Err(e) => {
                return err(format!(
                    "{key}.full_listing_every: {e}; write a duration like 24h, 12h 30m or 3600s"
                ));
            }
        },
    };
    let (filter, rules) = volume_rules(kind, &key, s.filter, s.drop, s.sample)?;
    let start = match s.start.map(Scalar::text) {
        None => None,
        Some(_) if kind.is_entitlement() => {
            return err(format!(
                "{key}.start: `{}` has no time filter in Okta's API; it lists everything at its first \
                 start and then follows the System Log; remove the key",
                kind.name()
            ));
        }
        Some(_) if kind.mode() == PullMode::Snapshot => {
            return err(format!(
                "{key}.start: `{}` has no time filter in Okta's API and is listed whole every period; \
                 remove the key",
                kind.name()
            ));
        }
        Some(text) => match time::parse_rfc3339(text.trim()) {
            None => {
                return err(format!(
                    "{} : YYYY-MM-DDTHH:MM:SSZ (RFC 3339). {key}.start is {text:?}; write it like 2024-12-04T11:45:01Z",
                    ErrorId::InitVariables1
                ));
            }
            Some(t) if t > SystemTime::now() => {
                return err(format!(
                    "{}. {key}.start is {text:?}; use a time in the past, or remove it to start from now",
                    ErrorId::InitVariables2
                ));
            }
            Some(t) => Some(t),
        },
    };
    let period = s.request_period_in_seconds.unwrap_or(kind.default_period());
    if period == 0 {
        return err(format!(
            "{key}.request_period_in_seconds: must be at least 1"
        ));
    }
    let tag = s
        .override_tag
        .unwrap_or_else(|| kind.default_tag().to_string());
    if tag.is_empty()
        || tag.len() > 1024
        || !tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        || tag.starts_with('.')
        || tag.ends_with('.')
    {
        return err(format!(
            "{key}.override_tag: {tag:?} is not a Devo tag (dot-separated levels of letters, digits, '_' and '-', e.g. my.app.okta.logs)"
        ));
    }
    let limits = match s.requests_limits {
        None => vec![Limit {
            period: Duration::from_secs(60),
            requests: kind.default_requests_per_minute(),
        }],
        Some(list) => {
            let mut out = Vec::with_capacity(list.len());
            for (i, l) in list.into_iter().enumerate() {
                if l.period == 0 || l.number_of_requests == 0 {
                    return err(format!(
                        "{key}.requests_limits[{i}]: period and number_of_requests must be at least 1 \
                         (write `requests_limits: []` for no local budget)"
                    ));
                }
                out.push(Limit {
                    period: Duration::from_secs(l.period),
                    requests: l.number_of_requests,
                });
            }
            out
        }
    };
    Ok(Service {
        kind,
        start,
        period: Duration::from_secs(period),
        tag,
        emit,
        full_listing_every,
        filter,
        rules,
        limits,
        devo_state: None,
    })
}

/// `filter`, `drop` and `sample`, checked: the System Log's only.
fn volume_rules(
    kind: ServiceKind,
    key: &str,
    filter: Option<String>,
    drop: Option<Vec<String>>,
    sample: Option<Vec<super::raw::RawSample>>,
) -> Result<(Option<String>, Vec<Rule>), ConfigError> {
    if kind != ServiceKind::Logs {
        for (name, set) in [
            ("filter", filter.is_some()),
            ("drop", drop.is_some()),
            ("sample", sample.is_some()),
        ] {
            if set {
                return err(format!(
                    "{key}.{name}: only the `logs` service takes `{name}` (it works on the System Log's event types); remove the key"
                ));
            }
        }
        return Ok((None, Vec::new()));
    }
    let filter = match filter.map(|f| f.trim().to_string()) {
        None => None,
        Some(f) if f.is_empty() => {
            return err(format!(
                "{key}.filter: empty; remove the key to pull every event"
            ));
        }
        Some(f) if f.len() > 2_000 || f.chars().any(char::is_control) => {
            return err(format!(
                "{key}.filter: at most 2,000 characters on one line (it is sent to Okta in the URL)"
            ));
        }
        Some(f) if f.contains("published") => {
            return err(format!(
                "{key}.filter: {f:?} uses `published`, which Okta's System Log filter refuses (E0000053); \
                 the time window is the collector's, not the filter's"
            ));
        }
        Some(f) => Some(f),
    };
    let pattern_ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 200
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'*'))
    };
    let mut rules = Vec::new();
    for (i, p) in drop.unwrap_or_default().into_iter().enumerate() {
        if !pattern_ok(&p) {
            return err(format!(
                "{key}.drop[{i}]: {p:?} is not an event type or a `*` pattern (letters, digits, '.', '_', '-', '*'), e.g. \"system.agent.*\""
            ));
        }
        rules.push(Rule {
            label: format!("drop:{p}"),
            pattern: p,
            keep_one_in: 0,
        });
    }
    for (i, s) in sample.unwrap_or_default().into_iter().enumerate() {
        if !pattern_ok(&s.event_type) {
            return err(format!(
                "{key}.sample[{i}].event_type: {:?} is not an event type or a `*` pattern (letters, digits, '.', '_', '-', '*')",
                s.event_type
            ));
        }
        if !(2..=1_000_000).contains(&s.keep_one_in) {
            return err(format!(
                "{key}.sample[{i}].keep_one_in: {} keeps {}; give 2 to 1000000 (or use `drop` for none, or remove the rule for all)",
                s.keep_one_in,
                if s.keep_one_in < 2 {
                    "every event or none"
                } else {
                    "too few to be a sample"
                }
            ));
        }
        rules.push(Rule {
            label: format!("sample:{}/{}", s.event_type, s.keep_one_in),
            pattern: s.event_type,
            keep_one_in: s.keep_one_in,
        });
    }
    if rules.len() > MAX_RULES {
        return err(format!(
            "{key}: {} drop and sample rules; at most {MAX_RULES} (each event is matched against them)",
            rules.len()
        ));
    }
    Ok((filter, rules))
}

/// `full_listing_every` when not given.
pub const DEFAULT_FULL_LISTING_EVERY: Duration = Duration::from_secs(24 * 3600);
/// The shortest `full_listing_every` taken.
pub const MIN_FULL_LISTING_EVERY: Duration = Duration::from_secs(10);
