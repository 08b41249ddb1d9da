//! `imperium_config::formats::json::parse` on arbitrary bytes: Ok or Err, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = imperium_config::formats::json::parse(data, "uwsgi");
});
