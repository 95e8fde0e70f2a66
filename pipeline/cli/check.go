package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/process"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

// shipped is what the plugins of this binary ship.
func shipped() (*process.Shipped, error) { return process.Ship(translator.Default) }

func checkCommand(prog Program, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check", stderr)
	configPath := fs.String("config", "", "config file (default: the embedded default)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := prog.loadConfig(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "pulsetranslator check: %v\n", err)
		return 1
	}
	ship, err := shipped()
	if err != nil {
		fmt.Fprintf(stderr, "pulsetranslator check: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "config: %s\n", cfg.Source())
	fmt.Fprintf(stdout, "client id: %s\nconnection: %s\n", cfg.ClientID, cfg.ConnectionSummary())
	fmt.Fprintf(stdout, "translators: %s\nschemas: %s\n", strings.Join(translator.Default.Names(), ", "), strings.Join(ship.Schemas.Names(), ", "))
	failed := false
	for _, p := range cfg.Pipelines {
		proc, err := process.NewProcessor(p, translator.Default, ship)
		if err != nil {
			fmt.Fprintf(stderr, "pulsetranslator check: %v\n", err)
			failed = true
			continue
		}
		fmt.Fprintf(stdout, "pipeline %s: translator %s\n", p.Name, p.Translator)
		fmt.Fprintf(stdout, "  input queue %s (max %d, %s), dead queue %s\n", pulse.InputQueue(cfg.ClientID, p.Name), p.Queue.MaxLength, p.Queue.Type, pulse.DeadQueue(cfg.ClientID, p.Name))
		for _, b := range p.Bindings {
			fmt.Fprintf(stdout, "  binding %s %s\n", b.Exchange, strings.Join(b.RoutingKeys, " "))
		}
		for _, o := range p.Outputs {
			fmt.Fprintf(stdout, "  output %s -> %s (%s)\n", o.Name, o.Exchange, o.Envelope)
		}
		fmt.Fprintf(stdout, "  rules: %d from %s: %s\n", proc.Rules().Len(), strings.Join(p.Rules, ", "), strings.Join(proc.Rules().Names(), ", "))
		known := schemaFields(ship)
		for _, f := range proc.Rules().SetFields() {
			known[f] = true
		}
		for _, r := range proc.Rules().PayloadReads() {
			if !known[r.Field] {
				fmt.Fprintf(stdout, "  warning: rule %q (%s) reads payload.%s, which no schema of this binary defines and no rule sets: a misspelling?\n", r.Rule, r.Where, r.Field)
			}
		}
		queues := make([]string, len(p.Wait.Tiers))
		for i, tier := range p.Wait.Tiers {
			queues[i] = pulse.WaitQueue(cfg.ClientID, p.Name, tier)
		}
		if proc.Waits() {
			fmt.Fprintf(stdout, "  readiness gate: wait queues %s; deadline %s, then %s; outputs a queue refuses wait there too\n", strings.Join(queues, ", "), p.Wait.Deadline, p.Wait.OnDeadline)
		} else {
			fmt.Fprintf(stdout, "  wait queues %s, for outputs a queue refuses; deadline %s, then unpublishable\n", strings.Join(queues, ", "), p.Wait.Deadline)
		}
	}
	if failed {
		return 1
	}
	fmt.Fprintln(stdout, "ok")
	return 0
}

// schemaFields are the payload fields the shipped schemas define: the
// properties of each schema, and of the schemas it combines (allOf,
// anyOf, oneOf).
func schemaFields(ship *process.Shipped) map[string]bool {
	fields := map[string]bool{}
	var walk func(doc map[string]any)
	walk = func(doc map[string]any) {
		if props, ok := doc["properties"].(map[string]any); ok {
			for name := range props {
				fields[name] = true
			}
		}
		for _, key := range []string{"allOf", "anyOf", "oneOf"} {
			if list, ok := doc[key].([]any); ok {
				for _, sub := range list {
					if m, ok := sub.(map[string]any); ok {
						walk(m)
					}
				}
			}
		}
	}
	for _, name := range ship.Schemas.Names() {
		walk(ship.Schemas.Document(name))
	}
	return fields
}
