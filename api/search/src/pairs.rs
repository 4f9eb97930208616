//! Word pairs with a common word ("common grams"), so that phrases of frequent words are
//! cheap.
//!
//! A phrase query checks word positions in every document that holds all of its words.
//! For "of the" that is nearly every document, each with hundreds of positions of "the".
//! The `pairs` field therefore also indexes each two adjacent words of which at least one
//! is common (`of the`, `the house`) as one term, at the position of the first. A phrase
//! whose every adjacent pair has a common word is then a single term (two words) or a
//! phrase of pair terms (three or more), each pair's postings as short as its rarer word's.
//! A phrase with a pair of two uncommon words keeps to the positions of the text field,
//! where such a pair is already rare.
//!
//! Which words are common is fixed (changing the list changes the index's format): the most
//! frequent function words of English and of the major Western European languages.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use tantivy::tokenizer::{Token, TokenFilter, TokenStream, Tokenizer};

/// The most frequent words (after lower-casing and folding to ASCII), by language.
#[rustfmt::skip]
const COMMON: &[&str] = &[
    // English
    "a", "about", "after", "all", "also", "an", "and", "any", "are", "as", "at", "be",
    "been", "but", "by", "can", "could", "do", "does", "for", "from", "had", "has", "have",
    "he", "her", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its", "just",
    "like", "may", "me", "more", "most", "my", "no", "not", "now", "of", "on", "one",
    "only", "or", "other", "our", "out", "over", "said", "she", "should", "so", "some",
    "such", "than", "that", "the", "their", "them", "then", "there", "these", "they",
    "this", "those", "to", "up", "us", "was", "we", "were", "what", "when", "which", "who",
    "will", "with", "would", "you", "your",
    // French
    "au", "aux", "ce", "dans", "de", "des", "du", "elle", "en", "est", "et", "il", "la",
    "le", "les", "leur", "mais", "ne", "nous", "par", "pas", "pour", "qu", "que", "qui",
    "sa", "se", "ses", "son", "sur", "un", "une", "vous",
    // German
    "auch", "auf", "aus", "bei", "das", "dass", "dem", "den", "der", "die", "ein", "eine",
    "einem", "einen", "einer", "es", "hat", "ich", "im", "ist", "mit", "nach", "nicht",
    "sich", "sie", "sind", "und", "von", "war", "wie", "zu", "zum", "zur",
    // Spanish, Portuguese, Italian
    "al", "con", "da", "del", "della", "di", "do", "e", "el", "em", "il", "lo", "los",
    "las", "na", "nao", "no", "o", "os", "para", "per", "por", "se", "su", "um", "uma",
    "y",
];

static COMMON_SET: LazyLock<Arc<HashSet<&'static str>>> =
    LazyLock::new(|| Arc::new(COMMON.iter().copied().collect()));

pub fn is_common(word: &str) -> bool {
    COMMON_SET.contains(word)
}

/// The term of two adjacent words.
pub fn pair(first: &str, second: &str) -> String {
    format!("{first} {second}")
}

/// The pair terms that stand for a phrase of `words` (as the index stores words), or
/// `None` when some adjacent pair has no common word (it is not in the `pairs` field).
pub fn phrase_pairs(words: &[String]) -> Option<Vec<String>> {
    if words.len() < 2 {
        return None;
    }
    words
        .windows(2)
        .map(|w| (is_common(&w[0]) || is_common(&w[1])).then(|| pair(&w[0], &w[1])))
        .collect()
}

/// Turns a stream of words into the stream of their pairs that have a common word.
#[derive(Clone, Copy, Default)]
pub struct PairFilter;

impl TokenFilter for PairFilter {
    type Tokenizer<T: Tokenizer> = PairTokenizer<T>;

    fn transform<T: Tokenizer>(self, inner: T) -> PairTokenizer<T> {
        PairTokenizer { inner }
    }
}

#[derive(Clone)]
pub struct PairTokenizer<T> {
    inner: T,
}

impl<T: Tokenizer> Tokenizer for PairTokenizer<T> {
    type TokenStream<'a> = PairStream<T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        PairStream {
            words: self.inner.token_stream(text),
            previous: None,
            last: String::new(),
            token: Token::default(),
        }
    }
}

/// The last word read: where it is, and whether it is common.
#[derive(Clone, Copy)]
struct Previous {
    position: usize,
    offset_from: usize,
    common: bool,
}

pub struct PairStream<S> {
    words: S,
    previous: Option<Previous>,
    /// The last word's text (a buffer reused: nothing is allocated per word).
    last: String,
    token: Token,
}

impl<S: TokenStream> TokenStream for PairStream<S> {
    fn advance(&mut self) -> bool {
        while self.words.advance() {
            let word = self.words.token();
            let common = is_common(&word.text);
            // Only words next to each other (a word too long to index leaves a gap).
            let first = self
                .previous
                .filter(|first| (first.common || common) && word.position == first.position + 1);
            if let Some(first) = first {
                self.token.text.clear();
                self.token.text.push_str(&self.last);
                self.token.text.push(' ');
                self.token.text.push_str(&word.text);
                self.token.position = first.position;
                self.token.offset_from = first.offset_from;
                self.token.offset_to = word.offset_to;
                self.token.position_length = 1;
            }
            self.last.clear();
            self.last.push_str(&word.text);
            self.previous = Some(Previous {
                position: word.position,
                offset_from: word.offset_from,
                common,
            });
            if first.is_some() {
                return true;
            }
        }
        false
    }

    fn token(&self) -> &Token {
        &self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, usize)> {
        let mut analyzer = crate::index::pair_analyzer();
        let mut stream = analyzer.token_stream(text);
        let mut out = vec![];
        while let Some(token) = stream.next() {
            out.push((token.text.clone(), token.position));
        }
        out
    }

    #[test]
    fn pairs_have_a_common_word_and_keep_the_first_words_position() {
        assert_eq!(
            pairs("Out of the Blue house party, with Zoë"),
            vec![
                ("out of".to_owned(), 0),
                ("of the".to_owned(), 1),
                ("the blue".to_owned(), 2),
                ("party with".to_owned(), 5),
                ("with zoe".to_owned(), 6),
            ]
        );
        // A word too long to index breaks the pair.
        let long = "x".repeat(80);
        assert_eq!(pairs(&format!("of {long} the")), vec![]);
    }

    #[test]
    fn a_phrase_is_pairs_only_when_each_pair_has_a_common_word() {
        let words = |s: &str| crate::index::words(s);
        assert_eq!(phrase_pairs(&words("of the")), Some(vec!["of the".into()]));
        assert_eq!(
            phrase_pairs(&words("end of the year")),
            Some(vec!["end of".into(), "of the".into(), "the year".into()])
        );
        assert_eq!(phrase_pairs(&words("blue house party")), None);
        assert_eq!(phrase_pairs(&words("the blue house")), None);
        assert_eq!(phrase_pairs(&words("the")), None);
    }
}
