//! The query language people already know from web search:
//!
//! * words: every one must match (in the title or the text);
//! * `"exact phrase"`: the words next to each other, in that order;
//! * `-word`, `-"a phrase"`: results must not contain it;
//! * `a OR b`: either (binds tighter than the implicit AND: `x a OR b` is x and (a or b));
//! * the last word, while it is being typed (no space after it yet), also matches as a
//!   prefix: `colla` finds "collaboration".
//!
//! Words are compared as the index stores them: lower-cased, accents folded.

use crate::index::words;

/// One thing to match: a word or a phrase (one word that the analyzer splits, such as
/// `e-mail`, is a phrase too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub words: Vec<String>,
    /// The last word also matches as a prefix.
    pub prefix: bool,
}

/// A parsed query: every group must match (a group matches when any of its items does),
/// no excluded item may.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parsed {
    pub groups: Vec<Vec<Item>>,
    pub excluded: Vec<Item>,
}

impl Parsed {
    /// The words of the positive items (what snippets highlight).
    pub fn highlighted_words(&self) -> impl Iterator<Item = &Item> {
        self.groups.iter().flatten()
    }
}

/// Why a query cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("must contain at least one word to look for")]
    Empty,
    #[error("must be at most {0} characters")]
    TooLong(usize),
    #[error("must have at most {0} words and phrases")]
    TooManyTerms(usize),
}

pub const MAX_QUERY_CHARS: usize = 500;
pub const MAX_TERMS: usize = 32;
/// A word being typed matches as a prefix once it has this many characters.
pub const MIN_PREFIX_CHARS: usize = 2;

#[derive(Debug)]
enum Token {
    Term {
        text: String,
        quoted: bool,
        negated: bool,
    },
    Or,
}

fn tokenize(raw: &str) -> Vec<Token> {
    let mut out = vec![];
    let mut chars = raw.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut negated = false;
        if c == '-' {
            chars.next();
            negated = true;
        }
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut text = String::new();
            for c in chars.by_ref() {
                if c == '"' {
                    break;
                }
                text.push(c);
            }
            out.push(Token::Term {
                text,
                quoted: true,
                negated,
            });
            continue;
        }
        let mut text = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || c == '"' {
                break;
            }
            text.push(c);
            chars.next();
        }
        if text == "OR" && !negated {
            out.push(Token::Or);
        } else if !text.is_empty() {
            out.push(Token::Term {
                text,
                quoted: false,
                negated,
            });
        }
    }
    out
}

/// Parses `raw`. The last bare word matches as a prefix when `raw` does not end in
/// whitespace (the person is still typing it).
pub fn parse(raw: &str) -> Result<Parsed, QueryError> {
    if raw.chars().count() > MAX_QUERY_CHARS {
        return Err(QueryError::TooLong(MAX_QUERY_CHARS));
    }
    let typing = !raw.ends_with(char::is_whitespace);
    let tokens = tokenize(raw);
    let last_term = tokens.iter().rposition(|t| matches!(t, Token::Term { .. }));
    let mut parsed = Parsed::default();
    let mut join_next = false;
    for (i, token) in tokens.iter().enumerate() {
        let Token::Term {
            text,
            quoted,
            negated,
        } = token
        else {
            // `OR` joins the next item to the previous group (a leading or doubled OR is a
            // no-op).
            join_next = !parsed.groups.is_empty();
            continue;
        };
        let words = words(text);
        if words.is_empty() {
            join_next = false;
            continue;
        }
        let prefix = typing
            && Some(i) == last_term
            && !quoted
            && !negated
            && words
                .last()
                .is_some_and(|w| w.chars().count() >= MIN_PREFIX_CHARS);
        let item = Item { words, prefix };
        if *negated {
            parsed.excluded.push(item);
        } else if join_next {
            parsed
                .groups
                .last_mut()
                .expect("a group to join")
                .push(item);
        } else {
            parsed.groups.push(vec![item]);
        }
        join_next = false;
    }
    if parsed.groups.is_empty() {
        return Err(QueryError::Empty);
    }
    let terms = parsed.groups.iter().map(Vec::len).sum::<usize>() + parsed.excluded.len();
    if terms > MAX_TERMS {
        return Err(QueryError::TooManyTerms(MAX_TERMS));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(words: &[&str], prefix: bool) -> Item {
        Item {
            words: words.iter().map(|w| (*w).to_owned()).collect(),
            prefix,
        }
    }

    #[test]
    fn words_phrases_exclusions_and_or() {
        let parsed = parse("Café \"big  Plan\" -draft a OR b ").unwrap();
        assert_eq!(
            parsed.groups,
            vec![
                vec![item(&["cafe"], false)],
                vec![item(&["big", "plan"], false)],
                vec![item(&["a"], false), item(&["b"], false)],
            ]
        );
        assert_eq!(parsed.excluded, vec![item(&["draft"], false)]);
    }

    #[test]
    fn the_word_being_typed_is_a_prefix() {
        assert_eq!(
            parse("quarterly colla").unwrap().groups[1],
            vec![item(&["colla"], true)]
        );
        assert!(!parse("quarterly colla ").unwrap().groups[1][0].prefix);
        assert!(!parse("\"colla\"").unwrap().groups[0][0].prefix);
        // One letter is too short to expand.
        assert!(!parse("a").unwrap().groups[0][0].prefix);
        // A split word keeps its phrase, the last part a prefix.
        assert_eq!(
            parse("e-ma").unwrap().groups[0],
            vec![item(&["e", "ma"], true)]
        );
    }

    #[test]
    fn nothing_to_look_for_is_an_error() {
        assert_eq!(parse(""), Err(QueryError::Empty));
        assert_eq!(parse("  -x  "), Err(QueryError::Empty));
        assert_eq!(parse("OR ... \"\""), Err(QueryError::Empty));
        assert_eq!(
            parse(&"a".repeat(MAX_QUERY_CHARS + 1)),
            Err(QueryError::TooLong(MAX_QUERY_CHARS))
        );
        assert_eq!(
            parse(&"w ".repeat(MAX_TERMS + 1)),
            Err(QueryError::TooManyTerms(MAX_TERMS))
        );
        // Unbalanced quotes end at the end.
        assert_eq!(
            parse("\"open phrase").unwrap().groups[0],
            vec![item(&["open", "phrase"], false)]
        );
    }
}
