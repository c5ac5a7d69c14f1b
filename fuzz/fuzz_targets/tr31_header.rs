//! Fuzzes the TR-31 header template parser: any text either parses or gives an error, and a parsed header prints back to something that parses the same.
#![no_main]

use keymother_crypto::tr31::Header;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(header) = text.parse::<Header>() {
            let printed = header.to_string();
            let again: Header = printed.parse().expect("a printed header parses");
            assert_eq!(again, header);
        }
    }
});
