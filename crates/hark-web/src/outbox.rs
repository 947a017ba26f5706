//! The rule for opt-in prediction logs: **consent off keeps nothing**. The
//! [`Outbox`] holds the consent choice itself, so no event can be kept or
//! handed out for sending while it is off, and revoking it forgets at once
//! everything not yet sent. With consent, each recognition is held as the
//! *pending* event until the person searches (then it carries their
//! correction if they edited the words) and is queued for the collector.
//! Pure, so it is unit-tested natively; the page owns one.

use hark_telemetry::{MAX_BATCH, PredictionEvent};

#[derive(Debug, Default)]
pub struct Outbox {
    consent: bool,
    /// The latest recognition, waiting to learn whether it was corrected.
    pending: Option<PredictionEvent>,
    /// Final events, oldest first, waiting to be sent.
    queued: Vec<PredictionEvent>,
}

impl Outbox {
    /// An outbox with the person's stored choice (off unless they chose).
    pub fn new(consent: bool) -> Self {
        Self { consent, ..Self::default() }
    }

    /// Whether the person agreed to share.
    pub fn consent(&self) -> bool {
        self.consent
    }

    /// Records the person's choice; turning it off forgets every event not yet sent.
    pub fn set_consent(&mut self, granted: bool) {
        self.consent = granted;
        if !granted {
            self.pending = None;
            self.queued.clear();
        }
    }

    /// A recognition happened: with consent it becomes the pending event
    /// (an earlier pending one that was never searched is queued
    /// uncorrected); without consent it is dropped.
    pub fn observe(&mut self, event: PredictionEvent) {
        if !self.consent {
            return;
        }
        if let Some(previous) = self.pending.replace(event) {
            self.queued.push(previous);
        }
    }

    /// The person searched for `query`: the pending event is final, with a
    /// correction when `query` (normalised) differs from the prediction.
    pub fn searched(&mut self, query: &str) {
        if let Some(mut event) = self.pending.take() {
            let query = hark_data::normalize(query);
            if query != event.prediction {
                event.correction = Some(query);
            }
            self.queued.push(event);
        }
    }

    /// Up to [`MAX_BATCH`] queued events to send, oldest first (none without consent).
    pub fn take_batch(&mut self) -> Vec<PredictionEvent> {
        if !self.consent {
            return Vec::new();
        }
        let n = self.queued.len().min(MAX_BATCH);
        self.queued.drain(..n).collect()
    }

    /// A batch that could not be sent goes back to the front — unless
    /// consent was revoked while it was on its way.
    pub fn put_back(&mut self, events: Vec<PredictionEvent>) {
        if self.consent {
            self.queued.splice(0..0, events);
        }
    }

    /// Events kept and not yet sent (pending included).
    pub fn len(&self) -> usize {
        self.queued.len() + usize::from(self.pending.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(prediction: &str) -> PredictionEvent {
        PredictionEvent {
            event_id: format!("id-{prediction}"),
            created_ms: 1,
            app_version: "0.0.0".into(),
            model_version: "0.1.0".into(),
            backend: "cpu".into(),
            prediction: prediction.into(),
            confidence: 0.9,
            correction: None,
            audio_s: 1.0,
            decode_ms: 10.0,
            features: None,
        }
    }

    #[test]
    fn consent_off_keeps_nothing() {
        let mut outbox = Outbox::default();
        assert!(!outbox.consent(), "consent is off by default");
        outbox.observe(event("weather in paris"));
        outbox.searched("weather in paris");
        assert!(outbox.is_empty());
        assert!(outbox.take_batch().is_empty());
    }

    #[test]
    fn revoking_consent_forgets_what_was_not_sent() {
        let mut outbox = Outbox::new(true);
        outbox.observe(event("a"));
        outbox.observe(event("b"));
        assert_eq!(outbox.len(), 2);
        let in_flight = outbox.take_batch();
        assert_eq!(in_flight.len(), 1, "the pending event waits for the search");
        outbox.set_consent(false);
        assert!(outbox.is_empty());
        // The batch on its way fails: it is not kept either.
        outbox.put_back(in_flight);
        assert!(outbox.is_empty());
    }

    #[test]
    fn a_search_finalises_the_pending_event_with_the_correction() {
        let mut outbox = Outbox::new(true);
        outbox.observe(event("flights to rome"));
        outbox.searched("Flights to Rome");
        outbox.observe(event("play jazz"));
        outbox.searched("play some jazz");
        let sent = outbox.take_batch();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].correction, None, "same words after normalising: no correction");
        assert_eq!(sent[1].correction.as_deref(), Some("play some jazz"));
        // A failed send keeps the order.
        outbox.observe(event("c"));
        outbox.searched("c");
        outbox.put_back(sent);
        let again = outbox.take_batch();
        let order: Vec<_> = again.iter().map(|e| e.prediction.as_str()).collect();
        assert_eq!(order, ["flights to rome", "play jazz", "c"]);
    }

    #[test]
    fn batches_are_bounded() {
        let mut outbox = Outbox::new(true);
        for i in 0..(MAX_BATCH + 5) {
            outbox.observe(event(&i.to_string()));
        }
        outbox.searched("last");
        assert_eq!(outbox.take_batch().len(), MAX_BATCH);
        assert_eq!(outbox.take_batch().len(), 5);
        assert!(outbox.take_batch().is_empty());
    }
}
