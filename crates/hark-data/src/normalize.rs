//! Text normalisation: what the model hears is what it should write.
//!
//! Every piece of text that meets the model (training targets, language-model
//! text, entity lists, user corrections) goes through [`normalize`], which
//! spells out numbers, ordinals, dates, times, symbols and common
//! abbreviations, lower-cases, and keeps only the model's alphabet
//! ([`ALPHABET`]: `a`–`z`, apostrophe, space).

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Characters a normalised text may contain.
pub const ALPHABET: &str = "abcdefghijklmnopqrstuvwxyz' ";

const ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Spoken form of `text`, in the model's alphabet, single-spaced.
pub fn normalize(text: &str) -> String {
    let lowered = text.to_lowercase().replace('&', " and ").replace('%', " percent ").replace(['’', '`'], "'");
    let tokens: Vec<&str> = lowered.split_whitespace().collect();
    let mut words: Vec<String> = Vec::new();
    for (i, raw) in tokens.iter().enumerate() {
        let prev = if i > 0 { Some(tokens[i - 1].trim_matches(|c: char| !c.is_alphanumeric())) } else { None };
        let token = raw.trim_matches(|c: char| !(c.is_alphanumeric() || c == '$' || c == ':' || c == '.'));
        let token = token.trim_end_matches('.');
        words.push(spell_token(token, prev));
    }
    let joined = words.join(" ");
    // Fold accents ("café" → "cafe"), then anything else outside the alphabet
    // separates words.
    let cleaned: String =
        joined.nfd().filter(|c| !is_combining_mark(*c)).map(|c| if ALPHABET.contains(c) { c } else { ' ' }).collect();
    cleaned.split_whitespace().map(|w| w.trim_matches('\'')).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")
}

fn spell_token(token: &str, prev: Option<&str>) -> String {
    if let Some(amount) = token.strip_prefix('$') {
        if let Ok(n) = amount.parse::<u64>() {
            return format!("{} {}", cardinal(n), if n == 1 { "dollar" } else { "dollars" });
        }
    }
    if let Some(time) = spell_time(token) {
        return time;
    }
    if let Some((int, frac)) = token.split_once('.') {
        if let (Ok(i), true) = (int.parse::<u64>(), !frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit())) {
            let digits: Vec<&str> = frac.bytes().map(|b| ONES[(b - b'0') as usize]).collect();
            return format!("{} point {}", cardinal(i), digits.join(" "));
        }
    }
    if let Some(n) = ordinal_number(token) {
        return ordinal(n);
    }
    if let Ok(n) = token.replace(',', "").parse::<u64>() {
        // "march 3" is a date: say "march third".
        if prev.is_some_and(|p| MONTHS.contains(&p)) && (1..=31).contains(&n) {
            return ordinal(n);
        }
        return cardinal(n);
    }
    match token {
        "am" | "a.m" => "a m".into(),
        "pm" | "p.m" => "p m".into(),
        "st" => "street".into(),
        "rd" => "road".into(),
        "ave" => "avenue".into(),
        "dr" => "doctor".into(),
        "mr" => "mister".into(),
        "mrs" => "missus".into(),
        "km" => "kilometers".into(),
        "kg" => "kilograms".into(),
        "cm" => "centimeters".into(),
        "mph" => "miles per hour".into(),
        "vs" => "versus".into(),
        other => other.to_owned(),
    }
}

/// "7:30" → "seven thirty", "5:05" → "five oh five", "10:00" → "ten o'clock".
fn spell_time(token: &str) -> Option<String> {
    let (h, m) = token.split_once(':')?;
    let (h, m): (u64, u64) = (h.parse().ok()?, m.parse().ok()?);
    if h > 24 || m > 59 || token.len() > 5 {
        return None;
    }
    Some(match m {
        0 => format!("{} o'clock", cardinal(h)),
        1..=9 => format!("{} oh {}", cardinal(h), cardinal(m)),
        _ => format!("{} {}", cardinal(h), cardinal(m)),
    })
}

fn ordinal_number(token: &str) -> Option<u64> {
    let digits = token
        .strip_suffix("st")
        .or(token.strip_suffix("nd"))
        .or(token.strip_suffix("rd"))
        .or(token.strip_suffix("th"))?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// English cardinal: 1042 → "one thousand forty two".
pub fn cardinal(n: u64) -> String {
    fn below_thousand(n: u64, out: &mut Vec<String>) {
        if n >= 100 {
            out.push(ONES[(n / 100) as usize].into());
            out.push("hundred".into());
        }
        let rest = n % 100;
        if rest >= 20 {
            out.push(TENS[(rest / 10) as usize].into());
            if rest % 10 != 0 {
                out.push(ONES[(rest % 10) as usize].into());
            }
        } else if rest > 0 {
            out.push(ONES[rest as usize].into());
        }
    }
    if n == 0 {
        return "zero".into();
    }
    let mut out = Vec::new();
    for (scale, name) in
        [(1_000_000_000_000, "trillion"), (1_000_000_000, "billion"), (1_000_000, "million"), (1_000, "thousand")]
    {
        if n / scale % 1000 > 0 {
            below_thousand(n / scale % 1000, &mut out);
            out.push(name.into());
        }
    }
    below_thousand(n % 1000, &mut out);
    out.join(" ")
}

/// English ordinal: 21 → "twenty first".
pub fn ordinal(n: u64) -> String {
    let words = cardinal(n);
    let (head, last) = match words.rsplit_once(' ') {
        Some((h, l)) => (format!("{h} "), l.to_owned()),
        None => (String::new(), words),
    };
    let last = match last.as_str() {
        "one" => "first".into(),
        "two" => "second".into(),
        "three" => "third".into(),
        "five" => "fifth".into(),
        "eight" => "eighth".into(),
        "nine" => "ninth".into(),
        "twelve" => "twelfth".into(),
        l if l.ends_with('y') => format!("{}ieth", &l[..l.len() - 1]),
        l => format!("{l}th"),
    };
    format!("{head}{last}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spells_numbers_ordinals_dates_and_times() {
        assert_eq!(normalize("directions to 42 Baker St."), "directions to forty two baker street");
        assert_eq!(
            normalize("What is 1,500 plus 2024?"),
            "what is one thousand five hundred plus two thousand twenty four"
        );
        assert_eq!(normalize("flights on March 3"), "flights on march third");
        assert_eq!(normalize("January 1st"), "january first");
        assert_eq!(normalize("set an alarm for 7:30 am"), "set an alarm for seven thirty a m");
        assert_eq!(normalize("remind me at 5:05"), "remind me at five oh five");
        assert_eq!(normalize("10:00 pm"), "ten o'clock p m");
        assert_eq!(normalize("3.25 km"), "three point two five kilometers");
        assert_eq!(normalize("$20 & 50%"), "twenty dollars and fifty percent");
        assert_eq!(normalize("what's the weather"), "what's the weather");
    }

    #[test]
    fn ordinals_and_cardinals_cover_the_awkward_cases() {
        assert_eq!(ordinal(12), "twelfth");
        assert_eq!(ordinal(20), "twentieth");
        assert_eq!(ordinal(31), "thirty first");
        assert_eq!(ordinal(100), "one hundredth");
        assert_eq!(cardinal(1_000_001), "one million one");
        assert_eq!(cardinal(0), "zero");
    }

    #[test]
    fn output_uses_only_the_model_alphabet() {
        let text = normalize("Café, naïve — ÜBER-cool! #1 (really?) 'quoted'");
        assert!(text.chars().all(|c| ALPHABET.contains(c)), "{text:?}");
        assert_eq!(text, "cafe naive uber cool one really quoted");
        assert!(!text.contains("  ") && !text.starts_with(' ') && !text.ends_with(' '));
    }
}
