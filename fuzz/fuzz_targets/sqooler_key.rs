//! The sqooler private-key string parser on arbitrary input: errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = signet::sqooler::PrivateKey::from_config_str(&text);
});
