//! `hark-worker`: the recognition worker on the CPU (see `hark_web::worker`).

fn main() {
    hark_web::worker::run();
}
