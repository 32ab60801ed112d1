//! The attach frame reader on arbitrary bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut buf = data.to_vec();
    while let Ok(Some(_)) = common::proto::attach::take_frame(&mut buf) {}
});
