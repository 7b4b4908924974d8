//! A YAML tree that remembers where every node came from, so each config error names file:line:column.
//!
//! serde-based YAML stops at the first error and forgets positions; an operator fixing a pasted
//! inventory wants every problem at once, with its place.
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// Text of the scalar, and whether it was quoted (quoted `"true"` stays text).
    Scalar(String, bool, Pos),
    Seq(Vec<Node>, Pos),
    Map(Vec<(Node, Node)>, Pos),
    /// `~`, `null` or an empty value.
    Null(Pos),
}

impl Node {
    pub fn pos(&self) -> Pos {
        match self {
            Node::Scalar(_, _, p) | Node::Seq(_, p) | Node::Map(_, p) | Node::Null(p) => *p,
        }
    }
}

#[derive(Debug)]
pub struct ParseError {
    pub pos: Pos,
    pub message: String,
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    docs: Vec<Node>,
    error: Option<ParseError>,
}

enum Frame {
    Seq(Vec<Node>, Pos),
    Map(Vec<Node>, Pos),
}

fn pos(m: Marker) -> Pos {
    // yaml-rust2 lines are 1-based and columns 0-based; editors show both 1-based.
    Pos {
        line: m.line(),
        col: m.col() + 1,
    }
}

impl Builder {
    fn push(&mut self, node: Node) {
        match self.stack.last_mut() {
            Some(Frame::Seq(items, _)) | Some(Frame::Map(items, _)) => items.push(node),
            None => self.docs.push(node),
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let p = pos(mark);
        match ev {
            Event::Scalar(text, style, _, _) => {
                let quoted = !matches!(style, TScalarStyle::Plain);
                let null = !quoted && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL");
                self.push(if null {
                    Node::Null(p)
                } else {
                    Node::Scalar(text, quoted, p)
                });
            }
            Event::SequenceStart(..) => self.stack.push(Frame::Seq(Vec::new(), p)),
            Event::MappingStart(..) => self.stack.push(Frame::Map(Vec::new(), p)),
            Event::SequenceEnd => {
                if let Some(Frame::Seq(items, p)) = self.stack.pop() {
                    self.push(Node::Seq(items, p));
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(items, p)) = self.stack.pop() {
                    let mut pairs = Vec::with_capacity(items.len() / 2);
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    self.push(Node::Map(pairs, p));
                }
            }
            Event::Alias(_) if self.error.is_none() => {
                self.error = Some(ParseError {
                    pos: p,
                    message: "YAML aliases are not supported in omlboot configs".into(),
                });
            }
            _ => {}
        }
    }
}

/// Parse one YAML document. An empty file is an empty mapping.
pub fn parse(text: &str) -> Result<Node, ParseError> {
    let mut b = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut b, true).map_err(|e| ParseError {
        pos: pos(*e.marker()),
        message: e.info().to_string(),
    })?;
    if let Some(e) = b.error {
        return Err(e);
    }
    match b.docs.len() {
        0 => Ok(Node::Map(Vec::new(), Pos { line: 1, col: 1 })),
        1 => Ok(b.docs.pop().unwrap_or(Node::Null(Pos { line: 1, col: 1 }))),
        _ => Err(ParseError {
            pos: b.docs[1].pos(),
            message: "expected one YAML document, found several".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let n = parse("a: 1\nbb:\n  - x\n  - 'y'\nc: \"true\"\nd:\n").unwrap();
        let Node::Map(pairs, _) = n else {
            panic!("not a map")
        };
        assert_eq!(
            pairs[0].0,
            Node::Scalar("a".into(), false, Pos { line: 1, col: 1 })
        );
        assert_eq!(pairs[1].0.pos(), Pos { line: 2, col: 1 });
        let Node::Seq(items, _) = &pairs[1].1 else {
            panic!("not a seq")
        };
        assert_eq!(
            items[1],
            Node::Scalar("y".into(), true, Pos { line: 4, col: 5 })
        );
        assert_eq!(
            pairs[2].1,
            Node::Scalar("true".into(), true, Pos { line: 5, col: 4 })
        );
        assert!(matches!(pairs[3].1, Node::Null(_)));
    }

    #[test]
    fn syntax_error_has_position() {
        let e = parse("a: 1\nb: [unclosed\n").unwrap_err();
        assert!(e.pos.line >= 2, "{e:?}");
    }
}
