//! Amounts and currencies: the ISO 4217 codes in current use with their minor-unit digits,
//! and exact decimal parsing into minor units (no floating point anywhere).

/// ISO 4217 active codes with the number of digits after the decimal point, sorted.
#[rustfmt::skip]
const CURRENCIES: &[(&str, u8)] = &[
    ("AED", 2), ("AFN", 2), ("ALL", 2), ("AMD", 2), ("ANG", 2), ("AOA", 2), ("ARS", 2),
    ("AUD", 2), ("AWG", 2), ("AZN", 2), ("BAM", 2), ("BBD", 2), ("BDT", 2), ("BGN", 2),
    ("BHD", 3), ("BIF", 0), ("BMD", 2), ("BND", 2), ("BOB", 2), ("BRL", 2), ("BSD", 2),
    ("BTN", 2), ("BWP", 2), ("BYN", 2), ("BZD", 2), ("CAD", 2), ("CDF", 2), ("CHF", 2),
    ("CLF", 4), ("CLP", 0), ("CNY", 2), ("COP", 2), ("CRC", 2), ("CUP", 2), ("CVE", 2),
    ("CZK", 2), ("DJF", 0), ("DKK", 2), ("DOP", 2), ("DZD", 2), ("EGP", 2), ("ERN", 2),
    ("ETB", 2), ("EUR", 2), ("FJD", 2), ("FKP", 2), ("GBP", 2), ("GEL", 2), ("GHS", 2),
    ("GIP", 2), ("GMD", 2), ("GNF", 0), ("GTQ", 2), ("GYD", 2), ("HKD", 2), ("HNL", 2),
    ("HTG", 2), ("HUF", 2), ("IDR", 2), ("ILS", 2), ("INR", 2), ("IQD", 3), ("IRR", 2),
    ("ISK", 0), ("JMD", 2), ("JOD", 3), ("JPY", 0), ("KES", 2), ("KGS", 2), ("KHR", 2),
    ("KMF", 0), ("KPW", 2), ("KRW", 0), ("KWD", 3), ("KYD", 2), ("KZT", 2), ("LAK", 2),
    ("LBP", 2), ("LKR", 2), ("LRD", 2), ("LSL", 2), ("LYD", 3), ("MAD", 2), ("MDL", 2),
    ("MGA", 2), ("MKD", 2), ("MMK", 2), ("MNT", 2), ("MOP", 2), ("MRU", 2), ("MUR", 2),
    ("MVR", 2), ("MWK", 2), ("MXN", 2), ("MYR", 2), ("MZN", 2), ("NAD", 2), ("NGN", 2),
    ("NIO", 2), ("NOK", 2), ("NPR", 2), ("NZD", 2), ("OMR", 3), ("PAB", 2), ("PEN", 2),
    ("PGK", 2), ("PHP", 2), ("PKR", 2), ("PLN", 2), ("PYG", 0), ("QAR", 2), ("RON", 2),
    ("RSD", 2), ("RUB", 2), ("RWF", 0), ("SAR", 2), ("SBD", 2), ("SCR", 2), ("SDG", 2),
    ("SEK", 2), ("SGD", 2), ("SHP", 2), ("SLE", 2), ("SOS", 2), ("SRD", 2), ("SSP", 2),
    ("STN", 2), ("SVC", 2), ("SYP", 2), ("SZL", 2), ("THB", 2), ("TJS", 2), ("TMT", 2),
    ("TND", 3), ("TOP", 2), ("TRY", 2), ("TTD", 2), ("TWD", 2), ("TZS", 2), ("UAH", 2),
    ("UGX", 0), ("USD", 2), ("UYI", 0), ("UYU", 2), ("UYW", 4), ("UZS", 2), ("VED", 2),
    ("VES", 2), ("VND", 0), ("VUV", 0), ("WST", 2), ("XAF", 0), ("XCD", 2), ("XCG", 2),
    ("XOF", 0), ("XPF", 0), ("YER", 2), ("ZAR", 2), ("ZMW", 2), ("ZWG", 2),
];

/// The minor-unit digits of an ISO 4217 currency (upper-case code), or `None` if unknown.
pub fn digits(code: &str) -> Option<u8> {
    CURRENCIES
        .binary_search_by(|(c, _)| c.cmp(&code))
        .ok()
        .map(|i| CURRENCIES[i].1)
}

/// Normalises a currency code (trimmed, upper case) and checks it is ISO 4217.
pub fn currency(raw: &str) -> Result<String, String> {
    let code = raw.trim().to_ascii_uppercase();
    if digits(&code).is_some() {
        Ok(code)
    } else {
        Err(format!(
            "'{}' is not an ISO 4217 currency code (such as EUR, USD, GBP)",
            raw.escape_default()
        ))
    }
}

/// Parses a non-negative decimal amount ("1250", "1250.5", "1250.50") into minor units of a
/// currency with `digits` decimals.
pub fn parse_minor(raw: &str, digits: u8) -> Result<i64, String> {
    let s = raw.trim();
    let bad = || {
        format!(
            "amount '{}' is not a decimal number such as 1250.00",
            raw.escape_default()
        )
    };
    if s.starts_with('-') {
        return Err(format!(
            "amount '{}' is negative; amounts are 0 or more",
            raw.escape_default()
        ));
    }
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || (s.contains('.') && frac.is_empty())
    {
        return Err(bad());
    }
    if frac.len() > usize::from(digits) {
        return Err(format!(
            "amount '{}' has more than {digits} decimal places for its currency",
            raw.escape_default()
        ));
    }
    let too_big = || format!("amount '{}' is too large", raw.escape_default());
    let mut v: i64 = int.parse().map_err(|_| too_big())?;
    for _ in 0..digits {
        v = v.checked_mul(10).ok_or_else(too_big)?;
    }
    let mut f: i64 = 0;
    for i in 0..usize::from(digits) {
        let d = frac
            .as_bytes()
            .get(i)
            .map(|b| i64::from(b - b'0'))
            .unwrap_or(0);
        f = f * 10 + d;
    }
    v.checked_add(f).ok_or_else(too_big)
}

/// Formats minor units as a decimal with the currency's digits ("1250.50").
pub fn format_minor(minor: i64, digits: u8) -> String {
    if digits == 0 {
        return minor.to_string();
    }
    let scale = 10i64.pow(u32::from(digits));
    format!(
        "{}.{:0width$}",
        minor / scale,
        (minor % scale).abs(),
        width = usize::from(digits)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_sorted_so_lookups_work() {
        assert!(CURRENCIES.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(digits("EUR"), Some(2));
        assert_eq!(digits("JPY"), Some(0));
        assert_eq!(digits("KWD"), Some(3));
        assert_eq!(digits("XXX"), None);
        assert_eq!(currency(" eur ").unwrap(), "EUR");
        assert!(currency("EURO").is_err());
        assert!(currency("ABC").is_err());
    }

    #[test]
    fn amounts_parse_exactly() {
        assert_eq!(parse_minor("1250", 2), Ok(125_000));
        assert_eq!(parse_minor("1250.5", 2), Ok(125_050));
        assert_eq!(parse_minor("0.07", 2), Ok(7));
        assert_eq!(parse_minor("12", 0), Ok(12));
        assert!(parse_minor("-1", 2).unwrap_err().contains("negative"));
        assert!(parse_minor("12.345", 2).is_err());
        assert!(parse_minor("1e3", 2).is_err());
        assert!(parse_minor("abc", 2).is_err());
        assert!(parse_minor("1.", 2).is_err());
        assert!(parse_minor(".5", 2).is_err());
        assert!(parse_minor("99999999999999999999", 2).is_err());
        assert_eq!(format_minor(125_050, 2), "1250.50");
        assert_eq!(format_minor(7, 2), "0.07");
        assert_eq!(format_minor(12, 0), "12");
        assert_eq!(format_minor(1_234, 3), "1.234");
    }
}
