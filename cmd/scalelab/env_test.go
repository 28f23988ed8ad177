package main

import (
	"flag"
	"io"
	"testing"
	"time"

	"scalelab/server/app"
)

func TestFlagsFromEnvironment(t *testing.T) {
	env := map[string]string{"SCALELAB_CACHE_TTL": "7m", "SCALELAB_ADDR": "127.0.0.1:9999", "SCALELAB_REPLICA": "postgres://a,postgres://b"}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	ttl := fs.Duration("cache-ttl", time.Minute, "")
	addr := fs.String("addr", "", "")
	var replicas app.ListFlag
	fs.Var(&replicas, "replica", "")
	if err := parseFlags(fs, []string{"--addr", "127.0.0.1:1"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if *ttl != 7*time.Minute {
		t.Errorf("cache-ttl = %v, want 7m from SCALELAB_CACHE_TTL", *ttl)
	}
	if *addr != "127.0.0.1:1" {
		t.Errorf("addr = %q, want the command line's value over the environment's", *addr)
	}
	if len(replicas) != 2 {
		t.Errorf("replica = %v, want two from SCALELAB_REPLICA", replicas)
	}
}
