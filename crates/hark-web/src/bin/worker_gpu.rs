//! `hark-worker-gpu`: the recognition worker on WebGPU (see `hark_web::worker`;
//! built with the `webgpu` feature).

fn main() {
    hark_web::worker::run();
}
