package storetest

import (
	"context"
	"testing"
	"time"

	"scalelab/server"
)

// RunStats checks a store's Stats: users in total and today's sign-ups and
// records. A store with RefreshStats (materialized views) must keep its
// figures until refreshed and show the new ones after.
func RunStats(t *testing.T, s server.Store) {
	ss, ok := s.(interface {
		Stats(ctx context.Context) (*server.Stats, error)
	})
	if !ok {
		t.Fatalf("%T has no Stats method", s)
	}
	rs, views := s.(interface {
		RefreshStats(ctx context.Context) (bool, error)
	})
	refresh := func() {
		t.Helper()
		if !views {
			return
		}
		if ok, err := rs.RefreshStats(t.Context()); err != nil || !ok {
			t.Fatalf("RefreshStats() = %v, %v; want true, nil", ok, err)
		}
	}
	stats := func() *server.Stats {
		t.Helper()
		st, err := ss.Stats(t.Context())
		if err != nil {
			t.Fatalf("Stats() = %v", err)
		}
		return st
	}
	check := func(st *server.Stats, users, records int64, what string) {
		t.Helper()
		today := time.Now().UTC().Truncate(24 * time.Hour)
		var got server.DayStats
		for _, d := range st.Days {
			if d.Day.Equal(today) {
				got = d
			}
		}
		if st.Users != users || got.SignUps != users || got.Records != records {
			t.Errorf("Stats() %s = %d users, today %+v; want %d users, today %d sign-ups and %d records", what, st.Users, got, users, users, records)
		}
		if age := time.Since(st.AsOf); age < -time.Second || age > time.Minute {
			t.Errorf("Stats() %s: as_of %v, want about now", what, st.AsOf)
		}
	}

	before := time.Now()
	a := mustCreateUser(t, s, "ada@example.com", "ada")
	mustCreateUser(t, s, "bob@example.com", "bob")
	if err := s.CreateRecords(t.Context(), a.ID, newBatch(3)); err != nil {
		t.Fatal(err)
	}
	refresh()
	st := stats()
	check(st, 2, 3, "after 2 sign-ups and 3 records")
	if len(st.Days) != 1 {
		t.Errorf("Stats() days = %+v, want today only", st.Days)
	}

	mustCreateUser(t, s, "cy@example.com", "cy")
	if views {
		check(stats(), 2, 3, "before the views are refreshed")
		refresh()
		st := stats()
		check(st, 3, 3, "after a refresh")
		if st.AsOf.Before(before) {
			t.Errorf("Stats() as_of %v after a refresh, want after %v", st.AsOf, before)
		}
	} else {
		check(stats(), 3, 3, "live, after a third sign-up")
	}
}
