//! Metric expressions for the `metric` detector:
//! `rate(cache.value.rejection.count[5m]) > 2`, `p95(redis.scan.duration.ms[15m]) > 100`,
//! `redis.memory.mb > 90 or redis.memory.percent > 90`.
//!
//! Parsing produces a tree of comparisons joined by `and`/`or`, each comparing
//! one function of one metric against a number. Resolving metric names to
//! store indices and checking kinds happens here too ([`MetricExpr::resolve`]);
//! evaluation over the stores lives in [`crate::metrics`].

use secmon_core::{Dur, Str};

use crate::config::MetricKind;

/// A parse error with its character position.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("at position {pos}: {message}")]
pub struct MetricExprError {
    pub pos: usize,
    pub message: String,
}

/// What is computed from a metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Func {
    /// Bare name: gauge/histogram last value, counter running total.
    Current,
    /// Counter increase per second over the window.
    Rate,
    /// Counter increase over the window.
    Increase,
    /// q in [0, 1]; histograms and gauges.
    Quantile(f64),
    Avg,
    Min,
    Max,
    /// Number of observations (counter: number of increments).
    Count,
    /// Sum of observations (counter: increase).
    Sum,
}

impl Func {
    fn name(self) -> String {
        match self {
            Func::Current => "value".into(),
            Func::Rate => "rate".into(),
            Func::Increase => "increase".into(),
            Func::Quantile(q) => format!("quantile({q})"),
            Func::Avg => "avg".into(),
            Func::Min => "min".into(),
            Func::Max => "max".into(),
            Func::Count => "count".into(),
            Func::Sum => "sum".into(),
        }
    }

    /// Whether the function applies to a metric of `kind`.
    pub fn accepts(self, kind: MetricKind) -> bool {
        match self {
            Func::Rate | Func::Increase => matches!(kind, MetricKind::Counter | MetricKind::UpDown),
            Func::Quantile(_) | Func::Avg | Func::Min | Func::Max => {
                matches!(kind, MetricKind::Gauge | MetricKind::Histogram)
            }
            Func::Current | Func::Count | Func::Sum => true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl CmpOp {
    pub fn holds(self, l: f64, r: f64) -> bool {
        match self {
            CmpOp::Gt => l > r,
            CmpOp::Ge => l >= r,
            CmpOp::Lt => l < r,
            CmpOp::Le => l <= r,
            CmpOp::Eq => l == r,
            CmpOp::Ne => l != r,
        }
    }
}

/// One `func(metric[window]) op number`.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub func: Func,
    pub metric: Str,
    /// Index into the ruleset's metric list, set by [`MetricExpr::resolve`].
    pub metric_idx: usize,
    /// Zero for [`Func::Current`].
    pub window: Dur,
    pub op: CmpOp,
    pub threshold: f64,
    /// Character position of the metric name, for errors.
    pub pos: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MetricExpr {
    Cmp(Comparison),
    And(Vec<MetricExpr>),
    Or(Vec<MetricExpr>),
}

impl MetricExpr {
    /// Every comparison, left to right.
    pub fn comparisons(&self) -> Vec<&Comparison> {
        let mut out = Vec::new();
        fn walk<'a>(e: &'a MetricExpr, out: &mut Vec<&'a Comparison>) {
            match e {
                MetricExpr::Cmp(c) => out.push(c),
                MetricExpr::And(xs) | MetricExpr::Or(xs) => xs.iter().for_each(|x| walk(x, out)),
            }
        }
        walk(self, &mut out);
        out
    }

    /// Binds metric names to indices in `metrics` (name, kind) and checks
    /// that each function fits its metric's kind. Returns every problem.
    pub fn resolve(&mut self, metrics: &[(Str, MetricKind)]) -> Vec<String> {
        let mut errs = Vec::new();
        fn walk(e: &mut MetricExpr, metrics: &[(Str, MetricKind)], errs: &mut Vec<String>) {
            match e {
                MetricExpr::Cmp(c) => match metrics.iter().position(|(n, _)| *n == c.metric) {
                    None => errs.push(format!(
                        "unknown metric `{}` (declare it under `metrics:`)",
                        c.metric
                    )),
                    Some(i) => {
                        c.metric_idx = i;
                        let kind = metrics[i].1;
                        if !c.func.accepts(kind) {
                            errs.push(format!(
                                "{} does not apply to {} `{}` ({})",
                                c.func.name(),
                                kind.as_str(),
                                c.metric,
                                match c.func {
                                    Func::Rate | Func::Increase =>
                                        "rate and increase need a counter or updown",
                                    _ => "quantiles, avg, min and max need a histogram or gauge",
                                }
                            ));
                        }
                    }
                },
                MetricExpr::And(xs) | MetricExpr::Or(xs) => {
                    xs.iter_mut().for_each(|x| walk(x, metrics, errs))
                }
            }
        }
        walk(self, metrics, &mut errs);
        errs
    }

    /// The longest window used.
    pub fn max_window(&self) -> Dur {
        self.comparisons()
            .iter()
            .map(|c| c.window)
            .max()
            .unwrap_or(Dur::ZERO)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Num(f64),
    Dur(Dur),
    Op(CmpOp),
    LParen,
    RParen,
    LBrack,
    RBrack,
    Comma,
    Percent,
    End,
}

fn tokenize(src: &str) -> Result<Vec<(Tok, usize)>, MetricExprError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut in_brackets = false;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let next_is = |n: char| chars.get(i + 1) == Some(&n);
        let tok = match c {
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '[' => {
                in_brackets = true;
                Tok::LBrack
            }
            ']' => {
                in_brackets = false;
                Tok::RBrack
            }
            ',' => Tok::Comma,
            '%' => Tok::Percent,
            '>' | '<' | '=' | '!' => {
                let op = match (c, next_is('=')) {
                    ('>', true) => CmpOp::Ge,
                    ('>', false) => CmpOp::Gt,
                    ('<', true) => CmpOp::Le,
                    ('<', false) => CmpOp::Lt,
                    ('=', _) => CmpOp::Eq,
                    ('!', true) => CmpOp::Ne,
                    _ => {
                        return Err(MetricExprError {
                            pos: i,
                            message: "expected `!=`".into(),
                        });
                    }
                };
                if next_is('=') {
                    i += 1;
                }
                Tok::Op(op)
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' => {
                while i + 1 < chars.len() && {
                    let n = chars[i + 1];
                    n.is_ascii_alphanumeric() || n == '_' || n == '.' || n == '-'
                } {
                    i += 1;
                }
                let w: String = chars[start..=i].iter().collect();
                if in_brackets {
                    match Dur::parse(&w) {
                        Ok(d) => Tok::Dur(d),
                        Err(e) => {
                            return Err(MetricExprError {
                                pos: start,
                                message: e.to_string(),
                            });
                        }
                    }
                } else if w.as_bytes()[0].is_ascii_digit()
                    || w.starts_with('-')
                    || w.starts_with('.')
                {
                    match w.parse::<f64>() {
                        Ok(n) if n.is_finite() => Tok::Num(n),
                        _ => {
                            return Err(MetricExprError {
                                pos: start,
                                message: format!("invalid number `{w}`"),
                            });
                        }
                    }
                } else {
                    Tok::Ident(w)
                }
            }
            other => {
                return Err(MetricExprError {
                    pos: i,
                    message: format!("unexpected character {other:?}"),
                });
            }
        };
        i += 1;
        out.push((tok, start));
    }
    out.push((Tok::End, chars.len()));
    Ok(out)
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(w) => format!("`{}`", secmon_core::time::truncate(w)),
        Tok::Num(n) => format!("number {n}"),
        Tok::Dur(d) => format!("duration {d}"),
        Tok::Op(_) => "a comparison".into(),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::LBrack => "`[`".into(),
        Tok::RBrack => "`]`".into(),
        Tok::Comma => "`,`".into(),
        Tok::Percent => "`%`".into(),
        Tok::End => "end of input".into(),
    }
}

/// Parses a metric expression. Metric names are not resolved yet.
pub fn parse_metric_expr(src: &str) -> Result<MetricExpr, MetricExprError> {
    let toks = tokenize(src)?;
    let mut p = P {
        toks,
        i: 0,
        depth: 0,
    };
    let e = p.or()?;
    if p.peek().0 != Tok::End {
        return p.fail("`and`, `or` or end of input");
    }
    Ok(e)
}

struct P {
    toks: Vec<(Tok, usize)>,
    i: usize,
    depth: usize,
}

fn is_kw(t: &Tok, k: &str) -> bool {
    matches!(t, Tok::Ident(w) if w.eq_ignore_ascii_case(k))
}

impl P {
    fn peek(&self) -> (Tok, usize) {
        self.toks[self.i.min(self.toks.len() - 1)].clone()
    }
    fn next(&mut self) -> (Tok, usize) {
        let r = self.peek();
        if self.i < self.toks.len() - 1 {
            self.i += 1;
        }
        r
    }
    fn fail<T>(&self, expected: &str) -> Result<T, MetricExprError> {
        let (t, pos) = self.peek();
        Err(MetricExprError {
            pos,
            message: format!("expected {expected}, found {}", describe(&t)),
        })
    }
    fn expect(&mut self, t: Tok, what: &str) -> Result<(), MetricExprError> {
        if self.peek().0 == t {
            self.next();
            Ok(())
        } else {
            self.fail(what)
        }
    }

    fn or(&mut self) -> Result<MetricExpr, MetricExprError> {
        let mut xs = vec![self.and()?];
        while is_kw(&self.peek().0, "or") {
            self.next();
            xs.push(self.and()?);
        }
        Ok(if xs.len() == 1 {
            xs.remove(0)
        } else {
            MetricExpr::Or(xs)
        })
    }

    fn and(&mut self) -> Result<MetricExpr, MetricExprError> {
        let mut xs = vec![self.primary()?];
        while is_kw(&self.peek().0, "and") {
            self.next();
            xs.push(self.primary()?);
        }
        Ok(if xs.len() == 1 {
            xs.remove(0)
        } else {
            MetricExpr::And(xs)
        })
    }

    fn primary(&mut self) -> Result<MetricExpr, MetricExprError> {
        if self.peek().0 == Tok::LParen {
            self.depth += 1;
            if self.depth > 64 {
                return self.fail("less nesting (limit 64)");
            }
            self.next();
            let e = self.or()?;
            self.expect(Tok::RParen, "`)`")?;
            self.depth -= 1;
            return Ok(e);
        }
        self.comparison().map(MetricExpr::Cmp)
    }

    fn comparison(&mut self) -> Result<Comparison, MetricExprError> {
        let (t, pos) = self.next();
        let Tok::Ident(name) = t else {
            return Err(MetricExprError {
                pos,
                message: format!(
                    "expected a metric or a function such as rate(, found {}",
                    describe(&t)
                ),
            });
        };
        let (func, metric, mpos, window) = if self.peek().0 == Tok::LParen {
            self.next();
            let func = match name.to_ascii_lowercase().as_str() {
                "rate" => Func::Rate,
                "increase" => Func::Increase,
                "avg" => Func::Avg,
                "min" => Func::Min,
                "max" => Func::Max,
                "count" => Func::Count,
                "sum" => Func::Sum,
                "p50" => Func::Quantile(0.5),
                "p90" => Func::Quantile(0.9),
                "p95" => Func::Quantile(0.95),
                "p99" => Func::Quantile(0.99),
                "quantile" => {
                    let (t, qpos) = self.next();
                    let q = match t {
                        Tok::Num(q) if (0.0..=1.0).contains(&q) => q,
                        _ => {
                            return Err(MetricExprError {
                                pos: qpos,
                                message: "expected a quantile between 0 and 1".into(),
                            });
                        }
                    };
                    self.expect(Tok::Comma, "`,`")?;
                    Func::Quantile(q)
                }
                _ => {
                    return Err(MetricExprError {
                        pos,
                        message: format!(
                            "unknown function `{}` (expected rate, increase, avg, min, max, count, sum, p50, p90, p95, p99, quantile)",
                            secmon_core::time::truncate(&name)
                        ),
                    });
                }
            };
            let (t, mpos) = self.next();
            let Tok::Ident(metric) = t else {
                return Err(MetricExprError {
                    pos: mpos,
                    message: format!("expected a metric name, found {}", describe(&t)),
                });
            };
            self.expect(Tok::LBrack, "`[` and a window, e.g. x[5m]")?;
            let (t, wpos) = self.next();
            let window = match t {
                Tok::Dur(d) if d.as_millis() > 0 => d,
                _ => {
                    return Err(MetricExprError {
                        pos: wpos,
                        message: "expected a positive window such as 5m".into(),
                    });
                }
            };
            self.expect(Tok::RBrack, "`]`")?;
            self.expect(Tok::RParen, "`)`")?;
            (func, metric, mpos, window)
        } else {
            (Func::Current, name, pos, Dur::ZERO)
        };
        let (t, opos) = self.next();
        let Tok::Op(op) = t else {
            return Err(MetricExprError {
                pos: opos,
                message: format!(
                    "expected a comparison (>, >=, <, <=, ==, !=), found {}",
                    describe(&t)
                ),
            });
        };
        let (t, npos) = self.next();
        let Tok::Num(threshold) = t else {
            return Err(MetricExprError {
                pos: npos,
                message: format!("expected a number, found {}", describe(&t)),
            });
        };
        // `90%` reads as 90: percent metrics are recorded in percent.
        if self.peek().0 == Tok::Percent {
            self.next();
        }
        Ok(Comparison {
            func,
            metric: Str::from(metric),
            metric_idx: usize::MAX,
            window,
            op,
            threshold,
            pos: mpos,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cmp(e: &MetricExpr) -> &Comparison {
        match e {
            MetricExpr::Cmp(c) => c,
            _ => panic!("not a comparison"),
        }
    }

    #[test]
    fn parses_functions() {
        let e = parse_metric_expr("rate(cache.value.rejection.count[5m]) > 2").unwrap();
        let c = cmp(&e);
        assert_eq!(c.func, Func::Rate);
        assert_eq!(c.metric, "cache.value.rejection.count");
        assert_eq!(c.window, Dur::from_mins(5));
        assert_eq!(c.op, CmpOp::Gt);
        assert_eq!(c.threshold, 2.0);
        let e = parse_metric_expr("quantile(0.95, redis.scan.duration.ms[15m]) >= 100").unwrap();
        assert_eq!(cmp(&e).func, Func::Quantile(0.95));
        let e = parse_metric_expr("p99(x[1m]) < 3").unwrap();
        assert_eq!(cmp(&e).func, Func::Quantile(0.99));
        let e = parse_metric_expr("redis.memory.mb > 90 OR redis.memory.percent > 90%").unwrap();
        assert!(matches!(e, MetricExpr::Or(ref xs) if xs.len() == 2));
    }

    #[test]
    fn precedence_and_parens() {
        let e = parse_metric_expr("a > 1 or b > 2 and c > 3").unwrap();
        let MetricExpr::Or(xs) = e else { panic!() };
        assert!(matches!(xs[1], MetricExpr::And(_)));
        let e = parse_metric_expr("(a > 1 or b > 2) and c != 3").unwrap();
        assert!(matches!(e, MetricExpr::And(_)));
    }

    #[test]
    fn errors_have_positions() {
        let e = parse_metric_expr("rate(x[5m]) >").unwrap_err();
        assert_eq!(e.pos, 13);
        assert!(e.message.contains("expected a number"));
        let e = parse_metric_expr("rate(x) > 1").unwrap_err();
        assert_eq!(e.pos, 6);
        let e = parse_metric_expr("foo(x[5m]) > 1").unwrap_err();
        assert!(e.message.contains("unknown function"));
        assert!(parse_metric_expr("rate(x[0s]) > 1").is_err());
        assert!(parse_metric_expr("rate(x[5]) > 1").is_err());
        assert!(parse_metric_expr("quantile(2, x[5m]) > 1").is_err());
        assert!(parse_metric_expr("").is_err());
        assert!(parse_metric_expr("x > 1 x").is_err());
    }

    #[test]
    fn resolve_checks_kinds() {
        let metrics = vec![
            (Str::from("c"), MetricKind::Counter),
            (Str::from("h"), MetricKind::Histogram),
        ];
        let mut e = parse_metric_expr("rate(c[5m]) > 1 and p95(h[5m]) > 2").unwrap();
        assert!(e.resolve(&metrics).is_empty());
        assert_eq!(e.comparisons()[1].metric_idx, 1);
        let mut e = parse_metric_expr("rate(h[5m]) > 1 or p95(c[5m]) > 2 or nope > 1").unwrap();
        assert_eq!(e.resolve(&metrics).len(), 3);
    }
}
