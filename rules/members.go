package rules

import (
	"reflect"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm/runtime"
)

// mapMembers is an expression patch for reading a member of a map, as in
// `payload.tree` or `tables.platforms["linux"]`: expr reads maps through
// reflection, which allocates a copy of each value read; the patch has
// the read done by memberOf, a plain map index. Members of structs (Env's
// own fields, input.exchange) are left to expr, which reads them without
// reflection already, and so are optional (`?.`) reads and calls.
type mapMembers struct{}

// Visit implements ast.Visitor.
func (mapMembers) Visit(node *ast.Node) {
	m, ok := (*node).(*ast.MemberNode)
	if !ok || m.Optional || m.Method {
		return
	}
	name, ok := m.Property.(*ast.StringNode)
	if !ok || m.Node.Type() == nil {
		return
	}
	// A map of string to any, or a value of unknown type (a member of a
	// payload field, say) that may be one; the result's type, any, is
	// the member's either way.
	switch t := m.Node.Type(); {
	case t.Kind() == reflect.Interface && t.NumMethod() == 0:
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String && t.Elem().Kind() == reflect.Interface && t.Elem().NumMethod() == 0:
	default:
		return
	}
	// A constant callee of func(any, any) any is called by expr's typed
	// call, with no argument list made; a declared function would be.
	call := &ast.CallNode{
		Callee:    &ast.ConstantNode{Value: memberOf},
		Arguments: []ast.Node{m.Node, &ast.StringNode{Value: name.Value}},
	}
	ast.Patch(node, call)
}

// memberOf reads the member name of from: a plain index of a
// map[string]any, and expr's own read of anything else (a struct, a
// typed map, nil), with its errors. name is always a string.
func memberOf(from, name any) any {
	if m, ok := from.(map[string]any); ok {
		return m[name.(string)]
	}
	return runtime.Fetch(from, name)
}
