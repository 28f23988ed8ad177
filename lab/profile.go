package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"time"

	"scalelab/loadgen"
)

// startProfiles records CPU profiles for the length of the measured run
// into Config.ProfileDir (nothing without it): each app instance's, from
// /debug/pprof/profile on its metrics listener, as app-N.cpu.pprof, and
// this process's (the load generator's) as loadgen.cpu.pprof. Read them
// with `go tool pprof -top FILE`. stop waits for the instances' profiles,
// which end by themselves when their seconds are up, and reports what
// could not be saved.
func (s *Session) startProfiles(ctx context.Context, length time.Duration) (stop func() error) {
	dir := s.cfg.ProfileDir
	if dir == "" {
		return func() error { return nil }
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return func() error { return fmt.Errorf("profiles: %w", err) }
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	seconds := max(1, int(math.Ceil(length.Seconds())))
	for i, base := range s.top.AppMetricsURLs {
		name := fmt.Sprintf("app-%d.cpu.pprof", i+1)
		wg.Go(func() {
			url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, seconds)
			if err := fetchProfile(ctx, url, filepath.Join(dir, name)); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	gen, err := os.Create(filepath.Join(dir, "loadgen.cpu.pprof"))
	if err == nil {
		if err = pprof.StartCPUProfile(gen); err != nil {
			gen.Close()
			gen = nil
		}
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("profile the load generator: %w", err))
	}
	return func() error {
		if gen != nil {
			pprof.StopCPUProfile()
			if err := gen.Close(); err != nil {
				errs = append(errs, fmt.Errorf("profile the load generator: %w", err))
			}
		}
		wg.Wait()
		return errors.Join(errs...)
	}
}

// fetchProfile saves the profile at url into path.
func fetchProfile(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("profile %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("profile %s: %s: %s", url, resp.Status, body)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("profile %s: %w", url, err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("profile %s: save %s: %w", url, path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("profile %s: save %s: %w", url, path, err)
	}
	return nil
}

// runLength is how long ex starts operations, or fallback when it does
// not say.
func runLength(ex loadgen.Executor, fallback time.Duration) time.Duration {
	switch e := ex.(type) {
	case loadgen.ConstantArrivalRate:
		return e.Duration
	case loadgen.ConstantVUs:
		return e.Duration
	}
	return fallback
}
