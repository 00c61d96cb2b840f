//! "GoJSON": the exact bytes Go's `encoding/json` writes for a generic value (wire-format.md §1.3).
//!
//! The CIC commitment hashes a *re-serialization* of the CIC header (§3.4), so this is the one
//! place where we deliberately re-encode received data instead of keeping its bytes. Objects are
//! written with keys in byte order at every level, no whitespace, Go's string escaping (HTML
//! escaping on) and Go's float64 number formatting.

use serde_json::Value;
use std::fmt::Write as _;

/// Serializes `value` exactly as Go's `json.Marshal` serializes the equivalent
/// `map[string]any` / `[]any` / `float64` / `string` / `bool` / `nil` tree.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => write_number(out, number),
        Value::String(text) => push_string(out, text),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Go sorts map keys by their bytes; sort here rather than trust the map's order,
            // which a dependency enabling serde_json's `preserve_order` would change.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (index, (key, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                push_string(out, key);
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

/// Go decodes every JSON number into a float64 and formats it with `strconv.FormatFloat`:
/// the shortest representation that round-trips, in `%f` style for 1e-6 <= |x| < 1e21 and
/// `%e` style otherwise, with a two-digit-minimum exponent whose `e-0N` form is shortened to
/// `e-N`.
fn write_number(out: &mut String, number: &serde_json::Number) {
    let Some(float) = number.as_f64() else {
        // Unreachable without serde_json's arbitrary_precision feature; write zero as Go
        // would for an unrepresentable value rather than panic.
        out.push('0');
        return;
    };
    let magnitude = float.abs();
    if magnitude == 0.0 || (1e-6..1e21).contains(&magnitude) {
        // Rust's Display for f64 is the shortest round-trip form without an exponent.
        let _ = write!(out, "{float}");
        return;
    }
    let scientific = format!("{float:e}");
    let (mantissa, exponent) = scientific
        .split_once('e')
        .unwrap_or((scientific.as_str(), "0"));
    let (sign, digits) = match exponent.strip_prefix('-') {
        Some(digits) => ('-', digits),
        None => ('+', exponent),
    };
    out.push_str(mantissa);
    out.push('e');
    out.push(sign);
    if digits.len() < 2 && sign == '+' {
        out.push('0');
    }
    out.push_str(digits);
}

/// Appends `text` as a Go-escaped JSON string.
pub(crate) fn push_string(out: &mut String, text: &str) {
    out.push('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            control if u32::from(control) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(control));
            }
            other => out.push(other),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn go(text: &str) -> String {
        to_string(&serde_json::from_str(text).unwrap_or(Value::Null))
    }

    #[test]
    fn keys_are_sorted_at_every_level_upper_case_first() {
        assert_eq!(
            go(r#"{"upk":{"y":"2","x":"1","alg":"ES256"},"b":1,"B":2,"a":[{"z":0,"c":0}]}"#),
            r#"{"B":2,"a":[{"c":0,"z":0}],"b":1,"upk":{"alg":"ES256","x":"1","y":"2"}}"#
        );
    }

    #[test]
    fn whitespace_is_dropped_and_duplicate_keys_keep_the_last_value() {
        assert_eq!(go("{ \"a\" : 1 , \"a\" : 2 }"), r#"{"a":2}"#);
    }

    #[test]
    fn strings_use_go_escaping() {
        assert_eq!(
            to_string(&json!(
                "<a & b> \"q\" \\ / \n\r\t\u{8}\u{c}\u{1}\u{1f} \u{2028}\u{2029} é 😀"
            )),
            r#""\u003ca \u0026 b\u003e \"q\" \\ / \n\r\t\b\f\u0001\u001f \u2028\u2029 é 😀""#
        );
    }

    #[test]
    fn numbers_use_go_float_formatting() {
        assert_eq!(go("1708991378"), "1708991378");
        assert_eq!(go("-12"), "-12");
        assert_eq!(go("12.5"), "12.5");
        assert_eq!(go("1.0"), "1");
        assert_eq!(go("0"), "0");
        assert_eq!(go("1e20"), "100000000000000000000");
        assert_eq!(go("1e21"), "1e+21");
        assert_eq!(go("123456789e20"), "1.23456789e+28");
        assert_eq!(go("0.000001"), "0.000001");
        assert_eq!(go("0.0000001"), "1e-7");
        assert_eq!(go("1.5e-10"), "1.5e-10");
        // Beyond 2^53 Go loses precision exactly as f64 does.
        assert_eq!(go("9007199254740993"), "9007199254740992");
    }

    #[test]
    fn literals() {
        assert_eq!(go("[true,false,null]"), "[true,false,null]");
    }

    /// The commitment vectors of wire-format.md §3.4 start from these canonical headers, so
    /// re-serializing them must give the same bytes back.
    #[test]
    fn canonical_cic_header_is_a_fixed_point() {
        let header = r#"{"alg":"ES256","extra":"yes","rz":"656f65b99da5d649ea315a52343add3642f14c7ff8d4ebce8ee33a2f4a4b41e0","typ":"CIC","upk":{"alg":"ES256","crv":"P-256","kty":"EC","x":"PnzpEjQZ7bsCl2ZExs7dbFQlVzggv-_t50QuzZZWcoc","y":"1Z-xC6JZL2eAO57ovFJCstnBcMsOiqsGF1NJLyqq1F4"}}"#;
        assert_eq!(go(header), header);
    }
}
