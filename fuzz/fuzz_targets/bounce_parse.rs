#![no_main]
//! Fuzz the bounce parser: any input must yield Ok or a typed error, never
//! a panic, and every reported recipient must be non-empty.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = mailstead::bounce::parse(data) {
        for r in &parsed.recipients {
            assert!(!r.recipient.is_empty());
            let _ = r.to_cli_json();
        }
    }
});
