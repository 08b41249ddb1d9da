//! The wire side of a request: parsers for the uwsgi packet and for HTTP/1.x request heads,
//! the chunked body decoder, the CGI-style variables both produce, and response framing.
//!
//! Everything here is pure (no I/O) and total: any input gives a value or an error, never a
//! panic, so the parsers can be fuzzed directly (`fuzz/fuzz_targets/vassal_*.rs`).

pub mod chunked;
pub mod http;
pub mod response;
pub mod uwsgi;
pub mod vars;

pub use vars::Vars;
