//! The page's side of the recognition worker: start it, queue messages until
//! it says hello, hand its answers to a callback.

use std::cell::RefCell;
use std::rc::Rc;

use hark_web::{Backend, FromWorker, ToWorker, decode, encode};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{ErrorEvent, MessageEvent, Worker};

type Queued = (ToWorker, Option<Vec<f32>>);

pub struct Client {
    worker: Worker,
    /// Messages sent before the worker's WebAssembly was running.
    queue: Rc<RefCell<Option<Vec<Queued>>>>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(ErrorEvent)>,
}

impl Client {
    /// Starts `backend`'s worker. `on_event` gets every message it sends;
    /// `on_error` a description when it cannot start or crashes.
    pub fn spawn(
        backend: Backend,
        mut on_event: impl FnMut(FromWorker, Option<Vec<f32>>) + 'static,
        mut on_error: impl FnMut(String) + 'static,
    ) -> Result<Self, JsValue> {
        let worker = Worker::new(backend.script())?;
        let queue: Rc<RefCell<Option<Vec<Queued>>>> = Rc::new(RefCell::new(Some(Vec::new())));
        let flush = {
            let queue = queue.clone();
            let worker = worker.clone();
            move || {
                for (msg, samples) in queue.borrow_mut().take().unwrap_or_default() {
                    post(&worker, &msg, samples.as_deref());
                }
            }
        };
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            match decode::<FromWorker>(&event.data()) {
                Ok((FromWorker::Hello, _)) => flush(),
                Ok((msg, samples)) => on_event(msg, samples),
                Err(e) => web_sys::console::error_1(&format!("message from the hark worker: {e}").into()),
            }
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        let on_error_closure = Closure::<dyn FnMut(ErrorEvent)>::new(move |event: ErrorEvent| {
            let message = event.message();
            on_error(if message.is_empty() { "the recognition worker could not start".into() } else { message });
        });
        worker.set_onerror(Some(on_error_closure.as_ref().unchecked_ref()));
        Ok(Self { worker, queue, _on_message: on_message, _on_error: on_error_closure })
    }

    /// Stops the worker at once (its device and memory are freed). Its
    /// handlers are detached first; the caller keeps the client itself (its
    /// closures) alive, since this may run inside one of them.
    pub fn terminate(&self) {
        self.worker.set_onmessage(None);
        self.worker.set_onerror(None);
        self.worker.terminate();
    }

    pub fn send(&self, msg: ToWorker, samples: Option<Vec<f32>>) {
        if let Some(queue) = self.queue.borrow_mut().as_mut() {
            queue.push((msg, samples));
            return;
        }
        post(&self.worker, &msg, samples.as_deref());
    }
}

fn post(worker: &Worker, msg: &ToWorker, samples: Option<&[f32]>) {
    match encode(msg, samples) {
        Ok((value, transfer)) => {
            if let Err(e) = worker.post_message_with_transfer(&value, &transfer) {
                web_sys::console::error_1(&e);
            }
        }
        Err(e) => web_sys::console::error_1(&format!("could not encode a message for the worker: {e}").into()),
    }
}
