package rules

import (
	"github.com/expr-lang/expr/ast"
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
	m, ok := (*node).(*ast.MemberNode)
	if !ok {
		return
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok || id.Value != "payload" {
		return
	}
	if name, ok := m.Property.(*ast.StringNode); ok {
		v.fields = append(v.fields, name.Value)
	}
}
