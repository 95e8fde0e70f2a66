package process

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"

	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
	"github.com/pulsetranslator/pulsetranslator/rules"
	"github.com/pulsetranslator/pulsetranslator/schemas"
)

// Shipped is what the registered plugins ship: their JSON Schemas,
// compiled together, and their rule files, which a pipeline names
// builtin:NAME.
type Shipped struct {
	// Schemas are every plugin's schemas.
	Schemas *schemas.Set
	// schemaOwner and ruleOwner name the plugin that ships each schema
	// and rule file; rules holds where each rule file is.
	schemaOwner, ruleOwner map[string]string
	rules                  map[string]fs.FS
}

// Ship gathers and compiles what the plugins of reg ship. A schema or a
// rule file that two plugins ship, or a schema that does not compile,
// stops start-up with the plugins' names.
func Ship(reg *translator.Registry) (*Shipped, error) {
	s := &Shipped{schemaOwner: map[string]string{}, ruleOwner: map[string]string{}, rules: map[string]fs.FS{}}
	var sources []fs.FS
	var errs []error
	for _, spec := range reg.Specs() {
		if spec.Schemas != nil {
			err := fs.WalkDir(spec.Schemas, ".", func(path string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") {
					return err
				}
				if other, twice := s.schemaOwner[path]; twice {
					return fmt.Errorf("plugins %s and %s both ship the schema %s; rename one", other, spec.Name, path)
				}
				s.schemaOwner[path] = spec.Name
				return nil
			})
			if err != nil {
				errs = append(errs, fmt.Errorf("plugin %s: schemas: %w", spec.Name, err))
				continue
			}
			sources = append(sources, spec.Schemas)
		}
		if spec.Rules != nil {
			err := fs.WalkDir(spec.Rules, ".", func(path string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				if other, twice := s.ruleOwner[path]; twice {
					return fmt.Errorf("plugins %s and %s both ship the rule file %s; rename one", other, spec.Name, path)
				}
				s.ruleOwner[path], s.rules[path] = spec.Name, spec.Rules
				return nil
			})
			if err != nil {
				errs = append(errs, fmt.Errorf("plugin %s: rules: %w", spec.Name, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	set, err := schemas.Compile(sources...)
	if err != nil {
		return nil, s.nameOwners(err)
	}
	s.Schemas = set
	return s, nil
}

// LoadRules reads a pipeline's rule file: builtin:NAME from the plugin
// that ships it, anything else from disk.
func (s *Shipped) LoadRules(path string) (*rules.File, error) {
	name, builtin := strings.CutPrefix(path, rules.BuiltinPrefix)
	if !builtin {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("rule file: %w", err)
		}
		return rules.Parse(path, data)
	}
	fsys, ok := s.rules[name]
	if !ok {
		return nil, fmt.Errorf("%s: no plugin ships this rule file (shipped: %s)", path, s.ruleNames())
	}
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, fmt.Errorf("%s (shipped by plugin %s): %w", path, s.ruleOwner[name], err)
	}
	return rules.Parse(path, data)
}

// SchemaOwner names the plugin that ships a schema, or "".
func (s *Shipped) SchemaOwner(name string) string { return s.schemaOwner[name] }

func (s *Shipped) ruleNames() string {
	names := make([]string, 0, len(s.rules))
	for name := range s.rules {
		names = append(names, "builtin:"+name+" ("+s.ruleOwner[name]+")")
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// nameOwners prefixes each schema's compile error with the plugin that
// ships the schema.
func (s *Shipped) nameOwners(err error) error {
	var compileErrs []error
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		compileErrs = joined.Unwrap()
	} else {
		compileErrs = []error{err}
	}
	named := make([]error, len(compileErrs))
	for i, e := range compileErrs {
		named[i] = e
		var ce *schemas.CompileError
		if errors.As(e, &ce) && s.schemaOwner[ce.Name] != "" {
			named[i] = fmt.Errorf("plugin %s: %w", s.schemaOwner[ce.Name], e)
		}
	}
	return errors.Join(named...)
}
