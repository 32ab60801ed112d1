//! YAML text -> a tree of [`Node`]s, each with the position the parser marked for it.
//!
//! The parser is `saphyr-parser` (YAML 1.2, pure Rust, maintained; see docs/decisions.md,
//! 2026-11-30): its events carry spans, so every node knows where it was written and no error is
//! ever located by searching the text again. This module builds the tree from the events:
//! anchors and aliases are resolved here (an alias is a copy of its anchor's node, within a
//! budget, so a "billion laughs" file is refused instead of filling memory), scalars keep the
//! text they were written with (`umask: 022` stays "022"; their meaning is decided by the key
//! that reads them), and duplicate keys are kept for the reader to report.
//!
//! Both taskmasterd and taskmasterctl read config files through [`parse`], so the same broken
//! file gives the same error from both.

use super::diag::{Found, Pos};
use saphyr_parser::{Event, Marker, Parser, ScalarStyle, ScanError, Tag};

/// One YAML node and where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Where the node starts: a scalar's first character, a flow collection's bracket, a block
    /// collection's first entry; an alias's own position.
    pub pos: Pos,
    /// What it is.
    pub value: Value,
}

/// What a [`Node`] holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `~`, `null`, or nothing (`key:` with no value).
    Null,
    /// A scalar, as the text it was written with (quotes removed, escapes resolved).
    Scalar(String),
    /// A sequence.
    List(Vec<Node>),
    /// A mapping, its entries in file order (a repeated key is kept: the reader reports it).
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// What this node is, for "expected …, got …".
    pub fn found(&self) -> Found<'_> {
        match &self.value {
            Value::Null => Found::Null,
            Value::Scalar(s) => Found::Scalar(s),
            Value::List(_) => Found::List,
            Value::Map(_) => Found::Mapping,
        }
    }

    /// The scalar's text, if this is a scalar.
    pub fn scalar(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }
}

/// A file that is not YAML: where the parser stopped and why. Its message quotes nothing of the
/// file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// Where the parser stopped.
    pub pos: Pos,
    /// Why, in the parser's words with a hint for the usual mistakes.
    pub message: String,
}

/// Deepest nesting of collections accepted: a config needs five levels.
pub const MAX_DEPTH: usize = 64;

/// Most nodes that aliases may add by copying their anchors.
pub const MAX_ALIAS_NODES: usize = 100_000;

/// Parses one YAML document; `None` for a file with no document (empty, or comments only).
///
/// # Errors
/// The text is not YAML, holds more than one document, nests deeper than [`MAX_DEPTH`], uses an
/// unknown anchor, tags a node with a tag other than YAML's own (`!!str` …), or has aliases that
/// expand past [`MAX_ALIAS_NODES`].
pub fn parse(text: &str) -> Result<Option<Node>, SyntaxError> {
    let mut b = Builder::default();
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| scan_error(&e))?;
        if b.on_event(event, pos(span.start))? {
            break;
        }
    }
    Ok(b.root)
}

fn pos(m: Marker) -> Pos {
    Pos { line: m.line(), column: m.col() + 1 }
}

/// The parser's message, with a hint for the mistakes people make in configs. The only message
/// of the parser that quotes the file (`unexpected character: `@'`) is rewritten.
fn scan_error(e: &ScanError) -> SyntaxError {
    let info = e.info();
    let message = if info.starts_with("unexpected character") {
        "a plain value cannot start with '@' or '`': put the value in quotes".to_owned()
    } else if info == "mapping values are not allowed in this context" {
        format!("{info} (a value that holds ': ' must be put in quotes)")
    } else if info == "while parsing node, found unknown anchor" {
        "an alias names an anchor not defined before it".to_owned()
    } else if info == "found unprintable character" {
        "found a control character: a config is text".to_owned()
    } else {
        info.to_owned()
    };
    SyntaxError { pos: pos(*e.marker()), message }
}

enum Frame {
    List { pos: Pos, anchor: usize, items: Vec<Node> },
    Map { pos: Pos, anchor: usize, entries: Vec<(Node, Node)>, key: Option<Node> },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: std::collections::HashMap<usize, Node>,
    root: Option<Node>,
    documents: usize,
    alias_budget_used: usize,
}

impl Builder {
    /// Takes one event; `Ok(true)` at the end of the stream.
    fn on_event(&mut self, event: Event<'_>, at: Pos) -> Result<bool, SyntaxError> {
        let fail = |message: &str| Err(SyntaxError { pos: at, message: message.to_owned() });
        match event {
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => {}
            Event::StreamEnd => return Ok(true),
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return fail("a second YAML document ('---'): a config file holds one");
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let value = match tag.as_deref().map(core_tag) {
                    Some(None) => return fail("a config uses no YAML tags other than '!!str' and its kin"),
                    Some(Some("str")) => Value::Scalar(text.into_owned()),
                    Some(Some("null")) => Value::Null,
                    _ if style == ScalarStyle::Plain && matches!(&*text, "" | "~" | "null" | "Null" | "NULL") => {
                        Value::Null
                    }
                    _ => Value::Scalar(text.into_owned()),
                };
                self.push(Node { pos: at, value }, anchor);
            }
            Event::SequenceStart(anchor, tag) => self.open(true, anchor, tag.as_deref(), at)?,
            Event::MappingStart(anchor, tag) => self.open(false, anchor, tag.as_deref(), at)?,
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::List { pos, anchor, items }) => (Node { pos, value: Value::List(items) }, anchor),
                    Some(Frame::Map { pos, anchor, entries, .. }) => (Node { pos, value: Value::Map(entries) }, anchor),
                    None => return fail("unbalanced collection"),
                };
                self.push(node, anchor);
            }
            Event::Alias(id) => {
                let Some(anchored) = self.anchors.get(&id) else {
                    return fail("an alias names an anchor not defined before it");
                };
                let mut left = MAX_ALIAS_NODES - self.alias_budget_used;
                if !fits(anchored, &mut left) {
                    return fail("aliases expand to too many values (more than 100000)");
                }
                self.alias_budget_used = MAX_ALIAS_NODES - left;
                let node = Node { pos: at, value: anchored.value.clone() };
                self.push(node, 0);
            }
        }
        Ok(false)
    }

    /// Starts a collection.
    fn open(&mut self, list: bool, anchor: usize, tag: Option<&Tag>, at: Pos) -> Result<(), SyntaxError> {
        let fail = |message: &str| Err(SyntaxError { pos: at, message: message.to_owned() });
        if tag.is_some_and(|t| core_tag(t).is_none()) {
            return fail("a config uses no YAML tags other than '!!map', '!!seq' and their kin");
        }
        if self.stack.len() >= MAX_DEPTH {
            return fail("nested too deep: a config needs a few levels, not 64");
        }
        self.stack.push(if list {
            Frame::List { pos: at, anchor, items: Vec::new() }
        } else {
            Frame::Map { pos: at, anchor, entries: Vec::new(), key: None }
        });
        Ok(())
    }

    /// Adds a finished node to the collection being built, or makes it the root.
    fn push(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::List { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
    }
}

/// The suffix of a tag of YAML's core schema (`!!str` gives `str`); `None` for any other tag.
fn core_tag(tag: &Tag) -> Option<&str> {
    tag.is_yaml_core_schema().then_some(tag.suffix.as_str())
}

/// Whether `node` has at most `left` nodes; counts them off `left`, stopping once over.
fn fits(node: &Node, left: &mut usize) -> bool {
    if *left == 0 {
        return false;
    }
    *left -= 1;
    match &node.value {
        Value::Null | Value::Scalar(_) => true,
        Value::List(items) => items.iter().all(|n| fits(n, left)),
        Value::Map(entries) => entries.iter().all(|(k, v)| fits(k, left) && fits(v, left)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: usize, column: usize) -> Pos {
        Pos { line, column }
    }

    #[test]
    fn nodes_carry_the_parser_positions() {
        let root = parse("a:\n  b: [x, 'y']\n  c: {d: ~}\n").unwrap().unwrap();
        let Value::Map(top) = &root.value else { panic!("{root:?}") };
        assert_eq!(top[0].0.pos, at(1, 1));
        let Value::Map(inner) = &top[0].1.value else { panic!() };
        assert_eq!((inner[0].0.pos, inner[0].1.pos), (at(2, 3), at(2, 6)));
        let Value::List(items) = &inner[0].1.value else { panic!() };
        assert_eq!(items.iter().map(|n| n.pos).collect::<Vec<_>>(), [at(2, 7), at(2, 10)]);
        assert_eq!(inner[1].1.pos, at(3, 6));
        let Value::Map(d) = &inner[1].1.value else { panic!() };
        assert_eq!(d[0].1.value, Value::Null);
    }

    #[test]
    fn scalars_keep_their_text_and_null_is_only_plain() {
        let root = parse("a: 022\nb: 'null'\nc:\nd: !!str ~\ne: true\n").unwrap().unwrap();
        let Value::Map(m) = root.value else { panic!() };
        let values: Vec<Value> = m.into_iter().map(|(_, v)| v.value).collect();
        assert_eq!(
            values,
            [
                Value::Scalar("022".into()),
                Value::Scalar("null".into()),
                Value::Null,
                Value::Scalar("~".into()),
                Value::Scalar("true".into())
            ]
        );
    }

    #[test]
    fn aliases_copy_their_anchor_within_a_budget() {
        let root = parse("a: &x {b: 1}\nc: *x\n").unwrap().unwrap();
        let Value::Map(m) = &root.value else { panic!() };
        assert_eq!(m[1].1.pos, at(2, 4), "the alias is where it is used");
        assert_eq!(m[1].1.value, m[0].1.value, "its content is the anchor's, with the anchor's positions");
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (i, c) in ('b'..='h').enumerate() {
            let prev = (b'a' + i as u8) as char;
            bomb.push_str(&format!("{c}: &{c} [{}]\n", vec![format!("*{prev}"); 10].join(", ")));
        }
        let e = parse(&bomb).unwrap_err();
        assert!(e.message.contains("too many"), "{e:?}");
        assert!(parse("a: *nope\n").is_err());
    }

    #[test]
    fn syntax_errors_are_located_and_quote_nothing() {
        let e = parse("programs:\n  web:\n    command: /bin/sh -c echo SECRET: b\n").unwrap_err();
        assert_eq!(e.pos, at(3, 36));
        assert!(e.message.starts_with("mapping values are not allowed") && !e.message.contains("SECRET"), "{e:?}");
        let e = parse("@SECRET\n").unwrap_err();
        assert_eq!(e.pos, at(1, 1));
        assert!(!e.message.contains("SECRET"), "{e:?}");
        assert!(parse("a: 1\n---\nb: 2\n").unwrap_err().message.contains("second YAML document"));
        assert!(parse("a: !secret x\n").is_err());
        assert_eq!(parse("# only a comment\n").unwrap(), None);
        assert_eq!(parse("").unwrap(), None);
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(parse(&deep).is_err());
    }
}
