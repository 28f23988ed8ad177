package main

import (
	"context"
	"io"
)

func notYet(name string) error {
	return &exitError{code: 3, msg: name + ": not yet (its issue has not landed)"}
}

func runRun(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return notYet("run")
}

func runCompare(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return notYet("compare")
}

func runUp(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return notYet("up")
}

func runDown(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return notYet("down")
}
