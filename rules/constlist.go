package rules

import (
	"reflect"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
)

// ExprOptions are the options every expression of a rule file is compiled
// with, beside its environment and result type: a bound on its size, and
// the constantLists and mapMembers patches. A translator that compiles
// expressions of its own from a rule file (translators/mapping) uses them
// too.
func ExprOptions() []expr.Option {
	return []expr.Option{expr.MaxNodes(maxNodes), expr.Patch(constantLists{}), expr.Patch(mapMembers{})}
}

// constantLists is an expression patch for membership tests in a list
// written of literals only, as in `payload.tree not in [nil, ""]`: the
// list becomes one constant made at compile time, where expr would build
// it anew at every evaluation. Only lists that are the right side of `in`
// are folded: the test reads them and they go nowhere else.
//
// It also keeps such a test correct. expr makes a set of a list of
// strings only (or integers only) and looks the left side up in it, which
// fails ("value of type bool is not assignable to type string") when the
// left side is not a string at run time, as a payload field may well not
// be. The folded list is searched by equality instead: a number is simply
// not in a list of strings. A left side whose type is known to be the
// list's keeps expr's set.
type constantLists struct{}

// Visit implements ast.Visitor.
func (constantLists) Visit(node *ast.Node) {
	test, ok := (*node).(*ast.BinaryNode)
	if !ok || test.Operator != "in" {
		return
	}
	list, ok := test.Right.(*ast.ArrayNode)
	if !ok || len(list.Nodes) == 0 {
		return
	}
	values := make([]any, len(list.Nodes))
	strings, integers := 0, 0
	for i, item := range list.Nodes {
		switch item := item.(type) {
		case *ast.NilNode:
		case *ast.BoolNode:
			values[i] = item.Value
		case *ast.IntegerNode:
			values[i] = item.Value
			integers++
		case *ast.FloatNode:
			values[i] = item.Value
		case *ast.StringNode:
			values[i] = item.Value
			strings++
		default:
			return
		}
	}
	left := test.Left.Type().Kind()
	if strings == len(values) && left == reflect.String || integers == len(values) && left == reflect.Int {
		return // expr's optimizer makes a set of it, rightly
	}
	ast.Patch(&test.Right, &ast.ConstantNode{Value: values})
}
