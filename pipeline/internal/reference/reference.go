// Package reference writes the reference of a pipeline's output exchanges
// for consumers, from the config, the rules and the schemas: each
// exchange, the words of its routing keys in order, its CC routes and its
// message schema; in Markdown, or as JSON in the shape of taskcluster's
// exchanges-reference-v0.
package reference

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/process"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"

	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
	"github.com/pulsetranslator/pulsetranslator/schemas"
)

// Reference documents a pipeline's output exchanges for consumers, in the
// shape of taskcluster's exchanges reference (exchanges-reference-v0), with
// the CC routes the rules add.
type Reference struct {
	Schema         string           `json:"$schema"`
	APIVersion     string           `json:"apiVersion"`
	ServiceName    string           `json:"serviceName"`
	Title          string           `json:"title"`
	Description    string           `json:"description"`
	ExchangePrefix string           `json:"exchangePrefix"`
	Entries        []ReferenceEntry `json:"entries"`
}

// ReferenceEntry is one kind of message on one exchange.
type ReferenceEntry struct {
	Type        string `json:"type"`
	Exchange    string `json:"exchange"`
	Name        string `json:"name"`
	Title       string `json:"title"`
	Description string `json:"description"`
	// RoutingKey lists the words of the primary routing key, in order.
	RoutingKey []translator.KeyField `json:"routingKey"`
	// Schema is the $id of the message's JSON Schema.
	Schema string `json:"schema"`
	// CCRoutes are the CC routing keys the rules add: each a pattern
	// (route.tree.<tree>), when it is added, and what the rule says of it.
	CCRoutes []string `json:"ccRoutes,omitempty"`

	// schemaName is the schema's name in the schema set.
	schemaName string
	// envelope is how the output's body wraps the payload.
	envelope config.Envelope
}

// BuildReference documents the named pipeline of cfg. Its translator must
// implement translator.Describer.
func BuildReference(cfg *config.Config, pipeline string, reg *translator.Registry, shipped *process.Shipped) (*Reference, error) {
	sch := shipped.Schemas
	i := slices.IndexFunc(cfg.Pipelines, func(p config.PipelineConfig) bool { return p.Name == pipeline })
	if i < 0 {
		return nil, fmt.Errorf("no pipeline %q in %s", pipeline, cfg.Source())
	}
	p := cfg.Pipelines[i]
	proc, err := process.NewProcessor(p, reg, shipped)
	if err != nil {
		return nil, err
	}
	describer, ok := proc.Translator().(translator.Describer)
	if !ok {
		return nil, fmt.Errorf("pipeline %q: the %s translator does not document its outputs (translator.Describer)", p.Name, p.Translator)
	}
	var cc []string
	for _, route := range proc.Rules().CCRoutes() {
		text := route.Pattern
		if route.Condition != "" {
			text += " (" + route.Condition + ")"
		}
		if route.Description != "" {
			text += ": " + route.Description
		}
		cc = append(cc, text)
	}
	ref := &Reference{
		Schema:         "/schemas/common/exchanges-reference-v0.json#",
		APIVersion:     "v1",
		ServiceName:    cfg.ClientID,
		Title:          fmt.Sprintf("%s: pipeline %s", cfg.ClientID, p.Name),
		Description:    fmt.Sprintf("Normalized messages the %s translator publishes from %s.", p.Translator, bindingsText(p)),
		ExchangePrefix: "exchange/" + cfg.ClientID + "/",
	}
	for _, doc := range describer.Describe() {
		out := proc.Output(doc.To)
		if out == nil {
			return nil, fmt.Errorf("pipeline %q: the %s translator documents output %q, which the pipeline does not have", p.Name, p.Translator, doc.To)
		}
		schemaID := doc.Schema
		if d := sch.Document(doc.Schema); d != nil {
			if id, ok := d["$id"].(string); ok {
				schemaID = id
			}
		}
		ref.Entries = append(ref.Entries, ReferenceEntry{
			Type: "topic-exchange", Exchange: pulse.ShortName(cfg.ClientID, out.Exchange),
			Name: doc.Name, Title: doc.Title, Description: doc.Description,
			RoutingKey: doc.RoutingKey, Schema: schemaID, CCRoutes: cc, schemaName: doc.Schema, envelope: out.Envelope,
		})
	}
	return ref, nil
}

func bindingsText(p config.PipelineConfig) string {
	var parts []string
	for _, b := range p.Bindings {
		parts = append(parts, b.Exchange+" ("+strings.Join(b.RoutingKeys, ", ")+")")
	}
	return strings.Join(parts, " and ")
}

// WriteMarkdown renders the reference for people: per entry the exchange,
// the routing-key words, the CC routes and the schema's fields.
func (r *Reference) WriteMarkdown(w io.Writer, sch *schemas.Set) {
	fmt.Fprintf(w, "# %s\n\n%s\n\nExchanges are named `%s<exchange>`.\n", r.Title, r.Description, r.ExchangePrefix)
	for _, e := range r.Entries {
		fmt.Fprintf(w, "\n## %s: %s\n\n%s\n\n", e.Name, e.Title, e.Description)
		fmt.Fprintf(w, "Exchange: `%s%s` (topic)\n\n", r.ExchangePrefix, e.Exchange)
		var pattern []string
		for _, f := range e.RoutingKey {
			switch {
			case f.Constant != "":
				pattern = append(pattern, f.Constant)
			case f.MultipleWords:
				pattern = append(pattern, "<"+f.Name+"…>")
			default:
				pattern = append(pattern, "<"+f.Name+">")
			}
		}
		fmt.Fprintf(w, "Routing key: `%s`\n\n| # | word | summary | constant | multiple words |\n| --- | --- | --- | --- | --- |\n", strings.Join(pattern, "."))
		for i, f := range e.RoutingKey {
			fmt.Fprintf(w, "| %d | %s | %s | %s | %v |\n", i+1, f.Name, f.Summary, f.Constant, f.MultipleWords)
		}
		if len(e.CCRoutes) > 0 {
			fmt.Fprintf(w, "\nCC routing keys (bind to these to follow one value):\n\n")
			for _, route := range e.CCRoutes {
				pattern, rest, _ := strings.Cut(route, " ")
				if rest != "" {
					rest = " " + rest
				}
				fmt.Fprintf(w, "- `%s`%s\n", pattern, rest)
			}
		}
		if e.envelope == config.EnvelopeMozillaPulse {
			fmt.Fprintf(w, "\nBody: the mozillapulse envelope, which mozillapulse and taskcluster-lib-pulse consumers read; the schema describes its `payload`:\n\n"+
				"```json\n{\"payload\": {…the fields below…},\n \"_meta\": {\"exchange\": \"%s%s\", \"routing_key\": \"…\", \"serializer\": \"json\", \"sent\": \"2026-12-06T10:00:00Z\"}}\n```\n",
				r.ExchangePrefix, e.Exchange)
		} else {
			fmt.Fprintf(w, "\nBody: the payload itself (envelope: bare), as the schema describes it.\n")
		}
		fmt.Fprintf(w, "\nSchema: [schemas/%s](%s) (`$id` %s; `run --http` serves it at `/schemas/%s`)\n\n", e.schemaName, e.schemaName, e.Schema, e.schemaName)
		writeSchemaFields(w, sch.Document(e.schemaName))
	}
}

// writeSchemaFields lists a schema's top-level properties.
func writeSchemaFields(w io.Writer, doc map[string]any) {
	props, _ := doc["properties"].(map[string]any)
	if len(props) == 0 {
		return
	}
	required := map[string]bool{}
	if list, ok := doc["required"].([]any); ok {
		for _, r := range list {
			if s, ok := r.(string); ok {
				required[s] = true
			}
		}
	}
	names := make([]string, 0, len(props))
	for name := range props {
		names = append(names, name)
	}
	slices.Sort(names)
	fmt.Fprintln(w, "| field | type | required | description |\n| --- | --- | --- | --- |")
	for _, name := range names {
		prop, _ := props[name].(map[string]any)
		typ := fmt.Sprint(prop["type"])
		if list, ok := prop["type"].([]any); ok {
			parts := make([]string, len(list))
			for i, t := range list {
				parts[i] = fmt.Sprint(t)
			}
			typ = strings.Join(parts, " or ")
		}
		if enum, ok := prop["enum"].([]any); ok && prop["type"] == nil {
			parts := make([]string, len(enum))
			for i, v := range enum {
				parts[i] = fmt.Sprint(v)
			}
			typ = "one of " + strings.Join(parts, ", ")
		}
		desc, _ := prop["description"].(string)
		fmt.Fprintf(w, "| %s | %s | %v | %s |\n", name, typ, required[name], strings.ReplaceAll(desc, "|", `\|`))
	}
}

// ParseKey splits a routing key into the entry's named fields: one word
// each, the constant where one is given, and the rest (joined by dots) for
// the field of multiple words. ok is false when the key does not fit.
func (e ReferenceEntry) ParseKey(key string) (fields map[string]string, ok bool) {
	words := strings.Split(key, ".")
	multi := slices.IndexFunc(e.RoutingKey, func(f translator.KeyField) bool { return f.MultipleWords })
	n := len(e.RoutingKey)
	if multi < 0 && len(words) != n || multi >= 0 && len(words) < n-1 {
		return nil, false
	}
	fields = make(map[string]string, n)
	set := func(f translator.KeyField, word string) bool {
		if word == "" || f.Constant != "" && f.Constant != word {
			return false
		}
		fields[f.Name] = word
		return true
	}
	head := n
	if multi >= 0 {
		head = multi
	}
	for i := 0; i < head; i++ {
		if !set(e.RoutingKey[i], words[i]) {
			return nil, false
		}
	}
	if multi >= 0 {
		tail := n - multi - 1
		for i := 1; i <= tail; i++ {
			if !set(e.RoutingKey[n-i], words[len(words)-i]) {
				return nil, false
			}
		}
		fields[e.RoutingKey[multi].Name] = strings.Join(words[multi:len(words)-tail], ".")
	}
	return fields, true
}
