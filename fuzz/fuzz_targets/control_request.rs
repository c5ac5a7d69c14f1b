//! Fuzzes the control socket's parsers: an arbitrary line is a request or a refusal in words, never a panic; a request serializes and reads back as itself; any line from either side parses or is refused.
#![no_main]

use keymother_control::{ClientLine, ServerLine, decode_line, encode_line, parse_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_request(data) {
        Ok(request) => {
            let line = encode_line(&request);
            let again = parse_request(&line[..line.len() - 1]).expect("a request reads back");
            assert_eq!(request.command(), again.command());
            assert_eq!(encode_line(&again), line);
        }
        Err(error) => assert!(!error.to_string().is_empty()),
    }
    let _ = decode_line::<ClientLine>(data);
    let _ = decode_line::<ServerLine>(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = keymother_control::decode_data(text);
    }
});
