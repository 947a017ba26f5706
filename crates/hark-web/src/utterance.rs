//! The page's rule for utterances: **one in flight at a time**. An
//! utterance gets an id when it goes to the worker; only the answer for the
//! utterance in flight is shown (a late answer for an older one — after a
//! worker restart, say — is dropped), and a new one cannot start until the
//! one in flight is answered or failed. Pure, so it is unit-tested natively.

/// The utterance being recognised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InFlight {
    pub id: u32,
    /// When speech ended (`performance.now()` ms): latency is measured from here.
    pub ended_ms: f64,
}

/// Hands out utterance ids and holds the one in flight.
#[derive(Debug, Default)]
pub struct Utterances {
    last_id: u32,
    in_flight: Option<InFlight>,
}

impl Utterances {
    /// An utterance that ended at `now_ms` goes to the worker: its id, or
    /// `None` while another is still being recognised.
    pub fn begin(&mut self, now_ms: f64) -> Option<u32> {
        if self.in_flight.is_some() {
            return None;
        }
        self.last_id = self.last_id.wrapping_add(1).max(1);
        self.in_flight = Some(InFlight { id: self.last_id, ended_ms: now_ms });
        Some(self.last_id)
    }

    /// The transcript of `id` arrived at `now_ms`: the latency since speech
    /// ended, or `None` when `id` is not the utterance in flight (drop it).
    pub fn finish(&mut self, id: u32, now_ms: f64) -> Option<f64> {
        let current = self.in_flight.filter(|u| u.id == id)?;
        self.in_flight = None;
        Some(now_ms - current.ended_ms)
    }

    /// Recognising `id` failed: whether it was the one in flight (then the
    /// failure is shown and the next utterance may start).
    pub fn fail(&mut self, id: u32) -> bool {
        let current = self.in_flight.is_some_and(|u| u.id == id);
        if current {
            self.in_flight = None;
        }
        current
    }

    /// The id of the utterance in flight.
    pub fn in_flight(&self) -> Option<u32> {
        self.in_flight.map(|u| u.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_utterance_is_in_flight_at_a_time() {
        let mut u = Utterances::default();
        let first = u.begin(100.0).expect("nothing in flight");
        assert_eq!(u.begin(150.0), None, "a second utterance must wait for the first");
        assert_eq!(u.in_flight(), Some(first));
        assert_eq!(u.finish(first, 180.0), Some(80.0));
        assert_eq!(u.in_flight(), None);
        let second = u.begin(200.0).expect("the first was answered");
        assert_ne!(first, second, "ids are not reused");
    }

    #[test]
    fn stale_answers_and_failures_are_dropped() {
        let mut u = Utterances::default();
        let first = u.begin(0.0).unwrap();
        assert!(u.fail(first));
        let second = u.begin(10.0).unwrap();
        // The first utterance's answer arrives late (a restarted worker).
        assert_eq!(u.finish(first, 20.0), None);
        assert!(!u.fail(first));
        assert_eq!(u.in_flight(), Some(second), "a stale answer leaves the current one in flight");
        assert_eq!(u.finish(second, 30.0), Some(20.0));
    }
}
