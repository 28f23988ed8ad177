package lab

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"scalelab/loadgen"
	"scalelab/server"
	"scalelab/server/app"
	"scalelab/server/auth"
)

// SeedUsers bulk-loads users seeded users into store with one shared
// password hash, showing a progress bar on w, and returns how long it took.
// Seeded ids and logins are deterministic (server.SeedUserID,
// server.SeedUsername), which is how the driver finds them.
func SeedUsers(ctx context.Context, store app.SeedStore, users int, w io.Writer, log *slog.Logger) (time.Duration, error) {
	// One hash for every seeded user, at the server's default cost, so
	// token requests for seeded users cost what real ones do.
	hash, err := auth.Hash(server.SeedPassword, auth.DefaultParams())
	if err != nil {
		return 0, fmt.Errorf("seed: hash the shared password: %w", err)
	}
	fmt.Fprintf(w, "seeding %d users (all share one password hash of %q; seeded ids are deterministic)\n",
		users, server.SeedPassword)
	bar := loadgen.StartBar(ctx, w, "seed", int64(users))
	start := time.Now()
	var last int
	err = store.Seed(ctx, users, hash, func(done int) {
		bar.Add(int64(done - last))
		last = done
	})
	bar.Stop()
	if err != nil {
		return 0, fmt.Errorf("seed %d users: %w", users, err)
	}
	d := time.Since(start)
	log.Info("seeded", "users", users, "seconds", d.Seconds())
	return d, nil
}
