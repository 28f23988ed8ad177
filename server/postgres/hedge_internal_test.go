package postgres

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"scalelab/server"
)

// hedgeDB is a DB whose sources are never dialled: the reads under test
// are functions that answer by source. Pools connect on first use, and
// these are never used.
func hedgeDB(t *testing.T, replays ...server.Position) *DB {
	t.Helper()
	newPool := func() *pgxpool.Pool {
		p, err := pgxpool.New(t.Context(), "postgres://scalelab@127.0.0.1:1/none")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}
	log := slog.New(slog.DiscardHandler)
	db := &DB{primary: newPrimaryPool(newPool(), log), log: log, maxLag: time.Second, hedgeAfter: 20 * time.Millisecond}
	for i, replay := range replays {
		r := &replica{name: "replica-" + string(rune('1'+i)), pool: newPool(), log: log}
		r.state.Store(&replicaState{healthy: true, replay: replay, sampledAt: time.Now()})
		db.replicas = append(db.replicas, r)
	}
	if err := db.registerMetrics(nil); err != nil {
		t.Fatal(err)
	}
	return db
}

// source names the source q is: "primary" or the replica's name.
func source(db *DB, q querier) string {
	if q == querier(db.primary) {
		return "primary"
	}
	for _, r := range db.replicas {
		if q == querier(r.pool) {
			return r.name
		}
	}
	return "unknown"
}

// A replica that has not replayed everything the primary is known to have
// written may answer "not found" for a row that exists: the primary paused
// before shipping the insert, and the router's lag, frozen while the
// primary is out, still calls the replica usable. That answer must not win
// the read: a current source decides, and while none can (the primary is
// down) the read fails as unavailable instead of answering "not found".
func TestHedgedNotFoundNeedsACurrentSource(t *testing.T) {
	const id = "01890a5d-ac96-774b-bcce-b302099a8057"
	found := &server.User{ID: id}
	notFound := func() (*server.User, error) { return nil, errUserNotFound() }
	tests := []struct {
		name string
		// replays of the replicas; the primary is known at 1000
		replays []server.Position
		// primaryDown: the primary answers EUNAVAILABLE
		primaryDown bool
		// slow delays every replica's answer
		slow    time.Duration
		want    string // "found", "not_found" or "unavailable"
		asked   []string
		noAsked []string
	}{
		{name: "replicas behind, primary up: the primary decides", replays: []server.Position{900, 900},
			want: "found", asked: []string{"primary"}},
		{name: "replicas behind, primary down: unavailable, not not-found", replays: []server.Position{900, 900}, primaryDown: true,
			want: "unavailable"},
		{name: "a current replica's not-found is the answer", replays: []server.Position{1000},
			want: "not_found", noAsked: []string{"primary"}},
		{name: "one behind, one current: the current one decides", replays: []server.Position{900, 1000},
			want: "not_found", asked: []string{"replica-2"}, noAsked: []string{"primary"}},
		{name: "slow replica, primary down: the replica's answer, not the primary's 503", replays: []server.Position{1000},
			primaryDown: true, slow: 150 * time.Millisecond, want: "found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := hedgeDB(t, tt.replays...)
			db.primary.seen(1000)
			var mu sync.Mutex
			asked := map[string]bool{}
			fn := func(ctx context.Context, q querier) (*server.User, error) {
				src := source(db, q)
				mu.Lock()
				asked[src] = true
				mu.Unlock()
				if src == "primary" {
					if tt.primaryDown {
						return nil, errPrimaryDown()
					}
					return found, nil
				}
				if tt.slow > 0 {
					select {
					case <-time.After(tt.slow):
					case <-ctx.Done():
						return nil, ctx.Err()
					}
				}
				for _, r := range db.replicas {
					if r.name == src && r.state.Load().replay >= 1000 && tt.want != "not_found" {
						return found, nil // a current replica has the row
					}
				}
				return notFound()
			}
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			u, err := readHedged(ctx, db, "user", fn)
			mu.Lock()
			defer mu.Unlock()
			got := "found"
			switch {
			case err != nil:
				got = server.ErrorCode(err)
			case u == nil:
				got = "nil user"
			}
			if got != tt.want {
				t.Errorf("readHedged = %v, %v (%s); want %s (sources asked: %v)", u, err, got, tt.want, asked)
			}
			for _, s := range tt.asked {
				if !asked[s] {
					t.Errorf("%s was not asked, want it asked (asked: %v)", s, asked)
				}
			}
			for _, s := range tt.noAsked {
				if asked[s] {
					t.Errorf("%s was asked, want not (asked: %v)", s, asked)
				}
			}
		})
	}
}
