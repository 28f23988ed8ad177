package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// newFlagSet returns a flag set for a subcommand that prints its usage to
// stderr and returns errors instead of exiting.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("scalelab "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args, then fills every flag not given on the command
// line from its environment variable: SCALELAB_ plus the flag name in upper
// case with dashes as underscores (--cache-ttl reads SCALELAB_CACHE_TTL).
// The command line wins over the environment.
func parseFlags(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &exitError{code: 0}
		}
		return &exitError{code: 2}
	}
	if fs.NArg() > 0 && fs.Name() != "scalelab compare" {
		return &exitError{code: 2, msg: fmt.Sprintf("%s: unexpected arguments %q", fs.Name(), fs.Args())}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		env := envName(f.Name)
		v := getenv(env)
		if v == "" {
			return
		}
		if e := fs.Set(f.Name, v); e != nil {
			err = &exitError{code: 2, msg: fmt.Sprintf("%s=%q: %v", env, v, e)}
		}
	})
	return err
}

func envName(flagName string) string {
	return "SCALELAB_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}
