package runner

import (
	"context"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
)

// routerLogger is watermill's slog adapter for logger, minus the cost of
// entries the logger drops: the adapter builds an entry's attributes
// before it asks whether the level is on, and the router and subscriber
// log several Trace entries for every message.
func routerLogger(logger *slog.Logger) watermill.LoggerAdapter {
	ctx := context.Background()
	return levelGate{
		LoggerAdapter: watermill.NewSlogLogger(logger),
		debug:         logger.Enabled(ctx, slog.LevelDebug),
		trace:         logger.Enabled(ctx, watermill.LevelTrace),
	}
}

// levelGate drops Debug and Trace entries up front when their level is off.
type levelGate struct {
	watermill.LoggerAdapter
	debug, trace bool
}

func (l levelGate) Debug(msg string, fields watermill.LogFields) {
	if l.debug {
		l.LoggerAdapter.Debug(msg, fields)
	}
}

func (l levelGate) Trace(msg string, fields watermill.LogFields) {
	if l.trace {
		l.LoggerAdapter.Trace(msg, fields)
	}
}

func (l levelGate) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return levelGate{LoggerAdapter: l.LoggerAdapter.With(fields), debug: l.debug, trace: l.trace}
}
