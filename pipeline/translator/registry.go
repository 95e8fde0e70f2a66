package translator

import (
	"fmt"
	"io/fs"
	"sort"
	"sync"
)

// Params is what a Factory gets to build a Translator. New fields may be
// added; factories must ignore what they do not use.
type Params struct {
	// Pipeline is the name of the pipeline the translator serves.
	Pipeline string
	// Tables holds the named data tables of the pipeline's rule files
	// (platform lists, tags, ...), merged in file order.
	Tables map[string]any
	// MaxOutputs is the most outputs the framework publishes for one
	// input; past it the input is refused. A translator that fans out by
	// data (one output per locale) refuses such an input with class
	// too_many_outputs before it builds the outputs.
	MaxOutputs int
}

// Factory builds a Translator. It is called once per pipeline at start-up;
// expensive preparation (compiling, validating tables) belongs here, and an
// error stops start-up.
type Factory func(Params) (Translator, error)

// Spec describes a translator plugin and the data it ships.
type Spec struct {
	// Name is what a pipeline's "translator" field names. Required.
	Name string
	// Summary is one line shown by "pulsetranslator check". Optional.
	Summary string
	// New builds the translator. Required.
	New Factory
	// Schemas holds the JSON Schemas (draft 2020-12, *.json) of the
	// plugin's outputs, named by their paths in it, as Output.Schema names
	// them: typically an embed.FS (see Subset). No two plugins may ship a
	// schema of the same name. Optional.
	Schemas fs.FS
	// Rules holds the rule files the plugin ships, which a pipeline names
	// "builtin:<path>": typically an embed.FS. No two plugins may ship a
	// rule file of the same name. Optional.
	Rules fs.FS
}

// Registry maps translator names to their specs. The zero value is empty and
// ready to use; it is safe for concurrent use.
type Registry struct {
	mu    sync.RWMutex
	specs map[string]Spec
}

// Register adds spec. It returns an error if the name is empty, taken, or
// the factory is nil.
func (r *Registry) Register(spec Spec) error {
	if spec.Name == "" || spec.New == nil {
		return fmt.Errorf("translator spec %q needs a name and a factory", spec.Name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, taken := r.specs[spec.Name]; taken {
		return fmt.Errorf("translator %q is registered twice", spec.Name)
	}
	if r.specs == nil {
		r.specs = make(map[string]Spec)
	}
	r.specs[spec.Name] = spec
	return nil
}

// Lookup returns the spec registered under name.
func (r *Registry) Lookup(name string) (Spec, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	spec, ok := r.specs[name]
	return spec, ok
}

// Specs returns the registered specs, sorted by name.
func (r *Registry) Specs() []Spec {
	r.mu.RLock()
	defer r.mu.RUnlock()
	specs := make([]Spec, 0, len(r.specs))
	for _, spec := range r.specs {
		specs = append(specs, spec)
	}
	sort.Slice(specs, func(i, j int) bool { return specs[i].Name < specs[j].Name })
	return specs
}

// Names returns the registered names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.specs))
	for name := range r.specs {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Default is the registry plugins register into from their init().
var Default = &Registry{}

// MustRegister registers spec in Default and panics on error. It is meant for
// a plugin's init(), where a duplicate name is a programming error.
func MustRegister(spec Spec) {
	if err := Default.Register(spec); err != nil {
		panic(err)
	}
}
