//go:build !linux

package pauses

import (
	"context"
	"errors"
	"io"
)

// Probe is Linux only: it pins threads to CPUs and raises their priority.
func Probe(context.Context, io.Writer) error {
	return errors.New("pause probe: Linux only")
}
