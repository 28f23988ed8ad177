package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"scalelab/lab"
	"scalelab/topologies"
)

// runCompose writes a phase's Compose file, generated from its phase file,
// and the configuration files it names (docker/phase-N/…) next to it.
func runCompose(_ context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("compose", stderr)
	phase := fs.Int("phase", 3, "phase whose topology to write: 1 to 4")
	swarm := fs.Bool("swarm", false, "write the Swarm stack file (docker/phase-N.stack.yaml, for docker stack deploy) instead of the Compose file")
	out := fs.String("out", "", "the file to write (default docker/phase-N.compose.yaml, or .stack.yaml with --swarm); config files go next to it; - prints the file only")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	def, err := lab.Phase(*phase)
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	write := topologies.Compose
	if *swarm {
		write = topologies.Stack
	}
	files, err := write(def)
	if err != nil {
		return err
	}
	if *out == "-" {
		_, err := stdout.Write(files[0].Data)
		return err
	}
	path := *out
	if path == "" {
		path = filepath.Join("docker", files[0].Path)
	}
	dir := filepath.Dir(path)
	for i, f := range files {
		p := filepath.Join(dir, f.Path)
		if i == 0 {
			p = path
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("compose: %w", err)
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			return fmt.Errorf("compose: %w", err)
		}
		fmt.Fprintf(stdout, "wrote %s\n", p)
	}
	return nil
}
