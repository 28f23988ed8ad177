package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"scalelab/server/app"
)

func runServer(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("server", stderr)
	var c app.Config
	c.RegisterFlags(fs)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	log, err := app.NewLogger(stderr, c.LogLevel)
	if err != nil {
		return usageError(err)
	}
	if c.Name != "" {
		log = log.With("instance", c.Name)
	}
	s, err := app.New(ctx, c, log)
	if err != nil {
		return usageError(err)
	}
	fmt.Fprintf(stdout, "scalelab server listening on %s\n", s.URL())
	if m := s.MetricsURL(); m != "" {
		fmt.Fprintf(stdout, "scalelab server metrics on %s/metrics\n", m)
	}
	return s.Serve(ctx)
}

// usageError turns a configuration error of the server's wiring into exit
// status 2; other errors pass through.
func usageError(err error) error {
	if errors.Is(err, app.ErrConfig) {
		return &exitError{code: 2, msg: err.Error()}
	}
	return err
}

// newLogger is app.NewLogger with a bad level as a usage error.
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	log, err := app.NewLogger(w, level)
	return log, usageError(err)
}
