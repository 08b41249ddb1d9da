//! CGI-style request variables (`REQUEST_METHOD`, `PATH_INFO`, `HTTP_HOST`...), in arrival
//! order, as uWSGI hands them to its plugins. Both protocols produce them: the uwsgi packet
//! carries them as is, the HTTP parser builds them from the request head. The Python host
//! builds the WSGI environ from exactly this list.

use std::ops::Range;

/// Ordered key/value byte pairs kept in one buffer (no allocation per variable).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars {
    buf: Vec<u8>,
    spans: Vec<(Range<usize>, Range<usize>)>,
}

impl Vars {
    /// An empty list with room for `bytes` of keys and values.
    pub fn with_capacity(bytes: usize) -> Vars {
        Vars {
            buf: Vec::with_capacity(bytes),
            spans: Vec::with_capacity(24),
        }
    }

    /// Appends one variable.
    pub fn push(&mut self, key: &[u8], value: &[u8]) {
        let k = self.buf.len()..self.buf.len() + key.len();
        self.buf.extend_from_slice(key);
        let v = self.buf.len()..self.buf.len() + value.len();
        self.buf.extend_from_slice(value);
        self.spans.push((k, v));
    }

    /// The number of variables (pairs).
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when there is no variable.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Every variable, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.spans
            .iter()
            .map(|(k, v)| (&self.buf[k.clone()], &self.buf[v.clone()]))
    }

    /// The value of `key`; when a key repeats, the last one wins (as in a WSGI environ,
    /// which uWSGI fills in order).
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.iter()
            .filter(|(k, _)| *k == key)
            .last()
            .map(|(_, v)| v)
    }

    /// [`Vars::get`] as text (lossy), for logging.
    pub fn get_str(&self, key: &[u8]) -> Option<String> {
        self.get(key)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Size of these variables as a uwsgi vars block (2+key+2+value each): the
    /// `{N vars in B bytes}` figure of the request log.
    pub fn encoded_len(&self) -> usize {
        self.spans.iter().map(|(k, v)| 4 + k.len() + v.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_last_wins() {
        let mut v = Vars::default();
        v.push(b"A", b"1");
        v.push(b"B", b"");
        v.push(b"A", b"2");
        assert_eq!(v.len(), 3);
        assert_eq!(v.get(b"A"), Some(&b"2"[..]));
        assert_eq!(v.get(b"B"), Some(&b""[..]));
        assert_eq!(v.get(b"C"), None);
        let keys: Vec<&[u8]> = v.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![&b"A"[..], b"B", b"A"]);
        assert_eq!(v.encoded_len(), 4 + 2 + 4 + 1 + 4 + 2);
    }
}
