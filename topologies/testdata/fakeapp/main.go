// Command fakeapp stands in for `scalelab server` while developing the
// runner: the same server flags, /healthz, /readyz, /metrics with the cache
// counters, and / answering with the instance name.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if len(os.Args) < 2 || os.Args[1] != "server" {
		fmt.Fprintln(os.Stderr, "usage: fakeapp server [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address")
	fs.String("db", "", "database")
	var replicas, redis list
	fs.Var(&replicas, "replica", "replica URL")
	fs.Var(&redis, "redis", "redis addrs")
	fs.Duration("cache-ttl", 0, "L1 TTL")
	fs.Int("rate-limit", 0, "rate limit")
	fs.Int("login-limit", 0, "login limit")
	name := fs.String("instance-name", "", "name")
	fs.Parse(os.Args[2:])
	var hits atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ready") })
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "# TYPE scalelab_cache_hits_total counter\nscalelab_cache_hits_total{tier=\"l1\"} %d\n", hits.Load())
		fmt.Fprintf(w, "# TYPE scalelab_cache_misses_total counter\nscalelab_cache_misses_total{tier=\"l1\"} 1\n")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("X-Instance", *name)
		fmt.Fprintln(w, *name)
	})
	fmt.Println("fakeapp listening on", *addr)
	if err := http.ListenAndServe(*addr, mux); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
