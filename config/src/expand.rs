//! The three expansion passes run over option values once every file is read:
//! `$(VAR)` (environment), then `@(source)` (file contents), then `%(name)` (placeholders
//! and option references, with placeholder math).
//!
//! The scanner reproduces uWSGI's: parentheses nest, an inner reference is expanded
//! before an outer one, an unresolved reference stays as written, and after each
//! substitution scanning resumes from the second byte of the value.

/// How many substitutions one value may take before it is declared self-referencing.
pub const MAX_SUBSTITUTIONS: usize = 10_000;
/// The largest value expansion may produce.
pub const MAX_EXPANDED_LEN: usize = 1 << 20;
/// The bytes one value's expansion may copy in all (each substitution rebuilds the value),
/// so a self-referencing value fails in milliseconds instead of growing quadratically.
pub const MAX_EXPANSION_WORK: usize = 64 << 20;

/// Expands every `<symbol>(key)` in `value` with `hook`. Returns `Ok(None)` if nothing
/// changed, and an error for an expansion that does not end (`a = %(a)`), which would make
/// uWSGI loop until it runs out of memory.
pub fn expand_value(
    value: &str,
    symbol: u8,
    mut hook: impl FnMut(&str) -> Option<String>,
) -> Result<Option<String>, String> {
    let mut v = value.to_string();
    let mut changed = false;
    let mut has: usize = 0;
    let mut depth: usize = 0;
    let mut key_start: usize = 0;
    let mut j: usize = 0;
    let mut budget = MAX_SUBSTITUTIONS;
    let mut work: usize = 0;
    while j < v.len() {
        let c = v.as_bytes()[j];
        if c == symbol {
            has = 1;
        } else if c == b'(' && has == 1 {
            has = 2;
            depth = 0;
            key_start = j + 1;
        } else if has > 1 {
            if c == b'(' {
                has += 1;
                depth += 1;
            } else if c == b')' {
                if depth > 0 {
                    has += 1;
                    depth -= 1;
                    j += 1;
                    continue;
                }
                if has <= 2 {
                    has = 0;
                    j += 1;
                    continue;
                }
                let key = &v[key_start..key_start + has - 2];
                match hook(key) {
                    None => {
                        has = 0;
                    }
                    Some(val) => {
                        budget = budget.saturating_sub(1);
                        work = work.saturating_add(v.len() + val.len());
                        if budget == 0
                            || v.len() + val.len() > MAX_EXPANDED_LEN
                            || work > MAX_EXPANSION_WORK
                        {
                            return Err(format!(
                                "the expansion of {}({key}) does not end: it refers to itself, directly or through other values",
                                symbol as char
                            ));
                        }
                        let tail = v[key_start + has - 1..].to_string();
                        v.truncate(key_start - 2);
                        v.push_str(&val);
                        v.push_str(&tail);
                        changed = true;
                        has = 0;
                        // uWSGI resets its index to 0 and the loop increments it.
                        j = 1;
                        continue;
                    }
                }
            } else {
                has += 1;
            }
        } else {
            has = 0;
        }
        j += 1;
    }
    Ok(changed.then_some(v))
}

/// Evaluates the inside of `%( ... )`. Without a space it is a plain lookup. With spaces
/// it is a left-to-right pipeline of tokens: integers, names (looked up, unknown = ""),
/// `+ - * /` (64-bit integers, division by zero gives 0), postfix `++` and `--`; two
/// operands in a row are concatenated as strings.
pub fn placeholder(key: &str, lookup: impl Fn(&str) -> Option<String>) -> Option<String> {
    if !key.contains(' ') {
        return lookup(key);
    }
    #[derive(Clone, Copy)]
    enum Op {
        Concat,
        Add,
        Sub,
        Mul,
        Div,
    }
    let mut state = Op::Concat;
    let mut current: Option<String> = None;
    for tok in key.split(' ').filter(|t| !t.is_empty()) {
        let value = match tok {
            "+" => {
                state = Op::Add;
                continue;
            }
            "-" => {
                state = Op::Sub;
                continue;
            }
            "*" => {
                state = Op::Mul;
                continue;
            }
            "/" => {
                state = Op::Div;
                continue;
            }
            "++" | "--" => {
                if let Some(c) = &current {
                    let n = strtoll(c);
                    let n = if tok == "++" {
                        n.wrapping_add(1)
                    } else {
                        n.wrapping_sub(1)
                    };
                    current = Some(n.to_string());
                }
                state = Op::Concat;
                continue;
            }
            t if t.bytes().all(|b| b.is_ascii_digit()) => t.to_string(),
            t => lookup(t).unwrap_or_default(),
        };
        let a = current.as_deref().map(strtoll).unwrap_or(0);
        let b = strtoll(&value);
        current = Some(match state {
            Op::Concat => format!("{}{}", current.as_deref().unwrap_or(""), value),
            Op::Add => a.wrapping_add(b).to_string(),
            Op::Sub => a.wrapping_sub(b).to_string(),
            Op::Mul => a.wrapping_mul(b).to_string(),
            Op::Div => {
                if b == 0 {
                    "0".to_string()
                } else {
                    a.wrapping_div(b).to_string()
                }
            }
        });
        state = Op::Concat;
    }
    current
}

/// C's `strtoll(s, NULL, 10)`: leading blanks, optional sign, digits; saturates.
pub fn strtoll(s: &str) -> i64 {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut v: i128 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        v = (v * 10 + i128::from(b - b'0')).min(i128::from(i64::MAX) + 1);
    }
    let v = if neg { -v } else { v };
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "A" => Some("x".into()),
            "B" => Some("A".into()),
            _ => None,
        }
    }

    #[test]
    fn plain_and_unresolved() {
        assert_eq!(
            expand_value("a$(A)b", b'$', env).unwrap().as_deref(),
            Some("axb")
        );
        assert_eq!(expand_value("$(NOPE)", b'$', env).unwrap(), None);
        assert_eq!(expand_value("$()", b'$', env).unwrap(), None);
        assert!(expand_value("x%(a)", b'%', |_| Some("y%(a)".into())).is_err());
    }

    #[test]
    fn nested_inner_first() {
        assert_eq!(
            expand_value("y$($(B))", b'$', env).unwrap().as_deref(),
            Some("yx")
        );
        // At the very start the rescan begins at byte 1, missing the outer reference.
        assert_eq!(
            expand_value("$($(B))", b'$', env).unwrap().as_deref(),
            Some("$(A)")
        );
    }

    #[test]
    fn resumes_after_first_byte() {
        // After substituting at offset 0 scanning resumes at 1, so a reference produced
        // at the very start is not expanded again: uWSGI's behaviour.
        let r = expand_value("$(C)", b'$', |k| {
            if k == "C" {
                Some("$(A)".into())
            } else {
                env(k)
            }
        })
        .unwrap();
        assert_eq!(r.as_deref(), Some("$(A)"));
    }

    #[test]
    fn math() {
        let look = |k: &str| match k {
            "foo" => Some("17".to_string()),
            "bar" => Some("30".to_string()),
            "two" => Some("2".to_string()),
            "nine" => Some("9".to_string()),
            "zero" => Some("0".to_string()),
            _ => None,
        };
        assert_eq!(placeholder("foo + bar + 3", look).as_deref(), Some("50"));
        assert_eq!(
            placeholder("foo + bar + 3 * 2", look).as_deref(),
            Some("100")
        );
        assert_eq!(placeholder("two nine ++", look).as_deref(), Some("30"));
        assert_eq!(placeholder("foo / zero", look).as_deref(), Some("0"));
        assert_eq!(placeholder("foo", look).as_deref(), Some("17"));
        assert_eq!(placeholder("nope", look), None);
    }
}
