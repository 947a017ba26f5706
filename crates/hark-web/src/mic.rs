//! Microphone capture: `getUserMedia` → an `AudioContext` at the device's
//! own rate → the `hark-capture` AudioWorklet (web/audio-worklet.js) →
//! blocks of samples handed to Rust. Resampling and endpointing are
//! `hark-recognizer`'s [`Listener`](hark_recognizer::listen::Listener).

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AudioContext, AudioWorkletNode, MediaStream, MediaStreamConstraints, MessageEvent};

/// A running capture; dropping it does not stop it, call [`Capture::stop`].
pub struct Capture {
    context: AudioContext,
    stream: MediaStream,
    node: AudioWorkletNode,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
}

/// Why the microphone could not be opened, worded for the page.
pub fn explain(e: &JsValue) -> String {
    let name = js_sys::Reflect::get(e, &"name".into()).ok().and_then(|v| v.as_string()).unwrap_or_default();
    match name.as_str() {
        "NotAllowedError" | "SecurityError" => {
            "Microphone access was denied. Allow it in the browser's site settings, or type your search.".into()
        }
        "NotFoundError" | "OverconstrainedError" => "No microphone was found. You can still type your search.".into(),
        "NotReadableError" => "The microphone is busy in another application. You can still type your search.".into(),
        _ => format!("The microphone could not be opened ({}). You can still type your search.", js_string(e)),
    }
}

fn js_string(v: &JsValue) -> String {
    v.as_string()
        .or_else(|| js_sys::JSON::stringify(v).ok().and_then(|s| s.as_string()))
        .unwrap_or_else(|| format!("{v:?}"))
}

impl Capture {
    /// Opens the microphone; `on_block(sample_rate, samples)` runs for every
    /// ~20 ms block.
    pub async fn start(mut on_block: impl FnMut(u32, Vec<f32>) + 'static) -> Result<Self, JsValue> {
        let window = web_sys::window().ok_or("no window")?;
        let devices = window.navigator().media_devices()?;
        let constraints = MediaStreamConstraints::new();
        constraints.set_audio(&JsValue::TRUE);
        let stream: MediaStream =
            JsFuture::from(devices.get_user_media_with_constraints(&constraints)?).await?.dyn_into()?;
        // The device's own rate: a mismatched AudioContext rate is rejected
        // by some browsers; hark-dsp resamples instead.
        let context = AudioContext::new()?;
        JsFuture::from(context.audio_worklet()?.add_module("audio-worklet.js")?).await?;
        let source = context.create_media_stream_source(&stream)?;
        let node = AudioWorkletNode::new(&context, "hark-capture")?;
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let data = event.data();
            let rate =
                js_sys::Reflect::get(&data, &"sampleRate".into()).ok().and_then(|v| v.as_f64()).unwrap_or(48_000.0);
            if let Ok(samples) = js_sys::Reflect::get(&data, &"samples".into()) {
                let samples = js_sys::Float32Array::new(&samples).to_vec();
                on_block(rate as u32, samples);
            }
        });
        node.port()?.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        source.connect_with_audio_node(&node)?;
        if context.state() == web_sys::AudioContextState::Suspended {
            let _ = JsFuture::from(context.resume()?).await;
        }
        Ok(Self { context, stream, node, _on_message: on_message })
    }

    pub fn stop(self) {
        let Self { context, stream, node, _on_message: on_message } = self;
        // Detach the handler first: blocks the worklet already queued must
        // not reach a closure that is being dropped.
        if let Ok(port) = node.port() {
            port.set_onmessage(None);
        }
        let _ = node.disconnect();
        for track in stream.get_tracks().iter() {
            if let Ok(track) = track.dyn_into::<web_sys::MediaStreamTrack>() {
                track.stop();
            }
        }
        let _ = context.close();
        // `stop` may run inside that very handler (the endpointer heard the
        // end of speech): drop the closure only after it has returned.
        wasm_bindgen_futures::spawn_local(async move { drop(on_message) });
    }
}
