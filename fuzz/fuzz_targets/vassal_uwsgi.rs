//! The vassal's uwsgi packet parser on arbitrary bytes: `progress` on every prefix, then
//! `parse_vars` on the vars block at several `max-vars`: Ok or Err, never a panic, and
//! what parses re-encodes to the same block.
#![no_main]

use imperium_vassal::proto::uwsgi::{encode_vars, parse_vars, progress, Progress, HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Feeding byte by byte must agree with feeding everything at once.
    let whole = progress(data, 4096);
    for n in 0..data.len().min(64) {
        let _ = progress(&data[..n], 4096);
    }
    if let Progress::Complete(h) = whole {
        let block = &data[HEADER_LEN..HEADER_LEN + usize::from(h.size)];
        for max_vars in [1, 64, 65535] {
            if let Ok(vars) = parse_vars(block, max_vars) {
                assert_eq!(vars.encoded_len(), block.len());
                assert_eq!(encode_vars(vars.iter()), block, "re-encoding differs");
                assert!(vars.len() <= max_vars * 2);
            }
        }
    }
    // The block parser on the raw bytes too (any length).
    let _ = parse_vars(data, 64);
});
