//! The condition expression language, shared by rule `match:` strings and
//! `secmon archive search --where`:
//!
//! ```text
//! event = auth.login_failed and fields.ip in 10.0.0.0/8
//!   and not (fields.reason = "x" or fields.attempt >= 3) and message ~ "exceeds maximum"
//! ```
//!
//! A hand-written tokenizer and recursive-descent parser (precedence
//! `not` > `and` > `or`) that builds [`Condition`] nodes directly. Errors carry
//! the character position (0-based) and say what was expected. This module
//! does not evaluate anything.

use secmon_core::{FieldPath, Str};

use super::{CmpOp, Condition, Literal, build_regex, parse_net};

/// A syntax or compile error in an expression.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("at position {pos}: {message}")]
pub struct ExprError {
    /// Character (not byte) offset into the expression, 0-based.
    pub pos: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// Bare word: letters, digits and `._-:@/`.
    Word(String),
    Quoted(String),
    Op(&'static str),
    LParen,
    RParen,
    LBrack,
    RBrack,
    Comma,
    End,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("`{}`", secmon_core::time::truncate(w)),
            Tok::Quoted(_) => "a quoted string".into(),
            Tok::Op(o) => format!("`{o}`"),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::LBrack => "`[`".into(),
            Tok::RBrack => "`]`".into(),
            Tok::Comma => "`,`".into(),
            Tok::End => "end of input".into(),
        }
    }
}

fn is_word_byte(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '@' | '/')
}

/// (token, char position)
fn tokenize(src: &str) -> Result<Vec<(Tok, usize)>, ExprError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |pos, message: String| ExprError { pos, message };
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let two = |n: char| chars.get(i + 1) == Some(&n);
        let tok = match c {
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '[' => Tok::LBrack,
            ']' => Tok::RBrack,
            ',' => Tok::Comma,
            '=' if two('=') => {
                i += 1;
                Tok::Op("=")
            }
            '=' => Tok::Op("="),
            '!' if two('=') => {
                i += 1;
                Tok::Op("!=")
            }
            '!' if two('~') => {
                i += 1;
                Tok::Op("!~")
            }
            '<' if two('=') => {
                i += 1;
                Tok::Op("<=")
            }
            '<' => Tok::Op("<"),
            '>' if two('=') => {
                i += 1;
                Tok::Op(">=")
            }
            '>' => Tok::Op(">"),
            '~' => Tok::Op("~"),
            '"' | '\'' => {
                let q = c;
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(err(
                                start,
                                format!("unterminated string (expected closing {q})"),
                            ));
                        }
                        Some(&ch) if ch == q => break,
                        Some('\\') => {
                            let e = chars.get(i + 1).copied();
                            let c = match e {
                                Some('n') => '\n',
                                Some('t') => '\t',
                                Some('r') => '\r',
                                Some('0') => '\0',
                                Some('\\') => '\\',
                                Some('"') => '"',
                                Some('\'') => '\'',
                                // Kept verbatim so regexes read naturally: '\d+\s'.
                                Some(other) => {
                                    s.push('\\');
                                    other
                                }
                                None => return Err(err(i, "unterminated escape".into())),
                            };
                            s.push(c);
                            i += 1;
                        }
                        Some(&ch) => s.push(ch),
                    }
                    i += 1;
                }
                Tok::Quoted(s)
            }
            c if is_word_byte(c) => {
                while i + 1 < chars.len() && is_word_byte(chars[i + 1]) {
                    i += 1;
                }
                Tok::Word(chars[start..=i].iter().collect())
            }
            other => return Err(err(i, format!("unexpected character {other:?}"))),
        };
        i += 1;
        out.push((tok, start));
    }
    out.push((Tok::End, chars.len()));
    Ok(out)
}

/// Parses and compiles a condition expression.
pub fn parse_expr(src: &str) -> Result<Condition, ExprError> {
    let toks = tokenize(src)?;
    let mut p = Parser {
        toks,
        i: 0,
        depth: 0,
    };
    let c = p.or()?;
    let (t, pos) = p.peek();
    if *t != Tok::End {
        return Err(ExprError {
            pos,
            message: format!(
                "expected `and`, `or` or end of input, found {}",
                t.describe()
            ),
        });
    }
    Ok(c)
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    i: usize,
    depth: usize,
}

/// Nesting limit so deeply nested input cannot overflow the stack.
const MAX_DEPTH: usize = 64;

fn kw(t: &Tok, k: &str) -> bool {
    matches!(t, Tok::Word(w) if w.eq_ignore_ascii_case(k))
}

impl Parser {
    fn peek(&self) -> (&Tok, usize) {
        let (t, p) = &self.toks[self.i.min(self.toks.len() - 1)];
        (t, *p)
    }
    fn next(&mut self) -> (Tok, usize) {
        let r = self.toks[self.i.min(self.toks.len() - 1)].clone();
        if self.i < self.toks.len() - 1 {
            self.i += 1;
        }
        r
    }
    fn fail<T>(&self, expected: &str) -> Result<T, ExprError> {
        let (t, pos) = self.peek();
        Err(ExprError {
            pos,
            message: format!("expected {expected}, found {}", t.describe()),
        })
    }

    fn or(&mut self) -> Result<Condition, ExprError> {
        let mut items = vec![self.and()?];
        while kw(self.peek().0, "or") {
            self.next();
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Condition::True)
        } else {
            Condition::Or(items)
        })
    }

    fn and(&mut self) -> Result<Condition, ExprError> {
        let mut items = vec![self.unary()?];
        while kw(self.peek().0, "and") {
            self.next();
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Condition::True)
        } else {
            Condition::And(items)
        })
    }

    fn unary(&mut self) -> Result<Condition, ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.fail("less nesting (limit 64)");
        }
        let r = if kw(self.peek().0, "not") {
            self.next();
            self.unary().map(|c| Condition::Not(Box::new(c)))
        } else {
            self.primary()
        };
        self.depth -= 1;
        r
    }

    fn primary(&mut self) -> Result<Condition, ExprError> {
        let (t, pos) = self.peek();
        match t {
            Tok::LParen => {
                self.next();
                let c = self.or()?;
                if *self.peek().0 != Tok::RParen {
                    return self.fail("`)`");
                }
                self.next();
                Ok(c)
            }
            Tok::Word(w)
                if w.eq_ignore_ascii_case("exists")
                    && self
                        .toks
                        .get(self.i + 1)
                        .is_some_and(|t| t.0 == Tok::LParen) =>
            {
                self.next();
                self.next();
                let path = self.path()?;
                if *self.peek().0 != Tok::RParen {
                    return self.fail("`)`");
                }
                self.next();
                Ok(Condition::Exists(path))
            }
            Tok::Word(_) => {
                let path = self.path()?;
                self.comparison(path)
            }
            _ => {
                let _ = pos;
                self.fail("a field path, `not`, `exists(` or `(`")
            }
        }
    }

    fn path(&mut self) -> Result<Str, ExprError> {
        let (t, pos) = self.next();
        match t {
            Tok::Word(w) => match FieldPath::parse(&w) {
                Ok(p) => Ok(Str::from(p.as_str())),
                Err(e) => Err(ExprError {
                    pos,
                    message: e.to_string(),
                }),
            },
            other => Err(ExprError {
                pos,
                message: format!("expected a field path, found {}", other.describe()),
            }),
        }
    }

    fn comparison(&mut self, path: Str) -> Result<Condition, ExprError> {
        let (t, pos) = self.next();
        let op: &str = match &t {
            Tok::Op(o) => o,
            Tok::Word(w) if w.eq_ignore_ascii_case("in") => "in",
            Tok::Word(w) if w.eq_ignore_ascii_case("not") && kw(self.peek().0, "in") => {
                self.next();
                "not in"
            }
            other => {
                return Err(ExprError {
                    pos,
                    message: format!(
                        "expected an operator (=, !=, <, <=, >, >=, ~, !~, in, not in), found {}",
                        other.describe()
                    ),
                });
            }
        };
        match op {
            "in" | "not in" => {
                let c = self.in_rhs(path)?;
                Ok(if op == "in" {
                    c
                } else {
                    Condition::Not(Box::new(c))
                })
            }
            "~" | "!~" => {
                let (vt, vpos) = self.next();
                let pat = match vt {
                    Tok::Quoted(s) | Tok::Word(s) => s,
                    other => {
                        return Err(ExprError {
                            pos: vpos,
                            message: format!("expected a regex, found {}", other.describe()),
                        });
                    }
                };
                let re = build_regex(&pat).map_err(|m| ExprError {
                    pos: vpos,
                    message: m,
                })?;
                let c = Condition::Regex(path, Box::new(re));
                Ok(if op == "~" {
                    c
                } else {
                    Condition::Not(Box::new(c))
                })
            }
            _ => {
                let lit = self.literal()?;
                Ok(match op {
                    "=" => Condition::Eq(path, lit),
                    "!=" => Condition::Not(Box::new(Condition::Eq(path, lit))),
                    "<" => Condition::Cmp(path, CmpOp::Lt, lit),
                    "<=" => Condition::Cmp(path, CmpOp::Le, lit),
                    ">" => Condition::Cmp(path, CmpOp::Gt, lit),
                    _ => Condition::Cmp(path, CmpOp::Ge, lit),
                })
            }
        }
    }

    fn literal(&mut self) -> Result<Literal, ExprError> {
        let (t, pos) = self.next();
        match t {
            Tok::Quoted(s) => Ok(Literal::Str(Str::from(s))),
            Tok::Word(w) => Ok(word_literal(&w)),
            other => Err(ExprError {
                pos,
                message: format!("expected a value, found {}", other.describe()),
            }),
        }
    }

    /// `[v, ...]` (a set, or a CIDR list when every item is a CIDR) or a single CIDR/address.
    fn in_rhs(&mut self, path: Str) -> Result<Condition, ExprError> {
        let (t, pos) = self.peek();
        match t {
            Tok::LBrack => {
                self.next();
                let mut items: Vec<(Literal, bool, usize)> = Vec::new();
                if *self.peek().0 != Tok::RBrack {
                    loop {
                        let (t, p) = self.peek();
                        let quoted = matches!(t, Tok::Quoted(_));
                        let lit = self.literal()?;
                        items.push((lit, quoted, p));
                        match self.peek().0 {
                            Tok::Comma => {
                                self.next();
                            }
                            Tok::RBrack => break,
                            _ => return self.fail("`,` or `]`"),
                        }
                    }
                }
                self.next();
                let cidrs = !items.is_empty()
                    && items.iter().all(|(l, quoted, _)| {
                        !quoted && l.text().contains('/') && parse_net(l.text()).is_ok()
                    });
                if cidrs {
                    let nets = items
                        .iter()
                        .filter_map(|(l, _, _)| parse_net(l.text()).ok())
                        .collect();
                    Ok(Condition::Cidr(path, nets))
                } else {
                    Ok(Condition::In(
                        path,
                        items.into_iter().map(|(l, _, _)| l).collect(),
                    ))
                }
            }
            Tok::Word(w) => {
                let net = parse_net(w).map_err(|m| ExprError {
                    pos,
                    message: format!("expected `[` or a CIDR after `in`: {m}"),
                })?;
                self.next();
                Ok(Condition::Cidr(path, vec![net]))
            }
            _ => self.fail("`[` or a CIDR after `in`"),
        }
    }
}

/// A bare word is a number when it reads as one (`3`, `-2.5`, `1e3`), else text.
pub(crate) fn word_literal(w: &str) -> Literal {
    let numeric_start = w.as_bytes().first().is_some_and(|b| b.is_ascii_digit())
        || (w.len() > 1
            && (w.starts_with('-') || w.starts_with('+'))
            && w.as_bytes()[1].is_ascii_digit());
    if numeric_start
        && let Ok(n) = w.parse::<f64>()
        && n.is_finite()
    {
        return Literal::Num(n, Str::from(w));
    }
    Literal::Str(Str::from(w))
}
