// Package schemas holds the JSON Schemas (draft 2020-12) of the normalized
// messages, embedded in the binary, and validates outputs against them.
//
// A schema is named by its path under this folder, for example
// "buildbot/build.json"; translators put that name in Output.Schema.
package schemas

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

// Files holds every schema of this folder.
//
//go:embed */*.json
var Files embed.FS

// Set is a compiled set of schemas. It is safe for concurrent use.
type Set struct {
	byName map[string]*jsonschema.Schema
	// fast holds the fast checks of schemas within their subset.
	fast map[string]*fastSchema
	// docs are the schema documents as decoded JSON.
	docs map[string]map[string]any
}

// Document returns the named schema document as decoded JSON, or nil. It is
// shared; do not modify it.
func (s *Set) Document(name string) map[string]any { return s.docs[name] }

// Compile compiles every schema in the file systems (trees of *.json
// files; a schema is named by its path in its tree, and may refer to
// another of any tree by that name). A schema that does not compile, or
// a name two trees hold, stops with the name and the reason.
func Compile(fsyss ...fs.FS) (*Set, error) {
	c := jsonschema.NewCompiler()
	c.Draft = jsonschema.Draft2020
	var names []string
	docs := map[string]any{}
	for _, fsys := range fsyss {
		err := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") {
				return err
			}
			if _, twice := docs[path]; twice {
				return fmt.Errorf("schema %s is shipped twice", path)
			}
			data, err := fs.ReadFile(fsys, path)
			if err != nil {
				return err
			}
			if err := c.AddResource(resourceURL(path), bytes.NewReader(data)); err != nil {
				return fmt.Errorf("schema %s: %w", path, err)
			}
			names = append(names, path)
			var doc any
			if json.Unmarshal(data, &doc) != nil {
				doc = nil
			}
			docs[path] = doc
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	s := &Set{byName: make(map[string]*jsonschema.Schema, len(names)), fast: map[string]*fastSchema{}, docs: map[string]map[string]any{}}
	var errs []error
	for _, name := range names {
		schema, err := c.Compile(resourceURL(name))
		if err != nil {
			errs = append(errs, &CompileError{Name: name, Err: err})
			continue
		}
		s.byName[name] = schema
		if doc, ok := docs[name].(map[string]any); ok {
			s.docs[name] = doc
		}
		if f := compileFast(docs[name]); f != nil {
			s.fast[name] = f
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// Builtin compiles the schemas of this folder, every plugin's of this
// repository.
func Builtin() (*Set, error) { return Compile(Files) }

func resourceURL(path string) string { return "mem:///schemas/" + path }

// Names returns the schema names, sorted.
func (s *Set) Names() []string {
	names := make([]string, 0, len(s.byName))
	for n := range s.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Has reports whether a schema of that name exists.
func (s *Set) Has(name string) bool { _, ok := s.byName[name]; return ok }

// ErrUnknownSchema is returned by Validate for a name the set does not hold.
var ErrUnknownSchema = errors.New("unknown schema")

// Validate checks v (a JSON value as encoding/json decodes it, or built of
// the same types) against the named schema. The error lists every
// violation by its place in the document.
func (s *Set) Validate(name string, v any) (err error) {
	schema, ok := s.byName[name]
	if !ok {
		return fmt.Errorf("%w %q (known: %s)", ErrUnknownSchema, name, strings.Join(s.Names(), ", "))
	}
	if f := s.fast[name]; f != nil && f.valid(v) {
		return nil
	}
	defer func() {
		// The validator panics on a Go type that is not a JSON value.
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: the payload holds a value that is not JSON: %v", name, r)
		}
	}()
	if err := schema.Validate(v); err != nil {
		var ve *jsonschema.ValidationError
		if errors.As(err, &ve) {
			return fmt.Errorf("%s: %s", name, describe(ve))
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// describe lists the leaf violations of a validation error on one line.
func describe(ve *jsonschema.ValidationError) string {
	var parts []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			place := e.InstanceLocation
			if place == "" {
				place = "/"
			}
			parts = append(parts, place+": "+e.Message)
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	return strings.Join(parts, "; ")
}

// CompileError says that the schema Name does not compile, and why.
type CompileError struct {
	Name string
	Err  error
}

// Error names the schema and quotes the compiler.
func (e *CompileError) Error() string { return "schema " + e.Name + ": " + e.Err.Error() }

// Unwrap returns the compiler's error.
func (e *CompileError) Unwrap() error { return e.Err }
