//! The config parser and validator on arbitrary text.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let ctx = common::config::Context { is_root: false, current_user: None, check_users: false, trusted_uid: None };
        let _ = common::config::load::load_str(std::path::Path::new("/fuzz/t.yaml"), text, &ctx);
    }
});
