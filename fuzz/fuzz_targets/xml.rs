//! `imperium_config::formats::xml::parse` on arbitrary bytes, without an id and with the
//! id `x` (`--xml file.xml:x`): Ok or Err, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = imperium_config::formats::xml::parse(data, None);
    let _ = imperium_config::formats::xml::parse(data, Some("x"));
});
