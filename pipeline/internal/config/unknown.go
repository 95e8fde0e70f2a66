package config

import (
	"reflect"
	"regexp"
	"slices"
	"strings"
)

// The YAML decoder names an unknown field by the Go type that lacks it
// ("field prefech not found in type config.PipelineConfig"), which a
// person writing a config has never seen. unknownField says it in the
// config's words: where, the fields there are, and the nearest.

// sections are the config's parts, by the Go type that decodes them.
var sections = map[string]struct {
	name string
	typ  reflect.Type
}{
	"Config":         {"the config", reflect.TypeFor[Config]()},
	"TLSConfig":      {"tls", reflect.TypeFor[TLSConfig]()},
	"PipelineConfig": {"a pipeline", reflect.TypeFor[PipelineConfig]()},
	"BindingConfig":  {"a binding", reflect.TypeFor[BindingConfig]()},
	"OutputConfig":   {"an output", reflect.TypeFor[OutputConfig]()},
	"LimitsConfig":   {"limits", reflect.TypeFor[LimitsConfig]()},
	"QueueConfig":    {"queue", reflect.TypeFor[QueueConfig]()},
	"WaitConfig":     {"wait", reflect.TypeFor[WaitConfig]()},
	"CheckConfig":    {"wait.check", reflect.TypeFor[CheckConfig]()},
}

var unknownFieldError = regexp.MustCompile(`field (\S+) not found in type config\.(\w+)`)

// unknownField rewrites the decoder's unknown-field messages in msg.
func unknownField(msg string) string {
	return unknownFieldError.ReplaceAllStringFunc(msg, func(m string) string {
		parts := unknownFieldError.FindStringSubmatch(m)
		field, section := parts[1], sections[parts[2]]
		if section.typ == nil {
			return m
		}
		fields := yamlFields(section.typ)
		text := field + " is no field of " + section.name
		if near := nearest(field, fields); near != "" {
			text += "; did you mean " + near + "?"
		}
		return text + " (its fields: " + strings.Join(fields, ", ") + "; see docs/configuration.md)"
	})
}

// yamlFields lists the YAML names of a struct's fields.
func yamlFields(t reflect.Type) []string {
	var names []string
	for f := range t.Fields() {
		if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return names
}

// nearest is the name within an edit distance of 2 of field, or "".
func nearest(field string, names []string) string {
	best, bestDistance := "", 3
	for _, n := range names {
		if d := editDistance(field, n); d < bestDistance {
			best, bestDistance = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = slices.Min([]int{prev[j] + 1, cur[j-1] + 1, prev[j-1] + cost})
		}
		prev = cur
	}
	return prev[len(b)]
}
