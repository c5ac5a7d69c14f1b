//! Fuzzes the settings parser: arbitrary text is a `Settings` or a refusal that names a line of the text and a key, never a panic.
#![no_main]

use keymother_daemon::Settings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(error) = Settings::from_toml(text, "fuzz.toml") {
        // Line 0 is for the file as a whole; otherwise a line of the text (or the one after
        // its last, where a missing key is reported).
        assert!(error.line <= text.lines().count() + 1, "{error}");
        assert!(!error.key.is_empty(), "{error}");
        assert!(!error.problem.is_empty(), "{error}");
    }
});
