#![no_main]
//! Fuzz the bounce parser: any input must yield Ok or a typed error, never a panic; every
//! reported recipient is non-empty, the count is bounded, and every row serialises to the
//! CLI's JSON.
//!
//! libfuzzer-sys aborts on every panic, even one that is caught. mail-parser 0.11 panics on
//! some malformed multipart nesting and `bounce::mime` contains that with `catch_unwind`
//! (turning it into `NotAMessage`), so the hook below lets panics raised inside mail-parser's
//! own source through to that `catch_unwind` and aborts on any other panic: a panic in
//! Mailstead's code, or one that escapes, is still a crash.

use libfuzzer_sys::fuzz_target;
use std::sync::Once;

static HOOK: Once = Once::new();

fn install_hook() {
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let contained = info
                .location()
                .is_some_and(|l| l.file().contains("mail-parser"));
            if !contained {
                eprintln!("{info}");
                std::process::abort();
            }
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    install_hook();
    if let Ok(parsed) = mailstead::bounce::parse(data) {
        assert!(parsed.recipients.len() <= 1_000);
        for r in &parsed.recipients {
            assert!(!r.recipient.is_empty());
            let _ = r.to_cli_json();
        }
    }
});
