#![no_main]
//! Fuzz the bounce parser: any input must yield Ok or a typed error, never a panic; every
//! reported recipient is non-empty, the count is bounded, and every row serialises to the
//! CLI's JSON.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = mailstead::bounce::parse(data) {
        assert!(parsed.recipients.len() <= 1_000);
        for r in &parsed.recipients {
            assert!(!r.recipient.is_empty());
            let _ = r.to_cli_json();
        }
    }
});
