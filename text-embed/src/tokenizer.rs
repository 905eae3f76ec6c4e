//! BERT's uncased WordPiece tokenizer, as the model's `tokenizer.json` describes it
//! (`BertNormalizer` with lowercasing and accent stripping, `BertPreTokenizer`, `WordPiece`
//! with the `##` prefix, `[CLS] ... [SEP]` around the pieces).

use std::collections::HashMap;

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, GeneralCategoryGroup, UnicodeGeneralCategory};

use crate::EmbedError;

/// Words longer than this (in characters) become `[UNK]`, as in the reference tokenizer.
const MAX_WORD_CHARS: usize = 100;

/// A WordPiece vocabulary with its special tokens.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    vocab: HashMap<String, u32>,
    unk: u32,
    cls: u32,
    sep: u32,
}

impl Tokenizer {
    /// Reads `vocab.txt`: one token per line, the line number is its id.
    pub fn from_vocab(text: &str) -> Result<Self, EmbedError> {
        let mut vocab = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let id = u32::try_from(i).map_err(|_| EmbedError::Vocab("too many tokens".into()))?;
            vocab.entry(line.to_string()).or_insert(id);
        }
        let special = |name: &str| {
            vocab
                .get(name)
                .copied()
                .ok_or_else(|| EmbedError::Vocab(format!("no {name} token")))
        };
        Ok(Self {
            unk: special("[UNK]")?,
            cls: special("[CLS]")?,
            sep: special("[SEP]")?,
            vocab,
        })
    }

    /// Number of tokens in the vocabulary.
    pub fn len(&self) -> usize {
        self.vocab.len()
    }

    /// Whether the vocabulary is empty (never, once built).
    pub fn is_empty(&self) -> bool {
        self.vocab.is_empty()
    }

    /// The token ids of `text`: `[CLS]`, the word pieces (cut so that the whole is at most
    /// `max_len` ids), `[SEP]`.
    pub fn encode(&self, text: &str, max_len: usize) -> Vec<u32> {
        let mut ids = vec![self.cls];
        let room = max_len.saturating_sub(2);
        'words: for word in pre_tokenize(&normalize(text)) {
            for piece in self.word_pieces(&word) {
                if ids.len() > room {
                    break 'words;
                }
                ids.push(piece);
            }
        }
        ids.push(self.sep);
        ids
    }

    /// Greedy longest-match-first pieces of one word; the whole word is `[UNK]` if any part
    /// cannot be matched.
    fn word_pieces(&self, word: &str) -> Vec<u32> {
        let chars: Vec<(usize, char)> = word.char_indices().collect();
        if chars.len() > MAX_WORD_CHARS {
            return vec![self.unk];
        }
        let mut pieces = Vec::new();
        let mut start = 0;
        while start < chars.len() {
            let mut end = chars.len();
            let mut found = None;
            while start < end {
                let from = chars[start].0;
                let to = chars.get(end).map_or(word.len(), |c| c.0);
                let sub = &word[from..to];
                let id = if start > 0 {
                    self.vocab.get(&format!("##{sub}"))
                } else {
                    self.vocab.get(sub)
                };
                if let Some(id) = id {
                    found = Some(*id);
                    break;
                }
                end -= 1;
            }
            match found {
                Some(id) => pieces.push(id),
                None => return vec![self.unk],
            }
            start = end;
        }
        pieces
    }
}

/// `BertNormalizer`: drop control characters, whitespace to spaces, spaces around CJK
/// ideographs, accents stripped (NFD, marks removed), lowercase.
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\0' || c == '\u{fffd}' || is_control(c) {
            continue;
        }
        if is_whitespace(c) {
            out.push(' ');
        } else if is_cjk(c) {
            out.push(' ');
            out.push(c);
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out.nfd()
        .filter(|c| c.general_category() != GeneralCategory::NonspacingMark)
        .flat_map(char::to_lowercase)
        .collect()
}

/// `BertPreTokenizer`: split on whitespace, and every punctuation character is a word.
fn pre_tokenize(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    for part in text.split(is_whitespace) {
        let mut word = String::new();
        for c in part.chars() {
            if is_punctuation(c) {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                words.push(c.to_string());
            } else {
                word.push(c);
            }
        }
        if !word.is_empty() {
            words.push(word);
        }
    }
    words
}

fn is_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r') || c.is_whitespace()
}

fn is_control(c: char) -> bool {
    !matches!(c, '\t' | '\n' | '\r') && c.general_category_group() == GeneralCategoryGroup::Other
}

fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation() || c.general_category_group() == GeneralCategoryGroup::Punctuation
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF
        | 0x3400..=0x4DBF
        | 0x20000..=0x2A6DF
        | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F
        | 0x2B820..=0x2CEAF
        | 0xF900..=0xFAFF
        | 0x2F800..=0x2FA1F)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tiny() -> Tokenizer {
        let vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\nun\n##aff\n##able\nhello\n,\nworld\n!\ncafe\n中";
        Tokenizer::from_vocab(vocab).unwrap()
    }

    #[test]
    fn pieces_punctuation_case_and_accents() {
        let t = tiny();
        assert_eq!(t.encode("unaffable", 64), vec![2, 4, 5, 6, 3]);
        assert_eq!(t.encode("Hello,  WORLD!", 64), vec![2, 7, 8, 9, 10, 3]);
        assert_eq!(t.encode("Café", 64), vec![2, 11, 3]);
        assert_eq!(t.encode("unknownword", 64), vec![2, 1, 3]);
        assert_eq!(t.encode("x中x", 64), vec![2, 1, 12, 1, 3]);
        assert_eq!(t.encode("\u{0}hello\u{200b}", 64), vec![2, 7, 3]);
    }

    #[test]
    fn truncation_keeps_the_special_tokens() {
        let t = tiny();
        assert_eq!(t.encode("hello hello hello hello", 4), vec![2, 7, 7, 3]);
        assert_eq!(t.encode("", 4), vec![2, 3]);
    }

    #[test]
    fn vocab_without_specials_is_refused() {
        let e = Tokenizer::from_vocab("a\nb").unwrap_err().to_string();
        assert!(e.contains("[UNK]"), "{e}");
    }
}
