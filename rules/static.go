package rules

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
)

// The expr checker types what it can, and leaves a value read from the
// payload (map[string]any) untyped: `payload.tree + 1` compiles with
// AsBool, and fails at run time on every message. These checks catch, at
// start-up, what can only ever give the wrong kind of value.

// resultKind is what an expression's top node can give, when its shape
// says so regardless of what the payload holds.
type resultKind int

const (
	kindUnknown resultKind = iota
	kindBool
	kindNumber
	kindString
	kindCollection
)

func (k resultKind) String() string {
	switch k {
	case kindBool:
		return "a boolean"
	case kindNumber:
		return "a number"
	case kindString:
		return "a string"
	case kindCollection:
		return "a list or a map"
	}
	return "a value of unknown kind"
}

// shapeKind is what node gives, by its shape alone.
func shapeKind(node ast.Node) resultKind {
	switch n := node.(type) {
	case *ast.BoolNode:
		return kindBool
	case *ast.IntegerNode, *ast.FloatNode:
		return kindNumber
	case *ast.StringNode:
		return kindString
	case *ast.ArrayNode, *ast.MapNode:
		return kindCollection
	case *ast.UnaryNode:
		switch n.Operator {
		case "!", "not":
			return kindBool
		case "-", "+":
			return kindNumber
		}
	case *ast.BinaryNode:
		switch n.Operator {
		case "==", "!=", "<", ">", "<=", ">=", "&&", "||", "and", "or", "in", "not in",
			"matches", "contains", "startsWith", "endsWith", "not matches", "not contains", "not startsWith", "not endsWith":
			return kindBool
		case "-", "*", "/", "%", "**", "^":
			return kindNumber
		case "+":
			left, right := shapeKind(n.Left), shapeKind(n.Right)
			if left == kindString || right == kindString {
				return kindString
			}
			if left == kindNumber || right == kindNumber {
				return kindNumber
			}
		case "..":
			return kindCollection
		}
	case *ast.ConditionalNode:
		if a, b := shapeKind(n.Exp1), shapeKind(n.Exp2); a == b {
			return a
		}
	}
	return kindUnknown
}

// wrongKind says what a node gives when it can only give another kind than
// want (kindString also accepts a list, for wait_for), or "".
func wrongKind(node ast.Node, want resultKind, listToo bool) string {
	got := shapeKind(node)
	if got == kindUnknown || got == want || listToo && got == kindCollection {
		return ""
	}
	return got.String()
}

// payloadFields lists the fields of payload a node reads: the first name
// after payload in payload.x, payload["x"] and payload?.x.
func payloadFields(node ast.Node) []string {
	var v fieldVisitor
	ast.Walk(&node, &v)
	return v.fields
}

type fieldVisitor struct{ fields []string }

func (v *fieldVisitor) Visit(node *ast.Node) {
	if m, ok := (*node).(*ast.MemberNode); ok {
		if field, ok := payloadField(m); ok {
			v.fields = append(v.fields, field)
		}
	}
}

// pattern renders a cc expression as the routing keys it gives: literal
// text as it is, a payload field as <field>, anything else as <…>:
// `"route.tree." + payload.tree` is route.tree.<tree>.
func pattern(src string) string {
	tree, err := parser.Parse(src)
	if err != nil {
		return src
	}
	var render func(ast.Node) string
	render = func(node ast.Node) string {
		switch n := node.(type) {
		case *ast.StringNode:
			return n.Value
		case *ast.BinaryNode:
			if n.Operator == "+" {
				return render(n.Left) + render(n.Right)
			}
		case *ast.MemberNode:
			if field, ok := payloadField(n); ok {
				return "<" + field + ">"
			}
		}
		return "<…>"
	}
	return render(tree.Node)
}

// payloadField is the field of payload.x (or payload["x"]).
func payloadField(n *ast.MemberNode) (string, bool) {
	id, ok := n.Node.(*ast.IdentifierNode)
	if !ok || id.Value != "payload" {
		return "", false
	}
	name, ok := n.Property.(*ast.StringNode)
	if !ok {
		return "", false
	}
	return name.Value, true
}

// condition renders a guard in words where its shape is a common one
// (a field set, a field equal to a value, both joined by and), and as its
// source otherwise; "" for none.
func condition(src string) string {
	if src == "" {
		return ""
	}
	tree, err := parser.Parse(src)
	if err != nil {
		return "when " + src
	}
	var words func(ast.Node) (string, bool)
	words = func(node ast.Node) (string, bool) {
		negated := false
		if u, ok := node.(*ast.UnaryNode); ok && (u.Operator == "not" || u.Operator == "!") {
			// a not in b parses as not (a in b).
			node, negated = u.Node, true
		}
		b, ok := node.(*ast.BinaryNode)
		if !ok {
			return "", false
		}
		operator := b.Operator
		if negated {
			if operator != "in" {
				return "", false
			}
			operator = "not in"
		}
		if operator == "&&" || operator == "and" {
			l, lok := words(b.Left)
			r, rok := words(b.Right)
			return l + " and " + r, lok && rok
		}
		m, ok := b.Left.(*ast.MemberNode)
		if !ok {
			return "", false
		}
		field, ok := payloadField(m)
		if !ok {
			return "", false
		}
		switch right := b.Right.(type) {
		case *ast.NilNode:
			if operator == "!=" {
				return field + " is set", true
			}
		case *ast.StringNode:
			switch operator {
			case "==":
				return fmt.Sprintf("%s is %q", field, right.Value), true
			case "!=":
				return fmt.Sprintf("%s is not %q", field, right.Value), true
			}
		case *ast.ArrayNode:
			if operator != "not in" {
				return "", false
			}
			var others []string
			for _, item := range right.Nodes {
				switch v := item.(type) {
				case *ast.NilNode:
				case *ast.StringNode:
					if v.Value != "" {
						others = append(others, strconv.Quote(v.Value))
					}
				default:
					return "", false
				}
			}
			if len(others) == 0 {
				return field + " is set", true
			}
			return field + " is set and not " + strings.Join(others, " or "), true
		}
		return "", false
	}
	if text, ok := words(tree.Node); ok {
		return "when " + text
	}
	return "when " + src
}
