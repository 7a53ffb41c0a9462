//! Tokenizer and s-expression reader for `.ct` text, with 1-based positions.
//!
//! The result is a flat pre-order arena (like `ast::Program`), built with an
//! explicit stack, so a million nested parentheses cost memory, not stack.
//! Every malformed input becomes a `Diagnostic` at the offending character.

use crate::ast::Pos;
use crate::diag::Diagnostic;

/// An atom as written. Numbers keep their classification; names, keywords
/// (`:weak`) and class names are all `Sym`.
#[derive(Clone, Debug, PartialEq)]
pub enum Atom {
    Sym(String),
    Int(i64),
    Dec(f64),
    Str(String),
}

/// One s-expression: a list (`atom == None`) or an atom.
#[derive(Clone, Debug)]
pub struct SNode {
    pub atom: Option<Atom>,
    /// Position of the atom's first character or of the list's `(`.
    pub pos: Pos,
    /// Position of a list's `)`; equal to `pos` for atoms.
    pub close: Pos,
    /// One past the last node of this subtree.
    pub end: u32,
}

/// All top-level s-expressions of a file, in pre-order.
#[derive(Clone, Debug, Default)]
pub struct SExprs {
    pub nodes: Vec<SNode>,
    /// The position just past the last character.
    pub eof: Pos,
}

impl SExprs {
    pub fn end(&self, i: u32) -> u32 {
        self.nodes[i as usize].end
    }

    pub fn node(&self, i: u32) -> &SNode {
        &self.nodes[i as usize]
    }

    pub fn is_list(&self, i: u32) -> bool {
        self.nodes[i as usize].atom.is_none()
    }

    pub fn sym(&self, i: u32) -> Option<&str> {
        match &self.nodes[i as usize].atom {
            Some(Atom::Sym(s)) => Some(s),
            _ => None,
        }
    }

    /// The direct children of list `i` (or the top-level forms for `i == u32::MAX`).
    pub fn children(&self, i: u32) -> impl Iterator<Item = u32> + '_ {
        let (mut next, end) = if i == u32::MAX {
            (0, self.nodes.len() as u32)
        } else {
            (i + 1, self.end(i))
        };
        std::iter::from_fn(move || {
            if next >= end {
                return None;
            }
            let id = next;
            next = self.end(id);
            Some(id)
        })
    }

    /// How the atom at `i` is written back, for messages.
    pub fn describe(&self, i: u32) -> String {
        match &self.nodes[i as usize].atom {
            None => "a list".to_string(),
            Some(Atom::Sym(s)) => format!("`{s}`"),
            Some(Atom::Int(n)) => format!("the integer `{n}`"),
            Some(Atom::Dec(d)) => format!("the number `{d}`"),
            Some(Atom::Str(s)) => format!("the string {:?}", s),
        }
    }
}

fn is_atom_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')
}

/// A position in the text; works on bytes, decoding a char only where the
/// text is not ASCII (which is only allowed in comments).
struct Cursor<'a> {
    text: &'a str,
    at: usize,
    line: u32,
    col: u32,
}

impl Cursor<'_> {
    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }

    fn peek(&self) -> Option<char> {
        let b = *self.text.as_bytes().get(self.at)?;
        if b < 0x80 {
            Some(char::from(b))
        } else {
            self.text
                .get(self.at..)
                .and_then(|rest| rest.chars().next())
        }
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += c.len_utf8();
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.col = 1;
        } else {
            self.col = self.col.saturating_add(1);
        }
        Some(c)
    }
}

/// Reads `text` into s-expressions. `file` is used only in diagnostics.
pub fn read(file: &str, text: &str) -> Result<SExprs, Diagnostic> {
    let err = |p: Pos, msg: String| Diagnostic::new(file, p.line, p.col, msg);
    let mut cur = Cursor {
        text,
        at: 0,
        line: 1,
        col: 1,
    };
    let mut out = SExprs::default();
    // Indices of the lists that are open, innermost last.
    let mut open: Vec<u32> = Vec::new();
    while let Some(c) = cur.peek() {
        let p = cur.pos();
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                cur.bump();
            }
            ';' => {
                while let Some(c) = cur.peek() {
                    if c == '\n' {
                        break;
                    }
                    cur.bump();
                }
            }
            '(' => {
                cur.bump();
                open.push(out.nodes.len() as u32);
                out.nodes.push(SNode {
                    atom: None,
                    pos: p,
                    close: p,
                    end: 0,
                });
            }
            ')' => {
                cur.bump();
                let Some(i) = open.pop() else {
                    return Err(err(
                        p,
                        "unmatched `)`; remove it or add the missing `(` before it".into(),
                    ));
                };
                let end = out.nodes.len() as u32;
                let node = &mut out.nodes[i as usize];
                node.end = end;
                node.close = p;
            }
            '"' => {
                let s = read_string(&mut cur, file)?;
                push_atom(&mut out, Atom::Str(s), p);
            }
            c if is_atom_char(c) => {
                let start = cur.at;
                while cur.peek().is_some_and(is_atom_char) {
                    cur.bump();
                }
                let tok = text.get(start..cur.at).unwrap_or("");
                let atom = classify(tok).map_err(|m| err(p, m))?;
                push_atom(&mut out, atom, p);
            }
            c => {
                let shown = if c.is_ascii_graphic() {
                    format!("`{c}`")
                } else {
                    format!("{c:?}")
                };
                return Err(err(
                    p,
                    format!(
                        "unexpected character {shown}; outside comments a .ct file holds only \
                         `(`, `)`, atoms like `sleep`, `:weak` or `0.5`, \"strings\" and `;` comments"
                    ),
                ));
            }
        }
    }
    if let Some(&i) = open.last() {
        let p = out.nodes[i as usize].pos;
        return Err(err(
            p,
            "this `(` is never closed; add the matching `)`".into(),
        ));
    }
    out.eof = cur.pos();
    Ok(out)
}

fn push_atom(out: &mut SExprs, atom: Atom, p: Pos) {
    let end = out.nodes.len() as u32 + 1;
    out.nodes.push(SNode {
        atom: Some(atom),
        pos: p,
        close: p,
        end,
    });
}

/// Reads a string literal; the cursor is on the opening quote.
fn read_string(cur: &mut Cursor<'_>, file: &str) -> Result<String, Diagnostic> {
    let start = cur.pos();
    cur.bump();
    let mut s = String::new();
    loop {
        let p = cur.pos();
        match cur.peek() {
            None | Some('\n') | Some('\r') => {
                return Err(Diagnostic::new(
                    file,
                    start.line,
                    start.col,
                    "unterminated string; close it with `\"` on the same line",
                ));
            }
            Some('"') => {
                cur.bump();
                return Ok(s);
            }
            Some('\\') => {
                cur.bump();
                match cur.peek() {
                    Some(c @ ('\\' | '"')) => {
                        cur.bump();
                        s.push(c);
                    }
                    other => {
                        let shown = match other {
                            Some(c) if c.is_ascii_graphic() => format!("`\\{c}`"),
                            Some(c) => format!("`\\` followed by {c:?}"),
                            None => "`\\` at the end of the file".to_string(),
                        };
                        return Err(Diagnostic::new(
                            file,
                            p.line,
                            p.col,
                            format!(
                                "unknown escape {shown} in a string; only `\\\\` and `\\\"` \
                                 are allowed"
                            ),
                        ));
                    }
                }
            }
            Some(c) if (' '..='~').contains(&c) => {
                cur.bump();
                s.push(c);
            }
            Some(c) => {
                return Err(Diagnostic::new(
                    file,
                    p.line,
                    p.col,
                    format!(
                        "strings may hold only printable ASCII characters, found {c:?}; \
                         remove it or spell it out in ASCII"
                    ),
                ));
            }
        }
    }
}

/// Classifies an atom token: integer, decimal or symbol.
fn classify(tok: &str) -> Result<Atom, String> {
    let digits = tok.strip_prefix('-').unwrap_or(tok);
    if digits.starts_with(|c: char| c.is_ascii_digit()) {
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if all_digits(digits) {
            return tok.parse::<i64>().map(Atom::Int).map_err(|_| {
                format!(
                    "integer `{tok}` does not fit in 64 bits; use a value between \
                     -9223372036854775808 and 9223372036854775807"
                )
            });
        }
        if let Some((a, b)) = digits.split_once('.')
            && all_digits(a)
            && all_digits(b)
        {
            return match tok.parse::<f64>() {
                Ok(x) if x.is_finite() => Ok(Atom::Dec(x)),
                _ => Err(format!("number `{tok}` is too large; use a smaller time")),
            };
        }
        return Err(format!(
            "malformed number `{tok}`; write integers like `3` or `-2` and decimals like \
             `0.5` (digits on both sides of the point, no exponent)"
        ));
    }
    let body = tok.strip_prefix(':').unwrap_or(tok);
    let mut chars = body.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(Atom::Sym(tok.to_string()))
    } else {
        Err(format!(
            "malformed atom `{tok}`; names and form names start with a letter and use only \
             letters, digits, `_` and `-` (keywords add a leading `:`)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn atoms(text: &str) -> Vec<Option<Atom>> {
        read("t", text)
            .unwrap()
            .nodes
            .into_iter()
            .map(|n| n.atom)
            .collect()
    }

    #[test]
    fn reads_every_atom_class() {
        assert_eq!(
            atoms("(sleep -1 0.5 :weak \"a\\\"b\\\\\")"),
            vec![
                None,
                Some(Atom::Sym("sleep".into())),
                Some(Atom::Int(-1)),
                Some(Atom::Dec(0.5)),
                Some(Atom::Sym(":weak".into())),
                Some(Atom::Str("a\"b\\".into())),
            ]
        );
    }

    #[test]
    fn positions_count_chars_and_lines() {
        let s = read("t", "; é comment\n  (a\n\t b)").unwrap();
        assert_eq!(s.nodes[0].pos, Pos { line: 2, col: 3 });
        assert_eq!(s.nodes[2].pos, Pos { line: 3, col: 3 });
        assert_eq!(s.nodes[0].close, Pos { line: 3, col: 4 });
    }

    #[test]
    fn malformed_numbers_and_atoms_are_rejected_at_their_start() {
        for (text, col) in [
            ("(a 1.)", 4),
            ("(a 1e5)", 4),
            ("(a -x.y)", 4),
            ("(a b.c)", 4),
        ] {
            let e = read("t", text).unwrap_err();
            assert_eq!((e.line, e.col), (1, col), "{text}: {e}");
        }
        assert!(
            read("t", "(a 99999999999999999999)")
                .unwrap_err()
                .message
                .contains("64 bits")
        );
    }
}
