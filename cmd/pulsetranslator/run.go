package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/pulsetranslator/pulsetranslator/pipeline"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

func runCommand(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("run", stderr)
	configPath := fs.String("config", "", "config file (default: the embedded default)")
	declareUpstream := fs.Bool("declare-upstream", false, "declare missing upstream exchanges (local brokers only; a Pulse user may not)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file (for go tool pprof)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(strings.ToUpper(*level))); err != nil {
		fmt.Fprintf(stderr, "pulsetranslator run: --log-level %q: use debug, info, warn or error\n", *level)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	cfg, err := loadConfig(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "pulsetranslator run: %v\n", err)
		return 1
	}
	cfg.DeclareUpstream = cfg.DeclareUpstream || *declareUpstream
	runner, err := pipeline.NewRunner(cfg, translator.Default, watermill.NewSlogLogger(logger))
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
	logger.Info("starting", "config", cfg.Source(), "client_id", cfg.ClientID, "broker", pipeline.RedactURL(cfg.Connection), "pipelines", len(cfg.Pipelines))
	if err := runner.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "pulsetranslator run: %v\n", err)
		return 1
	}
	logger.Info("stopped")
	return 0
}
