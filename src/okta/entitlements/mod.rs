//! The entitlement mode of `group_members`, `app_assignments`, `admin_roles` and `factors`
//! (`../shared/okta-api.md` §3.3): who holds which access, kept current cheaply.
//!
//! - A **full listing** at the first start and every `full_listing_every` reads every parent
//!   (group, app, role holder, user) and its children, sends them (all, or with `emit:
//!   changes` the new ones), sends each known child no longer listed as `removed`, and closes
//!   with a `baseline` record. It goes parent by parent and resumes after a crash where it
//!   was (`progress.json`), not from the start.
//! - **Between listings the System Log says what to read again.** The service reads the
//!   `logs` spool as a consumer of its own, takes the events it follows and re-reads only
//!   what they touched (one child where Okta can answer for one, else the parent's list,
//!   whichever costs fewer requests), and sends only what changed, with the event as
//!   `cause`. Its position in the `logs` spool moves only after the records are durable.
//! - `group_members` also asks for the groups whose `lastMembershipUpdated` moved with no
//!   event to explain it (a group rule, a bulk import) and reads them again.
//!
//! What the service knows (each parent's children and what was sent of them) is on disk in
//! `known.rs`, one parent in memory at a time. Every step follows one order: records durable
//! in the spool, then the known files, then the progress, then the `logs` position; a crash
//! between two re-sends a parent's records, never loses one.

mod known;
mod record;
mod shape;

use super::body::Events;
use super::page;
use super::puller::{CycleEnd, Got, Halt, Puller, Stats, pulling_id};
use crate::config::{Emit, ServiceKind};
use crate::errors::ErrorId::Pull302 as PULL_302;
use crate::shutdown::Shutdown;
use crate::time::format_millis;
use known::{Child, Known, Store};
use record::{Cause, Touch};
use shape::{ChildList, ParentKind, Phase};
use spool::Reader;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

/// The cursor written with every frame (the service's real progress is `progress.json`).
const CURSOR: &[u8] = br#"{"mode":"entitlements"}"#;
/// System Log events read per step of the feed (their touches are kept in memory).
const EVENTS_PER_STEP: usize = 5_000;
/// The most distinct parents one step of the feed re-reads (the rest wait for the next step).
const PARENTS_PER_STEP: usize = 2_000;

/// Where a full listing is.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Listing {
    /// This listing's number: every parent it reads carries it.
    generation: u64,
    /// When it started, Unix ms.
    started_ms: u64,
    /// The phase (index into `shape::phases`).
    phase: usize,
    /// The URL of the page of parents being read (`None`: the phase's first page).
    url: Option<String>,
    /// Parents of that page already read.
    done: usize,
    /// Entitlements found present so far.
    present: u64,
    /// Removals sent so far.
    removed: u64,
}

/// What survives a restart besides the known files: `progress.json`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Progress {
    /// The last listing's number.
    generation: u64,
    /// The listing in progress.
    listing: Option<Listing>,
    /// When the last full listing finished, Unix ms (0: never).
    last_full_ms: u64,
    /// Events were skipped (see `skip_if_lagging`): a full listing runs next.
    /// `group_members`: groups whose `lastMembershipUpdated` is after this (Unix ms) are
    /// asked for (0: not yet, before the first listing has finished).
    lmu_since_ms: u64,
}

/// An entitlement service's state while it runs.
pub(crate) struct EntitlementState {
    store: Store,
    progress: Progress,
    progress_path: PathBuf,
    /// The reader of the `logs` spool (taken while a read runs on the blocking pool).
    reader: Option<Reader>,
    /// When the feed was last read.
    last_feed: Option<Instant>,
}

/// Opens the service's folder and progress. A progress file that does not parse is set aside
/// and a full listing starts (what is known stays: nothing is sent twice that need not be).
pub(crate) async fn restore(p: &Puller) -> Result<EntitlementState, Halt> {
    let Some(dir) = p.state_dir.clone() else {
        return Err(Halt::Fatal(crate::Fatal::Cursor(
            "an entitlement service was built without its folder".into(),
        )));
    };
    let progress_path = dir.join("progress.json");
    let progress = match std::fs::read(&progress_path) {
        Ok(bytes) => match serde_json::from_slice::<Progress>(&bytes) {
            Ok(pr) => pr,
            Err(e) => {
                log::error!(
                    "{} -> {PULL_302}: {} does not parse ({e}); a full listing starts.",
                    p.label,
                    progress_path.display()
                );
                let _ = std::fs::rename(&progress_path, dir.join("progress.json.bad"));
                Progress::default()
            }
        },
        Err(_) => Progress::default(),
    };
    let reader = p.feed.as_ref().map(|(spool, c)| spool.reader_for(*c));
    match (&p.feed, &progress.listing) {
        (None, _) => log::warn!(
            "{} -> The `logs` service is not enabled: entitlements are kept current by full listings alone (every {}); enable `logs` to follow changes as the System Log reports them.",
            p.label,
            humantime::format_duration(every(p))
        ),
        (Some(_), Some(l)) => log::info!(
            "{} -> Resuming full listing {} at phase {}, {} parents into its page.",
            p.label,
            l.generation,
            l.phase,
            l.done
        ),
        (Some(_), None) => {}
    }
    Ok(EntitlementState {
        store: Store::new(dir),
        progress,
        progress_path,
        reader,
        last_feed: None,
    })
}

/// What `status` says of an entitlement service from its folder `dir`: the full listing in
/// progress (where it is) or the last one (when), and whether one is due because System Log
/// events were skipped. `None` before the service has run.
pub fn describe(dir: &std::path::Path, now: SystemTime) -> Option<String> {
    let bytes = std::fs::read(dir.join("progress.json")).ok()?;
    let p: Progress = serde_json::from_slice(&bytes).ok()?;
    let at = |ms: u64| {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
        let ago = now.duration_since(t).unwrap_or_default().as_secs();
        format!("{} ({ago}s ago)", crate::time::format_seconds(t))
    };
    let mut out = match &p.listing {
        Some(l) => format!(
            "full listing {} in progress since {}: phase {}, {} parents into its page, {} entitlements present and {} removed so far",
            l.generation,
            at(l.started_ms),
            l.phase + 1,
            l.done,
            l.present,
            l.removed
        ),
        None if p.last_full_ms > 1 => format!(
            "full listing {} complete at {}",
            p.generation,
            at(p.last_full_ms)
        ),
        None => "no full listing complete yet".to_string(),
    };
    if dir.join(super::puller::RELIST_MARKER).exists() {
        out.push_str("; another is due (System Log events were skipped)");
    }
    Some(out)
}

fn every(p: &Puller) -> Duration {
    p.service
        .full_listing_every
        .unwrap_or(crate::config::DEFAULT_FULL_LISTING_EVERY)
}

fn now_ms() -> u64 {
    crate::time::unix_millis(SystemTime::now()) as u64
}

fn observed() -> String {
    format_millis(SystemTime::now())
}

/// A step that did not finish: how the cycle ends.
enum Stop {
    End(CycleEnd),
    Halt(Halt),
}

impl From<Halt> for Stop {
    fn from(h: Halt) -> Stop {
        Stop::Halt(h)
    }
}

fn io_halt(what: &str, e: std::io::Error) -> Halt {
    Halt::Fatal(crate::Fatal::Cursor(format!(
        "the entitlement store cannot be written ({what}): {e}"
    )))
}

/// One cycle: the System Log's changes, then (for `group_members`) the groups whose
/// membership moved unexplained, then the full listing when one is due or unfinished, which
/// stops every period to read the System Log again.
pub(crate) async fn cycle(
    p: &Puller,
    st: &mut EntitlementState,
    shutdown: &Shutdown,
) -> Result<CycleEnd, Halt> {
    let started = Instant::now();
    let id = pulling_id();
    let mut stats = Stats::default();
    let end = match run_cycle(p, st, shutdown, &mut stats).await {
        Ok(()) => CycleEnd::UpToDate,
        Err(Stop::End(e)) => e,
        Err(Stop::Halt(h)) => return Err(h),
    };
    p.log_stats(&stats, started, id, &end);
    Ok(end)
}

async fn run_cycle(
    p: &Puller,
    st: &mut EntitlementState,
    shutdown: &Shutdown,
    stats: &mut Stats,
) -> Result<(), Stop> {
    follow_feed(p, st, shutdown, stats).await?;
    if p.service.kind == ServiceKind::GroupMembers {
        membership_updates(p, st, shutdown, stats).await?;
    }
    let due = st.progress.listing.is_some()
        || st.relist_marker().exists()
        || st.progress.last_full_ms == 0
        || now_ms().saturating_sub(st.progress.last_full_ms) >= every(p).as_millis() as u64;
    if due {
        full_listing(p, st, shutdown, stats).await?;
    }
    Ok(())
}

impl EntitlementState {
    /// The file that says System Log events were skipped and a full listing is due (written
    /// by [`Puller::release_feed_if_lagging`] before it moves the position; removed when a
    /// listing starts, so events skipped during one are found by the next).
    fn relist_marker(&self) -> PathBuf {
        self.progress_path
            .with_file_name(super::puller::RELIST_MARKER)
    }

    async fn save_progress(&self) -> Result<(), Halt> {
        let bytes = serde_json::to_vec(&self.progress).map_err(|e| Halt::cursor(e.to_string()))?;
        let (path, store) = (self.progress_path.clone(), self.store.clone());
        smol::unblock(move || {
            known::replace_synced(&path, &bytes)?;
            store.sync()
        })
        .await
        .map_err(|e| io_halt("progress.json", e))
    }

    /// The generation a parent first found now gets: the listing's in progress, else the
    /// last one's (so a listing never takes a parent an event just found for gone).
    fn current_generation(&self) -> u64 {
        self.progress
            .listing
            .as_ref()
            .map_or(self.progress.generation, |l| l.generation)
    }
}

// ---------------------------------------------------------------------------------------------
// Full listing

async fn full_listing(
    p: &Puller,
    st: &mut EntitlementState,
    shutdown: &Shutdown,
    stats: &mut Stats,
) -> Result<(), Stop> {
    if st.progress.listing.is_none() {
        st.progress.generation += 1;
        st.progress.listing = Some(Listing {
            generation: st.progress.generation,
            started_ms: now_ms(),
            phase: 0,
            url: None,
            done: 0,
            present: 0,
            removed: 0,
        });
        st.save_progress().await?;
        let _ = std::fs::remove_file(st.relist_marker());
        log::info!(
            "{} -> Full listing {} starts.",
            p.label,
            st.progress.generation
        );
    }
    let phases = shape::phases(p.service.kind);
    let base = p.client.url().base();
    loop {
        let Some(l) = st.progress.listing.clone() else {
            return Ok(());
        };
        let Some(phase) = phases.get(l.phase).copied() else {
            return finish_listing(p, st, shutdown, stats).await;
        };
        let url = l
            .url
            .clone()
            .unwrap_or_else(|| format!("{base}{}?limit={}", phase.path, phase.limit));
        let resp = match fetch(p, st, &url, false, shutdown, stats).await? {
            Got::Page(r) => r,
            Got::Shutdown => return Err(Stop::End(CycleEnd::Shutdown)),
            Got::Failed(end) => return Err(Stop::End(end)),
            Got::Missing => return Err(Stop::End(stats.failed())),
            Got::InvalidCursor => {
                // The phase is listed again from its first page: parents read twice cost
                // requests, never records (what is known is on disk).
                set_listing(st, |l| {
                    l.url = None;
                    l.done = 0;
                });
                st.save_progress().await?;
                return Err(Stop::End(stats.failed()));
            }
        };
        let Some((parents, next)) = parents_of(p, &url, &resp, phase) else {
            return Err(Stop::End(stats.failed()));
        };
        stats.pages += 1;
        for (i, parent) in parents.iter().enumerate().skip(l.done) {
            if feed_due(p, st) {
                follow_feed(p, st, shutdown, stats).await?;
            }
            let counts = read_parent(
                p,
                st,
                phase.parent,
                parent,
                &Reason::Listing(l.generation),
                None,
                shutdown,
                stats,
            )
            .await?;
            set_listing(st, |l| {
                l.done = i + 1;
                l.present += counts.present;
                l.removed += counts.removed;
            });
            st.save_progress().await?;
        }
        set_listing(st, |l| {
            l.done = 0;
            match &next {
                Some(n) => l.url = Some(n.clone()),
                None => {
                    l.url = None;
                    l.phase += 1;
                }
            }
        });
        st.save_progress().await?;
    }
}

fn set_listing(st: &mut EntitlementState, f: impl FnOnce(&mut Listing)) {
    if let Some(l) = st.progress.listing.as_mut() {
        f(l);
    }
}

/// Ends a listing: every known parent it did not see is read once more (a 404 or an empty
/// list sends its children as removed; one that is there after all is kept), then the
/// `baseline` record.
async fn finish_listing(
    p: &Puller,
    st: &mut EntitlementState,
    shutdown: &Shutdown,
    stats: &mut Stats,
) -> Result<(), Stop> {
    let Some(l) = st.progress.listing.clone() else {
        return Ok(());
    };
    let store = st.store.clone();
    let parents = smol::unblock(move || store.parents())
        .await
        .map_err(|e| io_halt("listing the store", e))?;
    for (kind, id) in parents {
        let store = st.store.clone();
        let pid = id.clone();
        let known = smol::unblock(move || store.load(kind, &pid))
            .await
            .map_err(|e| io_halt("reading", e))?;
        let Some(known) = known else { continue };
        if known.generation >= l.generation {
            continue;
        }
        let parent = ParentRef {
            id,
            label: known.label.clone(),
        };
        let counts = read_parent(
            p,
            st,
            kind,
            &parent,
            &Reason::Listing(l.generation),
            None,
            shutdown,
            stats,
        )
        .await?;
        set_listing(st, |l| {
            l.present += counts.present;
            l.removed += counts.removed;
        });
    }
    let Some(l) = st.progress.listing.clone() else {
        return Ok(());
    };
    let finished = observed();
    let line = record::baseline(
        p.service.kind,
        &format_millis(SystemTime::UNIX_EPOCH + Duration::from_millis(l.started_ms)),
        &finished,
        l.present,
        l.removed,
    );
    p.commit(Events::copied(&[line.as_bytes()]), CURSOR.to_vec())
        .await?;
    stats.sent += 1;
    st.progress.listing = None;
    st.progress.last_full_ms = now_ms();
    if st.progress.lmu_since_ms == 0 {
        // Membership changes after the listing started are asked for from now on.
        st.progress.lmu_since_ms = l.started_ms;
    }
    st.save_progress().await?;
    log::info!(
        "{} -> Full listing {} complete: {} entitlements present, {} removed.",
        p.label,
        l.generation,
        l.present,
        l.removed
    );
    Ok(())
}

/// A parent as listed: its id and its name, label or login.
#[derive(Debug, Clone)]
struct ParentRef {
    id: String,
    label: String,
}

/// A page of parents, checked: ids that are not URL-safe are skipped with an error line.
fn parents_of(
    p: &Puller,
    url: &str,
    resp: &super::client::Response,
    phase: Phase,
) -> Option<(Vec<ParentRef>, Option<String>)> {
    #[derive(serde::Deserialize)]
    struct Obj {
        id: Option<String>,
        client_id: Option<String>,
        label: Option<String>,
        client_name: Option<String>,
        profile: Option<Profile>,
        /// A group's `type` is a string; a user's is an object.
        #[serde(rename = "type")]
        kind: Option<serde_json::Value>,
    }
    #[derive(serde::Deserialize)]
    struct Profile {
        name: Option<String>,
        login: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Paged {
        value: Vec<Obj>,
        #[serde(rename = "_links")]
        links: Option<Links>,
    }
    #[derive(serde::Deserialize)]
    struct Links {
        next: Option<Href>,
    }
    #[derive(serde::Deserialize)]
    struct Href {
        href: String,
    }
    let (objs, next): (Vec<Obj>, Option<String>) = if phase.body_paged {
        match serde_json::from_slice::<Paged>(&resp.body) {
            Ok(pg) if pg.value.len() <= phase.limit as usize => {
                let next = pg.links.and_then(|l| l.next).map(|h| {
                    if h.href.starts_with('/') {
                        format!("{}{}", p.client.url().base(), h.href)
                    } else {
                        h.href
                    }
                });
                (pg.value, next)
            }
            Ok(pg) => {
                log::error!(
                    "{} -> {PULL_302}: {url} answered {} items, more than the {} asked for. Retrying.",
                    p.label,
                    pg.value.len(),
                    phase.limit
                );
                return None;
            }
            Err(e) => {
                log::error!(
                    "{} -> {PULL_302}: the answer of {url} is not Okta's paged list ({e}). Retrying.",
                    p.label
                );
                return None;
            }
        }
    } else {
        let checked = p.check_page(url, resp)?;
        let mut objs = Vec::with_capacity(checked.items.len());
        for item in &checked.items {
            match serde_json::from_str::<Obj>(item.raw()) {
                Ok(o) => objs.push(o),
                Err(e) => log::error!(
                    "{} -> {PULL_302}: an object of {url} is skipped: {e}.",
                    p.label
                ),
            }
        }
        (objs, checked.next)
    };
    if let Some(n) = &next {
        if !p.client.url().same_origin(n) {
            log::error!(
                "{} -> {PULL_302}: the next link {n:?} points to another host than okta_url; it is not followed (the API token would leak).",
                p.label
            );
            return None;
        }
        if n == url && !objs.is_empty() {
            log::error!(
                "{} -> {PULL_302}: the next link is the page just read ({n:?}): a loop. Retrying.",
                p.label
            );
            return None;
        }
    }
    let mut out = Vec::with_capacity(objs.len());
    for o in objs {
        // Everyone is a member of Okta's built-in Everyone group: its members are the users
        // table, and in a large org its listing alone would hold every user in memory.
        if p.service.kind == ServiceKind::GroupMembers
            && o.kind.as_ref().and_then(|k| k.as_str()) == Some("BUILT_IN")
            && o.profile.as_ref().and_then(|p| p.name.as_deref()) == Some("Everyone")
        {
            continue;
        }
        let id = if phase.parent == ParentKind::Client {
            o.client_id.or(o.id)
        } else {
            o.id
        };
        let Some(id) = id.filter(|i| shape::safe_id(i)) else {
            log::error!(
                "{} -> {PULL_302}: an object of {url} has no usable id (1 to 64 letters, digits, '_' or '-'); it is skipped.",
                p.label
            );
            continue;
        };
        let label = match phase.parent {
            ParentKind::Group => o.profile.and_then(|p| p.name),
            ParentKind::App => o.label,
            ParentKind::User => o.profile.and_then(|p| p.login),
            ParentKind::Client => o.client_name,
        }
        .unwrap_or_default();
        out.push(ParentRef { id, label });
    }
    Some((out, next))
}

// ---------------------------------------------------------------------------------------------
// Reading one parent

/// Why a parent is read.
enum Reason {
    /// Full listing `n`: every child found is counted, and sent with `emit: all`.
    Listing(u64),
    /// Events (a child's own event is its cause; the others get `fallback`), or a group's
    /// unexplained `lastMembershipUpdated`: only changes are sent. With `only_named`, a
    /// change of a child no event names is left alone: its own event, still on its way
    /// through the System Log, will name it (or, if it was never logged,
    /// `lastMembershipUpdated` or the next full listing finds it), so every change is sent
    /// with the event that made it.
    Changes {
        causes: BTreeMap<String, Cause>,
        fallback: Cause,
        event_ms: u64,
        only_named: bool,
    },
}

#[derive(Default)]
struct Counts {
    present: u64,
    removed: u64,
}

/// Reads the children of a parent (all its lists, or only `only`), sends what the reason
/// asks for, and replaces its known file. A 404 means the parent is gone: every known child
/// is sent as removed.
#[allow(clippy::too_many_arguments)]
async fn read_parent(
    p: &Puller,
    st: &mut EntitlementState,
    kind: ParentKind,
    parent: &ParentRef,
    reason: &Reason,
    only: Option<char>,
    shutdown: &Shutdown,
    stats: &mut Stats,
) -> Result<Counts, Stop> {
    let service = p.service.kind;
    let store = st.store.clone();
    let pid = parent.id.clone();
    let mut known = smol::unblock(move || store.load(kind, &pid))
        .await
        .map_err(|e| io_halt("reading", e))?
        .unwrap_or_else(|| Known {
            generation: st.current_generation(),
            ..Known::default()
        });
    if !parent.label.is_empty() {
        known.label = parent.label.clone();
    }
    let context = shape::context(service, kind, &parent.id, &known.label);
    let emit_all = matches!(reason, Reason::Listing(_)) && p.service.emit == Emit::All;
    let named = match reason {
        Reason::Changes {
            causes,
            only_named: true,
            ..
        } => Some(causes),
        _ => None,
    };
    let cause_of = |key: &str| -> Cause {
        match reason {
            Reason::Listing(_) => Cause::Listing,
            Reason::Changes {
                causes, fallback, ..
            } => causes.get(key).cloned().unwrap_or_else(|| fallback.clone()),
        }
    };
    let base = p.client.url().base();
    let mut seen: BTreeMap<String, Child> = BTreeMap::new();
    let mut gone = false;
    let lists: Vec<ChildList> = shape::children(service, kind)
        .iter()
        .filter(|l| only.is_none_or(|c| c == l.key))
        .copied()
        .collect();
    'lists: for list in &lists {
        let mut url = list.url(&base, &parent.id);
        loop {
            let resp = match fetch(p, st, &url, true, shutdown, stats).await? {
                Got::Page(r) => r,
                Got::Missing => {
                    gone = true;
                    break 'lists;
                }
                Got::Shutdown => return Err(Stop::End(CycleEnd::Shutdown)),
                Got::Failed(end) => return Err(Stop::End(end)),
                Got::InvalidCursor => return Err(Stop::End(stats.failed())),
            };
            let items = match page::split(&resp.body, list.max_items) {
                Ok(items) => items,
                Err(e) => {
                    log::error!("{} -> {PULL_302}: {e} ({url}). Retrying.", p.label);
                    return Err(Stop::End(stats.failed()));
                }
            };
            let next = match super::link::next(resp.links.iter().map(String::as_str)) {
                Ok(n) => n,
                Err(bad) => {
                    log::error!(
                        "{} -> {PULL_302}: the Link header {bad:?} of {url} does not parse. Retrying.",
                        p.label
                    );
                    return Err(Stop::End(stats.failed()));
                }
            };
            stats.received += items.len() as u64;
            let observed = observed();
            let mut lines = Vec::new();
            for item in &items {
                let Some(cid) = page::object_meta(item).id.filter(|i| shape::safe_id(i)) else {
                    log::error!(
                        "{} -> {PULL_302}: an object of {url} has no usable id; it is skipped.",
                        p.label
                    );
                    continue;
                };
                let key = format!("{}:{cid}", list.key);
                if let Some(n) = named
                    && !n.contains_key(&key)
                {
                    // Left as known (see `Reason::Changes`).
                    if let Some(k) = known.children.get(&key) {
                        seen.insert(key, k.clone());
                    }
                    continue;
                }
                let line = page::one_line(item);
                let child = child_of(list, &line);
                let changed = known.children.get(&key).map(|c| c.fp) != Some(child.fp);
                if emit_all || changed {
                    lines.push(record::present(
                        list.entitlement,
                        &observed,
                        &cause_of(&key),
                        &context,
                        list.field,
                        &line,
                    ));
                } else {
                    stats.duplicates += 1;
                }
                seen.insert(key, child);
            }
            send(p, &lines, stats).await?;
            match next {
                Some(n) if p.client.url().same_origin(&n) && n != url => url = n,
                Some(n) => {
                    log::error!(
                        "{} -> {PULL_302}: the next link {n:?} of {url} is on another host or loops; it is not followed. Retrying.",
                        p.label
                    );
                    return Err(Stop::End(stats.failed()));
                }
                None => break,
            }
        }
    }
    // What the lists read no longer hold (all of it, if the parent is gone).
    let read_keys = |k: &str| {
        gone || lists
            .iter()
            .any(|l| k.as_bytes().first() == Some(&(l.key as u8)))
    };
    let observed = observed();
    let mut lines = Vec::new();
    let mut counts = Counts {
        present: seen.len() as u64,
        removed: 0,
    };
    let mut kept = Vec::new();
    for (key, c) in &known.children {
        if read_keys(key) && !seen.contains_key(key) {
            if !gone && named.is_some_and(|n| !n.contains_key(key)) {
                // Left as known (see `Reason::Changes`).
                kept.push((key.clone(), c.clone()));
                continue;
            }
            let list = shape::children(service, kind)
                .iter()
                .find(|l| key.as_bytes().first() == Some(&(l.key as u8)));
            if let Some(list) = list {
                lines.push(record::removed(
                    list.entitlement,
                    &observed,
                    &cause_of(key),
                    &context,
                    list.field,
                    key.get(2..).unwrap_or(""),
                    &c.note,
                ));
                counts.removed += 1;
            }
        }
    }
    send(p, &lines, stats).await?;
    // The records are durable: now what is known.
    known.children.retain(|k, _| !read_keys(k));
    known.children.extend(seen);
    known.children.extend(kept);
    match reason {
        Reason::Listing(g) => known.generation = *g,
        Reason::Changes { event_ms, .. } => known.event_ms = known.event_ms.max(*event_ms),
    }
    save_known(st, kind, &parent.id, known, gone).await?;
    Ok(counts)
}

/// What is kept of a child: its fingerprint (a member's is constant: a user's profile
/// changing is the `users` table's news, not a membership's) and its note.
fn child_of(list: &ChildList, line: &str) -> Child {
    #[derive(serde::Deserialize)]
    struct Note {
        #[serde(rename = "type")]
        kind: Option<String>,
        #[serde(rename = "factorType")]
        factor_type: Option<String>,
    }
    let fp = if list.entitlement == "group_member" {
        0
    } else {
        super::hash::fnv1a(line.as_bytes())
    };
    let note = serde_json::from_str::<Note>(line)
        .ok()
        .and_then(|n| match list.entitlement {
            "admin_role" => n.kind,
            "factor" => n.factor_type,
            _ => None,
        })
        .filter(|n| shape::safe_id(n) || n.bytes().all(|b| b.is_ascii_graphic() && b != b' '))
        .map(|n| n.chars().take(64).collect())
        .unwrap_or_default();
    Child { fp, note }
}

async fn save_known(
    st: &EntitlementState,
    kind: ParentKind,
    id: &str,
    known: Known,
    gone: bool,
) -> Result<(), Halt> {
    let store = st.store.clone();
    let id = id.to_string();
    smol::unblock(move || {
        // A parent with nothing known needs no file: nothing of it can be removed later.
        if gone || known.children.is_empty() {
            store.remove(kind, &id)?;
        } else {
            store.save(kind, &id, &known)?;
        }
        store.sync()
    })
    .await
    .map_err(|e| io_halt("saving", e))
}

/// Appends records as one durable frame (nothing if there are none).
async fn send(p: &Puller, lines: &[String], stats: &mut Stats) -> Result<(), Halt> {
    if lines.is_empty() {
        return Ok(());
    }
    let events: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
    p.commit(Events::copied(&events), CURSOR.to_vec()).await?;
    stats.sent += lines.len() as u64;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Following the System Log

fn feed_due(p: &Puller, st: &EntitlementState) -> bool {
    p.feed.is_some() && st.last_feed.is_none_or(|t| t.elapsed() >= p.service.period)
}

/// Reads the `logs` spool from this service's position to its durable end, re-reads what the
/// events touched, and moves the position once the records are durable.
async fn follow_feed(
    p: &Puller,
    st: &mut EntitlementState,
    shutdown: &Shutdown,
    stats: &mut Stats,
) -> Result<(), Stop> {
    let Some((spool, consumer)) = p.feed.clone() else {
        return Ok(());
    };
    st.last_feed = Some(Instant::now());
    loop {
        if shutdown.is_set() {
            return Err(Stop::End(CycleEnd::Shutdown));
        }
        catch_up_reader(p, st);
        let Some(mut reader) = st.reader.take() else {
            return Ok(());
        };
        let kind = p.service.kind;
        let (reader, read) = smol::unblock(move || {
            let read = read_touches(&mut reader, kind);
            (reader, read)
        })
        .await;
        st.reader = Some(reader);
        let (touches, end, events, more) = match read {
            Ok(r) => r,
            Err(e) => {
                log::error!(
                    "{} -> Cannot read the System Log's spool: {e}. Retrying.",
                    p.label
                );
                return Err(Stop::End(stats.failed()));
            }
        };
        let Some(end) = end else {
            return Ok(());
        };
        if let Err(stop) = apply(p, st, touches, shutdown, stats).await {
            // Read again from the last durable position next time.
            if let Some(r) = st.reader.as_mut() {
                r.seek(spool.acked_by(consumer));
            }
            return Err(stop);
        }
        let s = spool.clone();
        smol::unblock(move || s.ack_by(consumer, end))
            .await
            .map_err(|e| Halt::Fatal(crate::Fatal::Spool(e)))?;
        log::debug!("{} -> {events} System Log events followed.", p.label);
        if !more {
            return Ok(());
        }
    }
}

/// A request of this service; `missing_ok` takes a 404 as [`Got::Missing`]. If the puller
/// moved this service's position in the System Log's spool to its end meanwhile
/// ([`Puller::release_feed_if_lagging`]), the reader goes there too.
async fn fetch(
    p: &Puller,
    st: &mut EntitlementState,
    url: &str,
    missing_ok: bool,
    shutdown: &Shutdown,
    stats: &mut Stats,
) -> Result<Got, Halt> {
    let got = if missing_ok {
        p.get_or_missing(url, shutdown, stats).await
    } else {
        p.get(url, shutdown, stats).await
    };
    catch_up_reader(p, st);
    Ok(got)
}

/// Seeks the reader to this service's position if the puller moved it.
fn catch_up_reader(p: &Puller, st: &mut EntitlementState) {
    if p.feed_released
        .swap(false, std::sync::atomic::Ordering::AcqRel)
        && let (Some((spool, consumer)), Some(r)) = (&p.feed, st.reader.as_mut())
    {
        r.seek(spool.acked_by(*consumer));
    }
}

type Read = (Vec<Touch>, Option<spool::Position>, usize, bool);

/// Up to [`EVENTS_PER_STEP`] events (whole frames) and the touches they hold; the position
/// after them; whether more may follow.
fn read_touches(reader: &mut Reader, kind: ServiceKind) -> Result<Read, spool::Error> {
    let mut touches = Vec::new();
    let mut end = None;
    let mut events = 0;
    while events < EVENTS_PER_STEP {
        let Some(frame) = reader.next_frame()? else {
            return Ok((touches, end, events, false));
        };
        for (_, e) in frame.events() {
            touches.extend(record::touches(kind, e));
        }
        events += frame.len();
        end = Some(frame.position(frame.end_seq()));
        reader.recycle(frame);
    }
    Ok((touches, end, events, true))
}

/// The touches of a step, by parent: a child's latest event is its cause.
#[derive(Default)]
struct ByParent {
    children: BTreeMap<(char, String), Cause>,
    whole: Option<Cause>,
    last: Option<Cause>,
    event_ms: u64,
}

async fn apply(
    p: &Puller,
    st: &mut EntitlementState,
    touches: Vec<Touch>,
    shutdown: &Shutdown,
    stats: &mut Stats,
) -> Result<(), Stop> {
    let mut by: BTreeMap<(ParentKind, String), ByParent> = BTreeMap::new();
    for t in touches {
        if by.len() >= PARENTS_PER_STEP && !by.contains_key(&(t.parent, t.id.clone())) {
            // Beyond the bound, the whole parent list of this kind is the next listing's.
            continue;
        }
        let b = by.entry((t.parent, t.id)).or_default();
        b.event_ms = b.event_ms.max(t.published_ms);
        b.last = Some(t.cause.clone());
        match t.child {
            Some(c) => {
                b.children.insert(c, t.cause);
            }
            None => b.whole = Some(t.cause),
        }
    }
    for ((kind, id), b) in by {
        let Some(fallback) = b.last.clone() else {
            continue;
        };
        let parent = ParentRef {
            id,
            label: String::new(),
        };
        let causes: BTreeMap<String, Cause> = b
            .children
            .iter()
            .map(|((k, c), cause)| (format!("{k}:{c}"), cause.clone()))
            .collect();
        let reason = Reason::Changes {
            causes,
            fallback,
            event_ms: b.event_ms,
            only_named: b.whole.is_none(),
        };
        if b.whole.is_some() {
            read_parent(p, st, kind, &parent, &reason, None, shutdown, stats).await?;
            continue;
        }
        // Per list: one child at a time, or the whole list when that costs no more.
        for list in shape::children(p.service.kind, kind) {
            let touched: Vec<(&String, &Cause)> = b
                .children
                .iter()
                .filter(|((k, _), _)| *k == list.key)
                .map(|((_, c), cause)| (c, cause))
                .collect();
            if touched.is_empty() {
                continue;
            }
            let store = st.store.clone();
            let pid = parent.id.clone();
            let known_n = smol::unblock(move || store.load(kind, &pid))
                .await
                .map_err(|e| io_halt("reading", e))?
                .map_or(0, |k| {
                    k.children
                        .keys()
                        .filter(|key| key.as_bytes().first() == Some(&(list.key as u8)))
                        .count()
                });
            let pages = list.limit.map_or(1, |l| known_n / l as usize + 1);
            if pages <= touched.len() {
                read_parent(
                    p,
                    st,
                    kind,
                    &parent,
                    &reason,
                    Some(list.key),
                    shutdown,
                    stats,
                )
                .await?;
            } else {
                for (child, cause) in touched {
                    read_child(
                        p, st, kind, &parent.id, list, child, cause, b.event_ms, shutdown, stats,
                    )
                    .await?;
                }
            }
        }
    }
    Ok(())
}

/// Reads one child: an app's user or group assignment (one request, 404 when there is none),
/// or a user's membership of one group (the user's groups, then, if the membership is new,
/// the user: at most two requests).
#[allow(clippy::too_many_arguments)]
async fn read_child(
    p: &Puller,
    st: &mut EntitlementState,
    kind: ParentKind,
    parent_id: &str,
    list: &ChildList,
    child: &str,
    cause: &Cause,
    event_ms: u64,
    shutdown: &Shutdown,
    stats: &mut Stats,
) -> Result<(), Stop> {
    let base = p.client.url().base();
    let key = format!("{}:{child}", list.key);
    let store = st.store.clone();
    let pid = parent_id.to_string();
    let mut known = smol::unblock(move || store.load(kind, &pid))
        .await
        .map_err(|e| io_halt("reading", e))?
        .unwrap_or_else(|| Known {
            generation: st.current_generation(),
            ..Known::default()
        });
    let is_member_check = list.entitlement == "group_member";
    // Whether the child is there now, and its object when it is.
    let mut now: Option<String> = None;
    let url = if is_member_check {
        format!("{base}/api/v1/users/{child}/groups")
    } else {
        format!("{base}{}{parent_id}{}/{child}", list.before, list.after)
    };
    let body = match fetch(p, st, &url, true, shutdown, stats).await? {
        Got::Page(r) => Some(r.body),
        Got::Missing => None,
        Got::Shutdown => return Err(Stop::End(CycleEnd::Shutdown)),
        Got::Failed(end) => return Err(Stop::End(end)),
        Got::InvalidCursor => return Err(Stop::End(stats.failed())),
    };
    if let Some(body) = body {
        if is_member_check {
            let groups = match page::split(&body, 10_000) {
                Ok(g) => g,
                Err(e) => {
                    log::error!("{} -> {PULL_302}: {e} ({url}). Retrying.", p.label);
                    return Err(Stop::End(stats.failed()));
                }
            };
            let member = groups
                .iter()
                .any(|g| page::object_meta(g).id.as_deref() == Some(parent_id));
            if member && !known.children.contains_key(&key) {
                let user_url = format!("{base}/api/v1/users/{child}");
                match fetch(p, st, &user_url, true, shutdown, stats).await? {
                    Got::Page(r) => now = one_object(p, &user_url, &r.body)?,
                    Got::Missing => {}
                    Got::Shutdown => return Err(Stop::End(CycleEnd::Shutdown)),
                    Got::Failed(end) => return Err(Stop::End(end)),
                    Got::InvalidCursor => return Err(Stop::End(stats.failed())),
                }
            } else if member {
                // Known and still a member: nothing to send.
                now = Some(String::new());
            }
        } else {
            now = one_object(p, &url, &body)?;
        }
    }
    let context = shape::context(p.service.kind, kind, parent_id, &known.label);
    let observed = observed();
    let mut lines = Vec::new();
    match now {
        Some(line) if line.is_empty() => stats.duplicates += 1,
        Some(line) => {
            stats.received += 1;
            let c = child_of(list, &line);
            if known.children.get(&key).map(|k| k.fp) != Some(c.fp) {
                lines.push(record::present(
                    list.entitlement,
                    &observed,
                    cause,
                    &context,
                    list.field,
                    &line,
                ));
            }
            known.children.insert(key, c);
        }
        None => {
            if let Some(c) = known.children.remove(&key) {
                lines.push(record::removed(
                    list.entitlement,
                    &observed,
                    cause,
                    &context,
                    list.field,
                    child,
                    &c.note,
                ));
            }
        }
    }
    send(p, &lines, stats).await?;
    known.event_ms = known.event_ms.max(event_ms);
    save_known(st, kind, parent_id, known, false).await?;
    Ok(())
}

/// A single-object answer as one line, checked as a page of one would be.
fn one_object(p: &Puller, url: &str, body: &[u8]) -> Result<Option<String>, Stop> {
    let mut wrapped = Vec::with_capacity(body.len() + 2);
    wrapped.push(b'[');
    wrapped.extend_from_slice(body);
    wrapped.push(b']');
    match page::split(&wrapped, 1) {
        Ok(items) => Ok(items.first().map(|i| page::one_line(i).into_owned())),
        Err(e) => {
            log::error!("{} -> {PULL_302}: {e} ({url}). Retrying.", p.label);
            Err(Stop::End(CycleEnd::Failed { progress: false }))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Groups whose membership moved

/// Asks for the groups whose `lastMembershipUpdated` is after the last one acted on, and
/// reads again those no followed event explains (its `published` within 2 s of it). Groups
/// changed in the last two periods wait: their events may not be in the spool yet.
async fn membership_updates(
    p: &Puller,
    st: &mut EntitlementState,
    shutdown: &Shutdown,
    stats: &mut Stats,
) -> Result<(), Stop> {
    #[derive(serde::Deserialize)]
    struct Group {
        id: Option<String>,
        #[serde(rename = "lastMembershipUpdated")]
        lmu: Option<String>,
        profile: Option<Profile>,
    }
    #[derive(serde::Deserialize)]
    struct Profile {
        name: Option<String>,
    }
    let since = st.progress.lmu_since_ms;
    if since == 0 {
        return Ok(());
    }
    let settle = if p.feed.is_some() {
        2 * p.service.period.as_millis() as u64
    } else {
        0
    };
    let horizon = now_ms().saturating_sub(settle);
    if horizon <= since {
        return Ok(());
    }
    let filter = format!(
        "lastMembershipUpdated gt \"{}\"",
        format_millis(SystemTime::UNIX_EPOCH + Duration::from_millis(since))
    );
    let mut url = format!(
        "{}/api/v1/groups?filter={}&limit=200",
        p.client.url().base(),
        super::link::percent_encode(&filter)
    );
    let mut newest_done = since;
    let mut oldest_waiting = u64::MAX;
    loop {
        let resp = match fetch(p, st, &url, false, shutdown, stats).await? {
            Got::Page(r) => r,
            Got::Shutdown => return Err(Stop::End(CycleEnd::Shutdown)),
            Got::Failed(end) => return Err(Stop::End(end)),
            Got::Missing | Got::InvalidCursor => return Err(Stop::End(stats.failed())),
        };
        let Some(page) = p.check_page(&url, &resp) else {
            return Err(Stop::End(stats.failed()));
        };
        let groups: Vec<(String, String, u64)> = page
            .items
            .iter()
            .filter_map(|i| serde_json::from_str::<Group>(i.raw()).ok())
            .filter_map(|g| {
                let id = g.id.filter(|i| shape::safe_id(i))?;
                let ms = g
                    .lmu
                    .as_deref()
                    .and_then(crate::time::parse_rfc3339)
                    .map(|t| crate::time::unix_millis(t) as u64)?;
                Some((id, g.profile.and_then(|p| p.name).unwrap_or_default(), ms))
            })
            .collect();
        for (id, name, lmu) in groups {
            if lmu > horizon {
                oldest_waiting = oldest_waiting.min(lmu);
                continue;
            }
            let store = st.store.clone();
            let gid = id.clone();
            let known = smol::unblock(move || store.load(ParentKind::Group, &gid))
                .await
                .map_err(|e| io_halt("reading", e))?;
            let explained = known
                .as_ref()
                .is_some_and(|k| k.lmu_ms >= lmu || k.event_ms + 2_000 >= lmu);
            if !explained {
                let parent = ParentRef {
                    id: id.clone(),
                    label: name,
                };
                let reason = Reason::Changes {
                    causes: BTreeMap::new(),
                    fallback: Cause::MembershipUpdated,
                    event_ms: 0,
                    only_named: false,
                };
                read_parent(
                    p,
                    st,
                    ParentKind::Group,
                    &parent,
                    &reason,
                    None,
                    shutdown,
                    stats,
                )
                .await?;
            }
            // Remember what was acted on (a file only where something is known).
            let store = st.store.clone();
            smol::unblock(move || -> std::io::Result<()> {
                if let Some(mut k) = store.load(ParentKind::Group, &id)? {
                    k.lmu_ms = k.lmu_ms.max(lmu);
                    store.save(ParentKind::Group, &id, &k)?;
                    store.sync()?;
                }
                Ok(())
            })
            .await
            .map_err(|e| io_halt("saving", e))?;
            newest_done = newest_done.max(lmu);
        }
        match page.next {
            Some(n) => url = n,
            None => break,
        }
    }
    // Never past a group left waiting.
    let next = newest_done.min(oldest_waiting.saturating_sub(1)).max(since);
    if next != since {
        st.progress.lmu_since_ms = next;
        st.save_progress().await?;
    }
    Ok(())
}
