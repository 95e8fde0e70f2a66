package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/broker"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/deadqueue"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/runner"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/termtext"
)

const deadUsage = `usage: pulsetranslator dead <list|show|replay> [--config FILE] [--pipeline NAME] [--limit N] [--timeout D] ...

  list              the parked messages: position, when, class, source routing key, reason
  show N            one parked message whole: its headers and body
  replay --all      publish every parked message back into the pipeline's input
  replay N [N...]   publish the messages at these positions back (as list numbers them)

Replayed messages are removed from the dead queue once the broker confirms
their copy; the others stay, in order. Replay after fixing what refused them
(a rule, a table, a schema) and restarting the pipeline.
`

// closeWithin bounds how long "dead" waits for the broker to close its
// connection: a queue that does not answer holds the close too. The close
// then goes on in the background (the process is about to exit, and the
// socket closes with it).
const closeWithin = 2 * time.Second

func deadCommand(prog Program, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, deadUsage)
		return 2
	}
	action, rest := args[0], args[1:]
	fs := newFlags("dead "+action, stderr)
	configPath := fs.String("config", "", "config file (default: the embedded default)")
	pipelineFlag := fs.String("pipeline", "", "pipeline (default: the first)")
	limit := fs.Int("limit", 1000, "read at most this many parked messages")
	all := fs.Bool("all", false, "replay: every parked message read")
	timeout := fs.Duration("timeout", deadqueue.DefaultAnswerWithin, "give up a read of the dead queue that the broker does not answer within this")
	if err := fs.Parse(rest); err != nil {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "pulsetranslator dead %s: %v\n", action, err)
		return 1
	}
	var positions []int
	for _, arg := range fs.Args() {
		n, err := strconv.Atoi(arg)
		if err != nil || n < 1 {
			fmt.Fprintf(stderr, "pulsetranslator dead %s: %q is not a position (1, 2, ... as list shows)\n", action, arg)
			return 2
		}
		positions = append(positions, n)
	}
	switch {
	case action == "show" && len(positions) != 1,
		action == "replay" && (*all == (len(positions) > 0)),
		action == "list" && len(positions) > 0:
		fmt.Fprint(stderr, deadUsage)
		return 2
	case action != "list" && action != "show" && action != "replay":
		fmt.Fprintf(stderr, "pulsetranslator dead: unknown action %q\n\n%s", action, deadUsage)
		return 2
	}
	cfg, err := prog.loadConfig(*configPath)
	if err != nil {
		return fail(err)
	}
	name := pipelineName(cfg, *pipelineFlag)
	conn, err := runner.Dial(cfg, "pulsetranslator dead")
	if err != nil {
		return fail(err)
	}
	defer func() {
		_, _ = broker.Within(closeWithin, func() (struct{}, error) { return struct{}{}, conn.Close() })
	}()
	if !slices.ContainsFunc(cfg.Pipelines, func(p config.PipelineConfig) bool { return p.Name == name }) {
		return fail(fmt.Errorf("no pipeline %q in %s", name, cfg.Source()))
	}
	total, err := deadqueue.Count(conn, cfg, pulse.DeadQueue(cfg.ClientID, name), *timeout)
	if err != nil {
		return fail(err)
	}
	dead, err := deadqueue.Open(conn, cfg, name)
	if err != nil {
		return fail(err)
	}
	dead.AnswerWithin = *timeout
	defer dead.Close()
	parked, err := dead.Read(*limit)
	if err != nil {
		return fail(err)
	}
	switch action {
	case "list":
		listParked(stdout, parked, total)
	case "show":
		if positions[0] > len(parked) {
			return fail(fmt.Errorf("there is no message %d; the dead queue holds %d (within --limit %d)", positions[0], len(parked), *limit))
		}
		showParked(stdout, parked[positions[0]-1])
	case "replay":
		chosen := parked
		if !*all {
			chosen = nil
			for _, n := range positions {
				if n > len(parked) {
					return fail(fmt.Errorf("there is no message %d; the dead queue holds %d (within --limit %d)", n, len(parked), *limit))
				}
				if !slices.ContainsFunc(chosen, func(p deadqueue.Parked) bool { return p.Position == n }) {
					chosen = append(chosen, parked[n-1])
				}
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		n, err := dead.Replay(ctx, chosen)
		fmt.Fprintf(stdout, "replayed %d of %d message(s) into the input of pipeline %s\n", n, len(chosen), name)
		if err != nil {
			return fail(err)
		}
	}
	return 0
}

// listParked writes how many messages the dead queue holds (total) and
// how many of those read are of each class, then one line per parked
// message read. What came from upstream (the routing key, and the reason,
// which may quote the message) goes through termtext: an operator's
// terminal obeys no escape sequence a message carries.
func listParked(w io.Writer, parked []deadqueue.Parked, total int) {
	if len(parked) == 0 {
		fmt.Fprintln(w, "the dead queue is empty")
		return
	}
	total = max(total, len(parked))
	if len(parked) < total {
		fmt.Fprintf(w, "%d parked messages; the first %d (--limit) by class:\n", total, len(parked))
	} else {
		fmt.Fprintf(w, "%d parked messages, by class:\n", total)
	}
	classes := map[string]int{}
	for _, p := range parked {
		classes[p.Class]++
	}
	names := slices.Sorted(maps.Keys(classes))
	slices.SortStableFunc(names, func(a, b string) int { return classes[b] - classes[a] })
	for _, c := range names {
		fmt.Fprintf(w, "  %6d  %s\n", classes[c], termtext.String(c))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tPARKED\tCLASS\tSOURCE ROUTING KEY\tREASON")
	for _, p := range parked {
		when := "-"
		if !p.ParkedAt.IsZero() {
			when = p.ParkedAt.UTC().Format(time.RFC3339)
		}
		reason := termtext.Truncate(p.Reason, 120)
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", p.Position, when, termtext.String(p.Class), termtext.String(p.SourceRoutingKey), termtext.String(reason))
	}
	tw.Flush()
	if len(parked) < total {
		fmt.Fprintf(w, "\n%d more not shown: --limit %d reads them all\n", total-len(parked), total)
	}
}

// showParked writes one parked message whole, its upstream text made safe
// for a terminal as in listParked.
func showParked(w io.Writer, p deadqueue.Parked) {
	when, source := "unknown", "unknown: no exchange the pipeline binds for this key"
	if !p.ParkedAt.IsZero() {
		when = p.ParkedAt.UTC().Format(time.RFC3339)
	}
	if p.SourceExchange != "" {
		source = termtext.String(p.SourceExchange)
	}
	fmt.Fprintf(w, "position:    %d\nclass:       %s\nreason:      %s\nsource:      %s %s\nparked at:   %s\n",
		p.Position, termtext.String(p.Class), termtext.String(p.Reason), source, termtext.String(p.SourceRoutingKey), when)
	keys := make([]string, 0, len(p.Delivery.Headers))
	for k := range p.Delivery.Headers {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fmt.Fprintln(w, "headers:")
	for _, k := range keys {
		fmt.Fprintf(w, "  %s: %s\n", termtext.String(k), termtext.String(fmt.Sprint(p.Delivery.Headers[k])))
	}
	fmt.Fprintf(w, "body (%d bytes):\n", len(p.Delivery.Body))
	var pretty bytes.Buffer
	if json.Indent(&pretty, p.Delivery.Body, "", "  ") == nil {
		pretty.WriteByte('\n')
		_, _ = w.Write(termtext.JSON(pretty.Bytes()))
		return
	}
	fmt.Fprintf(w, "%q\n", p.Delivery.Body)
}
