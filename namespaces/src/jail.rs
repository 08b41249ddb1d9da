//! FreeBSD jails through `jail_set(2)` only: `jail = rootfs [hostname [name]]`,
//! `jail-ip4`/`jail-ip6` (repeatable) and the raw `jail2`/`libjail = key[=value]`
//! parameters are all turned into one typed parameter list; `jail-attach = jid|name`
//! joins an existing jail. Building and encoding the list is portable (and unit-tested
//! on Linux); the system call itself exists only on FreeBSD.

use crate::error::{IsolationError, Result};
use std::net::{Ipv4Addr, Ipv6Addr};

/// A typed jail parameter value, as the kernel expects it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JailValue {
    Str(String),
    Int(i32),
    Bool(bool),
    Ip4(Vec<Ipv4Addr>),
    Ip6(Vec<Ipv6Addr>),
}

/// One `name = value` parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JailParam {
    pub name: String,
    pub value: JailValue,
}

const INTS: [&str; 6] = [
    "enforce_statfs",
    "securelevel",
    "children.max",
    "devfs_ruleset",
    "jid",
    "parent",
];
/// "jailsys" parameters: disable / new / inherit.
const JAILSYS: [&str; 5] = ["host", "ip4", "ip6", "vnet", "sysvmsg"];

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Types one raw `key[=value]` (a missing value means true for booleans).
pub fn typed(option: &str, raw: &str) -> Result<JailParam> {
    let (k, v) = raw
        .split_once('=')
        .map_or((raw.trim(), None), |(k, v)| (k.trim(), Some(v.trim())));
    if k.is_empty() {
        return Err(IsolationError::option(option, raw, "empty parameter name"));
    }
    let bad = |m: &str| IsolationError::option(option, raw, m.to_owned());
    let value = if k == "ip4.addr" {
        JailValue::Ip4(
            v.unwrap_or("")
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.trim().parse().map_err(|_| bad("not an IPv4 address")))
                .collect::<Result<_>>()?,
        )
    } else if k == "ip6.addr" {
        JailValue::Ip6(
            v.unwrap_or("")
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.trim().parse().map_err(|_| bad("not an IPv6 address")))
                .collect::<Result<_>>()?,
        )
    } else if INTS.contains(&k) {
        JailValue::Int(
            v.ok_or_else(|| bad("needs a number"))?
                .parse()
                .map_err(|_| bad("needs a number"))?,
        )
    } else if JAILSYS.contains(&k) {
        JailValue::Int(match v.unwrap_or("new") {
            "disable" | "0" => 0,
            "new" | "1" => 1,
            "inherit" | "2" => 2,
            _ => return Err(bad("expects disable, new or inherit")),
        })
    } else if k == "persist" || k.starts_with("allow.") || k.starts_with("no") && !k.contains('.') {
        match v {
            None => JailValue::Bool(true),
            Some(s) => JailValue::Bool(parse_bool(s).ok_or_else(|| bad("expects a boolean"))?),
        }
    } else {
        JailValue::Str(v.unwrap_or("").to_owned())
    };
    Ok(JailParam {
        name: k.to_owned(),
        value,
    })
}

/// The full parameter list of a vassal's jail: `jail` (path, hostname, name), the
/// `jail-ip4`/`jail-ip6` addresses, then every `jail2` (a later value replaces an
/// earlier one with the same name).
pub fn build(
    jail: Option<&str>,
    ip4: &[String],
    ip6: &[String],
    jail2: &[String],
) -> Result<Vec<JailParam>> {
    let mut out: Vec<JailParam> = Vec::new();
    let mut put = |p: JailParam| {
        out.retain(|q| q.name != p.name);
        out.push(p);
    };
    if let Some(j) = jail {
        let mut it = j.split_whitespace();
        let path = it
            .next()
            .ok_or_else(|| IsolationError::option("jail", j, "needs a root directory"))?;
        put(JailParam {
            name: "path".into(),
            value: JailValue::Str(path.into()),
        });
        if let Some(h) = it.next() {
            put(JailParam {
                name: "host.hostname".into(),
                value: JailValue::Str(h.into()),
            });
        }
        if let Some(n) = it.next() {
            put(JailParam {
                name: "name".into(),
                value: JailValue::Str(n.into()),
            });
        }
    }
    if !ip4.is_empty() {
        put(typed("jail-ip4", &format!("ip4.addr={}", ip4.join(",")))?);
    }
    if !ip6.is_empty() {
        put(typed("jail-ip6", &format!("ip6.addr={}", ip6.join(",")))?);
    }
    for raw in jail2 {
        put(typed("jail2", raw)?);
    }
    if !out.is_empty() && !out.iter().any(|p| p.name == "path") {
        return Err(IsolationError::option(
            "jail2",
            &jail2.join(" "),
            "a jail needs path=",
        ));
    }
    Ok(out)
}

/// The (name, value) byte pairs of the `jail_set(2)` iovec array, in order. A false
/// boolean is sent as its `no` name with an empty value, as libjail does.
pub fn encode(params: &[JailParam]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let cname = |s: &str| {
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        b
    };
    params
        .iter()
        .map(|p| match &p.value {
            JailValue::Str(s) => (cname(&p.name), cname(s)),
            JailValue::Int(i) => (cname(&p.name), i.to_ne_bytes().to_vec()),
            JailValue::Bool(true) => (cname(&p.name), Vec::new()),
            JailValue::Bool(false) => {
                let n = match p.name.rsplit_once('.') {
                    Some((pre, last)) => format!("{pre}.no{last}"),
                    None => format!("no{}", p.name),
                };
                (cname(&n), Vec::new())
            }
            JailValue::Ip4(a) => (cname(&p.name), a.iter().flat_map(|x| x.octets()).collect()),
            JailValue::Ip6(a) => (cname(&p.name), a.iter().flat_map(|x| x.octets()).collect()),
        })
        .collect()
}

/// Creates the jail and moves this process into it; returns the jail id.
#[cfg(target_os = "freebsd")]
pub fn create_and_attach(params: &[JailParam]) -> Result<i32> {
    let pairs = encode(params);
    let mut iov: Vec<libc::iovec> = Vec::with_capacity(pairs.len() * 2);
    for (n, v) in &pairs {
        iov.push(libc::iovec {
            iov_base: n.as_ptr() as *mut libc::c_void,
            iov_len: n.len(),
        });
        iov.push(libc::iovec {
            iov_base: if v.is_empty() {
                std::ptr::null_mut()
            } else {
                v.as_ptr() as *mut libc::c_void
            },
            iov_len: v.len(),
        });
    }
    // SAFETY: the iovec array points into `pairs`, alive across the call; jail_set only
    // reads the buffers with the flags used here.
    let jid = unsafe {
        libc::jail_set(
            iov.as_mut_ptr(),
            iov.len() as libc::c_uint,
            libc::JAIL_CREATE | libc::JAIL_ATTACH,
        )
    };
    if jid < 0 {
        return Err(IsolationError::last_os("jail_set()"));
    }
    Ok(jid)
}

/// `jail-attach = jid|name`.
#[cfg(target_os = "freebsd")]
pub fn attach(target: &str) -> Result<()> {
    if let Ok(jid) = target.trim().parse::<i32>() {
        // SAFETY: an integer argument.
        if unsafe { libc::jail_attach(jid) } != 0 {
            return Err(IsolationError::last_os(format!("jail_attach({jid})")));
        }
        return Ok(());
    }
    let p = [JailParam {
        name: "name".into(),
        value: JailValue::Str(target.trim().into()),
    }];
    let pairs = encode(&p);
    let mut iov: Vec<libc::iovec> = Vec::new();
    for (n, v) in &pairs {
        iov.push(libc::iovec {
            iov_base: n.as_ptr() as *mut libc::c_void,
            iov_len: n.len(),
        });
        iov.push(libc::iovec {
            iov_base: v.as_ptr() as *mut libc::c_void,
            iov_len: v.len(),
        });
    }
    // SAFETY: as in create_and_attach.
    let jid = unsafe {
        libc::jail_set(
            iov.as_mut_ptr(),
            iov.len() as libc::c_uint,
            libc::JAIL_UPDATE | libc::JAIL_ATTACH,
        )
    };
    if jid < 0 {
        return Err(IsolationError::last_os(format!("jail-attach {target}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_style_jail_and_addresses() {
        let p = build(
            Some("/jails/001 foobar j001"),
            &["192.168.0.10".into(), "192.168.0.11".into()],
            &["::1".into()],
            &[],
        )
        .unwrap();
        assert_eq!(
            p[0],
            JailParam {
                name: "path".into(),
                value: JailValue::Str("/jails/001".into())
            }
        );
        assert_eq!(p[1].name, "host.hostname");
        assert_eq!(
            p[2],
            JailParam {
                name: "name".into(),
                value: JailValue::Str("j001".into())
            }
        );
        assert_eq!(
            p[3].value,
            JailValue::Ip4(vec![
                Ipv4Addr::new(192, 168, 0, 10),
                Ipv4Addr::new(192, 168, 0, 11)
            ])
        );
        assert_eq!(p[4].value, JailValue::Ip6(vec![Ipv6Addr::LOCALHOST]));
    }

    #[test]
    fn raw_parameters_are_typed() {
        let p = build(
            None,
            &[],
            &[],
            &[
                "path=/jails/001".into(),
                "host.hostname=foobar".into(),
                "allow.sysvipc".into(),
                "allow.raw_sockets=0".into(),
                "enforce_statfs=1".into(),
                "vnet=new".into(),
                "host.hostname=other".into(),
            ],
        )
        .unwrap();
        let get = |n: &str| p.iter().find(|x| x.name == n).map(|x| x.value.clone());
        assert_eq!(get("allow.sysvipc"), Some(JailValue::Bool(true)));
        assert_eq!(get("allow.raw_sockets"), Some(JailValue::Bool(false)));
        assert_eq!(get("enforce_statfs"), Some(JailValue::Int(1)));
        assert_eq!(get("vnet"), Some(JailValue::Int(1)));
        assert_eq!(
            get("host.hostname"),
            Some(JailValue::Str("other".into())),
            "the later value wins"
        );
        assert!(
            build(None, &[], &[], &["host.hostname=x".into()]).is_err(),
            "no path"
        );
        assert!(
            build(
                None,
                &[],
                &[],
                &["path=/j".into(), "enforce_statfs=lots".into()]
            )
            .is_err()
        );
        assert!(build(None, &["300.1.1.1".into()], &[], &["path=/j".into()]).is_err());
        assert!(build(None, &[], &[], &[]).unwrap().is_empty());
    }

    #[test]
    fn iovec_encoding() {
        let p = build(
            Some("/j h"),
            &["10.0.0.1".into()],
            &[],
            &["allow.mount=false".into(), "securelevel=3".into()],
        )
        .unwrap();
        let e = encode(&p);
        assert_eq!(e[0], (b"path\0".to_vec(), b"/j\0".to_vec()));
        assert_eq!(e[1], (b"host.hostname\0".to_vec(), b"h\0".to_vec()));
        assert_eq!(e[2], (b"ip4.addr\0".to_vec(), vec![10, 0, 0, 1]));
        assert_eq!(e[3], (b"allow.nomount\0".to_vec(), vec![]));
        assert_eq!(
            e[4],
            (b"securelevel\0".to_vec(), 3i32.to_ne_bytes().to_vec())
        );
    }
}
