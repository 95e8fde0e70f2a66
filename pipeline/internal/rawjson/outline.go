package rawjson

// OutlineDepth is how deep Check outlines a body: the members of objects
// nested up to this depth, each reached from the top through objects only.
// {"payload": {"build": {"results": 0}}} outlines payload, payload.build
// and payload.build.results; nothing inside an array is outlined.
const OutlineDepth = 3

// Outline is where the members of a body's outer objects lie: for each
// member down to OutlineDepth, its name and raw value. Check makes it in
// the pass that checks the body, so looking a value up reads no more of
// the body than the value itself. An Outline is read-only and safe for
// concurrent use.
type Outline struct {
	body    []byte
	members []member
}

// member is one outlined member; offsets are into the body (bodies stay
// far below 2 GiB: RabbitMQ caps a message at 512 MiB).
type member struct {
	// parent is the index of the member whose value holds this one, -1
	// for a member of the top-level object.
	parent int32
	// keyStart and keyEnd bound the quoted name.
	keyStart, keyEnd int32
	// start and end bound the raw value.
	start, end int32
}

// Find returns the raw value of the member at path, 1 to OutlineDepth
// names from the top-level object down, and whether the body has one. Of
// members with the same name it takes the first, as a parse does; a name
// written with escapes ("\u005fmeta") matches what it means. A longer
// path, or a path through anything but objects, is not found: find its
// first OutlineDepth names and read on in that value.
func (o *Outline) Find(path ...string) ([]byte, bool) {
	if o == nil || len(path) == 0 || len(path) > OutlineDepth {
		return nil, false
	}
	parent := int32(-1)
	for _, name := range path {
		found := int32(-1)
		// A member comes after its parent: start the search there.
		for k := parent + 1; int(k) < len(o.members); k++ {
			if m := &o.members[k]; m.parent == parent && keyIs(o.body[m.keyStart:m.keyEnd], name) {
				found = k
				break
			}
		}
		if found < 0 {
			return nil, false
		}
		parent = found
	}
	m := &o.members[parent]
	return o.body[m.start:m.end], true
}

// keyIs tells whether a quoted member name is name. A name written with
// escapes is unquoted first, so it matches as JSON means.
func keyIs(quoted []byte, name string) bool {
	s, ok := Unquote(quoted)
	return ok && string(s) == name
}

// outliner records the outline while Check reads a body.
type outliner struct {
	members []member
	// open holds, per depth, 1 + the index of the member whose value is
	// being read at that depth; 0 for none.
	open [OutlineDepth + 1]int32
}

// member records a member of an object at depth (1 to OutlineDepth)
// whose name spans keyStart to keyEnd and whose value starts at start.
func (o *outliner) member(depth, keyStart, keyEnd, start int) {
	if o.members == nil {
		o.members = make([]member, 0, 32)
	}
	parent := int32(-1)
	if depth > 1 {
		parent = o.open[depth-1] - 1
	}
	o.members = append(o.members, member{parent: parent, keyStart: int32(keyStart), keyEnd: int32(keyEnd), start: int32(start)})
	o.open[depth] = int32(len(o.members))
}

// valueEnds notes that a value read at depth ended at end: the value of
// the open member at that depth, if it is outlined.
func (o *outliner) valueEnds(depth, end int) {
	if k := o.open[depth]; k > 0 {
		o.members[k-1].end = int32(end)
		o.open[depth] = 0
	}
}

// outline returns the finished outline of body.
func (o *outliner) outline(body []byte) *Outline {
	return &Outline{body: body, members: o.members}
}
