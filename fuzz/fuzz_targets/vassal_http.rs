//! The vassal's HTTP request-head parser and chunked body decoder on arbitrary bytes:
//! Ok or Err, never a panic. The head is cut where `head_end` finds it (or taken whole);
//! the rest of the input feeds the chunked decoder in two pieces, which must agree with
//! one piece.
#![no_main]

use imperium_vassal::proto::chunked::ChunkedDecoder;
use imperium_vassal::proto::http::{head_end, leading_newlines, parse_request, path_info, ConnInfo};
use libfuzzer_sys::fuzz_target;

const INFO: ConnInfo<'static> = ConnInfo { server_name: b"host", server_port: b"80", remote_addr: b"127.0.0.1" };

fn decode(pieces: &[&[u8]]) -> Result<(Vec<u8>, bool), ()> {
    let mut d = ChunkedDecoder::new();
    let mut out = Vec::new();
    for p in pieces {
        let used = d.feed(p, &mut |b| out.extend_from_slice(b)).map_err(drop)?;
        assert!(used <= p.len());
        if d.is_done() {
            break;
        }
    }
    Ok((out, d.is_done()))
}

fuzz_target!(|data: &[u8]| {
    let data = &data[leading_newlines(data)..];
    let end = head_end(data, 0).unwrap_or(data.len());
    // A search resumed part way never invents an end the full search does not see.
    if head_end(data, 0).is_none() {
        assert_eq!(head_end(data, data.len() / 2), None);
    }
    if let Ok(req) = parse_request(&data[..end], &INFO) {
        assert!(req.vars.get(b"REQUEST_METHOD").is_some_and(|m| !m.is_empty()));
        let pi = req.vars.get(b"PATH_INFO").unwrap_or_default();
        assert!(!pi.windows(4).any(|w| w == b"/../"), "dot segments left in PATH_INFO");
    }
    let _ = path_info(data);
    let body = &data[end..];
    let one = decode(&[body]);
    let mid = body.len() / 3;
    let two = decode(&[&body[..mid], &body[mid..]]);
    if let (Ok(a), Ok(b)) = (&one, &two) {
        if a.1 && b.1 {
            assert_eq!(a.0, b.0, "chunked decoding depends on how the bytes arrive");
        }
    }
});
