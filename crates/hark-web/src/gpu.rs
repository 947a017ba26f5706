//! Does this browser offer a WebGPU adapter? The page asks before it starts
//! a recognition worker (`navigator.gpu` is the same in dedicated workers).
//!
//! Read through `js_sys::Reflect` rather than `web-sys`'s WebGPU bindings,
//! which still need the `web_sys_unstable_apis` cfg for the whole build.

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::GpuProbe;

pub async fn probe() -> GpuProbe {
    match request_adapter().await {
        Ok(probe) => probe,
        Err(e) => GpuProbe::Absent { why: format!("requestAdapter failed: {}", js_message(&e)) },
    }
}

async fn request_adapter() -> Result<GpuProbe, JsValue> {
    let navigator = Reflect::get(&js_sys::global(), &"navigator".into())?;
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
