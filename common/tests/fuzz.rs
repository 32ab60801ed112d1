//! Randomized tests of every decoder that reads untrusted bytes (issue 7): the spawner link, the
//! attach frames, control request lines and config text. Whatever the input, they answer with a
//! value or an error, never a panic; valid messages round-trip. A bounded number of cases runs in
//! CI on stable Rust; `fuzz/` has cargo-fuzz targets for longer runs on nightly.

use common::config::{load::load_str, Context};
use common::proto::attach::take_frame;
use common::proto::control::Request as ControlRequest;
use common::proto::spawn::{
    config_events, decode, encode, ConfigAssembler, ConfigItem, Event, Request, SignalPurpose, HEADER, MAX_MSG,
};
use proptest::prelude::*;

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        any::<u16>().prop_map(|version| Request::Hello { version }),
        (any::<u64>(), "[a-z0-9_.-]{0,40}", any::<u32>(), any::<u64>())
            .prop_map(|(token, program, instance, generation)| Request::Spawn { token, program, instance, generation }),
        (any::<u64>(), any::<i32>()).prop_map(|(spawn_id, signal)| Request::Signal {
            spawn_id,
            signal,
            purpose: SignalPurpose::User
        }),
        any::<u64>().prop_map(|token| Request::Reread { token }),
        (any::<u64>(), proptest::collection::vec("[a-z]{1,8}", 0..4))
            .prop_map(|(generation, programs)| Request::Commit { generation, programs }),
    ]
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn link_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..(MAX_MSG + 64)), nfds in 0usize..5) {
        let _ = decode::<Request>(&bytes, nfds);
        let _ = decode::<Event>(&bytes, nfds);
    }

    #[test]
    fn a_valid_header_with_a_random_payload_is_refused_or_decoded(tag in 1u16..12, payload in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut bytes = Vec::with_capacity(HEADER + payload.len());
        bytes.extend_from_slice(&common::proto::spawn::VERSION.to_be_bytes());
        bytes.extend_from_slice(&tag.to_be_bytes());
        bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&payload);
        if let Ok(req) = decode::<Request>(&bytes, 0) {
            // Whatever decodes re-encodes to a message of the same tag.
            prop_assert_eq!(decode::<Request>(&encode(&req).unwrap(), 0).unwrap(), req);
        }
    }

    #[test]
    fn requests_round_trip(req in request()) {
        let bytes = encode(&req).unwrap();
        prop_assert!(bytes.len() <= MAX_MSG);
        prop_assert_eq!(decode::<Request>(&bytes, 0).unwrap(), req);
    }

    #[test]
    fn config_chunks_leave_no_state_behind(chunks in proptest::collection::vec((any::<bool>(), bytes(64)), 0..16)) {
        // Whatever a generation's chunks were, the next generation decodes exactly.
        let mut asm = ConfigAssembler::default();
        for (more, data) in &chunks {
            let _ = asm.push(*more, data);
        }
        let _ = asm.finish();
        let item = ConfigItem::Plan(common::config::ReloadPlan { added: vec!["web".into()], ..Default::default() });
        for e in config_events(std::slice::from_ref(&item), 2, None) {
            if let Event::ConfigChunk { more, data } = e {
                prop_assert!(asm.push(more, &data).is_ok());
            }
        }
        prop_assert_eq!(asm.finish().unwrap(), vec![item]);
    }

    #[test]
    fn attach_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let mut buf = bytes;
        while let Ok(Some(_)) = take_frame(&mut buf) {}
    }

    #[test]
    fn control_lines_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = serde_json::from_slice::<ControlRequest>(&bytes);
    }

    #[test]
    fn config_text_never_panics(text in "(programs:|server:|socket:|  |    |[a-z_]{1,12}:|[ -~]{0,20}|\\n|- |%\\(|\\)s){0,40}") {
        let ctx = Context { is_root: false, current_user: None, check_users: false, trusted_uid: None };
        let _ = load_str(std::path::Path::new("/fuzz/t.yaml"), &text, &ctx);
    }
}
