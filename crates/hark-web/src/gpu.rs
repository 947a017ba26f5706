//! Does this browser offer a WebGPU adapter?
//!
//! Read through `js_sys::Reflect` rather than `web-sys`'s WebGPU bindings,
//! which still need the `web_sys_unstable_apis` cfg for the whole build.

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// Outcome of asking `navigator.gpu` for an adapter.
#[derive(Debug, Clone, PartialEq)]
pub enum GpuProbe {
    Checking,
    /// An adapter exists; `name` is what the browser tells about it.
    Found {
        name: String,
    },
    /// No WebGPU here; recognition will use the CPU (WebAssembly).
    Absent {
        why: String,
    },
}

impl GpuProbe {
    /// Machine-readable state, for `data-state` (tests read it).
    pub fn state(&self) -> &'static str {
        match self {
            GpuProbe::Checking => "checking",
            GpuProbe::Found { .. } => "found",
            GpuProbe::Absent { .. } => "absent",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            GpuProbe::Checking => "Looking for a WebGPU adapter…".into(),
            GpuProbe::Found { name } => format!("WebGPU adapter found ({name})."),
            GpuProbe::Absent { why } => {
                format!("No WebGPU adapter ({why}); recognition will run on the CPU (WebAssembly).")
            }
        }
    }
}

pub async fn probe() -> GpuProbe {
    match request_adapter().await {
        Ok(probe) => probe,
        Err(e) => GpuProbe::Absent { why: format!("requestAdapter failed: {}", js_message(&e)) },
    }
}

async fn request_adapter() -> Result<GpuProbe, JsValue> {
    let navigator = web_sys::window().ok_or("no window")?.navigator();
    let gpu = Reflect::get(&navigator, &"gpu".into())?;
    if gpu.is_undefined() || gpu.is_null() {
        return Ok(GpuProbe::Absent { why: "navigator.gpu is not available in this browser".into() });
    }
    let request: Function = Reflect::get(&gpu, &"requestAdapter".into())?.dyn_into()?;
    let promise: Promise = request.call0(&gpu)?.dyn_into()?;
    let adapter = JsFuture::from(promise).await?;
    if adapter.is_null() || adapter.is_undefined() {
        return Ok(GpuProbe::Absent { why: "the browser offered no adapter".into() });
    }
    Ok(GpuProbe::Found { name: adapter_name(&adapter) })
}

/// "vendor architecture description", from `GPUAdapter.info` where present.
fn adapter_name(adapter: &JsValue) -> String {
    let info = Reflect::get(adapter, &"info".into()).unwrap_or(JsValue::UNDEFINED);
    let field =
        |name: &str| Reflect::get(&info, &name.into()).ok().and_then(|v| v.as_string()).filter(|s| !s.is_empty());
    let parts: Vec<String> = ["vendor", "architecture", "description"].into_iter().filter_map(field).collect();
    if parts.is_empty() { "details hidden by the browser".into() } else { parts.join(" ") }
}

fn js_message(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}
