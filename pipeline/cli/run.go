package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/runner"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

func runCommand(prog Program, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("run", stderr)
	configPath := fs.String("config", "", "config file (default: the embedded default)")
	declareUpstream := fs.Bool("declare-upstream", false, "declare missing upstream exchanges (local brokers only; a Pulse user may not)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file (for go tool pprof)")
	httpAddr := fs.String("http", "", "serve /metrics (Prometheus), /healthz and /readyz on this address, e.g. :9464 (default: off)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(strings.ToUpper(*level))); err != nil {
		fmt.Fprintf(stderr, "pulsetranslator run: --log-level %q: use debug, info, warn or error\n", *level)
		return 2
	}
	logger := newLogger(stderr, lvl)
	cfg, err := prog.loadConfig(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "pulsetranslator run: %v\n", err)
		return 1
	}
	cfg.DeclareUpstream = cfg.DeclareUpstream || *declareUpstream
	rn, err := runner.New(cfg, translator.Default, logger)
	if err != nil {
		fmt.Fprintf(stderr, "pulsetranslator run: %v\n", err)
		return 1
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "pulsetranslator run: --cpuprofile: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "pulsetranslator run: --cpuprofile: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if *httpAddr != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		metrics, err := runner.NewMetrics(reg)
		if err != nil {
			fmt.Fprintf(stderr, "pulsetranslator run: metrics: %v\n", err)
			return 1
		}
		rn.UseMetrics(metrics)
		ln, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			fmt.Fprintf(stderr, "pulsetranslator run: --http %s: %v\n", *httpAddr, err)
			return 1
		}
		srv := runner.ServeHTTP(ln, runner.HTTPHandler(rn, reg))
		defer srv.Close()
		logger.Info("serving metrics and health", "address", ln.Addr().String())
	}
	logger.Info("starting", "config", cfg.Source(), "client_id", cfg.ClientID, "broker", cfg.ConnectionSummary(), "pipelines", len(cfg.Pipelines))
	if err := rn.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "pulsetranslator run: %v\n", err)
		return 1
	}
	logger.Info("stopped")
	return 0
}

// newLogger logs as text on a terminal and as JSON lines otherwise, for
// log collectors.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if isTerminal(w) {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
