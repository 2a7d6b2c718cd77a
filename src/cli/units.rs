//! Byte counts on the command line: parsing `--piece-length` (plain bytes or
//! K/M/G suffixes, binary) and amounts such as rates (`1.5M`: decimals
//! allowed), and printing sizes, rates and dates for people.

use ringseed::limits::PIECE_LENGTH_BYTES_MAX;

/// Smallest piece length accepted, in bytes (one BitTorrent block; the
/// torrent builder refuses less as well).
pub const PIECE_LENGTH_MIN_BYTES: u64 = 16 * 1024;

/// The multiplier of a binary size suffix: none or `b` 1, `k`/`kb`/`kib`
/// 1024, `m`... 2^20, `g`... 2^30 (any case); `None` for anything else.
pub fn binary_unit(suffix: &str) -> Option<u64> {
    match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => Some(1),
        "k" | "kb" | "kib" => Some(1 << 10),
        "m" | "mb" | "mib" => Some(1 << 20),
        "g" | "gb" | "gib" => Some(1 << 30),
        _ => None,
    }
}

/// Most digits after the decimal point in an amount (`1.5M`): more says
/// nothing about whole bytes.
pub const FRACTION_DIGITS_MAX: usize = 9;

/// Why an amount did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmountError {
    /// No digits, or something other than digits and one `.`.
    NotANumber,
    /// More than [`FRACTION_DIGITS_MAX`] digits after the point.
    TooPrecise,
    /// A suffix [`binary_unit`] does not know.
    UnknownUnit(String),
    /// Over `u64::MAX` bytes.
    TooLarge,
}

/// Parses an amount of bytes: a decimal number (`10`, `1.5`, `.5`) and an
/// optional binary unit (`K` = 1024, `M`, `G`, with or without `B`/`iB`),
/// rounded down to whole bytes: `1.5M` is 1,572,864.
pub fn parse_binary_amount(text: &str) -> Result<u64, AmountError> {
    let t = text.trim();
    let end = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, suffix) = t.split_at(end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err(AmountError::NotANumber);
    }
    if fraction.len() > FRACTION_DIGITS_MAX {
        return Err(AmountError::TooPrecise);
    }
    let unit = binary_unit(suffix).ok_or_else(|| AmountError::UnknownUnit(suffix.to_string()))?;
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| AmountError::TooLarge)?
    };
    let mut bytes = whole.checked_mul(unit).ok_or(AmountError::TooLarge)?;
    if !fraction.is_empty() {
        // fraction < 10^9 and unit <= 2^30: the product fits in u128.
        let digits: u128 = fraction.parse().map_err(|_| AmountError::NotANumber)?;
        let scale = 10u128.pow(fraction.len() as u32);
        let part =
            u64::try_from(digits * u128::from(unit) / scale).map_err(|_| AmountError::TooLarge)?;
        bytes = bytes.checked_add(part).ok_or(AmountError::TooLarge)?;
    }
    Ok(bytes)
}

/// The `--piece-length` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceLength {
    /// Chosen from the total size.
    Auto,
    Bytes(u64),
}

/// Longest `--piece-length` text looked at, in bytes.
const ARG_BYTES_MAX: usize = 32;

/// Parses `auto`, `32768`, `16K`, `16KiB`, `1M`, `1MiB`, `4m` (suffixes are
/// binary: K = 1024). The result is a power of two from 16 KiB to the crate's
/// maximum piece length.
pub fn parse_piece_length(text: &str) -> Result<PieceLength, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("auto") {
        return Ok(PieceLength::Auto);
    }
    if t.len() > ARG_BYTES_MAX {
        return Err(format!(
            "piece length {t:?} is too long to be a size (at most {ARG_BYTES_MAX} characters)"
        ));
    }
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, suffix) = t.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!(
            "piece length {t:?} is not a size: expected bytes (32768), a size with a suffix \
             (16K, 1M, 256KiB) or `auto`"
        ));
    }
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("piece length {t:?} is too large"))?;
    let Some(unit) = binary_unit(suffix) else {
        return Err(format!(
            "piece length {t:?} has an unknown unit {suffix:?}: use K, M or G (binary), \
             e.g. 16K or 1M"
        ));
    };
    let bytes = number
        .checked_mul(unit)
        .ok_or_else(|| format!("piece length {t:?} is too large"))?;
    if !(PIECE_LENGTH_MIN_BYTES..=PIECE_LENGTH_BYTES_MAX).contains(&bytes) {
        return Err(format!(
            "piece length {bytes} bytes is out of range: expected {} to {} ({} to {})",
            PIECE_LENGTH_MIN_BYTES,
            PIECE_LENGTH_BYTES_MAX,
            human_bytes(PIECE_LENGTH_MIN_BYTES),
            human_bytes(PIECE_LENGTH_BYTES_MAX)
        ));
    }
    if !bytes.is_power_of_two() {
        return Err(format!(
            "piece length {bytes} bytes is not a power of two (e.g. 16K, 32K, 1M)"
        ));
    }
    Ok(PieceLength::Bytes(bytes))
}

/// `1.50 MiB` style, exact below 1 KiB.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2} {}", UNITS.get(unit).copied().unwrap_or("EiB"))
}

/// A rate in decimal gigabytes or megabytes per second.
pub fn human_rate(bytes: u64, seconds: f64) -> String {
    if seconds <= 0.0 {
        return "-".to_string();
    }
    let per_second = bytes as f64 / seconds;
    if per_second >= 1e9 {
        format!("{:.2} GB/s", per_second / 1e9)
    } else {
        format!("{:.1} MB/s", per_second / 1e6)
    }
}

/// `good` of `total` as a percentage with two decimals, rounded down (so
/// 100.00% only when all are good). 0 of 0 is 100.00%.
pub fn percent_floor(good: u64, total: u64) -> String {
    if total == 0 {
        return "100.00".to_string();
    }
    let basis_points = u128::from(good) * 10_000 / u128::from(total);
    format!("{}.{:02}", basis_points / 100, basis_points % 100)
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc_date(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let rem = seconds.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piece_lengths_accepted() {
        for (text, bytes) in [
            ("16K", 16 << 10),
            ("16k", 16 << 10),
            ("32768", 32 << 10),
            ("256KiB", 256 << 10),
            ("1M", 1 << 20),
            ("4mib", 4 << 20),
            ("128M", 128 << 20),
            ("512M", 512 << 20),
            (" 64KB ", 64 << 10),
        ] {
            assert_eq!(
                parse_piece_length(text),
                Ok(PieceLength::Bytes(bytes)),
                "{text}"
            );
        }
        assert_eq!(parse_piece_length("auto"), Ok(PieceLength::Auto));
        assert_eq!(parse_piece_length("AUTO"), Ok(PieceLength::Auto));
    }

    #[test]
    fn piece_lengths_refused_with_a_reason() {
        for (text, needle) in [
            ("abc", "not a size"),
            ("", "not a size"),
            ("-16K", "not a size"),
            ("1000", "out of range"),
            ("0", "out of range"),
            ("8K", "out of range"),
            ("1G", "out of range"),
            ("1024M", "out of range"),
            ("16Q", "unknown unit"),
            ("99999999999999999999", "too large"),
            ("17592186044416G", "too large"),
            ("48K", "power of two"),
            ("123456789012345678901234567890123", "too long"),
        ] {
            let e = parse_piece_length(text).err().unwrap_or_default();
            assert!(e.contains(needle), "{text}: {e}");
            assert!(e.contains("piece length"), "{text}: {e}");
        }
    }

    #[test]
    fn amounts_take_decimals() {
        assert_eq!(parse_binary_amount("1.5M"), Ok(1_572_864));
        assert_eq!(parse_binary_amount("0.5K"), Ok(512));
        assert_eq!(parse_binary_amount(".25k"), Ok(256));
        assert_eq!(parse_binary_amount("2."), Ok(2));
        assert_eq!(parse_binary_amount("10"), Ok(10));
        assert_eq!(parse_binary_amount("1.5"), Ok(1));
        assert_eq!(parse_binary_amount("1.1G"), Ok(1_181_116_006));
        assert_eq!(parse_binary_amount("2.5MiB"), Ok(2_621_440));
        assert_eq!(parse_binary_amount(""), Err(AmountError::NotANumber));
        assert_eq!(parse_binary_amount("."), Err(AmountError::NotANumber));
        assert_eq!(parse_binary_amount("1.2.3M"), Err(AmountError::NotANumber));
        assert_eq!(parse_binary_amount("-1M"), Err(AmountError::NotANumber));
        assert_eq!(
            parse_binary_amount("1.5X"),
            Err(AmountError::UnknownUnit("X".into()))
        );
        assert_eq!(
            parse_binary_amount("1.0000000001M"),
            Err(AmountError::TooPrecise)
        );
        assert_eq!(
            parse_binary_amount("99999999999999999999"),
            Err(AmountError::TooLarge)
        );
        assert_eq!(
            parse_binary_amount("17179869184G"),
            Err(AmountError::TooLarge)
        );
    }

    #[test]
    fn sizes_print() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.50 KiB");
        assert_eq!(human_bytes(4 << 30), "4.00 GiB");
        assert_eq!(human_bytes(u64::MAX), "16.00 EiB");
        assert_eq!(human_rate(2_000_000_000, 1.0), "2.00 GB/s");
        assert_eq!(human_rate(5_000_000, 2.0), "2.5 MB/s");
        assert_eq!(human_rate(5, 0.0), "-");
    }

    #[test]
    fn percentages_round_down() {
        assert_eq!(percent_floor(0, 0), "100.00");
        assert_eq!(percent_floor(5, 5), "100.00");
        assert_eq!(percent_floor(99_999, 100_000), "99.99");
        assert_eq!(percent_floor(1, 3), "33.33");
        assert_eq!(percent_floor(0, 7), "0.00");
    }

    #[test]
    fn dates_print_in_utc() {
        assert_eq!(utc_date(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_date(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc_date(-1), "1969-12-31 23:59:59 UTC");
    }
}
