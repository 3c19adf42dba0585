//! CSV rows of the per-step file, formatted without the Python interpreter.
//!
//! The writer thread streams every step to a CSV file. Turning a float into text is most of that
//! work; done in Python it holds the interpreter for a few µs per row, which a fast training loop
//! then waits for at its next step. Here it runs with the interpreter released, and writes each
//! value exactly as Python's `repr` does, so the file reads the same whichever wrote it.

use std::fmt::Write as _;
use std::io::Write as _;

/// One column of the rows, `n` values long (8 little-endian bytes each) unless constant.
pub enum Column<'a> {
    /// The same cell on every row, already CSV-quoted where needed.
    Constant(&'a [u8]),
    /// Signed integers.
    Int(&'a [u8]),
    /// Signed integers; a negative value is an empty cell (not known).
    IntOrEmpty(&'a [u8]),
    /// Floats, as Python's `repr` writes them.
    Float(&'a [u8]),
    /// Integer codes, each written as its cell from `cells` (already CSV-quoted).
    Lookup {
        codes: &'a [u8],
        cells: &'a [(i64, Vec<u8>)],
    },
}

/// Appends `n_rows` rows of `columns` to `out`, comma-separated, each ended by CRLF (RFC 4180).
///
/// Errors name the column whose data does not hold `n_rows` values, or a code without a cell.
pub fn append_rows(n_rows: usize, columns: &[Column], out: &mut Vec<u8>) -> Result<(), String> {
    for (position, column) in columns.iter().enumerate() {
        let data = match column {
            Column::Constant(_) => continue,
            Column::Int(data) | Column::IntOrEmpty(data) | Column::Float(data) => data,
            Column::Lookup { codes, .. } => codes,
        };
        if data.len() != n_rows * 8 {
            return Err(format!(
                "column {position} has {} bytes; {n_rows} rows of 8-byte values need {}",
                data.len(),
                n_rows * 8
            ));
        }
    }
    let mut scratch = String::with_capacity(32);
    for row in 0..n_rows {
        for (position, column) in columns.iter().enumerate() {
            if position > 0 {
                out.push(b',');
            }
            match column {
                Column::Constant(cell) => out.extend_from_slice(cell),
                Column::Int(data) => push_int(out, i64_at(data, row)),
                Column::IntOrEmpty(data) => {
                    let value = i64_at(data, row);
                    if value >= 0 {
                        push_int(out, value);
                    }
                }
                Column::Float(data) => push_python_repr(out, f64_at(data, row), &mut scratch),
                Column::Lookup { codes, cells } => {
                    let code = i64_at(codes, row);
                    let cell = cells
                        .iter()
                        .find(|(known, _)| *known == code)
                        .ok_or_else(|| format!("column {position}: code {code} has no cell"))?;
                    out.extend_from_slice(&cell.1);
                }
            }
        }
        out.extend_from_slice(b"\r\n");
    }
    Ok(())
}

fn i64_at(data: &[u8], row: usize) -> i64 {
    let bytes: [u8; 8] = data[row * 8..row * 8 + 8].try_into().expect("8 bytes");
    i64::from_le_bytes(bytes)
}

fn f64_at(data: &[u8], row: usize) -> f64 {
    let bytes: [u8; 8] = data[row * 8..row * 8 + 8].try_into().expect("8 bytes");
    f64::from_le_bytes(bytes)
}

fn push_int(out: &mut Vec<u8>, value: i64) {
    write!(out, "{value}").expect("writing to a Vec cannot fail");
}

/// `value` as Python's `repr(float)`: the shortest digits that read back to the same float,
/// in positional notation when the decimal point falls between 4 places before the first digit
/// and 16 places after it, in exponent notation (at least two exponent digits) otherwise.
pub fn push_python_repr(out: &mut Vec<u8>, value: f64, scratch: &mut String) {
    if value.is_nan() {
        out.extend_from_slice(b"nan");
        return;
    }
    if value.is_infinite() {
        out.extend_from_slice(if value > 0.0 { b"inf" } else { b"-inf" });
        return;
    }
    scratch.clear();
    // Rust's shortest round-trip digits, as d.ddde<exponent>.
    write!(scratch, "{value:e}").expect("writing to a String cannot fail");
    let text = scratch.as_bytes();
    let (negative, text) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let e_at = text.iter().position(|&b| b == b'e').expect("exponent form");
    let exponent: i32 = std::str::from_utf8(&text[e_at + 1..])
        .expect("ascii")
        .parse()
        .expect("an integer exponent");
    let mut digits = [0u8; 24];
    let mut n_digits = 0;
    for &b in &text[..e_at] {
        if b != b'.' {
            digits[n_digits] = b;
            n_digits += 1;
        }
    }
    break_tie_to_even(value, &mut digits[..n_digits], exponent, scratch);
    let digits = &digits[..n_digits];
    // Digits before the decimal point: value = 0.<digits> x 10^point.
    let point = exponent + 1;
    if negative {
        out.push(b'-');
    }
    if !(-4 < point && point <= 16) {
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        let shown = point - 1;
        write!(
            out,
            "e{}{:02}",
            if shown < 0 { '-' } else { '+' },
            shown.unsigned_abs()
        )
        .expect("writing to a Vec cannot fail");
    } else if point <= 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', point.unsigned_abs() as usize));
        out.extend_from_slice(digits);
    } else if (point as usize) < digits.len() {
        let split = point as usize;
        out.extend_from_slice(&digits[..split]);
        out.push(b'.');
        out.extend_from_slice(&digits[split..]);
    } else {
        out.extend_from_slice(digits);
        out.extend(std::iter::repeat_n(b'0', point as usize - digits.len()));
        out.extend_from_slice(b".0");
    }
}

/// Where `value` lies exactly halfway between two shortest digit strings, Python writes the one
/// ending in an even digit; Rust's shortest form takes the upper one. Only an odd last digit can
/// differ: then the string one unit below is taken when `value` is exactly the midpoint of the two
/// (an integer test) and that string also reads back to `value`.
fn break_tie_to_even(value: f64, digits: &mut [u8], exponent: i32, scratch: &mut String) {
    let last = digits.len() - 1;
    if (digits[last] - b'0').is_multiple_of(2) {
        return;
    }
    let below: u64 = digits.iter().fold(0, |n, &d| n * 10 + u64::from(d - b'0')) - 1;
    // value = 0.<digits> x 10^(exponent + 1); the midpoint is (10 below + 5) x 10^(exponent - n).
    if !is_exactly(value.abs(), 2 * below + 1, exponent - digits.len() as i32) {
        return;
    }
    digits[last] -= 1;
    scratch.clear();
    scratch.push(char::from(digits[0]));
    scratch.push('.');
    scratch.extend(digits[1..].iter().map(|&b| char::from(b)));
    write!(scratch, "e{exponent}").expect("writing to a String cannot fail");
    if scratch.parse::<f64>() != Ok(value.abs()) {
        digits[last] += 1;
    }
}

/// Whether `value` (finite, non-negative) equals `odd` x 5 x 10^`power` exactly, that is
/// `odd` x 5^(power + 1) x 2^power with `odd` odd.
fn is_exactly(value: f64, odd: u64, power: i32) -> bool {
    let bits = value.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1 << 52) - 1);
    let (mantissa, binary_exponent) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1 << 52), biased - 1075)
    };
    if mantissa == 0 {
        return false;
    }
    let zeros = mantissa.trailing_zeros();
    // value = mantissa_odd x 2^twos, and the right-hand side's odd part is odd x 5^fives.
    let (mantissa_odd, twos) = (
        u128::from(mantissa >> zeros),
        binary_exponent + zeros as i32,
    );
    let fives = power + 1;
    if twos != power || fives.unsigned_abs() > 40 {
        return false;
    }
    let five_power = 5u128.pow(fives.unsigned_abs());
    if fives >= 0 {
        five_power.checked_mul(u128::from(odd)) == Some(mantissa_odd)
    } else {
        mantissa_odd.checked_mul(five_power) == Some(u128::from(odd))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repr(value: f64) -> String {
        let mut out = Vec::new();
        push_python_repr(&mut out, value, &mut String::new());
        String::from_utf8(out).unwrap()
    }

    const TWO_TO_49: f64 = (1u64 << 49) as f64;

    #[test]
    fn floats_read_as_python_writes_them() {
        for (value, expected) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1.5e-7, "1.5e-07"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (123.456, "123.456"),
            (1e16, "1e+16"),
            (1234567890123456.0, "1234567890123456.0"),
            (12345678901234567.0, "1.2345678901234568e+16"),
            (1e100, "1e+100"),
            (-2.5e-300, "-2.5e-300"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::NAN, "nan"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (100.0, "100.0"),
            (0.30000000000000004, "0.30000000000000004"),
            // 2^49 + 0.25 is exactly halfway between ...312.2 and ...312.3: the even one, as
            // Python writes it.
            (TWO_TO_49 + 0.25, "562949953421312.2"),
            (-(TWO_TO_49 + 0.25), "-562949953421312.2"),
            (TWO_TO_49 + 0.75, "562949953421312.8"),
        ] {
            assert_eq!(repr(value), expected, "{value:e}");
        }
    }

    fn le(values: &[i64]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn rows_join_the_columns_with_commas_and_end_in_crlf() {
        let index = le(&[0, 1]);
        let epoch = le(&[3, -1]);
        let joules: Vec<u8> = [0.5f64, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let flags = le(&[0, 4]);
        let cells = vec![(0, b"".to_vec()), (4, b"tail".to_vec())];
        let mut out = Vec::new();
        append_rows(
            2,
            &[
                Column::Constant(b"run"),
                Column::Int(&index),
                Column::IntOrEmpty(&epoch),
                Column::Float(&joules),
                Column::Lookup {
                    codes: &flags,
                    cells: &cells,
                },
            ],
            &mut out,
        )
        .unwrap();
        assert_eq!(out, b"run,0,3,0.5,\r\nrun,1,,2.0,tail\r\n");
    }

    #[test]
    fn a_short_column_or_an_unknown_code_is_an_error_naming_it() {
        let short = le(&[1]);
        let error = append_rows(2, &[Column::Int(&short)], &mut Vec::new()).unwrap_err();
        assert!(error.contains("column 0 has 8 bytes"), "{error}");
        let codes = le(&[7]);
        let error = append_rows(
            1,
            &[Column::Lookup {
                codes: &codes,
                cells: &[],
            }],
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(error.contains("code 7 has no cell"), "{error}");
    }
}
