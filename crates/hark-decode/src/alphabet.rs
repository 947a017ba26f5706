//! The model's output symbols: CTC blank, apostrophe, space, `a`–`z` — the
//! alphabet `hark_data::normalize` writes.

/// Symbol table of the acoustic model.
pub struct Alphabet;

impl Alphabet {
    pub const BLANK: u32 = 0;
    pub const APOSTROPHE: u32 = 1;
    pub const SPACE: u32 = 2;
    /// Number of output symbols (blank included).
    pub const SIZE: usize = 29;

    /// Symbol of a character, if the model can write it.
    pub fn symbol_of(c: char) -> Option<u32> {
        match c {
            '\'' => Some(Self::APOSTROPHE),
            ' ' => Some(Self::SPACE),
            'a'..='z' => Some(3 + (c as u32 - 'a' as u32)),
            _ => None,
        }
    }

    /// Character of a non-blank symbol.
    pub fn char_of(symbol: u32) -> char {
        match symbol {
            Self::APOSTROPHE => '\'',
            Self::SPACE => ' ',
            s @ 3..=28 => char::from(b'a' + (s - 3) as u8),
            _ => '?',
        }
    }

    /// CTC targets for a normalised text; characters outside the alphabet
    /// are an error naming them.
    pub fn encode(text: &str) -> Result<Vec<u32>, UnknownChar> {
        text.chars().map(|c| Self::symbol_of(c).ok_or(UnknownChar(c))).collect()
    }
}

/// A character the model cannot write; normalise the text first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "character {0:?} is not in the model's alphabet (a-z, apostrophe, space); run the text through hark_data::normalize"
)]
pub struct UnknownChar(pub char);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_symbol_round_trips() {
        for s in 1..Alphabet::SIZE as u32 {
            assert_eq!(Alphabet::symbol_of(Alphabet::char_of(s)), Some(s));
        }
        assert_eq!(Alphabet::encode("it's a").unwrap(), vec![11, 22, 1, 21, 2, 3]);
        assert_eq!(Alphabet::encode("A"), Err(UnknownChar('A')));
    }
}
