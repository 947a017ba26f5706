//! Helpers shared by the collector's tests and benchmarks.

pub mod postgres;
