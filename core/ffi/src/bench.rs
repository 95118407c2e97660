//! Measurement hooks for the benches in `mobile-android/bench` and `core/ffi/python`; only in
//! builds with the `bench` feature, never in the library apps ship.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use crate::providers::{LocationAccuracy, LocationProvider, LocationRequest};

/// Calls `provider.current_location` `calls` times in a row on the calling thread and returns
/// the total time in nanoseconds, measured in Rust: the per-call cost of a foreign callback
/// (lowering the request, the foreign code, lifting the answer). Errors count as calls too.
#[uniffi::export]
pub fn bench_location_callbacks(provider: Arc<dyn LocationProvider>, calls: u32) -> u64 {
    let request = LocationRequest {
        desired_accuracy: LocationAccuracy::Balanced,
        max_age_ms: None,
        timeout_ms: 1_000,
    };
    let started = Instant::now();
    for _ in 0..calls {
        let _ = black_box(provider.current_location(black_box(request.clone())));
    }
    u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX)
}
