//! The control protocol's request decoder on arbitrary lines.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<common::proto::control::Request>(data);
});
