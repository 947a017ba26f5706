//! The rules for opt-in prediction logs, in one type: the [`Queue`].
//!
//! * **Consent off keeps nothing.** The queue holds the person's choice
//!   ([`Consent`]); without one, nothing is kept or handed out, and
//!   revoking clears what was not sent. Recordings (audio, full features)
//!   are kept only under [`ConsentLevel::Recordings`]; lowering the level
//!   strips them from what waits.
//! * **Nothing is lost to a reload or an offline hour.** Every change is
//!   returned as a [`Change`] the page applies, in order, to IndexedDB (the
//!   durable copy); this in-memory copy lets a `pagehide` handler build a
//!   batch synchronously.
//! * **Bounded.** Past [`Limits`] the oldest entries are dropped, and
//!   counted ([`Counts::dropped_full`]).
//! * **Exactly once.** Each event keeps its client-made `event_id` until
//!   the collector acknowledged it (a batch resent after a lost answer is
//!   stored once: the collector dedupes on it). What the collector answers
//!   is judged by [`hark_telemetry::delivery`]: delivered (rejected items
//!   dropped and counted), retried later, or refused and dropped (counted).
//! * **Corrections.** A recognition waits as this page's *pending* entry
//!   until the person searches (it then carries their correction if they
//!   edited the words) or speaks again; a pending entry left by a page that
//!   is gone is final as it is.
//!
//! Pure, so it is unit-tested natively; the page owns one
//! (`src/telemetry.rs`).

use std::collections::BTreeSet;

use hark_telemetry::MAX_BATCH;
use hark_telemetry::v2::{ConsentLevel, Event};
use serde::{Deserialize, Serialize};

/// The version of the consent text the page shows. A choice made under
/// another version is asked again.
pub const CONSENT_TEXT_VERSION: u32 = 1;

/// What the person agreed to, and under which text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    pub level: ConsentLevel,
    pub text_version: u32,
}

/// One event waiting to be sent: the IndexedDB record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The event's id, also the record's key.
    pub event_id: String,
    /// When it was queued (ms since the epoch): the queue's order.
    pub queued_ms: f64,
    /// The choice it was made under.
    pub consent: Consent,
    /// The page load that made it.
    pub page: String,
    /// Final: searched, superseded, or left by another page.
    pub ready: bool,
    /// Its JSON size, bytes.
    pub bytes: usize,
    pub event: Event,
}

impl Entry {
    fn new(event: Event, consent: Consent, page: &str, queued_ms: f64) -> Self {
        let mut entry = Self {
            event_id: event.event_id.clone(),
            queued_ms,
            consent,
            page: page.to_owned(),
            ready: false,
            bytes: 0,
            event,
        };
        entry.measure();
        entry
    }

    fn measure(&mut self) {
        self.bytes = serde_json::to_string(&self.event).map(|s| s.len()).unwrap_or(usize::MAX / 2);
    }

    /// Takes the recordings out (a level without them).
    fn strip(&mut self) {
        self.event.audio = None;
        self.event.features = None;
        self.consent.level = ConsentLevel::Predictions;
        self.measure();
    }
}

/// A change to apply to the durable copy, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Put(Box<Entry>),
    Delete(Vec<String>),
    Clear,
}

/// What became of the events this install made (kept on the device, shown
/// in the settings).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Stored by the collector.
    pub sent: u64,
    /// Already stored (a resend after a lost answer).
    pub duplicates: u64,
    /// Dropped unsent because the queue was full.
    pub dropped_full: u64,
    /// Refused one by one in an accepted batch (the collector named why).
    pub rejected: u64,
    /// Dropped with a batch the collector refused whole (400, 413, 422…).
    pub refused: u64,
}

/// How much may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub events: usize,
    pub bytes: usize,
}

impl Default for Limits {
    /// 500 events or 64 MB (a recording with its features is ~3 MB).
    fn default() -> Self {
        Self { events: 500, bytes: 64 << 20 }
    }
}

/// A batch on its way: what to send and which entries it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub consent: Consent,
    pub events: Vec<Event>,
    pub keys: Vec<String>,
}

/// The collector's answer to a delivered batch.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Answer {
    #[serde(default)]
    pub accepted: u64,
    #[serde(default)]
    pub duplicates: u64,
    #[serde(default)]
    pub rejected: Vec<serde_json::Value>,
}

/// The page's unsent prediction logs and the rules they follow.
#[derive(Debug, Default)]
pub struct Queue {
    consent: Option<Consent>,
    page: String,
    entries: Vec<Entry>,
    pending: Option<String>,
    sending: BTreeSet<String>,
    counts: Counts,
    limits: Limits,
}

impl Queue {
    /// An empty queue of page load `page` under the person's current
    /// choice; what an earlier visit left is [`Queue::adopt`]ed once it has
    /// been read.
    pub fn new(consent: Option<Consent>, page: &str, counts: Counts, limits: Limits) -> Self {
        Self { consent, page: page.to_owned(), counts, limits, ..Self::default() }
    }

    /// The queue of page load `page`, from the durable copy (`stored`, any
    /// order) under the person's current choice: the changes to apply
    /// bring the durable copy in line (cleared without consent, recordings
    /// stripped under the lower level).
    pub fn restore(
        consent: Option<Consent>,
        page: &str,
        stored: Vec<Entry>,
        counts: Counts,
        limits: Limits,
    ) -> (Self, Vec<Change>) {
        let mut queue = Self::new(consent, page, counts, limits);
        let changes = queue.adopt(stored);
        (queue, changes)
    }

    /// Takes in what the durable copy holds (`stored`, any order; entries
    /// this queue already has are kept as they are here), under the current
    /// choice: the changes bring the durable copy in line (cleared without
    /// consent, recordings stripped under the lower level, the oldest
    /// dropped past the limits).
    pub fn adopt(&mut self, stored: Vec<Entry>) -> Vec<Change> {
        let known: BTreeSet<String> = self.entries.iter().map(|e| e.event_id.clone()).collect();
        self.entries.extend(stored.into_iter().filter(|e| !known.contains(&e.event_id)));
        self.entries.sort_by(|a, b| a.queued_ms.total_cmp(&b.queued_ms).then_with(|| a.event_id.cmp(&b.event_id)));
        let mut changes = self.set_consent(self.consent);
        if let Some(dropped) = self.enforce_limits() {
            changes.push(dropped);
        }
        changes
    }

    pub fn consent(&self) -> Option<Consent> {
        self.consent
    }

    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Events waiting (the pending one included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The person changed their choice. Off forgets everything not yet
    /// sent; down to predictions strips the recordings from what waits.
    pub fn set_consent(&mut self, consent: Option<Consent>) -> Vec<Change> {
        self.consent = consent;
        match consent {
            // Cleared on the durable copy even when nothing waits here:
            // another tab may have queued events.
            None => {
                self.entries.clear();
                self.pending = None;
                self.sending.clear();
                vec![Change::Clear]
            }
            Some(c) if c.level == ConsentLevel::Predictions => self
                .entries
                .iter_mut()
                .filter(|e| e.consent.level == ConsentLevel::Recordings)
                .map(|e| {
                    e.strip();
                    Change::Put(Box::new(e.clone()))
                })
                .collect(),
            Some(_) => Vec::new(),
        }
    }

    /// A recognition happened: with consent it becomes the pending entry
    /// (an earlier pending one is final as it is), without its recordings
    /// unless they were agreed to; without consent it is dropped. Past the
    /// limits, the oldest entries go (counted).
    pub fn observe(&mut self, event: Event, now_ms: f64) -> Vec<Change> {
        self.push_entry(event, now_ms, |entry, consent| {
            if consent.level == ConsentLevel::Predictions
                && (entry.event.audio.is_some() || entry.event.features.is_some())
            {
                entry.strip();
            }
            false
        })
    }

    /// A recognition failed (`event` says what in [`Event::error`]): kept,
    /// with consent only, as final at once — there is no transcript to
    /// correct. An earlier utterance's pending event is final too (the
    /// person spoke again).
    pub fn failed(&mut self, event: Event, now_ms: f64) -> Vec<Change> {
        self.push_entry(event, now_ms, |entry, _| {
            entry.ready = true;
            entry.measure();
            true
        })
    }

    /// Queues a new utterance's event under the consent given (nothing
    /// without it), after finalising the one before: `shape` readies the
    /// entry and says whether it is final already (else it waits, pending,
    /// for the person's search).
    fn push_entry(
        &mut self,
        event: Event,
        now_ms: f64,
        shape: impl FnOnce(&mut Entry, Consent) -> bool,
    ) -> Vec<Change> {
        let Some(consent) = self.consent else { return Vec::new() };
        let mut changes = self.finalise_pending(None);
        let mut entry = Entry::new(event, consent, &self.page, now_ms);
        if !shape(&mut entry, consent) {
            self.pending = Some(entry.event_id.clone());
        }
        self.entries.push(entry.clone());
        changes.push(Change::Put(Box::new(entry)));
        if let Some(dropped) = self.enforce_limits() {
            changes.push(dropped);
        }
        changes
    }

    /// Past the limits the oldest entries go, counted (the newest one stays
    /// whatever its size).
    fn enforce_limits(&mut self) -> Option<Change> {
        let mut dropped = Vec::new();
        let mut bytes: usize = self.entries.iter().map(|e| e.bytes).sum();
        while self.entries.len() > 1 && (self.entries.len() > self.limits.events || bytes > self.limits.bytes) {
            let oldest = self.entries.remove(0);
            bytes -= oldest.bytes;
            self.sending.remove(&oldest.event_id);
            if self.pending.as_ref() == Some(&oldest.event_id) {
                self.pending = None;
            }
            self.counts.dropped_full += 1;
            dropped.push(oldest.event_id);
        }
        (!dropped.is_empty()).then_some(Change::Delete(dropped))
    }

    /// The person searched for `query`: the pending entry is final, with a
    /// correction when `query` (normalised) differs from what was heard.
    pub fn searched(&mut self, query: &str) -> Vec<Change> {
        self.finalise_pending(Some(query))
    }

    fn finalise_pending(&mut self, query: Option<&str>) -> Vec<Change> {
        let Some(key) = self.pending.take() else { return Vec::new() };
        let Some(entry) = self.entries.iter_mut().find(|e| e.event_id == key) else { return Vec::new() };
        if let Some(query) = query {
            let query = hark_data::normalize(query);
            if query != entry.event.transcript && !query.is_empty() {
                entry.event.correction = Some(query);
            }
        }
        entry.ready = true;
        entry.measure();
        vec![Change::Put(Box::new(entry.clone()))]
    }

    /// The next batch to send: the oldest final entries made under one
    /// choice, at most [`MAX_BATCH`] and `budget` bytes of events (an entry
    /// larger than the budget waits for a larger one). `with_pending`: the
    /// page is going away, its pending entry is final as it is. Entries
    /// already on their way are not planned twice. `None` when there is
    /// nothing to send (always without consent).
    pub fn plan(&mut self, budget: usize, with_pending: bool) -> Option<Planned> {
        self.consent?;
        let sendable = |e: &&Entry| {
            !self.sending.contains(&e.event_id) && (e.ready || e.page != self.page || with_pending) && e.bytes <= budget
        };
        let first = self.entries.iter().find(sendable)?.consent;
        let (mut keys, mut events, mut bytes) = (Vec::new(), Vec::new(), 0);
        for e in self.entries.iter().filter(sendable).filter(|e| e.consent == first) {
            if events.len() == MAX_BATCH || bytes + e.bytes > budget {
                break;
            }
            bytes += e.bytes;
            keys.push(e.event_id.clone());
            events.push(e.event.clone());
        }
        self.sending.extend(keys.iter().cloned());
        Some(Planned { consent: first, events, keys })
    }

    /// The collector took the batch (its rejected items are dropped too).
    pub fn delivered(&mut self, keys: &[String], answer: &Answer) -> Vec<Change> {
        self.counts.sent += answer.accepted;
        self.counts.duplicates += answer.duplicates;
        self.counts.rejected += answer.rejected.len() as u64;
        self.forget(keys)
    }

    /// The collector refused the batch whole: resending cannot succeed.
    pub fn refused(&mut self, keys: &[String]) -> Vec<Change> {
        let waiting = keys.iter().filter(|k| self.entries.iter().any(|e| &e.event_id == *k)).count();
        self.counts.refused += waiting as u64;
        self.forget(keys)
    }

    /// The batch could not be delivered now: its entries wait for the next try.
    pub fn retry_later(&mut self, keys: &[String]) {
        for k in keys {
            self.sending.remove(k);
        }
    }

    fn forget(&mut self, keys: &[String]) -> Vec<Change> {
        let gone: BTreeSet<&String> = keys.iter().collect();
        self.entries.retain(|e| !gone.contains(&e.event_id));
        for k in keys {
            self.sending.remove(k);
        }
        if self.pending.as_ref().is_some_and(|p| gone.contains(p)) {
            self.pending = None;
        }
        if keys.is_empty() { Vec::new() } else { vec![Change::Delete(keys.to_vec())] }
    }
}

#[cfg(test)]
mod tests {
    use hark_telemetry::v2::Audio;

    use super::*;

    const PREDICTIONS: Consent = Consent { level: ConsentLevel::Predictions, text_version: CONSENT_TEXT_VERSION };
    const RECORDINGS: Consent = Consent { level: ConsentLevel::Recordings, text_version: CONSENT_TEXT_VERSION };

    fn event(transcript: &str) -> Event {
        Event {
            event_id: format!("id-{}", transcript.replace(' ', "-")),
            created_ms: 1,
            app_version: "0.0.0".into(),
            model_version: "0.1.0".into(),
            backend: "cpu".into(),
            latency_ms: 10.0,
            audio_s: 1.0,
            transcript: transcript.into(),
            confidence: 0.9,
            words: Vec::new(),
            correction: None,
            summary: None,
            features: None,
            audio: Some(Audio::from_samples(&[0.1; 1600])),
            error: None,
        }
    }

    fn queue(consent: Option<Consent>) -> Queue {
        Queue::restore(consent, "page-1", Vec::new(), Counts::default(), Limits::default()).0
    }

    /// The durable copy after applying `changes` to `stored`.
    fn apply(mut stored: Vec<Entry>, changes: &[Change]) -> Vec<Entry> {
        for change in changes {
            match change {
                Change::Put(e) => {
                    stored.retain(|s| s.event_id != e.event_id);
                    stored.push((**e).clone());
                }
                Change::Delete(keys) => stored.retain(|s| !keys.contains(&s.event_id)),
                Change::Clear => stored.clear(),
            }
        }
        stored
    }

    #[test]
    fn consent_off_keeps_nothing_and_is_the_default() {
        let mut q = Queue::default();
        assert_eq!(q.consent(), None, "consent is off by default");
        assert!(q.observe(event("weather in paris"), 1.0).is_empty());
        assert!(q.searched("weather in paris").is_empty());
        assert!(q.is_empty());
        assert_eq!(q.plan(usize::MAX, true), None);
    }

    #[test]
    fn a_failed_recognition_is_kept_only_with_consent_and_is_final_at_once() {
        let failure = || Event {
            event_id: "id-failed".into(),
            transcript: String::new(),
            confidence: 0.0,
            audio: None,
            error: Some("Recognition failed: the GPU device was lost".into()),
            ..event("x")
        };
        let mut off = Queue::default();
        assert!(off.failed(failure(), 1.0).is_empty() && off.is_empty(), "consent off keeps nothing");

        let mut q = queue(Some(PREDICTIONS));
        let mut stored = apply(Vec::new(), &q.observe(event("a"), 1.0));
        stored = apply(stored, &q.failed(failure(), 2.0));
        assert_eq!(stored.len(), 2);
        assert!(stored.iter().all(|e| e.ready), "the failure is final, and the earlier utterance with it");
        let plan = q.plan(usize::MAX, false).unwrap();
        assert_eq!(plan.keys, ["id-a", "id-failed"]);
        assert!(q.searched("a search typed instead").is_empty(), "a failure takes no correction");
    }

    #[test]
    fn revoking_consent_clears_the_queue_and_a_batch_on_its_way_is_not_kept() {
        let mut q = queue(Some(PREDICTIONS));
        let mut stored = apply(Vec::new(), &q.observe(event("a"), 1.0));
        stored = apply(stored, &q.observe(event("b"), 2.0));
        assert_eq!(stored.len(), 2);
        let in_flight = q.plan(usize::MAX, false).expect("the superseded entry is final");
        assert_eq!(in_flight.keys, ["id-a"], "the pending entry waits for the search");
        stored = apply(stored, &q.set_consent(None));
        assert!(q.is_empty() && stored.is_empty());
        q.retry_later(&in_flight.keys);
        assert!(q.is_empty());
        assert_eq!(q.plan(usize::MAX, true), None);
    }

    #[test]
    fn recordings_are_kept_only_under_their_own_level() {
        let mut q = queue(Some(PREDICTIONS));
        q.observe(event("a"), 1.0);
        q.searched("a");
        let sent = q.plan(usize::MAX, false).unwrap();
        assert!(sent.events[0].audio.is_none(), "no audio under the predictions level");

        let mut q = queue(Some(RECORDINGS));
        let stored = apply(Vec::new(), &q.observe(event("b"), 1.0));
        assert!(stored[0].event.audio.is_some());
        // Lowered before it was sent: the recording goes, the prediction stays.
        let stored = apply(stored, &q.set_consent(Some(PREDICTIONS)));
        assert!(stored[0].event.audio.is_none() && stored[0].consent == PREDICTIONS);
        let sent = q.plan(usize::MAX, true).unwrap();
        assert_eq!(sent.consent, PREDICTIONS);
        assert!(sent.events[0].audio.is_none());
    }

    #[test]
    fn a_search_finalises_the_pending_entry_with_the_correction() {
        let mut q = queue(Some(PREDICTIONS));
        q.observe(event("flights to rome"), 1.0);
        q.searched("Flights to Rome");
        q.observe(event("play jazz"), 2.0);
        assert_eq!(q.plan(usize::MAX, false).unwrap().keys.len(), 1, "the pending entry waits");
        q.retry_later(&["id-flights-to-rome".to_owned()]);
        q.searched("play some jazz");
        let sent = q.plan(usize::MAX, false).unwrap();
        assert_eq!(sent.events.len(), 2);
        assert_eq!(sent.events[0].correction, None, "same words after normalising: no correction");
        assert_eq!(sent.events[1].correction.as_deref(), Some("play some jazz"));
    }

    #[test]
    fn what_waits_survives_a_reload_and_a_dead_page_s_pending_entry_is_final() {
        let mut q = queue(Some(PREDICTIONS));
        let mut stored = apply(Vec::new(), &q.observe(event("a"), 1.0));
        stored = apply(stored, &q.searched("a"));
        stored = apply(stored, &q.observe(event("b"), 2.0));
        // Offline: the batch fails and waits.
        let batch = q.plan(usize::MAX, false).unwrap();
        q.retry_later(&batch.keys);
        // Reload: a new page load finds both, in order, the unsearched one final.
        stored.reverse();
        let (mut q, changes) = Queue::restore(Some(PREDICTIONS), "page-2", stored, q.counts(), Limits::default());
        assert!(changes.is_empty());
        let batch = q.plan(usize::MAX, false).unwrap();
        assert_eq!(batch.keys, ["id-a", "id-b"]);
        assert_eq!(q.plan(usize::MAX, false), None, "a batch on its way is not planned twice");
        let stored = apply(Vec::new(), &q.delivered(&batch.keys, &Answer { accepted: 2, ..Answer::default() }));
        assert!(q.is_empty() && stored.is_empty());
        assert_eq!(q.counts().sent, 2);
        // A reload without consent clears whatever was left.
        let left = vec![Entry::new(event("c"), PREDICTIONS, "page-2", 3.0)];
        let (q, changes) = Queue::restore(None, "page-3", left, Counts::default(), Limits::default());
        assert!(q.is_empty());
        assert_eq!(changes, [Change::Clear]);
    }

    #[test]
    fn a_visit_s_leftovers_are_adopted_beside_what_the_page_made_while_reading_them() {
        let mut earlier = queue(Some(PREDICTIONS));
        let stored = apply(Vec::new(), &earlier.observe(event("old"), 1.0));
        // This page recognised before IndexedDB answered.
        let mut q = Queue::new(Some(PREDICTIONS), "page-2", Counts::default(), Limits::default());
        let stored = apply(stored, &q.observe(event("new"), 5.0));
        let changes = q.adopt(stored.clone());
        assert_eq!(q.len(), 2, "each entry once");
        assert_eq!(apply(stored, &changes).len(), 2);
        // The earlier page's entry is final; this page's waits for its search.
        let plan = q.plan(usize::MAX, false).expect("the earlier visit's entry is sendable");
        assert_eq!(plan.keys, ["id-old"]);
    }

    #[test]
    fn past_its_limits_the_oldest_entries_are_dropped_and_counted() {
        let limits = Limits { events: 3, bytes: usize::MAX };
        let (mut q, _) = Queue::restore(Some(PREDICTIONS), "p", Vec::new(), Counts::default(), limits);
        let mut stored = Vec::new();
        for i in 0..5 {
            stored = apply(stored, &q.observe(event(&i.to_string()), i as f64));
        }
        assert_eq!(q.len(), 3);
        assert_eq!(q.counts().dropped_full, 2);
        let kept: Vec<_> = stored.iter().map(|e| e.event.transcript.as_str()).collect();
        assert_eq!(kept, ["2", "3", "4"]);
        // The size of one entry as kept under predictions (no audio).
        let one = Entry::new(Event { audio: None, ..event("x") }, PREDICTIONS, "p", 0.0).bytes;
        let (mut q, _) = Queue::restore(
            Some(PREDICTIONS),
            "p",
            Vec::new(),
            Counts::default(),
            Limits { events: 100, bytes: one * 2 },
        );
        for i in 0..4 {
            q.observe(event(&i.to_string()), i as f64);
        }
        assert!(q.len() <= 2, "{} entries over a two-entry byte budget", q.len());
    }

    #[test]
    fn batches_are_bounded_in_count_and_bytes_and_keep_one_choice() {
        let mut q = queue(Some(PREDICTIONS));
        for i in 0..(MAX_BATCH + 5) {
            q.observe(event(&i.to_string()), i as f64);
        }
        q.searched("last");
        assert_eq!(q.plan(usize::MAX, false).unwrap().events.len(), MAX_BATCH);
        assert_eq!(q.plan(usize::MAX, false).unwrap().events.len(), 5);
        assert_eq!(q.plan(usize::MAX, false), None);

        // A keepalive budget: only what fits, and nothing larger than it.
        let mut q = queue(Some(RECORDINGS));
        q.observe(event("with audio"), 1.0);
        q.set_consent(Some(PREDICTIONS));
        q.set_consent(Some(RECORDINGS));
        q.observe(event("second recording"), 2.0);
        let small = q.plan(4_000, true).unwrap();
        assert_eq!(small.keys, ["id-with-audio"], "the stripped entry fits, the recording does not");
        let big = q.plan(usize::MAX, true).unwrap();
        assert_eq!(big.keys, ["id-second-recording"]);
        assert_eq!(big.consent, RECORDINGS, "one choice per batch");
    }

    #[test]
    fn refused_batches_and_rejected_items_are_dropped_and_counted() {
        let mut q = queue(Some(PREDICTIONS));
        for i in 0..3 {
            q.observe(event(&i.to_string()), i as f64);
        }
        q.searched("2");
        let batch = q.plan(usize::MAX, false).unwrap();
        let answer = Answer { accepted: 2, duplicates: 0, rejected: vec![serde_json::json!({"index": 1})] };
        q.delivered(&batch.keys, &answer);
        assert_eq!((q.counts().sent, q.counts().rejected), (2, 1));
        assert!(q.is_empty());
        q.observe(event("3"), 4.0);
        let batch = q.plan(usize::MAX, true).unwrap();
        let changes = q.refused(&batch.keys);
        assert_eq!(changes, [Change::Delete(vec!["id-3".into()])]);
        assert_eq!(q.counts().refused, 1);
        assert!(q.is_empty());
    }
}
