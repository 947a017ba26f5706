//! The microphone and the utterance in flight: one [`Session`] value per
//! page, owned by the app through the [`Mic`] handle. Listening sessions
//! are numbered — every start and stop bumps the number — so a microphone
//! that opens after its session ended (a slow `getUserMedia`) is closed at
//! once. Which utterance is in flight is [`Utterances`]' rule.

use hark_recognizer::listen::{Heard, Listener, level_dbfs};
use hark_web::utterance::Utterances;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::mic;

/// A press on the microphone held at least this long is push-to-talk:
/// releasing it ends the utterance.
const HOLD_MS: f64 = 450.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MicState {
    Idle,
    Listening,
    Recognizing,
}

impl MicState {
    /// The button's `data-state`.
    pub fn name(self) -> &'static str {
        match self {
            MicState::Idle => "idle",
            MicState::Listening => "listening",
            MicState::Recognizing => "recognizing",
        }
    }
}

/// What the page keeps about listening and recognising.
#[derive(Default)]
struct Session {
    capture: Option<mic::Capture>,
    listener: Option<Listener>,
    /// The listening session's number.
    generation: u32,
    /// When the current press on the microphone began, if it started listening.
    press: Option<f64>,
    utterances: Utterances,
    /// The microphone's own sample rate, once it has been heard.
    device_rate: u32,
}

/// The page's handle on its session, with what the microphone button shows.
#[derive(Clone, Copy)]
pub struct Mic {
    session: StoredValue<Session, LocalStorage>,
    pub state: RwSignal<MicState>,
    pub error: RwSignal<Option<String>>,
    /// The input level, dBFS (-100 when closed).
    pub level: RwSignal<f32>,
}

impl Mic {
    pub fn new() -> Self {
        Self {
            session: StoredValue::new_local(Session::default()),
            state: RwSignal::new(MicState::Idle),
            error: RwSignal::new(None),
            level: RwSignal::new(-100.0),
        }
    }

    fn with<T: Default>(self, f: impl FnOnce(&mut Session) -> T) -> T {
        self.session.try_update_value(f).unwrap_or_default()
    }

    /// A press (pointer down) on the button: tap to start (the endpointer
    /// stops), tap again to stop, or hold to talk.
    pub fn press(self, on_utterance: impl Fn(Vec<f32>) + Copy + 'static) {
        let starts = self.state.get_untracked() == MicState::Idle;
        self.with(|s| s.press = starts.then(js_sys::Date::now));
        self.toggle(on_utterance);
    }

    /// The press ended: a hold past [`HOLD_MS`] ends the utterance.
    pub fn release(self, on_utterance: impl Fn(Vec<f32>) + Copy + 'static) {
        if let Some(began) = self.with(|s| s.press.take()) {
            if js_sys::Date::now() - began >= HOLD_MS && self.state.get_untracked() == MicState::Listening {
                self.stop(on_utterance);
            }
        }
    }

    /// Start, or stop and recognise (keyboard, scripted clicks, taps).
    pub fn toggle(self, on_utterance: impl Fn(Vec<f32>) + Copy + 'static) {
        match self.state.get_untracked() {
            MicState::Idle => self.start(on_utterance),
            MicState::Listening => self.stop(on_utterance),
            MicState::Recognizing => {}
        }
    }

    /// Closes the microphone; returns the listener with what it buffered.
    fn halt(self) -> Option<Listener> {
        let (capture, listener) = self.with(|s| {
            s.generation = s.generation.wrapping_add(1);
            (s.capture.take(), s.listener.take())
        });
        if let Some(c) = capture {
            c.stop();
        }
        self.level.set(-100.0);
        listener
    }

    /// Stop (button or end of a hold): recognise what was heard so far.
    fn stop(self, on_utterance: impl Fn(Vec<f32>) + 'static) {
        match self.halt().and_then(Listener::finish) {
            Some(samples) => on_utterance(samples),
            None => self.state.set(MicState::Idle),
        }
    }

    fn start(self, on_utterance: impl Fn(Vec<f32>) + Copy + 'static) {
        self.error.set(None);
        self.state.set(MicState::Listening);
        let generation = self.with(|s| {
            s.generation = s.generation.wrapping_add(1);
            s.generation
        });
        let current = move || self.with(|s| s.generation) == generation;
        spawn_local(async move {
            let on_block = move |rate: u32, samples: Vec<f32>| {
                self.level.set(level_dbfs(&samples));
                let heard = self.with(|s| {
                    s.device_rate = rate;
                    if s.listener.is_none() {
                        s.listener = Listener::new(rate).ok();
                    }
                    s.listener.as_mut().map(|l| l.push(&samples)).unwrap_or_default()
                });
                for h in heard {
                    if let Heard::Utterance(u) = h {
                        self.halt();
                        on_utterance(u);
                    }
                }
            };
            match mic::Capture::start(on_block).await {
                Ok(c) => {
                    // Stopped (or a hold released) while the microphone was opening.
                    if self.state.get_untracked() != MicState::Listening || !current() {
                        c.stop();
                    } else if let Some(old) = self.session.try_update_value(|s| s.capture.replace(c)).flatten() {
                        old.stop();
                    }
                }
                Err(e) if current() => {
                    self.error.set(Some(mic::explain(&e)));
                    self.state.set(MicState::Idle);
                }
                // A session already over: nothing to tell.
                Err(_) => {}
            }
        });
    }

    /// An utterance goes to the worker: its id, or `None` while another
    /// is still being recognised (one in flight at a time).
    pub fn begin_utterance(self, now_ms: f64) -> Option<u32> {
        // Recognising either way: this utterance, or the one still in flight.
        self.state.set(MicState::Recognizing);
        self.with(|s| s.utterances.begin(now_ms))
    }

    /// Its transcript arrived: the latency since speech ended, or `None`
    /// for an answer that is not the one in flight.
    pub fn finish_utterance(self, id: u32, now_ms: f64) -> Option<f64> {
        let latency = self.with(|s| s.utterances.finish(id, now_ms))?;
        self.state.set(MicState::Idle);
        Some(latency)
    }

    /// Recognising `id` failed: shown when it was the one in flight
    /// (true), else dropped (a stale answer).
    pub fn fail_utterance(self, id: u32, error: String) -> bool {
        let current = self.with(|s| s.utterances.fail(id));
        if current {
            self.error.set(Some(error));
            self.state.set(MicState::Idle);
        }
        current
    }

    /// The microphone's own sample rate (16 kHz before it was opened).
    pub fn device_rate(self) -> u32 {
        Some(self.with(|s| s.device_rate)).filter(|&r| r > 0).unwrap_or(hark_dsp::SAMPLE_RATE)
    }

    /// The id of the utterance in flight.
    pub fn in_flight(self) -> Option<u32> {
        self.with(|s| s.utterances.in_flight())
    }
}
