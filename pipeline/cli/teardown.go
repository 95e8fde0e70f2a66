package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/deadqueue"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/runner"
)

// teardownInput is where teardown reads its confirmation; tests replace it.
var teardownInput io.Reader = os.Stdin

// teardownItem is one queue or exchange a pipeline's run declared.
type teardownItem struct {
	kind, name string
	// note says what deleting it means beyond the pipeline.
	note string
}

// teardownItems lists what "run" declares for the pipelines named: the
// input, dead and wait queues, and the output, dead, wait, park and hold
// exchanges. An output exchange that a pipeline not torn down also
// publishes to is kept. Upstream exchanges are never listed: others
// publish and consume there.
func teardownItems(cfg *config.Config, names []string) []teardownItem {
	var items []teardownItem
	keptOutputs := map[string]bool{}
	for _, p := range cfg.Pipelines {
		if !slices.Contains(names, p.Name) {
			for _, o := range p.Outputs {
				keptOutputs[o.Exchange] = true
			}
		}
	}
	for _, p := range cfg.Pipelines {
		if !slices.Contains(names, p.Name) {
			continue
		}
		items = append(items, teardownItem{"queue", pulse.InputQueue(cfg.ClientID, p.Name), "bound upstream: it fills while nothing consumes it"})
		items = append(items, teardownItem{"queue", pulse.DeadQueue(cfg.ClientID, p.Name), "the parked messages go with it"})
		for _, tier := range p.Wait.Tiers {
			items = append(items, teardownItem{"queue", pulse.WaitQueue(cfg.ClientID, p.Name, tier), "waiting messages go with it"})
		}
		for _, o := range p.Outputs {
			if !keptOutputs[o.Exchange] && !slices.ContainsFunc(items, func(i teardownItem) bool { return i.name == o.Exchange }) {
				items = append(items, teardownItem{"exchange", o.Exchange, "consumers' queues bound to it lose their bindings"})
			}
		}
		for _, ex := range []string{pulse.DeadExchange(cfg.ClientID, p.Name), pulse.WaitExchange(cfg.ClientID, p.Name),
			pulse.ParkExchange(cfg.ClientID, p.Name), pulse.HoldExchange(cfg.ClientID, p.Name)} {
			items = append(items, teardownItem{"exchange", ex, ""})
		}
	}
	return items
}

func teardownCommand(prog Program, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("teardown", stderr)
	configPath := fs.String("config", "", "config file (default: the embedded default)")
	pipelineFlag := fs.String("pipeline", "", "tear down only this pipeline (default: every pipeline of the config)")
	yes := fs.Bool("yes", false, "delete without asking")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "pulsetranslator teardown: %v\n", err)
		return 1
	}
	cfg, err := prog.loadConfig(*configPath)
	if err != nil {
		return fail(err)
	}
	var names []string
	for _, p := range cfg.Pipelines {
		if *pipelineFlag == "" || p.Name == *pipelineFlag {
			names = append(names, p.Name)
		}
	}
	if len(names) == 0 {
		return fail(fmt.Errorf("no pipeline %q in %s", *pipelineFlag, cfg.Source()))
	}
	conn, err := runner.Dial(cfg, "pulsetranslator teardown")
	if err != nil {
		return fail(err)
	}
	defer conn.Close()

	items := teardownItems(cfg, names)
	var present []teardownItem
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(stdout, "What \"run\" declared for pipeline(s) %s of client id %s, on %s:\n\n", strings.Join(names, ", "), cfg.ClientID, cfg.ConnectionSummary())
	for _, it := range items {
		state, err := inspectItem(conn, cfg, it)
		if err != nil {
			return fail(err)
		}
		if state != "absent" {
			present = append(present, it)
		}
		note := ""
		if it.note != "" && state != "absent" {
			note = "(" + it.note + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", it.kind, it.name, state, note)
	}
	tw.Flush()
	if len(present) == 0 {
		fmt.Fprintln(stdout, "\nnothing to delete")
		return 0
	}
	fmt.Fprintln(stdout, "\nStop every process running these pipelines first: a running one declares them again.")
	if !*yes {
		fmt.Fprintf(stdout, "Delete these %d? [y/N] ", len(present))
		answer, _ := bufio.NewReader(teardownInput).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			fmt.Fprintln(stdout, "nothing deleted")
			return 1
		}
	}
	ch, err := conn.Channel()
	if err != nil {
		return fail(err)
	}
	defer ch.Close()
	for _, it := range present {
		if err := it.delete(ch); err != nil {
			return fail(fmt.Errorf("delete %s %s: %w", it.kind, it.name, err))
		}
		fmt.Fprintf(stdout, "deleted %s %s\n", it.kind, it.name)
	}
	return 0
}

// delete deletes the queue or exchange.
func (it teardownItem) delete(ch *amqp.Channel) error {
	if it.kind == "queue" {
		_, err := ch.QueueDelete(it.name, false, false, false)
		return err
	}
	return ch.ExchangeDelete(it.name, false, false)
}

// inspectItem says whether a queue or exchange exists, and how many
// messages a queue holds.
func inspectItem(conn *amqp.Connection, cfg *config.Config, it teardownItem) (string, error) {
	if it.kind == "queue" {
		n, err := deadqueue.Count(conn, cfg, it.name, deadqueue.DefaultAnswerWithin)
		var missing *deadqueue.MissingErr
		if errors.As(err, &missing) {
			return "absent", nil
		}
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%d messages", n), nil
	}
	ch, err := conn.Channel()
	if err != nil {
		return "", err
	}
	defer ch.Close()
	err = ch.ExchangeDeclarePassive(it.name, "", false, false, false, false, nil)
	var ae *amqp.Error
	switch {
	case errors.As(err, &ae) && ae.Code == amqp.NotFound:
		return "absent", nil
	case err != nil:
		return "", err
	}
	return "present", nil
}
