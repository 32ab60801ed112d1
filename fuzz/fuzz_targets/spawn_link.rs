//! The spawner's request decoder (and the supervisor's event decoder) on arbitrary datagrams.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let nfds = data.first().map_or(0, |b| usize::from(b % 4));
    let _ = common::proto::spawn::decode::<common::proto::spawn::Request>(data, nfds);
    let _ = common::proto::spawn::decode::<common::proto::spawn::Event>(data, nfds);
});
